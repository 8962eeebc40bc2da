"""Pages: the map (``/``) and its printable twin (``/print``). Both are a Folium map shell with Leaflet
served by this app; the layers are fetched from the JSON API (``/api/v1/layers/<name>.geojson``), which
reads the same ``hotspots.pipeline.build_layer`` as every download. The page's state is its URL query string.
"""
from __future__ import annotations

from flask import Blueprint, Response, render_template, request, url_for

from hotspots import maps, pipeline
from hotspots.errors import NotFoundError
from hotspots.export import POLICE_NOTE
from hotspots.layers import CRIME_TITLES
from hotspots.request import (BANDWIDTH_MENU, CLASS_SCHEMES, GRID_CELL_MENU, GRID_LAYERS, GRID_SHAPES, KDE_KERNELS,
                              SIGNIFICANCE, STEPS, TIME_NEIGHBOURS_MENU, VARIABLES, WEIGHTS_MENU)

from . import get_config
from .api import GEOGRAPHY_LABELS, audience, audience_for_layers, categories_for_user, check_layer_access, layer, parse
from .security import nonced

bp = Blueprint("views", __name__)

#: The short line on the map itself; every dataset's full attribution is in the panel footer and downloads.
MAP_ATTRIBUTION = ("Contains public sector information licensed under the Open Government Licence v3.0. "
                   "Contains OS data © Crown copyright and database right. Sources: ONS, MHCLG, data.police.uk")


def _page(template: str, printable: bool):
    config = get_config()
    p = parse()
    catalogue = pipeline.layer_catalogue(config, audience_for_layers())
    names = [e["name"] for e in catalogue]
    show = [s for s in (request.args.get("show") or "").split(",") if s]
    bad = [s for s in show if s not in names]
    if bad:
        raise NotFoundError(f"unknown layer {', '.join(b[:40] for b in bad)} in 'show' (have: {', '.join(names)})",
                            column="show")  # names: the layers this user may see
    for s in show:
        check_layer_access(s)
    if not show:
        show = [p.layer, "wards"]
    elif p.layer not in show:
        show = [p.layer] + show
    parts = {k: (nonced(v) if k != "name" else v) for k, v in _map_parts(config).items()}
    dep = [{"key": e["name"], "geography": e["geography"], "vintage": e["vintage"], "domains": e["domains"]}
           for e in catalogue if e["kind"] == "deprivation"]
    state = {
        "map": parts["name"], "params": p.query(), "show": show, "print": printable,
        "layers": catalogue, "api": url_for("api.index"),
        "attribution": [MAP_ATTRIBUTION], "note": POLICE_NOTE, "tiles": config.tiles,
        "marking": config.marking,
        "grid": {"layers": list(GRID_LAYERS), "cell": list(GRID_CELL_MENU), "shape": list(GRID_SHAPES),
                 "bandwidth": list(BANDWIDTH_MENU), "kernel": list(KDE_KERNELS),
                 "weights": [w for w in WEIGHTS_MENU if w.startswith(("distance:", "knn:"))]},
    }
    return render_template(template, map=parts, state=state, p=p, categories=categories_for_user(config),
                           months=list(pipeline.catalog(config).months), geographies=GEOGRAPHY_LABELS,
                           variables=VARIABLES, significance=SIGNIFICANCE, schemes=list(CLASS_SCHEMES),
                           config=config, crime_layers=CRIME_TITLES, deprivation=dep, note=POLICE_NOTE,
                           weights_options=list(WEIGHTS_MENU), time_steps=list(STEPS),
                           time_neighbours_menu=list(TIME_NEIGHBOURS_MENU), where_menu=_where_menu(config),
                           chosen=dict(p.where))


def _where_menu(config) -> dict:
    """The map's filter control (issue 12): each declared extra (and the sub-category) that has values in the
    store, with those values; empty, so no control, when the configuration declares no extras."""
    if not config.extract.extras:
        return {}
    return {name: values for name, (_, values) in (pipeline.catalog(config).filters or {}).items() if values}


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


@bp.get("/briefing.<fmt>")
def briefing(fmt: str):
    """The briefing pack (A4 PDF) or the map as a PNG for slides, for this view's parameters and the user's
    audience (viewers get the protected, suppressed figures of their map). ``marking`` from the form, else
    the configuration's; ``organisation`` (at most 80 characters) else the area's name."""
    from hotspots import briefing as pack
    if fmt not in ("pdf", "png"):
        raise NotFoundError(f"unknown briefing format {fmt[:10]!r} (use pdf or png)", column="format")
    config = get_config()
    req = parse("gistar")
    layer(req)  # the analysis through the bounded pool; the briefing then reads the cached layers
    b = pack.compose(config, req, audience(), marking=request.args.get("marking") or None,
                     organisation=(request.args.get("organisation") or "")[:80] or None)
    body = pack.briefing_pdf(b) if fmt == "pdf" else pack.briefing_png(b)
    resp = Response(body, mimetype="application/pdf" if fmt == "pdf" else "image/png")
    resp.headers["Content-Disposition"] = f'attachment; filename="briefing_{req.month_from}_{req.month_to}.{fmt}"'
    return resp
