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
    import functools
    config = get_config()
    aud = audience()
    if pipeline.is_cached(config, req, aud):
        return pipeline.build_layer(config, req, aud)
    from .limits import bounded
    # picklable, so that with [server] analysis_processes = true it runs in the analysis process (off this
    # server's GIL) and the result is cached here; otherwise it runs on a pool thread
    fn = functools.partial(pipeline.build_layer, config, req, aud)
    return bounded(("layer", req, aud.value), fn, then=lambda value: pipeline.keep_layer(config, req, aud, value))


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
    from hotspots.filters import terms
    total, rows = store.incidents(config.db_path, list(req.categories), req.month_from, req.month_to, area or None,
                                  limit, offset, terms(config, req.where))
    if area and total == 0 and not _area_exists(config, area):
        raise NotFoundError(f"unknown area {area!r}", column="area")
    from hotspots.layers import filename, filters_text
    if fmt == "csv":
        import pandas as pd
        from hotspots.export import safe_csv_frame
        extras = list(config.extract.declared_extras)  # one column per declared extra, typed values
        df = safe_csv_frame(pd.DataFrame([{**r, **{e: r["extras"].get(e) for e in extras}} for r in rows],
                                         columns=list(store.INCIDENT_FIELDS) + extras))
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
                          "area": area or None, "where": req.query().get("where")},
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
# Every parameter carries the finite menu or pattern the server validates against (hotspots.request), so a
# contract tester (schemathesis, tests/web/test_openapi_contract.py) can generate exactly what the server
# accepts and knows what it must refuse.

#: (name, description); the schemas come from :func:`filter_schema` (menus of hotspots.request, the catalogue)
FILTERS = [
    ("category", "Crime category slug; repeat for several (default violent-crime)."),
    ("from", "First month, YYYY-MM, 2001-01 or later (default: first month in the store)."),
    ("to", "Last month, YYYY-MM, not before `from` (default: last month in the store)."),
    ("geography", "Areas: LSOA 2021 or ward."),
    ("variable", "Analysis variable for gistar/lisa."),
    ("weights", "Spatial weights for gistar/lisa."),
    ("significance", "Multiple-testing correction."),
    ("alpha", "Significance level for LISA."),
    ("permutations", "Permutations for pseudo p-values."),
    ("classes", "Choropleth classification."),
    ("k", "Number of classes."),
    ("domain", "Deprivation domain for deprivation layers."),
    ("compare_from", "Baseline first month for the change layer (with compare_to)."),
    ("compare_to", "Baseline last month for the change layer (with compare_from)."),
]

#: security of a route: "open" (no sign-in), "user" (signed in, or anyone in public mode), "analyst" (a
#: signed-in user with the right the route needs); "bounded": it may queue an analysis (429/503)
ROUTES = [
    {"path": "/api/v1/", "summary": "API index", "filters": False},
    {"path": "/api/v1/health", "summary": "Server state (statistics warm-up)", "filters": False, "security": "open"},
    {"path": "/api/v1/categories", "summary": "Crime categories in the store with counts", "filters": False},
    {"path": "/api/v1/periods", "summary": "Months in the store", "filters": False},
    {"path": "/api/v1/geographies", "summary": "Geographies offered", "filters": False},
    {"path": "/api/v1/areas", "summary": "Areas of a geography with ward, population and IMD decile",
     "filters": False, "params": [("geography", "Areas: LSOA 2021 or ward.")]},
    {"path": "/api/v1/layers", "summary": "Layer catalogue", "filters": False},
    {"path": "/api/v1/layers/{name}", "summary": "A layer as rows with legend, fields and metadata",
     "filters": True, "name": True, "bounded": True},
    {"path": "/api/v1/layers/{name}.geojson", "summary": "A layer as simplified GeoJSON for the map",
     "filters": True, "name": True, "geojson": True, "bounded": True},
    {"path": "/api/v1/downloads", "summary": "Download links for every layer with these filters", "filters": True,
     "params": [("layer", "The layer whose filters the links carry (default count).")]},
    {"path": "/api/v1/downloads/{name}.{fmt}",
     "summary": "Download a layer, full resolution: GeoJSON, CSV (data only), zip (CSV, .csvt, metadata.json, "
                "README.txt) or GeoPackage (with a metadata table)",
     "filters": True, "name": True, "fmt": True, "bounded": True},
    {"path": "/api/v1/hotspots", "summary": "Side panel: top hot spots, Moran's I, parameters, vintages",
     "filters": True, "bounded": True},
    {"path": "/api/v1/compare", "summary": "Period comparison table", "filters": True, "bounded": True},
    {"path": "/api/v1/overlays", "summary": "Deprivation datasets and risk-factor overlays (analysts)", "filters": False},
    {"path": "/api/v1/me", "summary": "The signed-in user: role, rights and CSRF token", "filters": False},
    {"path": "/api/v1/incidents", "summary": "Incident-level records with lon/lat (analysts only; 403 otherwise)",
     "filters": False, "security": "analyst", "csv": True,
     "params": [("category", "Crime category slug; repeat for several."), ("from", "First month YYYY-MM."),
                ("to", "Last month YYYY-MM."), ("area", "LSOA 2021 or ward code"),
                ("limit", "Rows per page (default 1000)"), ("offset", "Rows to skip"),
                ("format", "json (default) or csv")]},
    {"path": "/api/v1/openapi.json", "summary": "This document", "filters": False, "document": True},
]

def month_pattern() -> str:
    """YYYY-MM limited to the months the server accepts (FIRST_MONTH to next month), so that a month the
    pattern allows is never refused for its value."""
    from hotspots.request import FIRST_MONTH, last_allowed_month
    y0, (y1, m1) = int(FIRST_MONTH[:4]), map(int, last_allowed_month().split("-"))
    full = "|".join(str(y) for y in range(y0, y1))
    last = "|".join(f"{m:02d}" for m in range(1, m1 + 1))
    years = (f"(?:{full})-(?:0[1-9]|1[0-2])|" if full else "") + f"{y1}-(?:{last})"
    return f"^(?:{years})$"


def month_schema() -> dict:
    return {"type": "string", "pattern": month_pattern(), "description": "YYYY-MM"}


def filter_schema(name: str, catalog) -> dict:
    """The schema of a query parameter: the finite menu or pattern hotspots.request validates it against."""
    from hotspots import request as rq
    menus: dict[str, dict] = {
        "category": {"type": "array", "items": {"type": "string", "enum": list(catalog.categories)}},
        "from": month_schema(), "to": month_schema(), "compare_from": month_schema(), "compare_to": month_schema(),
        "geography": {"type": "string", "enum": list(rq.GEOGRAPHIES)},
        "variable": {"type": "string", "enum": list(rq.VARIABLES)},
        "weights": {"type": "string", "enum": list(rq.WEIGHTS_MENU)},
        "significance": {"type": "string", "enum": list(rq.SIGNIFICANCE)},
        "alpha": {"type": "number", "enum": list(rq.ALPHA_MENU)},
        "permutations": {"type": "integer", "enum": list(rq.PERMUTATIONS_MENU)},
        "classes": {"type": "string", "enum": list(rq.CLASS_SCHEMES)},
        # k, limit and offset: the server reads a number and uses its whole part (3.5 -> 3)
        "k": {"type": "number", "minimum": rq.K_RANGE[0], "maximum": rq.K_RANGE[1]},
        "domain": {"type": "string", "enum": list(catalog.domains)},
        "layer": {"type": "string", "enum": list(catalog.layers)},
        "area": {"type": "string", "pattern": r"^[A-Za-z0-9]{1,16}$"},
        "limit": {"type": "number", "minimum": 1, "maximum": MAX_INCIDENTS},
        "offset": {"type": "number", "minimum": 0, "maximum": 10 ** 12},
        "format": {"type": "string", "enum": ["json", "csv"]},
        "step": {"type": "string", "enum": list(rq.STEPS)},
        "time_neighbours": {"type": "integer", "enum": list(rq.TIME_NEIGHBOURS_MENU)},
        "code": {"type": "string", "pattern": r"^[A-Za-z0-9]{1,16}$"},
        "codes": {"type": "string", "pattern": r"^[A-Za-z0-9]{1,16}(,[A-Za-z0-9]{1,16}){0,499}$"},
        "where": {"type": "string", "pattern": WHERE_PATTERN},
        "against": {"type": "string", "pattern": r"^[a-z0-9_-]{1,80}$"},
        # the comparison layers' second source: categories, comma-separated (src:NAME or police slugs)
        "versus": {"type": "string", "pattern": r"^[a-z0-9:/_,-]{1,200}$"},
    }
    return menus[name]


def _error(description: str, headers: dict | None = None) -> dict:
    out = {"description": description,
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if headers:
        out["headers"] = headers
    return out


def _security(route: dict, public: bool) -> list[dict]:
    kind = route.get("security", "user")
    if kind == "open":
        return []
    if kind == "user" and public:
        return [{}, {"session": []}]  # anyone may call it in public mode; a session gives an analyst's view
    return [{"session": []}]


def _responses(route: dict, public: bool) -> dict:
    if route.get("geojson"):
        ok_content = {"application/geo+json": {"schema": {"type": "object", "required": ["type", "features"],
                                                           "properties": {"type": {"const": "FeatureCollection"}}}}}
    elif route.get("fmt"):
        ok_content = {mime.split(";")[0]: {"schema": {"type": "object"} if "json" in mime else
                                           {"type": "string", "format": "binary"}}
                      for mime in render.DOWNLOAD_TYPES.values()}
    elif route.get("document"):
        ok_content = {"application/json": {"schema": {"type": "object", "required": ["openapi", "paths"]}}}
    else:
        ok_content = {"application/json": {"schema": {"$ref": "#/components/schemas/Ok"}}}
        if route.get("csv"):
            ok_content["text/csv"] = {"schema": {"type": "string"}}
    out = {"200": {"description": "OK", "content": ok_content},
           "400": _error("Bad parameter: a value outside its menu or pattern, a period that ends before it starts, "
                         "or a month outside 2001-01 to next month (`column` names the parameter)"),
           "404": _error("Unknown name: layer, format, category, geography, domain or area"),
           "405": _error("Method not allowed: this API is read-only (GET)",
                         {"Allow": {"description": "The methods the path accepts", "schema": {"type": "string"}}})}
    if route.get("security", "user") != "open":
        out["401"] = _error("Sign-in required" + ("" if public and route.get("security", "user") == "user"
                                                  else " (a session cookie from /login)"))
        out["403"] = _error("Your role may not do this (e.g. risk-factor overlays and incidents are for analysts)")
    if route.get("bounded"):
        retry = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}}
        out["429"] = _error("Too many analyses queued for you or the server: retry after Retry-After", retry)
        out["503"] = _error("The analysis is still running: retry after Retry-After", retry)
    return out


def openapi_document() -> dict:
    """OpenAPI 3.1 for this server: parameters with their real menus and patterns, authentication per
    operation (public mode: viewer operations need no cookie), every response and error."""
    config = get_config()
    catalog = pipeline.catalog(config)
    public = bool(config.public_mode)
    paths: dict[str, Any] = {}
    for r in ROUTES:
        params = []
        if r.get("name"):
            params.append({"name": "name", "in": "path", "required": True,
                           "schema": {"type": "string", "enum": list(catalog.layers)},
                           "description": "Layer name (see /api/v1/layers); overlay-* layers are for analysts"})
        if r.get("fmt"):
            params.append({"name": "fmt", "in": "path", "required": True,
                           "schema": {"type": "string", "enum": list(render.DOWNLOAD_TYPES)}})
        names = list(r.get("params", [])) + (FILTERS if r["filters"] else [])
        for pname, desc in names:
            schema = filter_schema(pname, catalog)
            param = {"name": pname, "in": "query", "required": False, "schema": schema, "description": desc,
                     "allowEmptyValue": True}  # a blank value means the default, as if the parameter were absent
            if schema.get("type") == "array":
                param.update(style="form", explode=True)
            params.append(param)
        if r.get("geojson"):
            params.append({"name": "download", "in": "query", "required": False,
                           "schema": {"type": "string"}, "allowEmptyValue": True,
                           "description": "Any non-empty value (e.g. 1): the full-resolution download instead of "
                                          "the map's simplified layer"})
        op = r["path"].rstrip("/").rsplit("/", 1)[-1].replace("{", "").replace("}", "").replace(".", "_") or "index"
        paths[r["path"]] = {"get": {"operationId": f"get_{op}", "summary": r["summary"], "parameters": params,
                                    "security": _security(r, public), "responses": _responses(r, public)}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "hotspots API", "version": "1.0.0",
                 "description": "Violence hot spots by LSOA and ward. " + POLICE_NOTE,
                 "license": {"name": "Data: Open Government Licence v3.0",
                             "url": "https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/"}},
        "paths": paths,
        "components": {"securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": "hotspots_session",
                                                       "description": "Sign in at /login; viewers get suppressed "
                                                                      "counts, analysts the full data"}},
                       "schemas": {
            "Ok": {"type": "object", "required": ["ok"], "properties": {"ok": {"const": True}}},
            "Error": {"type": "object", "required": ["ok", "error", "status"],
                      "properties": {"ok": {"const": False}, "error": {"type": "string"},
                                     "status": {"type": "integer"}, "column": {"type": ["string", "null"]},
                                     "row": {"type": ["integer", "null"]}}}}},
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
            ("time_neighbours", "Emerging hot spots: time steps back in a bin's neighbourhood, 1 to 3"),
            ("against", "Bivariate layer: the second variable, a deprivation domain slug or overlay-<id>")]
ROUTES.append({"path": "/api/v1/series", "summary": "One area's counts per time step, trend and Gi* class per step",
               "filters": True, "params": [("code", "LSOA 2021 or ward code of the area")]})


@bp.get("/hours")
def hours():
    """Incidents per hour of day × day of week (issue 12) for the whole area, an area (``code``) or a set of
    areas (``codes``, a hot spot) of ``geography``, under the usual filters. Viewers get protected counts with
    the display rule applied per cell."""
    from hotspots.hours import hour_weekday
    req = parse("count")
    code, codes = (request.args.get("code") or "").strip(), (request.args.get("codes") or "").strip()
    if code and codes:
        raise HotspotsError("give code (one area) or codes (several), not both", column="codes")
    chosen = [code] if code else [c for c in codes.split(",") if c.strip()]
    table = hour_weekday(get_config(), req, audience(), req.geography if chosen else None, chosen)
    return ok(**table.to_dict(), parameters=req.query())


ROUTES.append({"path": "/api/v1/hours", "summary": "Incidents per hour of day × day of week for the area, an area "
               "or a hot spot (viewers: protected, display rule per cell)", "filters": True,
               "params": [("code", "LSOA 2021 or ward code of one area (with geography)"),
                          ("codes", "Comma-separated codes of several areas (a hot spot)")]})

FILTERS.append(("where", "Filter on an extract's declared extras or subcategory: NAME=V1,V2, several joined by ';' "
                         "(values from the store's distinct values)"))
#: NAME=V1,V2[;NAME=V...]: the syntax hotspots.request._where reads (names: declared extras, subcategory)
WHERE_PATTERN = r"^[A-Za-z0-9_]{1,64}=[^;,]{1,80}(,[^;,]{1,80}){0,63}(;[A-Za-z0-9_]{1,64}=[^;,]{1,80}(,[^;,]{1,80}){0,63}){0,7}$"
FILTERS += [("versus", "Comparison layers: the second source, src:NAME (a partner source) or police category slugs, "
                       "comma-separated; the first source is 'category'")]
