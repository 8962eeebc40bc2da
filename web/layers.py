"""The one data function per map layer, used by the HTML map, the JSON API and every download.

``parse_params`` turns query arguments into a validated, hashable ``LayerParams`` (errors name the
parameter); ``layer_data(config, params)`` returns a ``LayerResult``: a GeoDataFrame in EPSG:27700 with
the layer's properties, class and fill colour, its legend, the tooltip fields and the provenance metadata.
Everything a person sees or takes away goes through ``layer_data``, so the disclosure control of issue 5
is applied in one place: ``_finish`` (``_disclose``). ``layer_data(config, p)`` is the viewer-level result
(small numbers suppressed under the configured rule); ``layer_data(config, p, full=True)`` the analyst's.
Statistics are always computed on the full data; the viewer result hides the counts, rates and numeric
statistics of suppressed areas and keeps their Gi*/LISA class.

Renderers: ``display_geojson`` (simplified with ``shapely.coverage_simplify`` in EPSG:27700, so shared
borders stay shared, then WGS84 with coordinates quantised to 5 decimals, about 1 m) for the map, and
``download`` (full-resolution geometry, RFC 7946 GeoJSON / CSV / GeoPackage via ``hotspots.export``).
Results are cached per parameter set and data version (store, bundle lock and overlays change it).
"""
from __future__ import annotations

import json
import logging
import math
import re
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from hotspots import maps, overlays
from hotspots.aggregate import (area_counts, available_categories, available_months, check_period, level_role, normalise_categories)
from hotspots.bundle import BNG, WGS84, load_boundary
from hotspots.categories import category_label
from hotspots.config import Config
from hotspots.disclosure import (DisclosureRule, effective_rule, redact_statistics, rule_metadata,
                                 suppress_change, suppress_table, suppress_value)
from hotspots.errors import AnalysisError, HotspotsError, NotFoundError
from hotspots.export import POLICE_NOTE, jsonable, provenance, safe_csv_frame, to_geojson_dict

logger = logging.getLogger(__name__)

#: map geographies offered to users (the engine knows more).
GEOGRAPHIES = {"lsoa": "LSOA (2021)", "ward": "Ward (2023)"}
VARIABLES = {"count": "count", "rate": "rate per 1,000 residents", "eb_rate": "EB-smoothed rate per 1,000"}
SIGNIFICANCE = {"raw": "no correction", "fdr": "False Discovery Rate (Benjamini-Hochberg)",
                "bonferroni": "Bonferroni"}
CRIME_LAYERS = {"count": "Incident count", "rate": "Rate per 1,000 residents",
                "eb_rate": "EB-smoothed rate per 1,000", "gistar": "Gi* hot and cold spots",
                "lisa": "LISA clusters (local Moran's I)", "change": "Change between periods"}
SIMPLIFY_M = 8.0
DISPLAY_DECIMALS = 5
CACHE_SIZE = 64
#: upper bounds on the web (anyone may ask in public mode; each costs CPU per request). The CLI has none.
MAX_PERMUTATIONS = 9999
MAX_KNN = 30
MAX_DISTANCE_M = 5000


@dataclass(frozen=True)
class LayerParams:
    """A validated filter set. Hashable: it is the cache key (with the data version)."""

    layer: str = "gistar"
    geography: str = "lsoa"
    categories: tuple[str, ...] = ()
    month_from: str | None = None
    month_to: str | None = None
    variable: str = "count"
    weights: str = "queen"
    significance: str = "raw"
    alpha: float = 0.05
    classes: str = "quantiles"
    k: int = 5
    domain: str = "imd"
    compare_from: str | None = None
    compare_to: str | None = None
    permutations: int = 9999

    def query(self, **changes: Any) -> dict[str, str]:
        """The URL query string that reproduces these parameters (shareable link)."""
        p = replace(self, **changes)
        q = {"layer": p.layer, "geography": p.geography, "category": ",".join(p.categories),
             "from": p.month_from or "", "to": p.month_to or "", "variable": p.variable, "weights": p.weights,
             "significance": p.significance, "alpha": _num(p.alpha), "classes": p.classes, "k": str(p.k),
             "domain": p.domain, "compare_from": p.compare_from or "", "compare_to": p.compare_to or "",
             "permutations": str(p.permutations)}
        return {k: v for k, v in q.items() if v != ""}


def _num(v: float) -> str:
    return f"{v:g}"


@dataclass
class LayerResult:
    name: str
    title: str
    frame: gpd.GeoDataFrame  # EPSG:27700, output columns + class_label + fill
    legend: dict
    fields: list[list[str]]  # [column, label] for tooltips and tables
    metadata: dict
    role: str  # boundary role of the geometry
    filename: str
    summary: dict = field(default_factory=dict)
    _display: bytes | None = field(default=None, repr=False)
    _downloads: dict = field(default_factory=dict, repr=False)


# -- parameters ----------------------------------------------------------------------------------------

def shift_month(month: str, delta: int) -> str:
    y, m = int(month[:4]), int(month[5:7])
    idx = y * 12 + (m - 1) + delta
    return f"{idx // 12:04d}-{idx % 12 + 1:02d}"


def months_between(a: str, b: str) -> int:
    return (int(b[:4]) * 12 + int(b[5:7])) - (int(a[:4]) * 12 + int(a[5:7])) + 1


def categories(config: Config) -> list[dict]:
    """Categories in the store (cached per data version: the query scans the incidents table)."""
    return cached(config, ("categories",), lambda: available_categories(config))


def months(config: Config) -> list[str]:
    return cached(config, ("months",), lambda: available_months(config))


def domains(config: Config, key: str) -> list[dict]:
    return cached(config, ("domains", key), lambda: overlays.deprivation_domains(config, key))


def layer_names(config: Config) -> list[str]:
    return cached(config, ("layer-names",), lambda: _layer_names(config))


def _layer_names(config: Config) -> list[str]:
    names = list(CRIME_LAYERS)
    names += [d["key"] for d in overlays.deprivation_sets(config)
              if not any(d["key"].startswith(o["key"] + "_") for o in overlays.deprivation_sets(config))]
    names += ["wards"]
    names += [f"overlay-{o.id}" for o in overlays.list_overlays(config)]
    return names


def layer_catalogue(config: Config) -> list[dict]:
    """Every layer with its title and kind, in layer-control order."""
    return cached(config, ("catalogue",), lambda: _layer_catalogue(config))


def _layer_catalogue(config: Config) -> list[dict]:
    out = [{"name": n, "title": t, "kind": "crime", "lazy": n not in ("gistar",)} for n, t in CRIME_LAYERS.items()]
    for d in overlays.deprivation_sets(config):
        if any(d["key"].startswith(o["key"] + "_") for o in overlays.deprivation_sets(config)):
            continue
        out.append({"name": d["key"], "title": f"Deprivation: {d['key'].upper().replace('IOD', 'IoD')} deciles",
                    "kind": "deprivation", "geography": d["geography"], "vintage": d["vintage"], "lazy": True,
                    "domains": [{"slug": x["slug"], "label": x["label"]}
                                for x in domains(config, d["key"])]})
    out.append({"name": "wards", "title": "Ward boundaries", "kind": "boundary", "lazy": False})
    for o in overlays.list_overlays(config):
        out.append({"name": f"overlay-{o.id}", "title": o.label, "kind": "overlay", "geography": o.geography,
                    "lazy": True})
    return out


def _first(args: Mapping, name: str, default: str | None = None) -> str | None:
    v = args.get(name)
    if v is None or (isinstance(v, str) and v.strip() == ""):
        return default
    return str(v).strip()


def parse_params(config: Config, args: Mapping, layer: str | None = None) -> LayerParams:
    """Validate query arguments (a dict or werkzeug MultiDict); defaults come from the config and store.

    Raises HotspotsError (400) for malformed values and NotFoundError (404) for unknown names, each
    naming the parameter."""
    layer = layer or _first(args, "layer", "gistar")
    if layer not in layer_names(config):
        raise NotFoundError(f"unknown layer {layer!r} (have: {', '.join(layer_names(config))})", column="layer")
    geography = _first(args, "geography", "lsoa")
    if geography not in GEOGRAPHIES:
        raise NotFoundError(f"unknown geography {geography!r} (use one of: {', '.join(GEOGRAPHIES)})",
                            column="geography")
    raw_cats = args.getlist("category") if hasattr(args, "getlist") else (
        [args["category"]] if isinstance(args.get("category"), str) else list(args.get("category") or []))
    cats = normalise_categories([c for c in raw_cats if c and c.strip()])
    known = {c["slug"] for c in categories(config)}
    unknown = [c for c in cats if c not in known]
    if unknown:
        raise NotFoundError(f"unknown category {', '.join(unknown)} (known: {', '.join(sorted(known)) or 'none'})",
                            column="category")
    if not cats and "violent-crime" in known:
        cats = ["violent-crime"]
    months_ = months(config)
    month_from, month_to = check_period(_first(args, "from"), _first(args, "to"))
    if month_to is None and months_:
        month_to = max(months_[-1], month_from or "")
    if month_from is None and months_:
        month_from = min(months_[0], month_to or months_[0])
    check_period(month_from, month_to)
    variable = _choice(args, "variable", VARIABLES, "count")
    significance = _choice(args, "significance", SIGNIFICANCE, "raw")
    classes = _choice(args, "classes", maps.SCHEMES, "quantiles")
    alpha = _float(args, "alpha", config.alpha, 0.0001, 0.2)
    k = int(_float(args, "k", 5, 3, 7))
    perms = int(_float(args, "permutations", config.permutations, 99, MAX_PERMUTATIONS))
    weights = _first(args, "weights", config.weights)
    try:
        from hotspots.weights import parse_spec
        spec = parse_spec(weights)
    except AnalysisError as exc:
        raise HotspotsError(exc.reason, column="weights") from None
    if spec.kind == "knn" and not spec.param <= MAX_KNN:
        raise HotspotsError(f"weights knn:K allows at most {MAX_KNN} neighbours on the web, got {weights!r}",
                            column="weights")
    if spec.kind == "distance" and not spec.param <= MAX_DISTANCE_M:
        raise HotspotsError(f"weights distance:METRES allows at most {MAX_DISTANCE_M:,} m on the web, got "
                            f"{weights!r}", column="weights")
    weights = str(spec)
    domain = _first(args, "domain", "imd")
    cf, ct = check_period(_first(args, "compare_from"), _first(args, "compare_to"))
    if (cf is None) != (ct is None):
        raise HotspotsError("give both compare_from and compare_to, or neither", column="compare_from")
    return LayerParams(layer=layer, geography=geography, categories=tuple(sorted(set(cats))), month_from=month_from,
                       month_to=month_to, variable=variable, weights=weights, significance=significance,
                       alpha=alpha, classes=classes, k=k, domain=domain, compare_from=cf, compare_to=ct,
                       permutations=perms)


def _choice(args: Mapping, name: str, allowed: Mapping, default: str) -> str:
    v = _first(args, name, default)
    if v not in allowed:
        raise HotspotsError(f"{name} must be one of {', '.join(allowed)}, got {v!r}", column=name)
    return v


def _float(args: Mapping, name: str, default: float, lo: float, hi: float) -> float:
    v = _first(args, name)
    if v is None:
        return default
    try:
        x = float(v)
    except ValueError:
        raise HotspotsError(f"{name} must be a number, got {v!r}", column=name) from None
    if not (lo <= x <= hi) or not math.isfinite(x):
        raise HotspotsError(f"{name} must be between {_num(lo)} and {_num(hi)}, got {v}", column=name)
    return x


def baseline_period(p: LayerParams) -> tuple[str, str]:
    """The comparison period: as given, else the same number of months immediately before."""
    if p.compare_from and p.compare_to:
        return p.compare_from, p.compare_to
    if not (p.month_from and p.month_to):
        raise HotspotsError("a period comparison needs 'from' and 'to'", column="from")
    n = months_between(p.month_from, p.month_to)
    return shift_month(p.month_from, -n), shift_month(p.month_from, -1)


# -- cache ---------------------------------------------------------------------------------------------

_cache: OrderedDict = OrderedDict()
_cache_lock = threading.Lock()


def data_version(config: Config) -> tuple:
    """Changes whenever the store, the bundle or the overlays change (cheap: three stat calls)."""
    out = []
    for p in (config.db_path, config.lock_path, overlays.overlays_dir(config) / "overlays.json"):
        try:
            st = p.stat()
            out.append((st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            out.append(None)
    wal = config.db_path.with_name(config.db_path.name + "-wal")
    if wal.exists():
        st = wal.stat()
        out.append((st.st_mtime_ns, st.st_size))
    return tuple(out)


#: key -> [lock, number of threads using it]: one thread computes a missing entry, the others wait for it
_key_locks: dict = {}


def cached(config: Config, key: tuple, fn: Callable[[], Any]) -> Any:
    """``fn()`` once per key and data version. Concurrent misses of one key wait for the thread that
    computes it (a 9,999-permutation analysis is not run eight times by eight waitress threads); ``fn``
    runs outside the global lock, so other keys are served meanwhile. If ``fn`` raises, the next waiter
    tries again."""
    full = (str(config.instance_dir), str(config.data_dir), data_version(config)) + key
    with _cache_lock:
        if full in _cache:
            _cache.move_to_end(full)
            return _cache[full]
        entry = _key_locks.get(full)
        if entry is None:
            entry = _key_locks[full] = [threading.Lock(), 0]
        entry[1] += 1
    try:
        with entry[0]:
            with _cache_lock:
                if full in _cache:  # computed by the thread we waited for
                    _cache.move_to_end(full)
                    return _cache[full]
            value = fn()
            with _cache_lock:
                _cache[full] = value
                while len(_cache) > CACHE_SIZE:
                    _cache.popitem(last=False)
            return value
    finally:
        with _cache_lock:
            entry[1] -= 1
            if entry[1] == 0 and _key_locks.get(full) is entry:
                del _key_locks[full]


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


# -- analysis --------------------------------------------------------------------------------------------

def _counts(config: Config, p: LayerParams, month_from=None, month_to=None) -> gpd.GeoDataFrame:
    mf, mt = (month_from, month_to) if month_from else (p.month_from, p.month_to)
    return cached(config, ("counts", p.geography, p.categories, mf, mt),
                  lambda: _with_eb(area_counts(config, p.geography, list(p.categories), mf, mt)))


def _with_eb(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    from hotspots.stats import empirical_bayes_rate
    out = gdf.copy()
    e, b = out["count"].to_numpy(float), out["population"].to_numpy(float)
    ok = np.isfinite(b) & (b > 0)
    eb = np.full(len(out), np.nan)
    if ok.any():
        eb[ok] = empirical_bayes_rate(e[ok], b[ok]) * 1000.0
    out["eb_rate_per_1000"] = eb
    return out


def analysis(config: Config, p: LayerParams) -> dict:
    """Gi*, local and global Moran for the filter set, once per (geography, filters, variable, weights,
    significance, permutations): the gistar and lisa layers and the side panel share it."""
    key = ("analysis", p.geography, p.categories, p.month_from, p.month_to, p.variable, p.weights,
           p.significance, p.alpha, p.permutations)
    return cached(config, key, lambda: _run_analysis(config, p))


def _run_analysis(config: Config, p: LayerParams) -> dict:
    frame = _counts(config, p)
    value_col = {"count": "count", "rate": "rate_per_1000", "eb_rate": "eb_rate_per_1000"}[p.variable]
    if p.variable != "count" and not np.isfinite(frame[value_col]).all():
        raise AnalysisError(f"no population for some areas of {p.geography}: use variable=count", column="variable")
    from hotspots.analysis import analyse_areas
    res = analyse_areas(frame, "code", "count", name_col="name",
                        ward_cols=("ward_code", "ward_name"), stats=("gistar", "lisa", "moran"),
                        weights=p.weights, permutations=p.permutations, seed=config.seed, alpha=p.alpha,
                        fdr=p.significance == "fdr", variable=p.variable,
                        population_col="population" if p.variable != "count" else None,
                        metadata={"categories": list(p.categories), "from": p.month_from, "to": p.month_to,
                                  "geography": p.geography, "subject": _subject(p)},
                        cache_dir=config.cache_dir)
    table = pd.DataFrame(res.table.drop(columns=res.table.geometry.name))
    cut = _cutoffs(table, p)
    if p.significance == "bonferroni":
        table = _rebin_bonferroni(table, p.alpha)
    return {"table": table, "moran": dict(res.moran or {}), "metadata": dict(res.metadata or {}),
            "summary_lines": list(res.summary_lines()), "cutoffs": cut, "frame": frame}


def _cutoffs(table: pd.DataFrame, p: LayerParams) -> dict:
    """The p-value cut-offs actually applied, for the legend and side panel."""
    from hotspots import stats
    pg = table["gi_p"].to_numpy(float) if "gi_p" in table else np.array([])
    pl = table["lisa_p_sim"].to_numpy(float) if "lisa_p_sim" in table else np.array([])
    m = int(np.isfinite(pg).sum())
    out = {"mode": p.significance, "alpha": p.alpha, "tests": m}
    if p.significance == "raw":
        out["gi"] = {"90%": 0.10, "95%": 0.05, "99%": 0.01}
        out["lisa"] = p.alpha
    elif p.significance == "fdr":
        out["gi"] = {lvl: stats.fdr_cutoff(pg, a) for lvl, a in (("90%", 0.10), ("95%", 0.05), ("99%", 0.01))}
        out["lisa"] = stats.fdr_cutoff(pl, p.alpha)
    else:
        out["gi"] = {lvl: stats.bonferroni_cutoff(pg, a) for lvl, a in (("90%", 0.10), ("95%", 0.05), ("99%", 0.01))}
        out["lisa"] = stats.bonferroni_cutoff(pl, p.alpha)
    return out


def _rebin_bonferroni(table: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Gi* bins and LISA labels with Bonferroni cut-offs (α/m per confidence level; m = areas tested)."""
    from hotspots import stats
    t = table.copy()
    pg = t["gi_p"].to_numpy(float)
    z = t["gi_z"].to_numpy(float)
    bins = np.zeros(len(t), dtype=int)
    for level, a in ((1, 0.10), (2, 0.05), (3, 0.01)):
        cut = stats.bonferroni_cutoff(pg, a)
        bins[np.isfinite(pg) & (pg <= cut)] = level
    bins = np.where(np.nan_to_num(z) < 0, -bins, bins)
    t["gi_bin"] = bins
    t["gi_label"] = [old if not np.isfinite(pp) else stats.GI_LABELS[int(b)]  # islands, undefined: as they were
                     for b, pp, old in zip(bins, pg, t["gi_label"])]
    if "lisa_p_sim" in t:
        pl = t["lisa_p_sim"].to_numpy(float)
        cut = stats.bonferroni_cutoff(pl, alpha)
        quad = {1: "High-High", 2: "Low-High", 3: "Low-Low", 4: "High-Low"}
        t["lisa_label"] = [lab if lab == stats.LABEL_NO_NEIGHBOURS else
                           (quad.get(int(q), stats.LABEL_NOT_SIGNIFICANT) if np.isfinite(pp) and pp <= cut
                            else stats.LABEL_NOT_SIGNIFICANT)
                           for lab, q, pp in zip(t["lisa_label"], t["lisa_q"].fillna(0), pl)]
    return t


# -- the one data function ----------------------------------------------------------------------------

def layer_data(config: Config, p: LayerParams, full: bool = False) -> LayerResult:
    """The layer for a filter set: frame (EPSG:27700), legend, tooltip fields and metadata. Cached.

    ``full=False`` (the default, what viewers and public visitors get): counts under the disclosure rule;
    ``full=True``: unsuppressed (analysts)."""
    rule = None if full else viewer_rule(config)
    p = layer_params_used(p)
    return cached(config, ("layer", p, _rule_key(rule)), lambda: _finish(config, p, _build(config, p), rule))


def layer_params_used(p: LayerParams) -> LayerParams:
    """``p`` reduced to the fields its layer depends on (the cache key and the recorded parameters): the
    ward boundaries, deprivation deciles and overlays do not change with the crime filters, so changing
    the category or period must not rebuild them."""
    if p.layer in CRIME_LAYERS:
        return p
    base = LayerParams(layer=p.layer, categories=(), month_from=None, month_to=None)
    if p.layer == "wards":
        return base
    if p.layer.startswith("overlay-"):
        return replace(base, classes=p.classes, k=p.k)
    return replace(base, domain=p.domain)  # deprivation deciles


def viewer_rule(config: Config) -> DisclosureRule:
    """The rule for crime layers: the strictest of ``[disclosure]`` and the incident datasets' rules."""
    return effective_rule(config)


def _rule_key(rule: DisclosureRule | None) -> tuple | None:
    return None if rule is None else tuple(sorted(vars(rule).items()))


def _filters_text(p: LayerParams) -> str:
    cats = ", ".join(category_label(c) for c in p.categories) or "all categories"
    period = p.month_from if p.month_from == p.month_to else f"{p.month_from} to {p.month_to}"
    return f"{cats}, {period}"


def _filename(p: LayerParams, extra: str = "") -> str:
    parts = ["hotspots", p.layer]
    if p.layer in CRIME_LAYERS:
        parts += [p.geography, "+".join(p.categories) or "all", f"{p.month_from}_{p.month_to}"]
        if p.layer in ("gistar", "lisa"):
            parts += [p.variable, p.weights.replace(":", ""), p.significance]
    if extra:
        parts.append(extra)
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", "_".join(x for x in parts if x))


def _imd_deciles(config: Config, role: str) -> pd.Series | None:
    if role != "lsoa21" or "iod2025" not in config.datasets:
        return None
    try:
        g = cached(config, ("imd2025-imd",), lambda: overlays.deprivation_layer(config, "iod2025", "imd"))
    except HotspotsError:
        return None
    return pd.Series(g["decile"].to_numpy(), index=g["code"])


AREA_FIELDS = [["name", "Area"], ["code", "Code"], ["ward_name", "Ward"]]


def _build(config: Config, p: LayerParams) -> LayerResult:
    q = p.query()
    if p.layer not in CRIME_LAYERS:  # only what the layer depends on (see layer_params_used)
        used = ("layer",) if p.layer == "wards" else ("layer", "classes", "k") if p.layer.startswith(
            "overlay-") else ("layer", "domain")
        q = {k: v for k, v in q.items() if k in used}
    base_meta = {"layer": p.layer, "parameters": q}
    if p.layer in ("count", "rate", "eb_rate"):
        g = _counts(config, p).copy()
        col = {"count": "count", "rate": "rate_per_1000", "eb_rate": "eb_rate_per_1000"}[p.layer]
        title = f"{CRIME_LAYERS[p.layer]}: {_filters_text(p)}"
        st = maps.classify(g[col], p.classes, p.k, integer=p.layer == "count", title=CRIME_LAYERS[p.layer])
        fields = AREA_FIELDS + [["count", "Incidents"], ["rate_per_1000", "Rate per 1,000"],
                                ["eb_rate_per_1000", "EB rate per 1,000"], ["population", "Residents (2021)"]]
        meta = {**base_meta, "value": col, "classification": p.classes, "classes": p.k,
                "eb_method": "global empirical Bayes (Marshall 1991)" if p.layer == "eb_rate" else None}
        return LayerResult(p.layer, title, _style(g, st), st.legend, fields, meta, level_role(p.geography),
                           _filename(p))
    if p.layer in ("gistar", "lisa"):
        a = analysis(config, p)
        g = a["frame"][["code", "name", "ward_code", "ward_name", "count", "population", "rate_per_1000",
                        "eb_rate_per_1000", "geometry"]].copy()
        t = a["table"].set_index("area_code")
        cols = (["value", "gi_z", "gi_p", "gi_p_sim", "gi_bin", "gi_label", "n_neighbours"] if p.layer == "gistar"
                else ["value", "lisa_i", "lisa_q", "lisa_p_sim", "lisa_label", "n_neighbours"])
        for c in cols:
            if c in t:
                g[c] = t[c].reindex(g["code"]).to_numpy()
        cut = a["cutoffs"]
        if p.layer == "gistar":
            note = _gi_note(cut)
            st = maps.style_gi(g["gi_bin"].where(~g["gi_label"].isin(["No neighbours", "Undefined"])), note=note)
            fields = AREA_FIELDS + [["count", "Incidents"], ["rate_per_1000", "Rate per 1,000"],
                                    ["gi_z", "Gi* z-score"], ["gi_p", "p (two-sided)"], ["gi_p_sim", "p (permutation)"],
                                    ["gi_label", "Class"]]
        else:
            note = f"p ≤ {cut['lisa']:.4g} ({SIGNIFICANCE[p.significance]}); {a['metadata'].get('permutations', p.permutations):,} permutations"
            st = maps.style_lisa(g["lisa_label"].tolist(), note=note)
            fields = AREA_FIELDS + [["count", "Incidents"], ["rate_per_1000", "Rate per 1,000"],
                                    ["lisa_i", "Local Moran's I"], ["lisa_p_sim", "p (permutation)"],
                                    ["lisa_label", "Cluster"]]
        title = f"{CRIME_LAYERS[p.layer]} of {VARIABLES[p.variable]}: {_filters_text(p)}"
        meta = {**base_meta, "method": a["metadata"], "cutoffs": cut, "moran": jsonable(a["moran"])}
        return LayerResult(p.layer, title, _style(g, st), st.legend, fields, meta, level_role(p.geography),
                           _filename(p))
    if p.layer == "change":
        bf, bt = baseline_period(p)
        after = _counts(config, p)
        before = _counts(config, p, bf, bt)
        g = after[["code", "name", "ward_code", "ward_name", "geometry"]].copy()
        g["count_before"] = before["count"].to_numpy()
        g["count_after"] = after["count"].to_numpy()
        g["change"] = g["count_after"] - g["count_before"]
        with np.errstate(divide="ignore", invalid="ignore"):
            g["pct_change"] = np.where(g["count_before"] > 0, g["change"] / g["count_before"] * 100.0, np.nan)
        period_b = f"{bf}" if bf == bt else f"{bf} to {bt}"
        period_a = p.month_from if p.month_from == p.month_to else f"{p.month_from} to {p.month_to}"
        st = maps.style_change(g["change"], title="Change in count",
                               note=f"{period_a} against {period_b}")
        fields = AREA_FIELDS + [["count_before", f"Incidents {period_b}"], ["count_after", f"Incidents {period_a}"],
                                ["change", "Change"], ["pct_change", "Change %"]]
        meta = {**base_meta, "baseline": {"from": bf, "to": bt}, "current": {"from": p.month_from, "to": p.month_to}}
        return LayerResult("change", f"Change in count: {_filters_text(p)} against {period_b}", _style(g, st),
                           st.legend, fields, meta, level_role(p.geography), _filename(p, f"vs_{bf}_{bt}"))
    if p.layer in [d["key"] for d in overlays.deprivation_sets(config)]:
        # once per dataset and domain (deprivation_layer reads the CSV for its domains and again for the values)
        g = cached(config, ("deprivation-layer", p.layer, p.domain),
                   lambda: overlays.deprivation_layer(config, p.layer, p.domain)).copy()
        label = g.attrs["domain_label"]
        st = maps.style_deciles(g["decile"], title=f"{label} decile ({p.layer.upper().replace('IOD', 'IoD')})")
        fields = [["name", "Area"], ["code", "Code"], ["decile", "Decile (1 = most deprived)"],
                  ["rank", "Rank in England"], ["score", "Score"]]
        meta = {**base_meta, "dataset": g.attrs["dataset"], "domain": p.domain, "domain_label": label,
                "vintage": g.attrs["vintage"], "geography": g.attrs["geography"], "missing": g.attrs["missing"],
                "attribution_dataset": g.attrs["attribution"]}
        return LayerResult(p.layer, f"{label} decile, {g.attrs['vintage']}", _style(g, st), st.legend, fields, meta,
                           g.attrs["geography"], _filename(p, p.domain))
    if p.layer == "wards":
        w = load_boundary(config, "ward")
        g = w[["code", "name", "geometry"]].copy()
        legend = {"title": "Ward boundaries", "items": [{"label": f"Wards ({len(g)})", "colour": "#333333",
                                                         "n": len(g), "outline": True}],
                  "note": config.dataset(config.boundary("ward").key).vintage}
        g["class_label"], g["fill"] = "Ward", "#333333"
        return LayerResult("wards", "Ward boundaries", g, legend, [["name", "Ward"], ["code", "Code"]],
                           {**base_meta, "vintage": config.boundary("ward").vintage}, "ward", _filename(p))
    if p.layer.startswith("overlay-"):
        g = overlays.overlay_layer(config, p.layer[len("overlay-"):])
        ov = g.attrs["overlay"]
        note = []
        if ov["missing_codes"]:
            note.append(f"{len(ov['missing_codes'])} area(s) with no value")
        if ov["unknown_codes"]:
            note.append(f"{len(ov['unknown_codes'])} code(s) in {ov['source']} not on this map: "
                        + ", ".join(ov["unknown_codes"][:5]) + ("…" if len(ov["unknown_codes"]) > 5 else ""))
        st = maps.classify(g["value"], p.classes, p.k, title=ov["label"], palette=maps.PUBUGN,
                           note="; ".join(note))
        fields = [["name", "Area"], ["code", "Code"], ["value", ov["label"]]]
        return LayerResult(p.layer, ov["label"], _style(g, st), st.legend, fields, {**base_meta, "overlay": ov},
                           ov["geography"], _filename(p))
    raise NotFoundError(f"unknown layer {p.layer!r}", column="layer")  # pragma: no cover (parse_params checks)


def _gi_note(cut: dict) -> str:
    g = cut["gi"]
    mode = SIGNIFICANCE[cut["mode"]]
    if cut["mode"] == "raw":
        return "90/95/99% confidence: |z| ≥ 1.645 / 1.960 / 2.576 (two-sided), no correction"
    return f"{mode}: p ≤ {g['90%']:.3g} / {g['95%']:.3g} / {g['99%']:.3g} for 90/95/99%"


def _style(g: gpd.GeoDataFrame, st: maps.Styled) -> gpd.GeoDataFrame:
    g = g.copy()
    labels = [it["label"] for it in st.legend["items"]]
    g["class_label"] = [labels[c] if c >= 0 else "No data" for c in st.classes]
    g["fill"] = st.fills
    cols = [c for c in g.columns if c != "geometry"] + ["geometry"]
    return gpd.GeoDataFrame(g[cols], geometry="geometry", crs=BNG)


def _finish(config: Config, p: LayerParams, r: LayerResult, rule: DisclosureRule | None = None) -> LayerResult:
    """Last step for every output: IMD decile joined for LSOA crime layers, disclosure control for viewers
    (``rule``; None = unsuppressed, analysts), provenance with the rule attached."""
    if p.layer in CRIME_LAYERS:
        dec = _imd_deciles(config, r.role)
        if dec is not None:
            r.frame.insert(len(r.frame.columns) - 3, "imd_decile", dec.reindex(r.frame["code"]).to_numpy())
            r.fields.append(["imd_decile", "IMD 2025 decile"])
        if rule is not None:
            r = _disclose(config, p, r, rule)
    vintages = {}
    for ds in config.datasets.values():
        if ds.kind in ("boundary", "table") and ds.vintage:
            vintages[ds.key] = ds.vintage
    if rule is None:
        disc = rule_metadata("none")
        disc["disclosure"]["audience"] = "analyst: unsuppressed counts; do not publish without disclosure control"
    else:
        disc = rule_metadata(rule)
        disc["disclosure"]["audience"] = "viewer: small numbers suppressed"
        if p.layer not in CRIME_LAYERS:
            disc["disclosure"]["applies"] = "no incident counts in this layer"
    r.metadata = provenance(config, r.title, {**r.metadata, "filters": _filters_text(p) if p.layer in CRIME_LAYERS
                                              else None, "vintages": vintages, "crs_computed": BNG,
                                              "legend": r.legend, **disc})
    return r


# -- disclosure control ------------------------------------------------------------------------------

SUPPRESSED_COLOUR = "#d9d9d9"
#: analysis variable -> the column that holds it
VALUE_COLUMNS = {"count": "count", "rate": "rate_per_1000", "eb_rate": "eb_rate_per_1000"}
#: numeric statistics a suppressed area does not show (its class stays)
REDACT = ("value", "gi_z", "gi_p", "gi_p_sim", "lisa_i", "lisa_p_sim", "rate_per_1000", "eb_rate_per_1000",
          "pct_change")


def protected_counts(config: Config, geography: str, cats: tuple, mf: str | None, mt: str | None,
                     rule: DisclosureRule) -> pd.DataFrame:
    """The viewer-level counts of one filter set: ``code``, ``count`` (number or the rule's label),
    ``suppressed``, derived rates; ``attrs["disclosure"]`` holds the publishable totals. Cached.

    LSOAs are protected with their ward as the group (ward totals are published by the ward view) and
    the city total. Wards are protected with the city total, and a ward whose total the LSOA audit had to
    hide is hidden here too, so the two views never give back what the other hides."""
    key = ("protected", geography, cats, mf, mt, _rule_key(rule))
    return cached(config, key, lambda: _protected_counts(config, geography, cats, mf, mt, rule))


def _protected_counts(config, geography, cats, mf, mt, rule) -> pd.DataFrame:
    p = LayerParams(layer="count", geography=geography, categories=cats, month_from=mf, month_to=mt)
    frame = pd.DataFrame(_counts(config, p).drop(columns="geometry"))
    derived = {"rate_per_1000": "count", "eb_rate_per_1000": "count"}
    if geography == "lsoa":
        sp = suppress_table(frame, "count", rule, group_col="ward_code", total=True, derived=derived)
        out = sp.frame
    else:
        sp = suppress_table(frame, "count", rule, group_col=None, total=True, derived=derived)
        out = sp.frame
        lsoa = protected_counts(config, "lsoa", cats, mf, mt, rule)
        hidden = {g["ward_code"] for g in (lsoa.attrs["disclosure"].get("group_totals") or [])
                  if g.get("suppressed")}
        force = out["code"].isin(hidden).to_numpy() & ~out["suppressed"].to_numpy(bool)
        if force.any():
            out.loc[force, "count"] = rule.secondary_label
            out.loc[force, "suppressed"] = True
            for c in derived:
                out.loc[force, c] = None
    if rule.round_to > 1 and "eb_rate_per_1000" in out:
        # EB rates from the rounded counts, so the exact count cannot be solved back from the smoothing
        from hotspots.stats import empirical_bayes_rate
        rounded = np.array([rule.round(v) for v in frame["count"]], dtype=float)
        b = frame["population"].to_numpy(float)
        okb = np.isfinite(b) & (b > 0)
        eb = np.full(len(out), np.nan)
        if okb.any():
            eb[okb] = empirical_bayes_rate(rounded[okb], b[okb]) * 1000.0
        sup = out["suppressed"].to_numpy(bool)
        out["eb_rate_per_1000"] = [None if (s_ or not np.isfinite(v)) else float(v) for s_, v in zip(sup, eb)]
    out.attrs["disclosure"] = dict(sp.frame.attrs.get("disclosure", {}))
    return out


def _numeric(values) -> np.ndarray:
    return np.array(pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce"), dtype=float)


def _restyle(g: gpd.GeoDataFrame, st: maps.Styled, suppressed: np.ndarray, rule: DisclosureRule) -> tuple:
    """Classes of the published values, and one more class for the suppressed areas."""
    g = _style(g, st)
    legend = {**st.legend, "items": [dict(i) for i in st.legend["items"]]}
    n = int(suppressed.sum())
    if n:
        g.loc[suppressed, "class_label"] = "Suppressed (small number)"
        g.loc[suppressed, "fill"] = SUPPRESSED_COLOUR
        for i in legend["items"]:
            if i["label"] == "No data":
                i["n"] -= n
        legend["items"] = [i for i in legend["items"] if not (i["label"] == "No data" and i["n"] <= 0)]
        legend["items"].append({"label": "Suppressed (small number)", "colour": SUPPRESSED_COLOUR, "n": n})
    legend["note"] = ((legend.get("note") or "") + ("; " if legend.get("note") else "")
                      + f"small numbers suppressed ({rule.name} rule: {_rule_words(rule)})")
    return g, legend


def _rule_words(rule: DisclosureRule) -> str:
    words = f"1-{rule.max_suppressed} shown as {rule.label}" if rule.max_suppressed else "none hidden"
    if rule.round_to > 1:
        words += f", others rounded to {rule.round_to}"
    if rule.secondary:
        words += f", {rule.secondary_label} = hidden to protect another"
    return words


def _disclose(config: Config, p: LayerParams, r: LayerResult, rule: DisclosureRule) -> LayerResult:
    """The viewer-level version of a crime layer (see ``protected_counts``)."""
    g = r.frame.copy()
    keep = [c for c in g.columns if c not in ("class_label", "fill")]
    g = gpd.GeoDataFrame(g[keep], geometry="geometry", crs=r.frame.crs)
    if p.layer == "change":
        return _disclose_change(config, p, r, g, rule)
    prot = protected_counts(config, p.geography, p.categories, p.month_from, p.month_to, rule).set_index("code")
    codes = g["code"]
    for c in ("count", "rate_per_1000", "eb_rate_per_1000"):
        if c in g:
            g[c] = prot[c].reindex(codes).astype(object).to_numpy()
    sup = prot["suppressed"].reindex(codes).fillna(False).to_numpy(bool)
    g.insert(len(g.columns) - 1, "suppressed", sup)
    g = gpd.GeoDataFrame(redact_statistics(g, "suppressed", columns=REDACT), geometry="geometry", crs=r.frame.crs)
    if "value" in g:  # gistar / lisa: the analysis variable as published (rounded under a rounding rule)
        pub = _numeric(g[VALUE_COLUMNS[p.variable]])
        g["value"] = pd.Series([None if (s_ or not np.isfinite(v)) else float(v) for s_, v in zip(sup, pub)],
                               index=g.index, dtype=object)
    if p.layer in ("count", "rate", "eb_rate"):
        col = {"count": "count", "rate": "rate_per_1000", "eb_rate": "eb_rate_per_1000"}[p.layer]
        vals = _numeric(g[col])
        vals[sup] = np.nan
        st = maps.classify(vals, p.classes, p.k, integer=p.layer == "count", title=CRIME_LAYERS[p.layer])
        g, legend = _restyle(g, st, sup, rule)
    else:  # gistar / lisa: the class of every area stays, computed on the full data
        g["class_label"] = r.frame["class_label"].to_numpy()
        g["fill"] = r.frame["fill"].to_numpy()
        legend = {**r.legend, "note": (r.legend.get("note") or "") + f"; counts: {_rule_words(rule)} "
                  "(classes computed on the full data)"}
        g = gpd.GeoDataFrame(g[[c for c in g.columns if c != "geometry"] + ["geometry"]], geometry="geometry",
                             crs=r.frame.crs)
    totals = prot.attrs.get("disclosure", {}).get("totals", {})
    return replace(r, frame=g, legend=legend, summary={**r.summary, "totals": {"count": totals.get("count")}},
                   _display=None, _downloads={})


def _disclose_change(config, p, r, g, rule) -> LayerResult:
    bf, bt = r.metadata["baseline"]["from"], r.metadata["baseline"]["to"]
    after = protected_counts(config, p.geography, p.categories, p.month_from, p.month_to, rule)
    before = protected_counts(config, p.geography, p.categories, bf, bt, rule)
    a_full = pd.DataFrame({"code": g["code"], "ward_code": g["ward_code"],
                           "count": pd.to_numeric(r.frame["count_before"]).to_numpy()})
    b_full = pd.DataFrame({"code": g["code"], "count": pd.to_numeric(r.frame["count_after"]).to_numpy()})
    group = "ward_code" if p.geography == "lsoa" else None
    after_contains = bf >= p.month_from and bt <= p.month_to
    before_contains = p.month_from >= bf and p.month_to <= bt
    if before_contains and not after_contains:  # the baseline holds the current period: swap the roles
        a2 = pd.DataFrame({"code": g["code"], "ward_code": g["ward_code"], "count": b_full["count"]})
        sc = suppress_change(a2, a_full[["code", "count"]], rule, group_col=group, nested=True)
        sc = sc.rename(columns={"count_a": "count_b", "count_b": "count_a", "count_a_suppressed": "count_b_suppressed",
                                "count_b_suppressed": "count_a_suppressed"})
        sc["change"] = [c if isinstance(c, str) else -c for c in sc["change"]]
    else:
        sc = suppress_change(a_full, b_full, rule, group_col=group, nested=after_contains)
    sc = sc.set_index("code").reindex(g["code"])
    # never show what the period's own map hides (e.g. a ward hidden to protect its LSOAs)
    hide_a = sc["count_a_suppressed"].to_numpy(bool) | after_hidden(before, g["code"])
    hide_b = sc["count_b_suppressed"].to_numpy(bool) | after_hidden(after, g["code"])
    ca = np.array(sc["count_a"].tolist(), dtype=object)
    cb = np.array(sc["count_b"].tolist(), dtype=object)
    ca[hide_a & ~sc["count_a_suppressed"].to_numpy(bool)] = rule.secondary_label
    cb[hide_b & ~sc["count_b_suppressed"].to_numpy(bool)] = rule.secondary_label
    hide_c = sc["change_suppressed"].to_numpy(bool) | hide_a | hide_b
    ch = np.array(sc["change"].tolist(), dtype=object)
    ch[hide_c] = rule.secondary_label
    g["count_before"], g["count_after"], g["change"] = ca, cb, ch
    na, nb = _numeric(ca), _numeric(cb)
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where((na > 0) & ~hide_c, (nb - na) / na * 100.0, np.nan)
    g["pct_change"] = [None if not np.isfinite(v) else float(v) for v in pct]
    sup = hide_a | hide_b | hide_c
    g.insert(len(g.columns) - 1, "suppressed", sup)
    vals = _numeric(ch)
    st = maps.style_change(vals, title="Change in count", note=r.legend.get("note", ""))
    g, legend = _restyle(g, st, sup, rule)
    totals = {"count_before": before.attrs.get("disclosure", {}).get("totals", {}).get("count"),
              "count_after": after.attrs.get("disclosure", {}).get("totals", {}).get("count")}
    return replace(r, frame=g, legend=legend, summary={**r.summary, "totals": totals}, _display=None, _downloads={})


def after_hidden(prot: pd.DataFrame, codes: pd.Series) -> np.ndarray:
    return prot.set_index("code")["suppressed"].reindex(codes).fillna(False).to_numpy(bool)


# -- renderers --------------------------------------------------------------------------------------------

def display_geometries(config: Config, role: str) -> dict[str, str]:
    """code -> GeoJSON geometry text: coverage-simplified in EPSG:27700 (shared borders kept), WGS84,
    coordinates quantised to 5 decimals. Cached per bundle version."""
    def build() -> dict[str, str]:
        b = load_boundary(config, role)
        geoms = b.geometry.to_numpy()
        try:
            simp = shapely.coverage_simplify(geoms, SIMPLIFY_M)
            if not shapely.is_valid(simp).all():
                raise ValueError("invalid")
        except Exception:  # not a clean coverage: simplify each polygon on its own
            simp = shapely.simplify(geoms, SIMPLIFY_M, preserve_topology=True)
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


def display_geojson(config: Config, r: LayerResult) -> bytes:
    """The map's GeoJSON: simplified geometry, compact numbers, legend and fields as foreign members.
    Built once per layer result (the result itself is cached per filter set)."""
    if r._display is None:
        r._display = _display_geojson(config, r)
    return r._display


def _display_geojson(config: Config, r: LayerResult) -> bytes:
    geoms = display_geometries(config, r.role)
    props = pd.DataFrame(r.frame.drop(columns="geometry"))
    parts = []
    for rec in props.to_dict(orient="records"):
        pj = json.dumps({k: _round(v) for k, v in rec.items()}, separators=(",", ":"), ensure_ascii=False)
        parts.append('{"type":"Feature","properties":%s,"geometry":%s}' % (pj, geoms.get(rec["code"], "null")))
    head = {"type": "FeatureCollection", "name": r.name, "title": r.title, "legend": r.legend, "fields": r.fields,
            "attribution": config.attributions(), "note": POLICE_NOTE}
    text = json.dumps(head, separators=(",", ":"), ensure_ascii=False)[:-1] + ',"features":[' + ",".join(parts) + "]}"
    return text.encode("utf-8")


def table_rows(r: LayerResult) -> list[dict]:
    """The layer as rows without geometry (built once per layer result)."""
    if "rows" not in r._downloads:
        props = pd.DataFrame(r.frame.drop(columns="geometry"))
        r._downloads["rows"] = [{k: jsonable(v) for k, v in rec.items()}
                                for rec in props.to_dict(orient="records")]
    return r._downloads["rows"]


DOWNLOAD_TYPES = {"geojson": "application/geo+json", "csv": "text/csv; charset=utf-8",
                  "gpkg": "application/geopackage+sqlite3"}


def download(config: Config, r: LayerResult, fmt: str) -> tuple[bytes, str, str]:
    """(body, mimetype, filename) of a download: full-resolution geometry, attribution and metadata in
    every format (GeoJSON foreign member; CSV header comment lines; GeoPackage ``metadata`` table).
    Built once per layer result and format (the result itself is cached per filter set and audience)."""
    if fmt in DOWNLOAD_TYPES and fmt in r._downloads:
        return r._downloads[fmt]
    out = _download(config, r, fmt)
    r._downloads[fmt] = out
    return out


def _download(config: Config, r: LayerResult, fmt: str) -> tuple[bytes, str, str]:
    if fmt not in DOWNLOAD_TYPES:
        raise NotFoundError(f"unknown format {fmt!r} (use one of: {', '.join(DOWNLOAD_TYPES)})", column="format")
    name = f"{r.filename}.{fmt}"
    meta = r.metadata
    if fmt == "geojson":
        fc = to_geojson_dict(r.frame, meta)
        fc = {"type": fc["type"], "name": r.filename, "attribution": config.attributions(), **fc}
        return json.dumps(fc, separators=(",", ":"), ensure_ascii=False).encode("utf-8"), DOWNLOAD_TYPES[fmt], name
    if fmt == "csv":
        df = safe_csv_frame(pd.DataFrame(r.frame.drop(columns="geometry")))
        d = meta.get("disclosure") or {}
        lines = [f"# {r.title}", *[f"# {a}" for a in config.attributions()], f"# {POLICE_NOTE}",
                 f"# disclosure control: rule {d.get('rule')} (version {d.get('version')}): {d.get('description')}",
                 f"# generated {meta['generated_at']} by {meta['software']}; parameters: "
                 + "&".join(f"{k}={v}" for k, v in meta.get("parameters", {}).items())]
        body = "\n".join(lines) + "\n" + df.to_csv(index=False, lineterminator="\n")
        return body.encode("utf-8"), DOWNLOAD_TYPES[fmt], name
    frame = r.frame
    mixed = [c for c in frame.columns if c != "geometry" and frame[c].dtype == object
             and frame[c].map(lambda v: isinstance(v, str)).any() and not frame[c].map(
                 lambda v: v is None or isinstance(v, str)).all()]
    if mixed:  # a suppressed count column holds numbers and labels: a text column in the GeoPackage
        frame = frame.copy()
        for c in mixed:
            frame[c] = frame[c].map(lambda v: None if v is None else str(v))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        from hotspots.export import write_layer
        write_layer(frame, path, config, r.title, {k: v for k, v in meta.items()
                                                      if k not in ("title",) and k not in provenance(config, "")})
        return path.read_bytes(), DOWNLOAD_TYPES[fmt], name


def _subject(p: LayerParams) -> str:
    cats = [category_label(c).lower() for c in p.categories]
    return " and ".join(cats) if cats else "crime"


# -- side panel ------------------------------------------------------------------------------------------

WEIGHTS_WORDS = {"queen": "queen contiguity (areas sharing a border or a corner are neighbours)",
                 "rook": "rook contiguity (areas sharing a border are neighbours)"}


def _weights_words(spec: str) -> str:
    if spec in WEIGHTS_WORDS:
        return WEIGHTS_WORDS[spec]
    kind, _, v = spec.partition(":")
    if kind == "knn":
        return f"the {v} nearest areas (by centroid) are neighbours"
    if kind == "distance":
        return f"areas whose centroids are within {v} m are neighbours"
    return spec


def panel(config: Config, p: LayerParams, full: bool = False) -> dict:
    """Side-panel content (cached per filter set); see ``_panel``. ``full=False``: viewer level."""
    rule = None if full else viewer_rule(config)
    return cached(config, ("panel", replace(p, layer="gistar"), _rule_key(rule)), lambda: _panel(config, p, rule))


def _panel(config: Config, p: LayerParams, rule: DisclosureRule | None = None) -> dict:
    """Side-panel content for a filter set: top hot spots with wards, global Moran's I in plain English,
    the parameters chosen and why (in the style of ArcGIS's Optimized Hot Spot Analysis messages), data
    vintages and attributions."""
    a = analysis(config, p)
    t = a["table"]
    frame = a["frame"]
    meta = a["metadata"]
    m = jsonable(a["moran"])
    n = len(t)
    total = int(frame["count"].sum())
    counts = frame.set_index("code")["count"]
    shown = counts.astype(object)
    hidden: set = set()
    mean, maximum = frame["count"].mean(), int(frame["count"].max())
    published = None  # code -> the analysis variable as published (viewer level)
    if rule is not None:  # viewer level: only figures the maps publish
        prot = protected_counts(config, p.geography, p.categories, p.month_from, p.month_to, rule)
        shown = prot.set_index("code")["count"]
        published = pd.Series(_numeric(prot[VALUE_COLUMNS[p.variable]]), index=prot["code"].to_numpy())
        hidden = set(prot.loc[prot["suppressed"], "code"])
        t_shown = prot.attrs["disclosure"]["totals"].get("count")
        total = t_shown if isinstance(t_shown, (int, np.integer)) else suppress_value(total, rule)
        nums = _numeric(shown)
        maximum = int(np.nanmax(nums)) if np.isfinite(nums).any() else 0
        mean = total / n if isinstance(total, (int, np.integer)) and n else float("nan")
    total_txt = f"{total:,}" if isinstance(total, (int, np.integer)) else str(total)
    geo = GEOGRAPHIES[p.geography]
    msgs = [f"Incidents: {total_txt} of {_filters_text(p)}, in {n} areas ({geo}) of {config.area_name}.",
            f"Analysis variable: {VARIABLES[p.variable]}"
            + (" (chosen: rates per 1,000 residents correct for population size; EB smoothing steadies rates of "
               "small populations)" if p.variable != "count" else " (counts: where incidents are; choose a "
               "rate to allow for population)") + "."]
    zeros = int((frame["count"] == 0).sum())
    msgs.append(f"Incidents per area: mean {mean:.1f}, maximum {maximum}; {zeros} area(s) with none."
                if np.isfinite(mean) else f"Incidents per area: maximum shown {maximum}; {zeros} area(s) with none.")
    if not isinstance(total, (int, np.integer)) or total < 60:
        msgs.append(f"Warning: only {total_txt} incidents; hot-spot statistics are weak below about 60.")
    if rule is not None:
        msgs.append(f"Small numbers are suppressed ({rule.name} rule: {_rule_words(rule)}); statistics are "
                    "computed on the full data and suppressed areas show only their class.")
    card = t["n_neighbours"].to_numpy()
    msgs.append(f"Spatial weights: {_weights_words(p.weights)}; neighbours per area {int(card.min())} to "
                f"{int(card.max())} (mean {card.mean():.1f}).")
    perms = meta.get("permutations", p.permutations)
    msgs.append(f"Permutations: {perms:,} with seed {meta.get('seed', config.seed)} (reproducible); the smallest "
                f"attainable pseudo p-value is {2 / (perms + 1):.2g}.")
    cut = a["cutoffs"]
    if p.significance == "raw":
        msgs.append("Significance: no correction for multiple testing; Gi* classes at |z| ≥ 1.645 / 1.960 / 2.576 "
                    f"(90/95/99%); LISA at p ≤ {p.alpha:g}. With {n} tests about {n * 0.05:.0f} areas can look "
                    "significant at 95% by chance alone: consider FDR.")
    else:
        msgs.append(f"Significance: {SIGNIFICANCE[p.significance]} over {cut['tests']} tests; Gi* cut-offs p ≤ "
                    f"{cut['gi']['90%']:.3g} / {cut['gi']['95%']:.3g} / {cut['gi']['99%']:.3g} (90/95/99%); "
                    f"LISA p ≤ {cut['lisa']:.3g}." + (" A cut-off of 0 means no area passes." if
                                                       cut["gi"]["95%"] == 0 else ""))
    for w in meta.get("warnings", []):
        msgs.append(f"Warning: {w}")
    hot = t[t["gi_bin"] > 0].sort_values("gi_z", ascending=False)
    cols = {"area_code": "code", "area_name": "name", "ward_name": "ward", "gi_z": "z", "gi_p": "p",
            "gi_label": "class", "value": "value"}
    top = [{cols[k]: jsonable(v) for k, v in r.items() if k in cols} for r in hot.head(10).to_dict("records")]
    for r in top:
        c = shown.get(r["code"], 0)
        r["count"] = c if isinstance(c, str) else int(c)
        if r["code"] in hidden:
            r.update(z=None, p=None, value=None, suppressed=True)
        elif published is not None:  # the published (possibly rounded) figure, never the exact one
            v = published.get(r["code"], np.nan)
            r["value"] = float(v) if np.isfinite(v) else None
    moran_text = ""
    if m:
        ps = m.get("p_sim") if m.get("p_sim") is not None else m.get("p_rand")
        from hotspots.analysis import format_p
        ptxt = format_p(float("nan") if ps is None else ps, m.get("permutations") if m.get("p_sim") is not None else None)
        if ps is not None and ps <= p.alpha and m["I"] > m["EI"]:
            moran_text = (f"Moran's I = {m['I']:.2f} ({ptxt}): incidents cluster. Areas with many incidents tend to "
                          "sit next to other areas with many, more than chance would produce.")
        elif ps is not None and ps <= p.alpha:
            moran_text = (f"Moran's I = {m['I']:.2f} ({ptxt}): a dispersed pattern. Neighbouring areas differ more "
                          "than chance would produce.")
        else:
            moran_text = (f"Moran's I = {m['I']:.2f} ({ptxt}): no evidence of clustering across the city; the "
                          "pattern could be chance. Local hot spots may still be worth a look.")
    vintages = [{"dataset": ds.key, "vintage": ds.vintage} for ds in config.datasets.values()
                if ds.kind in ("boundary", "table") and ds.vintage]
    return {"title": f"Hot spots of {VARIABLES[p.variable]}: {_filters_text(p)}", "moran": m,
            "moran_text": moran_text, "top": top, "n_hot": int((t["gi_bin"] > 0).sum()),
            "n_cold": int((t["gi_bin"] < 0).sum()), "lisa": {k: int(v) for k, v in t["lisa_label"].value_counts().items()},
            "messages": msgs, "cutoffs": cut, "vintages": vintages,
            "summary_lines": a["summary_lines"] if rule is None else _viewer_summary_lines(t, hidden, published,
                                                                                          moran_text, meta),
            "attribution": config.attributions(), "note": POLICE_NOTE, "parameters": p.query()}


def _viewer_summary_lines(t: pd.DataFrame, hidden: set, published: pd.Series,
                          moran_text: str, meta: dict) -> list[str]:
    """The summary lines for viewers, rebuilt from published figures only: the engine's lines
    (``AnalysisResult.summary_lines``) print the exact value of every 99% hot spot, which a disclosure
    rule may hide or round. Hidden areas keep their class and lose their value and z."""
    from hotspots.analysis import SUMMARY_TOP
    lines = [moran_text] if moran_text else []
    hot = t[t["gi_bin"] == 3].sort_values("gi_z", ascending=False) if "gi_bin" in t else t.iloc[:0]
    if len(hot):
        lines.append(f"{len(hot)} area(s) are Gi* hot spots at 99% confidence; the strongest:")
        for r in hot.head(SUMMARY_TOP).to_dict("records"):
            code = r["area_code"]
            ward = f", ward {r['ward_name']}" if isinstance(r.get("ward_name"), str) and r["ward_name"] else ""
            name = r["area_name"] if isinstance(r.get("area_name"), str) and r["area_name"] else code
            v = published.get(code, np.nan)
            if code in hidden or not np.isfinite(v):
                lines.append(f"  {name} ({code}{ward}): small number suppressed")
            else:
                lines.append(f"  {name} ({code}{ward}): value {v:g}, z = {float(r['gi_z']):.2f}")
    elif "gi_bin" in t:
        lines.append("No area is a Gi* hot spot at 99% confidence.")
    if "gi_bin" in t:
        lines.append(f"Hot spots at 95% or more: {int((t['gi_bin'] >= 2).sum())}; cold spots at 95% or more: "
                     f"{int((t['gi_bin'] <= -2).sum())}.")
    lines += [f"Warning: {w}" for w in meta.get("warnings", [])]
    return lines


def comparison(config: Config, p: LayerParams, full: bool = False) -> dict:
    """Period comparison as a table: counts per area in the baseline and current periods, change, % change.
    ``full=False``: viewer level (the change layer's suppressed values and published totals). Cached."""
    return cached(config, ("comparison", replace(p, layer="change"), full), lambda: _comparison(config, p, full))


def _comparison(config: Config, p: LayerParams, full: bool = False) -> dict:
    r = layer_data(config, replace(p, layer="change"), full=full)
    f = pd.DataFrame(r.frame.drop(columns="geometry"))
    if full:
        before, after = int(f["count_before"].sum()), int(f["count_after"].sum())
    else:
        tot = r.summary.get("totals", {})
        before, after = tot.get("count_before"), tot.get("count_after")
    base = r.metadata["baseline"]
    pb = base["from"] if base["from"] == base["to"] else f"{base['from']} to {base['to']}"
    pa = p.month_from if p.month_from == p.month_to else f"{p.month_from} to {p.month_to}"
    cats = ", ".join(category_label(c) for c in p.categories) or "all categories"

    def num(v: Any) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)
    fmt = (lambda v: f"{v:,}" if num(v) else str(v))
    pct = None
    if num(before) and num(after):
        pct = (after - before) / before * 100.0 if before else None
        if pct is None:
            sentence = f"{cats}: {after:,} incidents in {pa}; none in {pb}, so no percentage change."
        else:
            sentence = f"{cats}: {after:,} incidents in {pa} against {before:,} in {pb} ({pct:+.0f} %)."
    else:
        sentence = (f"{cats}: {fmt(after)} incidents in {pa} against {fmt(before)} in {pb} (small numbers "
                    "suppressed, so no percentage change).")
    # suppressed changes sort after the published ones
    f["_order"] = [(-v if isinstance(v, (int, float, np.integer, np.floating)) and v == v else float("inf"))
                   for v in f["change"]]
    rows = f.sort_values(["_order", "code"]).drop(columns="_order")
    keep = ["code", "name", "ward_name", "count_before", "count_after", "change", "pct_change"]
    return {"baseline": base, "current": {"from": p.month_from, "to": p.month_to}, "total_before": before,
            "total_after": after, "pct_change": pct, "sentence": sentence,
            "rows": [{k: jsonable(v) for k, v in rec.items() if k in keep} for rec in rows.to_dict("records")],
            "legend": r.legend}


def prewarm(config: Config) -> None:
    """Compute the default view (Gi* + wards + side panel) so the first visitor does not wait for it."""
    p = parse_params(config, {})
    for full in (False, True):
        display_geojson(config, layer_data(config, p, full=full))
        panel(config, p, full=full)
    display_geojson(config, layer_data(config, replace(p, layer="wards")))
    layer_catalogue(config)
