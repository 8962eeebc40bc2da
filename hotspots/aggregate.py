"""Step 1 of every layer: incidents to areas, as counts and rates per 1,000 residents.

One function, ``area_counts``, feeds the CLI, the statistics and the web map, so every view of a count
is the same number. Every area of the geography is returned, zero counts included (a hot-spot statistic
needs the zeros), in EPSG:27700. Counts are sums of the base cells (area × month × category, one query
per data version, cached): exact for analysts, the protected cells of :mod:`hotspots.protect` for
viewers, so that nothing a viewer sees is computed from exact counts.
"""
from __future__ import annotations

import logging
import threading

import geopandas as gpd
import numpy as np
import pandas as pd

from . import filters, store
from .bundle import BNG, load_boundary, load_population
from .categories import category_label, normalise_category
from .config import Config
from .disclosure import effective_rule
from .protect import BaseTable, build_base, build_base_indexed, count_indexed, perturbation_key, sum_tables
from .errors import HotspotsError, NotFoundError
from .filters import Where
from .request import Audience, check_month, check_period  # noqa: F401  (check_* re-exported)

logger = logging.getLogger(__name__)

#: CLI/API level name -> boundary role and the incidents column holding its code.
LEVELS = {"lsoa": ("lsoa21", "lsoa21_id"), "ward": ("ward", "ward_id"),
          "lsoa11": ("lsoa11", "lsoa11_id"), "ward_pre2023": ("ward_pre2023", "ward_pre2023_id")}


def level_role(level: str) -> str:
    try:
        return LEVELS[level][0]
    except KeyError:
        raise NotFoundError(f"unknown geography {level!r} (use one of: {', '.join(LEVELS)})",
                            column="level") from None


def best_fit_wards(config: Config, role: str) -> pd.DataFrame:
    """For each area of ``role``, the current ward holding the largest share of its area (best fit).

    Computed from the boundaries themselves, so any local authority works without a lookup file. Cached by
    the boundary files' identity (path and modification time) and the configured authorities."""
    from .bundle import dataset_files
    files = [p for r in (role, "ward") for p in dataset_files(config, config.boundary(r).key)]
    key = (role, tuple((str(p), p.stat().st_mtime_ns) for p in files), config.lad_codes)
    with _BEST_FIT_LOCK:
        hit = _BEST_FIT_CACHE.get(key)
    if hit is not None:
        return hit
    out = _best_fit(load_boundary(config, role), load_boundary(config, "ward"))
    with _BEST_FIT_LOCK:
        if len(_BEST_FIT_CACHE) > 32:
            _BEST_FIT_CACHE.clear()
        _BEST_FIT_CACHE[key] = out
    return out


def _best_fit(areas: gpd.GeoDataFrame, wards: gpd.GeoDataFrame) -> pd.DataFrame:
    inter = gpd.overlay(areas[["code", "geometry"]], wards[["code", "name", "geometry"]].rename(
        columns={"code": "ward_code", "name": "ward_name"}), how="intersection", keep_geom_type=True)
    inter["a"] = inter.geometry.area
    best = inter.sort_values(["code", "a", "ward_code"], ascending=[True, False, True]).drop_duplicates("code")
    return areas[["code"]].merge(best[["code", "ward_code", "ward_name"]], on="code", how="left")


_BEST_FIT_CACHE: dict = {}
_BEST_FIT_LOCK = threading.Lock()


def normalise_categories(categories) -> list[str]:
    if categories is None:
        return []
    if isinstance(categories, str):
        categories = [categories]
    out = []
    for c in categories:
        out += [normalise_category(x) for x in str(c).split(",") if x.strip()]
    return out


def available_categories(config: Config) -> list[dict]:
    """Categories in the store, with their labels and exact counts inside the area (analysts; viewers get
    :func:`category_totals`)."""
    return [{"slug": s, "label": category_label(s), "count": n} for s, n in store.category_counts(config.db_path)]


def available_months(config: Config) -> list[str]:
    return store.months(config.db_path)


def base_table(config: Config, role: str, audience: Audience = Audience.ANALYST, where: Where = ()) -> BaseTable:
    """The base cells of geography ``role`` for ``audience`` (cached per data version: one query), of the
    incidents matching ``where`` (a filter on extras: its own protected table, see ``build_base``)."""
    from .cache import cached
    rule = effective_rule(config) if audience is Audience.VIEWER else None
    if rule is not None and filters.compound(where):  # a sum of single-value protected tables (filters.atoms)
        return cached(config, ("base-sum", role, rule.name, where), lambda: sum_tables(
            [base_table(config, role, audience, part) for part in filters.atoms(where)], role))

    def build() -> BaseTable:
        from . import sources
        key = perturbation_key(config) if rule is not None else None
        # partner sources have no extract fields: a filtered table holds police incidents only
        extra = [] if where else sources.cells(config, role)
        if not where and not extra:  # the common case: counted from the columnar snapshot
            col = incident_columns(config)
            counted = count_indexed(col[f"{role}_codes"], col["months"], col["categories"], col[f"{role}_idx"],
                                    col["month_idx"], col["cat_idx"])
            return build_base_indexed(*counted, role, rule, key, "", sources.cell_rules(config, role))
        cells = pd.DataFrame(store.count_cells(config.db_path, role, filters.terms(config, where)) + extra,
                             columns=["code", "month", "category", "n"])
        return build_base(cells, role, rule, key, filters.key_text(where), sources.cell_rules(config, role))
    return cached(config, ("base", role, audience.value, None if rule is None else rule.name)
                  + ((where,) if where else ()), build)


def incident_columns(config: Config) -> dict:
    """Every in-area incident as numpy columns (:func:`hotspots.store.incident_columns`), cached per data
    version in memory and per store version on disk."""
    from .cache import cached
    return cached(config, ("incident-columns",), lambda: store.incident_columns(config.db_path, config.cache_dir))


def category_totals(config: Config, audience: Audience) -> list[dict]:
    """Categories with their totals inside the area, as ``audience`` may see them (viewers: sums of the
    protected cells, the small-number rule applied by the caller)."""
    from .sources import category_entries, is_source
    if audience is Audience.ANALYST:
        return available_categories(config) + category_entries(config, audience)
    base = base_table(config, "lsoa21", audience)
    sums = np.bincount(base.cat_idx, weights=base.protected, minlength=len(base.categories))
    return [{"slug": s, "label": category_label(s), "count": int(round(v))} for s, v in zip(base.categories, sums)
            if not is_source(s)] + category_entries(config, audience)


def count_incidents(config: Config, column: str, categories: list[str], month_from: str | None,
                    month_to: str | None) -> pd.Series:
    """Exact incidents inside the area per code of ``column`` (an incidents column such as ``lsoa21_id``)."""
    role = {v: k for k, v in store.AREA_COLUMNS.items()}[column]
    base = base_table(config, role)
    sums = base.totals(base.codes, normalise_categories(categories), month_from, month_to, protected=False)
    s = pd.Series(sums, index=list(base.codes), dtype="int64")
    return s[s > 0]


def _check_categories(config: Config, cats: list[str], role: str = "lsoa21",
                      audience: Audience = Audience.ANALYST) -> None:
    if cats:
        from .sources import check_categories
        src = check_categories(config, cats, role, audience)  # partner sources: known, and on this geography
        known = set(incident_columns(config)["categories"])  # police categories (sources are in ``src``)
        unknown = [c for c in cats if c not in known and c not in src]
        if unknown:
            raise NotFoundError(f"unknown category {', '.join(unknown)} (known: {', '.join(sorted(known))})",
                                column="category")


def area_counts(config: Config, level: str = "lsoa", categories=None, month_from: str | None = None,
                month_to: str | None = None, audience: Audience = Audience.ANALYST,
                where: Where = ()) -> gpd.GeoDataFrame:
    """Counts and rates per 1,000 usual residents for every area of ``level`` (EPSG:27700).

    Columns: code, name, ward_code, ward_name, count, population, rate_per_1000, eb_rate_per_1000,
    geometry. Viewers get sums of protected cells; a viewer's ward is the sum of its best-fit LSOAs (so the
    ward and LSOA maps cannot be differenced). Unknown categories raise NotFoundError (listing the known
    ones) rather than returning all zeros."""
    role = level_role(level)
    lsoa_cells = None
    month_from, month_to = check_period(month_from, month_to)
    cats = normalise_categories(categories)
    _check_categories(config, cats, role, audience)
    areas = load_boundary(config, role)
    out = areas[["code", "name", "geometry"]].copy()
    protected = audience is Audience.VIEWER
    from .sources import ward_only
    if protected and role == "ward" and not ward_only(config, cats):
        lsoa = area_counts(config, "lsoa", cats, month_from, month_to, audience, where)
        by_ward = lsoa.groupby("ward_code")["count"].sum()
        out["count"] = by_ward.reindex(out["code"]).fillna(0).astype("int64").to_numpy()
        lsoa_cells = pd.DataFrame(lsoa[["code", "ward_code", "count"]])
    else:
        if protected and role != "lsoa21" and not (role == "ward" and ward_only(config, cats)):
            raise HotspotsError(f"geography {level!r} is for analysts only", column="geography")
        base = base_table(config, role, audience, where)
        out["count"] = base.totals(list(out["code"]), cats, month_from, month_to, protected=protected)
    if role in ("ward",):
        out["ward_code"], out["ward_name"] = out["code"], out["name"]
    else:
        bf = best_fit_wards(config, role)
        out = out.merge(bf, on="code", how="left")
    out["population"] = _population(config, role, out)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["rate_per_1000"] = np.where(out["population"] > 0, out["count"] / out["population"] * 1000.0, np.nan)
    out["eb_rate_per_1000"] = _eb_rate(out["count"].to_numpy(float), out["population"].to_numpy(float))
    out = gpd.GeoDataFrame(out[["code", "name", "ward_code", "ward_name", "count", "population",
                                "rate_per_1000", "eb_rate_per_1000", "geometry"]], geometry="geometry", crs=BNG)
    out.attrs.update({"level": level, "categories": cats, "month_from": month_from, "month_to": month_to,
                      "audience": audience.value, "protected": protected, "where": filters.describe(where)})
    if lsoa_cells is not None:
        out.attrs["lsoa_counts"] = lsoa_cells
    return out


def _eb_rate(count: np.ndarray, population: np.ndarray) -> np.ndarray:
    from .stats import empirical_bayes_rate
    ok = np.isfinite(population) & (population > 0)
    eb = np.full(len(count), np.nan)
    if ok.any():
        eb[ok] = empirical_bayes_rate(count[ok], population[ok]) * 1000.0
    return eb


def _population(config: Config, role: str, frame: pd.DataFrame) -> np.ndarray:
    """Usual residents: direct for LSOA 2021; summed over best-fit LSOAs for current wards; NaN otherwise."""
    try:
        pop = load_population(config)
    except HotspotsError:
        return np.full(len(frame), np.nan)
    if role == "lsoa21":
        return pop.reindex(frame["code"]).to_numpy(dtype=float)
    if role == "ward":
        bf = best_fit_wards(config, "lsoa21")
        by_ward = bf.assign(pop=pop.reindex(bf["code"]).to_numpy()).groupby("ward_code")["pop"].sum()
        return by_ward.reindex(frame["code"]).to_numpy(dtype=float)
    return np.full(len(frame), np.nan)


# -- grids -------------------------------------------------------------------------------------------------
#: grid shape -> the prefix of its cell codes and roles (``grid:sq250``, ``grid:hx250``)
GRID_PREFIX = {"square": "sq", "hex": "hx"}


def grid_role(cell_m: float, shape: str) -> str:
    """The base-table role of a grid: its cell identity for the protected table (``grid:sq250``)."""
    from .grid import _fmt
    return f"grid:{GRID_PREFIX[shape]}{_fmt(float(cell_m))}"


def parse_grid_role(role: str) -> tuple[float, str]:
    """(cell size in metres, shape) of a grid role from :func:`grid_role` (``grid:sq250`` -> (250.0, "square"))."""
    body = role.split(":", 1)[1] if role.startswith("grid:") else ""
    shape = {prefix: name for name, prefix in GRID_PREFIX.items()}.get(body[:2])
    try:
        cell = float(body[2:])
    except ValueError:
        cell = float("nan")
    if shape is None or not cell > 0:
        raise ValueError(f"{role!r} is not a grid role")
    return cell, shape


def study_area(config: Config):
    """The configured area: the union of the LSOA 2021 boundaries (EPSG:27700), cached per bundle."""
    import shapely
    from .cache import cached
    def build():
        polygons = load_boundary(config, "lsoa21").geometry.to_numpy()
        # LSOAs tile the area: a checked coverage dissolves in a fraction of union_all's time
        return shapely.coverage_union_all(polygons) if shapely.coverage_is_valid(polygons) else shapely.union_all(polygons)
    return cached(config, ("study-area",), build)


def grid_cells(config: Config, cell_m: float, shape: str = "square") -> gpd.GeoDataFrame:
    """The grid of ``cell_m`` metres covering the configured area (cached per data version); AnalysisError
    for a size below the engine's minimum or over its cell cap."""
    from . import grid_cache
    from .cache import cached
    from .grid import make_grid
    return cached(config, ("grid", float(cell_m), shape), lambda: grid_cache.grid(
        config, cell_m, shape, lambda: make_grid(study_area(config), cell_m, shape)))


def incident_points(config: Config, where: Where = ()) -> pd.DataFrame:
    """In-area incidents with coordinates (matching ``where``): easting, northing, month, category (cached
    per data version)."""
    from .cache import cached

    def build() -> pd.DataFrame:
        if not where:
            col = incident_columns(config)
            has = col["easting_dm"] >= 0
            return pd.DataFrame({"easting": col["easting_dm"][has] / 10.0, "northing": col["northing_dm"][has] / 10.0,
                                 "month": pd.Series(np.asarray(col["months"], dtype=object)[col["month_idx"][has]],
                                                    dtype=object),
                                 "category": pd.Series(np.asarray(col["categories"], dtype=object)[col["cat_idx"][has]],
                                                       dtype=object)})
        e, n, m, c = store.points(config.db_path, filters.terms(config, where))
        return pd.DataFrame({"easting": np.asarray(e, dtype=float), "northing": np.asarray(n, dtype=float),
                             "month": pd.Series(m, dtype=object), "category": pd.Series(c, dtype=object)})
    return cached(config, ("incident-points",) + ((where,) if where else ()), build)


def grid_base_table(config: Config, cell_m: float, shape: str, audience: Audience = Audience.ANALYST,
                    where: Where = ()) -> BaseTable:
    """The base cells (grid cell × month × category) of a grid, exact or protected like the LSOA table:
    incidents placed by the exact point-in-polygon rule of :func:`hotspots.grid.assign_cells`."""
    from .cache import cached
    from .grid import assign_cells
    rule = effective_rule(config) if audience is Audience.VIEWER else None
    role = grid_role(cell_m, shape)
    if rule is not None and filters.compound(where):  # as base_table: a sum of single-value protected tables
        return cached(config, ("base-sum", role, rule.name, where), lambda: sum_tables(
            [grid_base_table(config, cell_m, shape, audience, part) for part in filters.atoms(where)], role))

    def build() -> BaseTable:
        grid = grid_cells(config, cell_m, shape)
        if where:
            pts = incident_points(config, where)
            months, month_idx = np.unique(pts["month"].to_numpy(dtype=object).astype(str), return_inverse=True)
            cats, cat_idx = np.unique(pts["category"].to_numpy(dtype=object).astype(str), return_inverse=True)
            x, y = pts["easting"].to_numpy(), pts["northing"].to_numpy()
        else:  # the columnar snapshot: no string per incident, and each incident's cell kept per store version
            from . import grid_cache
            col = incident_columns(config)
            has = col["easting_dm"] >= 0
            months, month_idx, cats, cat_idx = col["months"], col["month_idx"][has], col["categories"], col["cat_idx"][has]
            x, y = col["easting_dm"][has] / 10.0, col["northing_dm"][has] / 10.0
        idx = (assign_cells(x, y, grid) if where else
               grid_cache.cell_index(config, grid, col["version"], int(has.sum()), lambda: assign_cells(x, y, grid)))
        counted = count_indexed(grid["code"].tolist(), list(months), list(cats), idx, month_idx, cat_idx)
        key = perturbation_key(config) if rule is not None else None
        return build_base_indexed(*counted, role, rule, key, filters.key_text(where))
    return cached(config, ("base", role, audience.value, None if rule is None else rule.name)
                  + ((where,) if where else ()), build)


def grid_counts(config: Config, cell_m: float, shape: str = "square", categories=None, month_from: str | None = None,
                month_to: str | None = None, audience: Audience = Audience.ANALYST,
                where: Where = ()) -> gpd.GeoDataFrame:
    """Counts per grid cell (every cell, zeros included), EPSG:27700: code, share_inside, partial, ix, iy,
    count, clipped and geometry (the full cell). Viewers get sums of protected cells."""
    month_from, month_to = check_period(month_from, month_to)
    cats = normalise_categories(categories)
    _check_categories(config, cats, grid_role(cell_m, shape))
    grid = grid_cells(config, cell_m, shape)
    base = grid_base_table(config, cell_m, shape, audience, where)
    out = grid[["code", "ix", "iy", "share_inside", "partial", "clipped", "geometry"]].copy()
    out.insert(5, "count", base.totals(list(out["code"]), cats, month_from, month_to,
                                       protected=audience is Audience.VIEWER))
    out.attrs.update({"cell_m": float(cell_m), "shape": shape, "categories": cats, "month_from": month_from,
                      "month_to": month_to, "audience": audience.value, "role": grid_role(cell_m, shape)})
    return out
