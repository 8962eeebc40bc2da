"""Incidents to areas: counts and rates per 1,000 residents for a category and period.

One function, ``area_counts``, feeds the CLI, the statistics and the web map, so every view of a count
is the same number. Every area of the geography is returned, zero counts included (a hot-spot statistic
needs the zeros), in EPSG:27700.
"""
from __future__ import annotations

import logging
import re
import threading

import geopandas as gpd
import numpy as np
import pandas as pd

from . import store
from .bundle import BNG, load_boundary, load_population
from .categories import category_label, normalise_category
from .config import Config
from .errors import HotspotsError, NotFoundError

logger = logging.getLogger(__name__)

#: CLI/API level name -> boundary role and the incidents column holding its code.
LEVELS = {"lsoa": ("lsoa21", "lsoa21_id"), "ward": ("ward", "ward_id"),
          "lsoa11": ("lsoa11", "lsoa11_id"), "ward_pre2023": ("ward_pre2023", "ward_pre2023_id")}
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def check_month(value: str | None, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not MONTH.match(value):
        raise HotspotsError(f"{name} must be a month written YYYY-MM, got {value!r}", column=name)
    return value


def check_period(month_from: str | None, month_to: str | None) -> tuple[str | None, str | None]:
    month_from, month_to = check_month(month_from, "from"), check_month(month_to, "to")
    if month_from and month_to and month_from > month_to:
        raise HotspotsError(f"'from' ({month_from}) is after 'to' ({month_to})", column="from")
    return month_from, month_to


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
    """Categories in the store, with their labels and counts inside the area."""
    con = store.connect(config.db_path, readonly=True)
    try:
        rows = con.execute("SELECT c.slug, COUNT(*) FROM incidents i JOIN categories c ON c.id = i.category_id "
                           "WHERE i.in_area = 1 GROUP BY c.slug ORDER BY c.slug").fetchall()
    finally:
        con.close()
    return [{"slug": s, "label": category_label(s), "count": n} for s, n in rows]


def available_months(config: Config) -> list[str]:
    con = store.connect(config.db_path, readonly=True)
    try:
        return [r[0] for r in con.execute("SELECT DISTINCT month FROM incidents WHERE in_area = 1 ORDER BY month")]
    finally:
        con.close()


def count_incidents(config: Config, column: str, categories: list[str], month_from: str | None,
                    month_to: str | None) -> pd.Series:
    """Incidents inside the area per code of ``column``, filtered (indexed on month and category)."""
    where, params = ["in_area = 1"], []
    if categories:
        where.append(f"category_id IN (SELECT id FROM categories WHERE slug IN ({', '.join('?' * len(categories))}))")
        params += categories
    if month_from:
        where.append("month >= ?")
        params.append(month_from)
    if month_to:
        where.append("month <= ?")
        params.append(month_to)
    con = store.connect(config.db_path, readonly=True)
    try:
        rows = con.execute(f"SELECT a.code, n FROM (SELECT {column} AS area_id, COUNT(*) AS n FROM incidents "
                           f"WHERE {' AND '.join(where)} GROUP BY {column}) JOIN areas a ON a.id = area_id",
                           params).fetchall()
    finally:
        con.close()
    return pd.Series({code: n for code, n in rows if code is not None}, dtype="int64")


def area_counts(config: Config, level: str = "lsoa", categories=None, month_from: str | None = None,
                month_to: str | None = None) -> gpd.GeoDataFrame:
    """Counts and rates per 1,000 usual residents for every area of ``level`` (EPSG:27700).

    Columns: code, name, ward_code, ward_name, count, population, rate_per_1000, geometry.
    Unknown categories raise NotFoundError (listing the known ones) rather than returning all zeros."""
    role = level_role(level)
    column = LEVELS[level][1]
    month_from, month_to = check_period(month_from, month_to)
    cats = normalise_categories(categories)
    if cats:
        known = {c["slug"] for c in available_categories(config)}
        unknown = [c for c in cats if c not in known]
        if unknown:
            raise NotFoundError(f"unknown category {', '.join(unknown)} (known: {', '.join(sorted(known))})",
                                column="category")
    areas = load_boundary(config, role)
    counts = count_incidents(config, column, cats, month_from, month_to)
    out = areas[["code", "name", "geometry"]].copy()
    out["count"] = counts.reindex(out["code"]).fillna(0).astype("int64").to_numpy()
    if role in ("ward",):
        out["ward_code"], out["ward_name"] = out["code"], out["name"]
    else:
        bf = best_fit_wards(config, role)
        out = out.merge(bf, on="code", how="left")
    out["population"] = _population(config, role, out)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["rate_per_1000"] = np.where(out["population"] > 0, out["count"] / out["population"] * 1000.0, np.nan)
    out = gpd.GeoDataFrame(out[["code", "name", "ward_code", "ward_name", "count", "population",
                                "rate_per_1000", "geometry"]], geometry="geometry", crs=BNG)
    out.attrs.update({"level": level, "categories": cats, "month_from": month_from, "month_to": month_to})
    return out


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
