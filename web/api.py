"""JSON API under ``/api/v1/``: every response carries ``ok``; errors are ``{"ok": false, "error", "status"}``
with a 4xx status naming the bad parameter (``column``). The OpenAPI 3.1 document is at
``/api/v1/openapi.json``. Map layers and downloads come from ``hotspots.pipeline.build_layer``, the same engine call
the HTML map uses; the web parses, calls it once, and renders.

Access (``web.auth``): every route but ``/health`` needs a user (signed in, or anonymous in public mode).
Viewers get the viewer-level results (small numbers suppressed, ``hotspots.disclosure``); users with the
``view_unsuppressed`` right (analysts, admins) the full ones. Risk-factor overlays need ``overlays``;
incident-level records (``/incidents``) need ``view_incidents``: anyone else gets 403 JSON.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

from hotspots import pipeline, render
from hotspots.errors import ForbiddenError, HotspotsError, NotFoundError
from hotspots.export import POLICE_NOTE
from hotspots.request import GEOGRAPHIES, Audience, LayerRequest

from . import get_config
from .auth import can, current_user, require

bp = Blueprint("api", __name__, url_prefix="/api/v1")

#: geography -> label for people
GEOGRAPHY_LABELS = {"lsoa": "LSOA (2021)", "ward": "Ward"}


def ok(**data: Any) -> Response:
    return jsonify({"ok": True, **data})


def audience() -> Audience:
    """Exact results for users with the ``view_unsuppressed`` right (analysts, admins); everyone else is a
    viewer and gets layers computed from the protected table."""
    return Audience.ANALYST if can("view_unsuppressed") else Audience.VIEWER


def parse(layer: str | None = None) -> LayerRequest:
    """The request's layer parameters, validated once (web requests use the finite menus)."""
    config = get_config()
    req = pipeline.parse(config, request.args, layer)
    check_layer_access(req.layer)
    return req


def check_layer_access(name: str) -> None:
    """Risk-factor overlays are local, unvetted data: analysts only (403 for viewers)."""
    if name.startswith("overlay-") and not can("overlays"):
        raise ForbiddenError("risk-factor overlays are for analysts: sign in with an analyst account", column="layer")


def layer(req: LayerRequest):
    """The one engine call for a layer (bounded: uncached analyses queue in the analysis pool)."""
    config = get_config()
    aud = audience()
    return _bounded(("layer", req, aud.value), lambda: pipeline.build_layer(config, req, aud),
                    pipeline.is_cached(config, req, aud))


def _bounded(key, fn, cached: bool):
    if cached:
        return fn()
    try:
        from .limits import bounded
    except ImportError:  # the pool is optional in tests that build a bare app
        return fn()
    return bounded(key, fn)


@bp.get("/")
def index():
    """What the API offers."""
    return ok(name="hotspots API", version="v1", openapi=url_for("api.openapi"),
              endpoints=[r["path"] for r in ROUTES])


@bp.get("/health")
def health():
    from flask import current_app
    return ok(warm_up=current_app.extensions.get("hotspots_warm", {}))


@bp.get("/me")
def me():
    """Who is asking: username, role, rights, and the CSRF token for POSTs from scripts."""
    from hotspots.users import PERMISSIONS
    from .security import csrf_token
    u = current_user()
    return ok(username=None if u.username == "(public)" else u.username, role=u.role,
              public=u.username == "(public)", permissions=sorted(PERMISSIONS.get(u.role, ())),
              csrf_token=csrf_token())


def categories_for_user(config) -> list[dict]:
    return pipeline.categories(config, audience())


@bp.get("/categories")
def categories():
    return ok(categories=categories_for_user(get_config()))


@bp.get("/periods")
def periods():
    months = list(pipeline.catalog(get_config()).months)
    return ok(months=months, first=months[0] if months else None, last=months[-1] if months else None)


@bp.get("/geographies")
def geographies():
    return ok(geographies=[{"name": k, "label": GEOGRAPHY_LABELS[k]} for k in GEOGRAPHIES])


@bp.get("/areas")
def areas():
    """Names, wards, population and IMD decile of every area (no counts leave here)."""
    config = get_config()
    req = parse("count")
    r = pipeline.build_layer(config, req, Audience.VIEWER)
    keep = ("code", "name", "ward_code", "ward_name", "population", "imd_decile")
    rows = [{k: v for k, v in row.items() if k in keep} for row in render.rows(r)]
    return ok(geography=req.geography, role=r.role, count=len(rows), areas=rows)


@bp.get("/layers")
def layer_list():
    return ok(layers=pipeline.layer_catalogue(get_config(), audience_for_layers()))


def audience_for_layers() -> Audience:
    return Audience.ANALYST if can("overlays") else Audience.VIEWER


@bp.get("/layers/<name>")
def layer_json(name: str):
    """A layer as a table (no geometry): rows, legend, tooltip fields and metadata."""
    if "." in name:
        name, fmt = name.rsplit(".", 1)
        return layer_file(name, fmt)
    r = layer(parse(name))
    return ok(layer=r.name, title=r.title, legend=r.legend, fields=r.fields, metadata=r.metadata,
              rows=render.rows(r))


def layer_file(name: str, fmt: str):
    """``.geojson``: the map's simplified GeoJSON; other formats are downloads."""
    r = layer(parse(name))
    if fmt == "geojson" and not request.args.get("download"):
        resp = Response(render.display_geojson(get_config(), r), mimetype="application/geo+json")
        resp.headers["Cache-Control"] = "private, max-age=300"
        return resp
    return _download(r, fmt)


@bp.get("/downloads/<name>.<fmt>")
def download(name: str, fmt: str):
    """Full-resolution download with attribution and method metadata; file name carries the filters."""
    if fmt not in render.DOWNLOAD_TYPES:
        raise NotFoundError(f"unknown format {fmt[:20]!r} (use one of: {', '.join(render.DOWNLOAD_TYPES)})",
                            column="format")
    return _download(layer(parse(name)), fmt)


def _download(r, fmt: str) -> Response:
    body, mimetype, filename = render.download(get_config(), r, fmt)
    resp = Response(body, mimetype=mimetype)
    resp.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return resp


@bp.get("/downloads")
def downloads():
    """Download links for every layer with the given filters."""
    config = get_config()
    req = parse(request.args.get("layer") or "count")
    out = []
    for entry in pipeline.layer_catalogue(config, audience_for_layers()):
        q = req.query(layer=entry["name"])
        out.append({"layer": entry["name"], "formats": {fmt: url_for("api.download", name=entry["name"], fmt=fmt, **q)
                                                        for fmt in render.DOWNLOAD_TYPES}})
    return ok(parameters=req.query(), downloads=out)


@bp.get("/hotspots")
def hotspots():
    """Side-panel analysis: top hot spots, Moran's I in words, parameters and why, vintages."""
    config = get_config()
    req = parse("gistar")
    aud = audience()
    layer(req)  # bounded computation of the Gi* layer the panel reads
    return ok(**pipeline.panel(config, req, aud))


@bp.get("/compare")
def compare():
    """Change in count per area between the period (from/to) and a baseline (compare_from/compare_to,
    default: the same number of months just before)."""
    config = get_config()
    req = parse("change")
    layer(req)
    return ok(**pipeline.comparison(config, req, audience()))


@bp.get("/overlays")
def overlay_list():
    from hotspots import overlays
    config = get_config()
    domains = {e["name"]: e["domains"] for e in pipeline.layer_catalogue(config, Audience.VIEWER)
               if e["kind"] == "deprivation"}
    dep = [{**d, "domains": domains[d["key"]]} for d in overlays.deprivation_sets(config) if d["key"] in domains]
    return ok(deprivation=dep, risk_factors=[o.describe() for o in overlays.list_overlays(config)]
              if can("overlays") else [])


MAX_INCIDENTS = 10000


@bp.get("/incidents")
@require("view_incidents")
def incidents():
    """Incident-level records (analysts only): inside the area, filtered by category, month range and area
    (an LSOA 2021 or ward code); ``limit``/``offset`` page through them; ``format=csv`` downloads them
    (formula-safe CSV)."""
    from hotspots import store
    from hotspots.request import number
    config = get_config()
    req = parse("count")
    area = (request.args.get("area") or "").strip()
    if area and not (len(area) <= 16 and area.isalnum()):
        raise HotspotsError(f"area must be an LSOA or ward code, got {area[:20]!r}", column="area")
    limit = int(number(request.args, "limit", 1000, 1, MAX_INCIDENTS))
    offset = int(number(request.args, "offset", 0, 0, 1e12))
    fmt = request.args.get("format") or "json"
    if fmt not in ("json", "csv"):
        raise HotspotsError(f"format must be json or csv, got {fmt[:20]!r}", column="format")
    total, rows = store.incidents(config.db_path, list(req.categories), req.month_from, req.month_to, area or None,
                                  limit, offset)
    if area and total == 0 and not _area_exists(config, area):
        raise NotFoundError(f"unknown area {area!r}", column="area")
    from hotspots.layers import filename, filters_text
    if fmt == "csv":
        import pandas as pd
        from hotspots.export import safe_csv_frame
        df = safe_csv_frame(pd.DataFrame(rows, columns=list(store.INCIDENT_FIELDS)))
        body = (f"# incident-level records: {filters_text(req)}; not for publication (no disclosure control)\n"
                f"# {POLICE_NOTE}\n" + df.to_csv(index=False, lineterminator="\n"))
        resp = Response(body.encode("utf-8"), mimetype="text/csv")
        resp.headers["Content-Disposition"] = f'attachment; filename="incidents_{filename(req, "crime")}.csv"'
        return resp
    nxt = offset + len(rows)
    return ok(count=len(rows), total=total, offset=offset, limit=limit,
              next=url_for("api.incidents", **{**request.args.to_dict(flat=False), "offset": nxt})
              if nxt < total else None,  # flat=False: repeated filters (category=a&category=b) stay
              parameters={"category": list(req.categories), "from": req.month_from, "to": req.month_to,
                          "area": area or None},
              note=POLICE_NOTE, incidents=rows)


def _area_exists(config, code: str) -> bool:
    from hotspots.bundle import load_boundary
    for role in ("lsoa21", "ward"):
        try:
            if code in set(load_boundary(config, role)["code"]):
                return True
        except HotspotsError:
            continue
    return False


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())


# -- OpenAPI --------------------------------------------------------------------------------------------

FILTERS = [
    ("category", "Crime category slug or name; repeat or comma-separate for several (default violent-crime)."),
    ("from", "First month, YYYY-MM (default: first month in the store)."),
    ("to", "Last month, YYYY-MM (default: last month in the store)."),
    ("geography", "lsoa | ward"),
    ("variable", "Statistic variable for gistar/lisa: count | rate | eb_rate"),
    ("weights", "queen | rook | knn:K | distance:METRES"),
    ("significance", "raw | fdr | bonferroni"),
    ("alpha", "Significance level for LISA (default 0.05)."),
    ("permutations", "Permutations for pseudo p-values, 99 to 99999."),
    ("classes", "Choropleth classification: quantiles | fisherjenks | equalinterval | naturalbreaks"),
    ("k", "Number of classes, 3 to 7."),
    ("domain", "Deprivation domain slug (imd, income, ...) for deprivation layers."),
    ("compare_from", "Baseline first month for the change layer."),
    ("compare_to", "Baseline last month for the change layer."),
]

ROUTES = [
    {"path": "/api/v1/", "summary": "API index", "filters": False},
    {"path": "/api/v1/health", "summary": "Server state (statistics warm-up)", "filters": False},
    {"path": "/api/v1/categories", "summary": "Crime categories in the store with counts", "filters": False},
    {"path": "/api/v1/periods", "summary": "Months in the store", "filters": False},
    {"path": "/api/v1/geographies", "summary": "Geographies offered", "filters": False},
    {"path": "/api/v1/areas", "summary": "Areas of a geography with ward, population and IMD decile",
     "filters": False, "params": [("geography", "lsoa | ward")]},
    {"path": "/api/v1/layers", "summary": "Layer catalogue", "filters": False},
    {"path": "/api/v1/layers/{name}", "summary": "A layer as rows with legend, fields and metadata",
     "filters": True, "name": True},
    {"path": "/api/v1/layers/{name}.geojson", "summary": "A layer as simplified GeoJSON for the map",
     "filters": True, "name": True, "geojson": True},
    {"path": "/api/v1/downloads", "summary": "Download links for every layer with these filters", "filters": True},
    {"path": "/api/v1/downloads/{name}.{fmt}", "summary": "Download a layer (geojson, csv, gpkg), full resolution",
     "filters": True, "name": True, "fmt": True},
    {"path": "/api/v1/hotspots", "summary": "Side panel: top hot spots, Moran's I, parameters, vintages",
     "filters": True},
    {"path": "/api/v1/compare", "summary": "Period comparison table", "filters": True},
    {"path": "/api/v1/overlays", "summary": "Deprivation datasets and risk-factor overlays (analysts)", "filters": False},
    {"path": "/api/v1/me", "summary": "The signed-in user: role, rights and CSRF token", "filters": False},
    {"path": "/api/v1/incidents", "summary": "Incident-level records with lon/lat (analysts only; 403 otherwise)",
     "filters": False, "params": [("category", "Crime category slug(s)"), ("from", "First month YYYY-MM"),
                                  ("to", "Last month YYYY-MM"), ("area", "LSOA 2021 or ward code"),
                                  ("limit", "Rows per page, 1 to 10000 (default 1000)"),
                                  ("offset", "Rows to skip"), ("format", "json (default) or csv")]},
    {"path": "/api/v1/openapi.json", "summary": "This document", "filters": False},
]


def openapi_document() -> dict:
    err = {"description": "Bad parameter (400) or unknown name (404)",
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    paths: dict[str, Any] = {}
    for r in ROUTES:
        params = []
        if r.get("name"):
            params.append({"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
                           "description": "Layer: count, rate, eb_rate, gistar, lisa, change, iod2025, iod2019, "
                                          "wards or overlay-<id> (see /api/v1/layers)"})
        if r.get("fmt"):
            params.append({"name": "fmt", "in": "path", "required": True,
                           "schema": {"type": "string", "enum": list(render.DOWNLOAD_TYPES)}})
        for pname, desc in r.get("params", []):
            params.append({"name": pname, "in": "query", "required": False, "schema": {"type": "string"},
                           "description": desc})
        if r["filters"]:
            for pname, desc in FILTERS:
                params.append({"name": pname, "in": "query", "required": False, "schema": {"type": "string"},
                               "description": desc})
        content = ({"application/geo+json": {"schema": {"type": "object"}}} if r.get("geojson") else
                   {k: {"schema": {"type": "string", "format": "binary"}} for k in render.DOWNLOAD_TYPES.values()}
                   if r.get("fmt") else {"application/json": {"schema": {"$ref": "#/components/schemas/Ok"}}})
        responses = {"200": {"description": "OK", "content": content}, "400": err, "404": err}
        if r["path"] != "/api/v1/health":
            responses["401"] = {**err, "description": "Sign-in required (public mode off)"}
            responses["403"] = {**err, "description": "Your role may not do this"}
        paths[r["path"]] = {"get": {"summary": r["summary"], "parameters": params, "responses": responses}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "hotspots API", "version": "1.0.0",
                 "description": "Violence hot spots by LSOA and ward. " + POLICE_NOTE,
                 "license": {"name": "Data: Open Government Licence v3.0",
                             "url": "https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/"}},
        "paths": paths,
        "security": [{"session": []}],
        "components": {"securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": "hotspots_session",
                                                       "description": "Sign in at /login; viewers get suppressed "
                                                                      "counts, analysts the full data"}},
                       "schemas": {
            "Ok": {"type": "object", "required": ["ok"], "properties": {"ok": {"const": True}}},
            "Error": {"type": "object", "required": ["ok", "error", "status"],
                      "properties": {"ok": {"const": False}, "error": {"type": "string"},
                                     "status": {"type": "integer"}, "column": {"type": "string"},
                                     "row": {"type": "integer"}}}}},
    }


@bp.get("/series")
def series():
    """One area's counts per time step, its trend and Gi* class per step (the side panel's chart)."""
    code = (request.args.get("code") or "").strip()
    if not code:
        raise HotspotsError("give the area's code, e.g. series?code=E01010520", column="code")
    req = parse("emerging")
    return ok(**pipeline.series(get_config(), req, code, audience()))


FILTERS += [("step", "Time step of the time layers: month | quarter | year"),
            ("time_neighbours", "Emerging hot spots: time steps back in a bin's neighbourhood, 1 to 3")]
ROUTES.append({"path": "/api/v1/series", "summary": "One area's counts per time step, trend and Gi* class per step",
               "filters": True, "params": [("code", "LSOA 2021 or ward code of the area")]})
