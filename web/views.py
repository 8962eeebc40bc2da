"""Pages: the map (``/``) and its printable twin (``/print``). Both are a Folium map shell with Leaflet
served by this app; the layers are fetched from the JSON API (``/api/v1/layers/<name>.geojson``), which
reads the same ``web.layers.layer_data`` as every download. The page's state is its URL query string.
"""
from __future__ import annotations

from flask import Blueprint, render_template, request, url_for

from hotspots import maps, overlays
from hotspots.export import POLICE_NOTE

from . import get_config
from . import layers as L
from .api import categories_for_user, check_layer_access, visible_layers
from .security import nonced

bp = Blueprint("views", __name__)

#: The short line on the map itself; every dataset's full attribution is in the panel footer and downloads.
MAP_ATTRIBUTION = ("Contains public sector information licensed under the Open Government Licence v3.0. "
                   "Contains OS data © Crown copyright and database right. Sources: ONS, MHCLG, data.police.uk")


def _page(template: str, printable: bool):
    config = get_config()
    p = L.parse_params(config, request.args)
    check_layer_access(p.layer)
    show = [s for s in (request.args.get("show") or "").split(",") if s]
    names = L.layer_names(config)
    bad = [s for s in show if s not in names]
    if bad:
        from hotspots.errors import NotFoundError
        raise NotFoundError(f"unknown layer {', '.join(bad)} in 'show' (have: {', '.join(names)})", column="show")
    for s in show:
        check_layer_access(s)
    if not show:
        show = [p.layer, "wards"]
    elif p.layer not in show:
        show = [p.layer] + show
    parts = {k: (nonced(v) if k != "name" else v) for k, v in _map_parts(config).items()}
    dep = [{"key": d["key"], "geography": d["geography"], "vintage": d["vintage"],
            "domains": [{"slug": x["slug"], "label": x["label"]} for x in L.domains(config, d["key"])]}
           for d in overlays.deprivation_sets(config)]
    state = {
        "map": parts["name"], "params": p.query(), "show": show, "print": printable,
        "layers": visible_layers(L.layer_catalogue(config)), "api": url_for("api.index"),
        "attribution": [MAP_ATTRIBUTION], "note": POLICE_NOTE, "tiles": config.tiles,
    }
    return render_template(template, map=parts, state=state, p=p, categories=categories_for_user(config),
                           months=L.months(config), geographies=L.GEOGRAPHIES, variables=L.VARIABLES,
                           significance=L.SIGNIFICANCE, schemes=list(maps.SCHEMES), config=config,
                           crime_layers=L.CRIME_LAYERS, deprivation=dep, note=POLICE_NOTE,
                           weights_options=["queen", "rook", "knn:5", "knn:8", "distance:1000"])


_shell: dict = {}


def _map_parts(config) -> dict:
    """The Folium shell (header, body, script) rendered once per configuration and static path; each
    request only adds its CSP nonce."""
    js = url_for("static", filename="vendor/leaflet/leaflet.js")
    css = url_for("static", filename="vendor/leaflet/leaflet.css")
    key = (id(config), config.centre, config.zoom, config.tiles, config.tiles_attribution, js, css)
    if key not in _shell:
        m = maps.build_map(centre=config.centre, zoom=config.zoom, leaflet_js=js, leaflet_css=css,
                           tiles=config.tiles, tiles_attribution=config.tiles_attribution)
        _shell[key] = maps.map_parts(m)
    return _shell[key]


@bp.get("/")
def index():
    return _page("map.html", printable=False)


@bp.get("/print")
def printable():
    return _page("print.html", printable=True)
