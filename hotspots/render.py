"""Step 4 of every layer: the published layer as the map's GeoJSON, downloads, table rows and words.

Why one module: the map, the JSON API, the downloads, the CLI and the side panel all read a
:class:`hotspots.publish.Published` layer and nothing else, so they show the same numbers. Each rendering
is built once per published layer (kept in ``Published.renders``).

* ``display_geojson``: geometry simplified with ``shapely.coverage_simplify`` in EPSG:27700 (shared
  borders stay shared), then WGS84 with coordinates quantised to 5 decimals (about 1 m);
* ``download``: full-resolution RFC 7946 GeoJSON, CSV (data only), zip (CSV + metadata.json + README.txt) or
  GeoPackage, every column one type, with attribution and metadata;
* ``panel``: the side panel (top hot spots, Moran's I in words, the parameters and why).
"""
from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .analysis import format_p, moran_sentence
from .bundle import BNG, WGS84, load_boundary
from .cache import cached
from .categories import category_label
from .config import Config
from .errors import NotFoundError
from .export import (POLICE_NOTE, csv_text, jsonable, status_words, to_geojson_dict, typed_frame, write_gpkg,
                     zip_bytes)
from .layers import GEOGRAPHY_LABELS, filters_text
from .places import place_labels, place_names
from .publish import Published, rule_words
from .request import SIGNIFICANCE, VARIABLES, Audience, LayerRequest

SIMPLIFY_M = 8.0
#: the display property naming where an area is ("Wolverhampton 020H — St Peters ward, north part"): every
#: tooltip leads with it (see :func:`hotspots.places.place_labels`)
PLACE_LABEL = "place_label"
DISPLAY_DECIMALS = 5
#: Flask adds "; charset=utf-8" to a text/* mimetype itself: naming it here doubled it in the header
DOWNLOAD_TYPES = {"geojson": "application/geo+json", "csv": "text/csv",
                  "zip": "application/zip", "gpkg": "application/geopackage+sqlite3"}
#: layers whose frame carries its geometry (no boundary file of that role): grids and incident points
OWN_GEOMETRY_ROLES = ("grid:", "points")
#: raster downloads, for layers that are a surface on a square grid (the KDE)
RASTER_TYPES = {"tif": "image/tiff"}
WEIGHTS_WORDS = {"queen": "queen contiguity (areas sharing a border or a corner are neighbours)",
                 "rook": "rook contiguity (areas sharing a border are neighbours)"}


def display_geometries(config: Config, role: str) -> dict[str, str]:
    """code -> GeoJSON geometry text, simplified and quantised (cached per bundle version)."""
    def build() -> dict[str, str]:
        b = load_boundary(config, role)
        geoms = b.geometry.to_numpy()
        try:
            simp = shapely.coverage_simplify(geoms, SIMPLIFY_M)
            if not shapely.is_valid(simp).all():
                raise ValueError("invalid")
        except Exception:  # not a clean coverage: simplify each polygon on its own
            simp = shapely.simplify(geoms, SIMPLIFY_M, preserve_topology=True)
        import geopandas as gpd
        g = gpd.GeoSeries(simp, crs=BNG).to_crs(WGS84)
        g = shapely.set_precision(g.to_numpy(), 10 ** -DISPLAY_DECIMALS)
        g = shapely.orient_polygons(g, exterior_cw=False)  # RFC 7946 right-hand rule
        return {code: shapely.to_geojson(geom) for code, geom in zip(b["code"], g)}
    return cached(config, ("display-geom", role), build)


def _round(v: Any) -> Any:
    v = jsonable(v)
    if isinstance(v, float):
        return float(f"{v:.4g}") if abs(v) < 1000 else round(v, 1)
    return v


def own_geometries(r: Published) -> dict[str, str]:
    """code -> GeoJSON geometry text of a layer that carries its own geometry (incident points; grid cells come
    from :func:`hotspots.grid_cache.display`): WGS84, quantised like the boundaries."""
    g = r.frame.geometry.to_crs(WGS84).to_numpy()
    g = shapely.orient_polygons(shapely.set_precision(g, 10 ** -DISPLAY_DECIMALS), exterior_cw=False)
    return {code: shapely.to_geojson(geom) for code, geom in zip(r.frame["code"], g)}


def _grid_display(config: Config, r: Published) -> tuple[dict[str, str], dict[str, str]]:
    """(geometry texts, place labels) of a grid layer's cells: kept per grid on disk, so a grid is projected,
    written and named once, not once per layer."""
    from . import grid_cache
    from .aggregate import grid_cells, parse_grid_role
    cell_m, shape = parse_grid_role(r.role)
    cells = grid_cells(config, cell_m, shape)
    return cached(config, ("grid-display", r.role), lambda: grid_cache.display(
        config, cells, DISPLAY_DECIMALS, lambda frame: place_labels(config, r.role, frame)))


#: a str as a JSON string, non-ASCII kept (json.dumps(v, ensure_ascii=False) without its per-call setup)
_quote = json.encoder.encode_basestring


def _json_texts(s: pd.Series) -> list[str]:
    """The JSON text of each value of a column, numbers compacted by :func:`_round` (column by column: a
    json.dumps per feature was most of the time of a 20,000-cell layer)."""
    kind = s.dtype.kind if isinstance(s.dtype, np.dtype) else "O"  # extension types: value by value
    if kind == "b":
        return ["true" if v else "false" for v in s.tolist()]
    if kind in "iu":
        return [str(v) for v in s.tolist()]
    memo: dict = {}
    if kind == "f":  # many values repeat (counts, shares, permutation p-values): each is written once
        out = []
        for v in s.tolist():
            text = memo.get(v)
            if text is None:
                text = memo[v] = ("null" if v != v or v in (math.inf, -math.inf) else
                                  repr(float(f"{v:.4g}") if abs(v) < 1000 else round(v, 1)))
            out.append(text)
        return out
    out = []
    for v in s.astype(object).tolist():
        if type(v) is str:  # names, codes, labels: quoted in C
            out.append(_quote(v))
            continue
        try:
            text = memo.get(v)
        except TypeError:  # unhashable (a list): written each time
            text = None
        if text is None:
            text = json.dumps(_round(v), separators=(",", ":"), ensure_ascii=False)
            try:
                memo[v] = text
            except TypeError:
                pass
        out.append(text)
    return out


def display_geojson(config: Config, r: Published) -> bytes:
    """The map's GeoJSON: simplified geometry, compact numbers, legend and fields as foreign members."""
    if "display" not in r.renders:
        if r.role.startswith("grid:"):
            geoms, labels = _grid_display(config, r)
        else:
            own = r.role.startswith(OWN_GEOMETRY_ROLES)
            geoms = own_geometries(r) if own else display_geometries(config, r.role)
            labels = place_labels(config, r.role, r.frame)  # from the boundaries only: no figure in it
        props = pd.DataFrame(r.frame.drop(columns="geometry"))
        codes = props["code"].tolist()
        names = list(props.columns)
        cols = [_json_texts(props[c]) for c in names]
        if labels:
            names.append(PLACE_LABEL)
            cols.append([_quote(labels[c]) if c in labels else "null" for c in codes])
        keys = [json.dumps(str(k), ensure_ascii=False).replace("%", "%%") + ":%s" for k in names]
        feature = '{"type":"Feature","properties":{' + ",".join(keys) + '},"geometry":%s}'  # one format per row
        cols.append([geoms.get(code, "null") for code in codes])
        parts = [feature % row for row in zip(*cols)]
        head = {"type": "FeatureCollection", "name": r.name, "title": r.title, "legend": r.legend, "fields": r.fields,
                "attribution": config.attributions(), "note": POLICE_NOTE}
        text = json.dumps(head, separators=(",", ":"), ensure_ascii=False)[:-1] + ',"features":[' + ",".join(parts) + "]}"
        r.renders["display"] = text.encode("utf-8")
    return r.renders["display"]


def rows(r: Published) -> list[dict]:
    """The layer as rows without geometry."""
    if "rows" not in r.renders:
        props = pd.DataFrame(r.frame.drop(columns="geometry"))
        r.renders["rows"] = [{k: jsonable(v) for k, v in rec.items()} for rec in props.to_dict(orient="records")]
    return r.renders["rows"]


def download(config: Config, r: Published, fmt: str) -> tuple[bytes, str, str]:
    """(body, mimetype, filename): full-resolution geometry and typed columns in every format; attribution
    and metadata (incl. global Moran's I at full precision) as the GeoJSON ``metadata`` member, the GeoPackage
    ``metadata`` table, or ``metadata.json`` in the zip; the ``.csv`` is data only."""
    if fmt in RASTER_TYPES and "raster" in r.summary:
        key = "download-" + fmt
        if key not in r.renders:
            r.renders[key] = _raster(r)
        return r.renders[key]
    if fmt not in DOWNLOAD_TYPES:
        raise NotFoundError(f"unknown format {fmt[:20]!r} (use one of: {', '.join(DOWNLOAD_TYPES)})", column="format")
    key = "download-" + fmt
    if key not in r.renders:
        r.renders[key] = _download(config, r, fmt)
    return r.renders[key]


def download_frame(config: Config, r: Published) -> gpd.GeoDataFrame:
    """The published frame with one type per column: counts numeric, a suppressed count null with
    ``<column>_status`` saying why (viewers), redacted statistics null (see :func:`hotspots.export.typed_frame`)."""
    if "download-frame" not in r.renders:
        from .layers import get
        kind = get(config, r.name)
        counts: tuple[str, ...] = ()
        if r.audience is Audience.VIEWER and (r.metadata.get("disclosure") or {}).get("rule") not in (None, "none"):
            counts = tuple(c for c in kind.counts if c in r.frame.columns)
        r.renders["download-frame"] = typed_frame(r.frame, counts, status_words(r.metadata.get("disclosure")),
                                                  numeric=tuple(kind.counts) + tuple(kind.redact))
    return r.renders["download-frame"]


def download_metadata(config: Config, r: Published) -> dict:
    """Everything a download says about itself: provenance, parameters, disclosure, method, Moran's I."""
    return {"name": r.filename, "title": r.title, **r.metadata, "attribution": config.attributions(),
            "note": POLICE_NOTE}


def _raster(r: Published) -> tuple[bytes, str, str]:
    """A GeoTIFF (EPSG:27700) of a surface layer's values, its tags saying what they are."""
    from .kde import write_geotiff
    raster = r.summary["raster"]
    name = f"{r.filename}.tif"
    with tempfile.TemporaryDirectory() as tmp:
        path = write_geotiff(raster["value"].to_numpy(), raster, Path(tmp) / name,
                             tags={**r.summary.get("raster_tags", {}), "title": r.title})
        return path.read_bytes(), RASTER_TYPES["tif"], name


def _download(config: Config, r: Published, fmt: str) -> tuple[bytes, str, str]:
    name = f"{r.filename}.{fmt}"
    frame = download_frame(config, r)
    meta = download_metadata(config, r)
    if fmt == "geojson":
        fc = to_geojson_dict(frame, meta)
        fc = {"type": fc["type"], "name": r.filename, "attribution": config.attributions(), **fc}
        return json.dumps(fc, separators=(",", ":"), ensure_ascii=False).encode("utf-8"), DOWNLOAD_TYPES[fmt], name
    if fmt == "csv":
        return csv_text(frame).encode("utf-8"), DOWNLOAD_TYPES[fmt], name
    if fmt == "zip":
        return zip_bytes(frame, meta, r.filename), DOWNLOAD_TYPES[fmt], name
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        write_gpkg(frame, path, r.filename, meta)
        return path.read_bytes(), DOWNLOAD_TYPES[fmt], name


# -- words --------------------------------------------------------------------------------------------------

def weights_words(spec: str) -> str:
    if spec in WEIGHTS_WORDS:
        return WEIGHTS_WORDS[spec]
    kind, _, v = spec.partition(":")
    if kind == "knn":
        return f"the {v} nearest areas (by centroid) are neighbours"
    if kind == "distance":
        return f"areas whose centroids are within {v} m are neighbours"
    return spec


def plural(n: int, noun: str) -> str:
    """"1 area", "2 areas": never "about 1 areas" (issue 13)."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _num(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def panel(config: Config, req: LayerRequest, gi: Published) -> dict:
    """Side-panel content from the published Gi* layer: top hot spots with wards, global Moran's I in plain
    English, the parameters chosen and why (in the manner of ArcGIS's Optimized Hot Spot messages), data
    vintages and attributions. Viewers' figures are the published ones (protected, small numbers labelled)."""
    t = pd.DataFrame(gi.frame.drop(columns="geometry"))
    meta = gi.metadata
    method = meta.get("method") or {}
    m = meta.get("moran") or {}
    cut = meta.get("cutoffs") or {}
    n = len(t)
    viewer = gi.audience is Audience.VIEWER
    counts = pd.to_numeric(t["count"], errors="coerce")
    total = gi.summary.get("totals", {}).get("count") if viewer else int(counts.sum())
    total_txt = f"{total:,}" if _num(total) else str(total)
    maximum = int(np.nanmax(counts)) if counts.notna().any() else 0
    zeros = int((counts == 0).sum())
    msgs = [f"Incidents: {total_txt} of {filters_text(req)}, in {n} areas ({GEOGRAPHY_LABELS[req.geography]}) of "
            f"{config.area_name}.",
            f"Analysis variable: {VARIABLES[req.variable]}"
            + (" (chosen: rates per 1,000 residents correct for population size; EB smoothing steadies rates of "
               "small populations)" if req.variable != "count" else " (counts: where incidents are; choose a "
               "rate to allow for population)") + "."]
    if _num(total) and n:
        msgs.append(f"Incidents per area: mean {total / n:.1f}, maximum {maximum}; {plural(zeros, 'area')} with none.")
    else:
        msgs.append(f"Incidents per area: maximum shown {maximum}; {plural(zeros, 'area')} with none.")
    if not _num(total) or total < 60:
        msgs.append(f"Warning: only {total_txt} incidents; hot-spot statistics are weak below about 60.")
    if viewer:
        d = meta.get("disclosure") or {}
        msgs.append(f"Small numbers are suppressed ({d.get('rule')} rule); every figure and statistic here is "
                    "computed from a protected table (cell-key perturbation), so exact small counts cannot be "
                    "worked out from them.")
    card = pd.to_numeric(t["n_neighbours"], errors="coerce").to_numpy()
    if len(card):
        msgs.append(f"Spatial weights: {weights_words(req.weights)}; neighbours per area {int(np.nanmin(card))} to "
                    f"{int(np.nanmax(card))} (mean {np.nanmean(card):.1f}).")
    perms = method.get("permutations", req.permutations)
    if perms:
        msgs.append(f"Permutations: {perms:,} with seed {method.get('seed', config.seed)} (reproducible); the "
                    f"smallest attainable pseudo p-value is {2 / (perms + 1):.2g}.")
    if req.significance == "raw":
        msgs.append("Significance: no correction for multiple testing; Gi* classes at |z| ≥ 1.645 / 1.960 / 2.576 "
                    f"(90/95/99%); LISA at p ≤ {req.alpha:g}. With {n} tests about {plural(round(n * 0.05), 'area')} "
                    f"can look significant at 95% by chance alone: consider FDR.")
    elif cut:
        g = cut["gi"]
        msgs.append(f"Significance: {SIGNIFICANCE[req.significance]} over {cut['tests']} tests; Gi* cut-offs p ≤ "
                    f"{g['90%']:.3g} / {g['95%']:.3g} / {g['99%']:.3g} (90/95/99%); LISA p ≤ {cut['lisa']:.3g}."
                    + (" A cut-off of 0 means no area passes." if g["95%"] == 0 else ""))
    for w in method.get("warnings", []):
        msgs.append(f"Warning: {w}")
    subj = " and ".join(category_label(c).lower() for c in req.categories) or "crime"
    moran_text = moran_sentence(m, req.alpha, subj) if m else ""
    moran_text = f"Global Moran's I: {moran_text}" if moran_text else ""
    hot = t[pd.to_numeric(t["gi_bin"], errors="coerce") > 0].sort_values("gi_z", ascending=False)
    places = place_names(config, gi.role)
    top = []
    for rec in hot.head(10).to_dict("records"):
        sup = bool(rec.get("suppressed"))
        ward = rec.get("ward_name") if req.geography != "ward" and rec.get("ward_name") != rec["name"] else None
        top.append({"code": rec["code"], "name": rec["name"], "ward": ward, "place": places.get(rec["code"]),
                    "z": jsonable(rec.get("gi_z")), "p": jsonable(rec.get("gi_p")), "class": rec["gi_label"],
                    "value": None if sup else jsonable(rec.get("value")),
                    "count": rec["count"] if isinstance(rec["count"], str) else int(rec["count"]),
                    **({"suppressed": True} if sup else {})})
    vintages = [{"dataset": ds.key, "vintage": ds.vintage} for ds in config.datasets.values()
                if ds.kind in ("boundary", "table") and ds.vintage]
    lines = _summary_lines(t, moran_text, method, places)
    return {"title": f"Hot spots of {VARIABLES[req.variable]}: {filters_text(req)}", "moran": m,
            "moran_text": moran_text, "top": top, "n_hot": int((pd.to_numeric(t["gi_bin"]) > 0).sum()),
            "n_cold": int((pd.to_numeric(t["gi_bin"]) < 0).sum()),
            "lisa": {}, "messages": msgs, "cutoffs": cut, "vintages": vintages, "summary_lines": lines,
            "attribution": config.attributions(), "note": POLICE_NOTE, "parameters": req.query()}


def _summary_lines(t: pd.DataFrame, moran_text: str, method: dict, places: dict[str, str]) -> list[str]:
    from .analysis import SUMMARY_TOP
    lines = [moran_text] if moran_text else []
    bins = pd.to_numeric(t["gi_bin"], errors="coerce")
    hot = t[bins == 3].sort_values("gi_z", ascending=False)
    if len(hot):
        lines.append(f"{plural(len(hot), 'area')} {'is a Gi* hot spot' if len(hot) == 1 else 'are Gi* hot spots'} "
                     "at 99% confidence; the strongest:")
        for r in hot.head(SUMMARY_TOP).to_dict("records"):
            name = r["name"] if isinstance(r.get("name"), str) and r["name"] else r["code"]
            place = places.get(r["code"])
            ward = f", {place}" if place else ""
            v = r.get("value")
            if r.get("suppressed") or v is None:
                lines.append(f"  {name} ({r['code']}{ward}): small number suppressed")
            else:
                lines.append(f"  {name} ({r['code']}{ward}): value {float(v):g}, z = {float(r['gi_z']):.2f}")
    else:
        lines.append("No area is a Gi* hot spot at 99% confidence.")
    lines.append(f"Hot spots at 95% or more: {int((bins >= 2).sum())}; cold spots at 95% or more: "
                 f"{int((bins <= -2).sum())}.")
    lines += [f"Warning: {w}" for w in method.get("warnings", [])]
    return lines


def comparison(req: LayerRequest, ch: Published) -> dict:
    """The period comparison as a table, from the published change layer."""
    f = pd.DataFrame(ch.frame.drop(columns="geometry"))
    if ch.audience is Audience.ANALYST:
        before, after = int(pd.to_numeric(f["count_before"]).sum()), int(pd.to_numeric(f["count_after"]).sum())
    else:
        tot = ch.summary.get("totals", {})
        before, after = tot.get("count_before"), tot.get("count_after")
    base = ch.metadata["baseline"]
    pb = base["from"] if base["from"] == base["to"] else f"{base['from']} to {base['to']}"
    pa = req.period_text
    cats = ", ".join(category_label(c) for c in req.categories) or "all categories"
    pct = None
    if _num(before) and _num(after):
        pct = (after - before) / before * 100.0 if before else None
        if pct is None:
            sentence = (f"{cats}: {after:,} incidents in {pa}; no data in the baseline ({pb}), so no "
                        "percentage change.")
        else:
            from .kinds_time import change_sentence
            sentence = (f"{cats}: {after:,} incidents in {pa} against {before:,} in {pb}: "
                        f"{change_sentence(after, before, req, base)}.")
    else:
        sentence = (f"{cats}: {after} incidents in {pa} against {before} in {pb} (small numbers suppressed, so no "
                    "percentage change).")
    f["_order"] = [(-v if isinstance(v, (int, float, np.integer, np.floating)) and v == v else float("inf"))
                   for v in f["change"]]
    ordered = f.sort_values(["_order", "code"]).drop(columns="_order")
    keep = ["code", "name", "ward_name", "count_before", "count_after", "change", "pct_change", "ci_low", "ci_high",
            "p", "change_class"]
    return {"baseline": base, "current": {"from": req.month_from, "to": req.month_to}, "total_before": before,
            "total_after": after, "pct_change": pct, "sentence": sentence,
            "rows": [{k: jsonable(v) for k, v in rec.items() if k in keep} for rec in ordered.to_dict("records")],
            "legend": ch.legend}


__all__ = ["display_geojson", "display_geometries", "download", "rows", "panel", "comparison", "DOWNLOAD_TYPES",
           "format_p", "rule_words"]
