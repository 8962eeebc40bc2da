"""Patrol-scale layer kinds (issue 11): grid counts, grid Gi*, kernel density and incident points.

Why a module of its own: a grid is one more geography, so its kinds plug into the registry of
:mod:`hotspots.layers` like the area kinds, and the CLI, the API, downloads and the map pick them up. The
engine pieces are :mod:`hotspots.grid` (cells), :mod:`hotspots.kde` (densities) and :mod:`hotspots.scale`
(the optimized distance band); the counts come from the grid base table of :mod:`hotspots.aggregate`, so a
viewer's figures are sums of protected cells like every other viewer figure, and a viewer's KDE is
smoothed from those protected cell counts at the cell centroids, never from the incidents' locations.
"""
from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pandas as pd

from . import maps
from .aggregate import grid_base_table, grid_cells, grid_counts, incident_points, normalise_categories
from .bundle import BNG
from .cache import cached
from .categories import category_label
from .config import Config
from .errors import AnalysisError, ForbiddenError
from .layers import (CRIME_TITLES, Analysed, LayerKind, filters_text, gi_note, register, style, subject)
from .request import Audience, LayerRequest, month_range

GRID_FIELDS = [["code", "Cell"], ["count", "Incidents"], ["share_inside", "Share of cell inside the area"]]
GRID_COLUMNS = ("code", "count", "share_inside", "partial")
GRID_GI = ("value", "gi_z", "gi_p", "gi_p_sim", "gi_bin", "gi_label", "n_neighbours")
KDE_COLUMNS = ("code", "density", "share_inside", "partial")
POINT_COLUMNS = ("code", "crime_id", "category", "category_label", "month", "date", "location", "outcome",
                 "lsoa21", "ward_name")
#: most incidents drawn as points in one layer: beyond it the filters are too wide for a marker map
MAX_POINTS = 50_000
POINT_COLOUR = "#b2182b"
SHAPE_WORDS = {"square": "square", "hex": "hexagonal"}


def grid_words(req: LayerRequest) -> str:
    return f"{req.cell:g} m {SHAPE_WORDS[req.shape]} grid"


def grid_filename(req: LayerRequest, *extra: str) -> str:
    parts = ["hotspots", req.layer, f"{'sq' if req.shape == 'square' else 'hx'}{req.cell:g}",
             "+".join(req.categories) or "all", f"{req.month_from}_{req.month_to}", *extra]
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", "_".join(x for x in parts if x))


def cell_counts(config: Config, req: LayerRequest, audience: Audience) -> gpd.GeoDataFrame:
    """Counts per cell for the request's filters (cached): exact for analysts, protected for viewers."""
    return cached(config, ("grid-counts", req.cell, req.shape, req.categories, req.month_from, req.month_to,
                           audience.value, req.where),
                  lambda: grid_counts(config, req.cell, req.shape, list(req.categories), req.month_from,
                                      req.month_to, audience, req.where))


def _display(g: pd.DataFrame) -> gpd.GeoDataFrame:
    """The frame with the clipped cell as its geometry (what is drawn and downloaded)."""
    out = pd.DataFrame(g.drop(columns=["geometry", "clipped", "ix", "iy"], errors="ignore"))
    return gpd.GeoDataFrame(out, geometry=gpd.GeoSeries(g["clipped"].to_numpy(), crs=BNG), crs=BNG)


def cell_legend(legend: dict) -> dict:
    """The legend of a grid layer: its counts are of cells (the map writes "40 cells", not "40 areas")."""
    return dict(legend, unit="cell")


def _no_incidents(req: LayerRequest, g: pd.DataFrame) -> None:
    if int(g["count"].sum()) == 0:
        raise AnalysisError(f"no incidents in this period ({filters_text(req)}) inside the {grid_words(req)}: "
                            "choose another period or category", column="from")


# -- grid counts -------------------------------------------------------------------------------------------

#: the smallest grid cell published to viewers: a cell's count (0 or "<5") says whether an incident lies in
#: it, so cells smaller than this would place an incident within a few streets (KDE smooths over at least
#: ``[analysis] kde_min_bandwidth_m`` and may use finer cells)
VIEWER_MIN_CELL_M = 250.0


def _viewer_cell_floor(req: LayerRequest, audience: Audience) -> None:
    if audience is Audience.VIEWER and req.cell < VIEWER_MIN_CELL_M:
        raise AnalysisError(f"{req.cell:g} m cells are for analysts: a cell this small could place a single incident; "
                            f"viewers can choose {VIEWER_MIN_CELL_M:g} m or larger", column="cell")


def _grid_count(config: Config, req: LayerRequest, audience: Audience) -> Analysed:
    _viewer_cell_floor(req, audience)
    g = cell_counts(config, req, audience)
    _no_incidents(req, g)
    st = maps.classify(g["count"], req.classes, req.k, integer=True, title="Incident count per cell")
    title = f"Incident count per cell ({grid_words(req)}): {filters_text(req)}"
    meta = {"grid": _grid_meta(req, g), "classification": req.classes, "classes": req.k}
    return Analysed("grid_count", title, style(_display(g), st), cell_legend(st.legend), GRID_FIELDS, meta, g.attrs["role"],
                    grid_filename(req))


def _grid_meta(req: LayerRequest, g: pd.DataFrame) -> dict:
    return {"cell_m": req.cell, "shape": req.shape, "cells": len(g), "partial_cells": int(g["partial"].sum()),
            "rule": f"{grid_words(req)} aligned to the national grid origin, covering the union of the LSOA 2021 "
                    "boundaries; cells cut by the boundary kept with their share inside; incidents placed by the "
                    "exact point-in-polygon rule (a point on a shared edge goes to the cell with the smallest code)",
            "crs": "EPSG:27700"}


def _full_cells(g: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The cells with their FULL geometry (every centroid on the lattice), as the weights are built from."""
    out = gpd.GeoDataFrame(pd.DataFrame(g.drop(columns=["geometry", "clipped"])), geometry=g.geometry.to_numpy(),
                           crs=BNG)
    out.attrs.update(cell_m=g.attrs["cell_m"], shape=g.attrs["shape"])
    return out


def grid_weights(config: Config, req: LayerRequest, cells: gpd.GeoDataFrame, weights: str):
    """The grid's spatial weights (distance band or k nearest neighbours between full-cell centroids), shared by
    grid Gi* and grid emerging hot spots; refused when no cell has a neighbour."""
    from .grid import lattice_distance_weights
    from .weights import build_weights, parse_spec
    spec = parse_spec(weights)
    if cells.attrs.get("shape") == "square" and spec.kind == "distance":  # the same graph, from the lattice
        w = lattice_distance_weights(cells, float(spec.param))
    else:
        w = build_weights(cells, spec, id_col="code", cache_dir=config.cache_dir)
    if len(w.islands) == w.n:
        raise AnalysisError(f"with {weights} weights no cell of the {grid_words(req)} has a neighbour: use a "
                            f"distance band of at least {req.cell:g} m or k nearest neighbours", column="weights")
    return w


# -- grid Gi* ------------------------------------------------------------------------------------------------

def grid_analysis(config: Config, req: LayerRequest, audience: Audience):
    """Gi* on the cell counts (full cells: every centroid on the lattice), with the optimized band when asked:
    (analysis result, the scale choice or None). Cached per request and audience."""
    _viewer_cell_floor(req, audience)
    key = ("grid-analysis", req.cell, req.shape, req.categories, req.month_from, req.month_to, req.weights,
           req.significance, req.alpha, req.permutations, req.optimized, audience.value, req.where)

    def run():
        from .analysis import analyse_areas
        from .scale import optimized_distance
        g = cell_counts(config, req, audience)
        _no_incidents(req, g)
        frame = _full_cells(g)
        weights, choice = req.weights, None
        if req.optimized:
            c = frame.geometry.centroid
            choice = optimized_distance(frame["count"].to_numpy(float), np.column_stack([c.x, c.y]))
            weights = f"distance:{choice.distance_m:.3f}".rstrip("0").rstrip(".")
        w = grid_weights(config, req, frame, weights)
        # Thousands of cells: Gi*'s permutations share one set of draws (the space-time cube's method), and
        # the global Moran's I is tested analytically (Cliff & Ord's randomisation z, as ArcGIS's Spatial
        # Autocorrelation tool reports it; at this size permutations agree with it and only cost time).
        res = analyse_areas(frame, "code", "count", stats=("gistar", "moran"), weights=weights,
                            permutations=req.permutations, seed=config.seed, alpha=req.alpha,
                            significance=req.significance, cache_dir=config.cache_dir, spatial_weights=w,
                            draws="shared", moran_permutations=0,
                            metadata={"categories": list(req.categories), "from": req.month_from,
                                      "to": req.month_to, "geography": "grid", "subject": subject(req),
                                      "computed_from": "protected table" if audience is Audience.VIEWER
                                      else "exact counts"})
        return res, choice
    return cached(config, key, run)


def _grid_gistar(config: Config, req: LayerRequest, audience: Audience) -> Analysed:
    a, choice = grid_analysis(config, req, audience)
    g = cell_counts(config, req, audience).copy()
    t = pd.DataFrame(a.table.drop(columns="geometry")).set_index("area_code")
    for c in GRID_GI:
        g[c] = t[c].reindex(g["code"]).to_numpy()
    cut = a.metadata["cutoffs"]
    note = gi_note(cut) + f"; {a.metadata['weights']} weights"
    if choice is not None:
        note += "; " + choice.text
    st = maps.style_gi(g["gi_bin"].where(~g["gi_label"].isin(["No neighbours", "Undefined"])), note=note)
    fields = GRID_FIELDS + [["gi_z", "Gi* z-score"], ["gi_p", "p (two-sided)"], ["gi_p_sim", "p (permutation)"],
                            ["gi_label", "Class"], ["n_neighbours", "Neighbouring cells"]]
    meta = {"grid": _grid_meta(req, g), "method": {k: v for k, v in a.metadata.items() if k not in ("moran", "cutoffs")},
            "cutoffs": cut, "moran": a.metadata["moran"]}
    if choice is not None:
        meta["optimized_distance"] = {"distance_m": choice.distance_m, "why": choice.text,
                                      "table": choice.table.to_dict("records")}
    title = f"Gi* hot and cold spots ({grid_words(req)}): {filters_text(req)}"
    extra = ("optimized",) if req.optimized else (req.weights.replace(":", ""),)
    return Analysed("grid_gistar", title, style(_display(g), st), cell_legend(st.legend), fields, meta, g.attrs["role"],
                    grid_filename(req, *extra, req.significance))


# -- kernel density -----------------------------------------------------------------------------------------

def cell_residents(config: Config, req: LayerRequest) -> np.ndarray:
    """Usual residents in each cell of the request's grid: each LSOA's Census count shared among the cells by the
    share of the LSOA's area in each (areal weighting: residents spread evenly over their LSOA; the bundle has no
    population-weighted centroids). AnalysisError without a population table or with LSOAs it lacks."""
    from .bundle import load_boundary, load_population
    from .errors import HotspotsError

    def build() -> np.ndarray:
        import shapely
        try:
            pop = load_population(config)
        except HotspotsError as exc:
            raise AnalysisError(f"a KDE per 1,000 residents needs the population: {exc.message}",
                                column="variable") from None
        lsoa = load_boundary(config, "lsoa21")
        missing = [c for c in lsoa["code"] if c not in pop.index]
        if missing:
            raise AnalysisError(f"the population table has no residents for {len(missing)} LSOA(s), e.g. "
                                f"{', '.join(missing[:3])}: a KDE per 1,000 residents needs them all",
                                column="variable")
        cells = grid_cells(config, req.cell, req.shape)["clipped"].to_numpy()  # the order of every grid frame
        geoms = lsoa.geometry.to_numpy()
        ci, li = shapely.STRtree(geoms).query(cells, predicate="intersects")
        share = shapely.area(shapely.intersection(cells[ci], geoms[li])) / shapely.area(geoms[li])
        people = pop.reindex(lsoa["code"]).to_numpy(float)
        return np.bincount(ci, weights=share * people[li], minlength=len(cells))
    return cached(config, ("cell-residents", req.cell, req.shape), build)


#: incidents per this many residents in a dual KDE
DUAL_PER = 1_000.0


def kde_surface(config: Config, req: LayerRequest, audience: Audience) -> tuple[gpd.GeoDataFrame, np.ndarray, str]:
    """(cells, density at each cell centroid, what it was computed from): incidents per km², or with
    ``variable=rate`` a dual KDE, incidents per 1,000 residents (the incidents' density over the residents' density,
    same kernel and bandwidth, sfhotspot's ``hotspot_dual_kde`` ratio). Analysts: from the incidents' coordinates;
    viewers: from the protected cell counts placed at the cell centroids, and only at a bandwidth of at least the
    configured minimum."""
    from .kde import kde
    if req.variable not in ("count", "rate"):
        raise AnalysisError(f"a kernel density is of incidents (variable=count) or per 1,000 residents "
                            f"(variable=rate, a dual KDE), not {req.variable}", column="variable")
    if audience is Audience.VIEWER and req.bandwidth < config.kde_min_bandwidth_m:
        raise AnalysisError(f"bandwidth {req.bandwidth:g} m is below the {config.kde_min_bandwidth_m:g} m minimum "
                            "published to viewers: a narrower kernel could locate a single incident; choose "
                            f"{config.kde_min_bandwidth_m:g} m or more", column="bandwidth")
    g = cell_counts(config, req, audience)
    _no_incidents(req, g)
    c = g.geometry.centroid
    targets = np.column_stack([c.x.to_numpy(), c.y.to_numpy()])
    if audience is Audience.VIEWER:
        w = g["count"].to_numpy(float)
        dens = kde(targets[w > 0], targets, req.bandwidth, req.kernel, weights=w[w > 0], cell_m=req.cell)
        source = "protected cell counts at the cell centroids"
    else:
        pts = _filtered_points(config, req)
        dens = kde(pts[["easting", "northing"]].to_numpy(float), targets, req.bandwidth, req.kernel, cell_m=req.cell)
        source = "incident locations"
    if req.variable == "rate":
        res = cell_residents(config, req)
        people = kde(targets[res > 0], targets, req.bandwidth, req.kernel, weights=res[res > 0], cell_m=req.cell)
        with np.errstate(divide="ignore", invalid="ignore"):  # no resident within reach: NaN, not infinity
            dens = np.where(people > 0, DUAL_PER * dens / np.where(people > 0, people, 1.0), np.nan)
        source += "; residents: Census 2021 usual residents of each LSOA shared among cells by area"
    return g, dens, source


def _filtered_points(config: Config, req: LayerRequest) -> pd.DataFrame:
    pts = incident_points(config, req.where)
    keep = np.ones(len(pts), dtype=bool)
    cats = normalise_categories(list(req.categories))
    if cats:
        keep &= pts["category"].isin(cats).to_numpy()
    if req.month_from:
        keep &= (pts["month"] >= req.month_from).to_numpy()
    if req.month_to:
        keep &= (pts["month"] <= req.month_to).to_numpy()
    return pts[keep]


def _kde(config: Config, req: LayerRequest, audience: Audience) -> Analysed:
    g, dens, source = kde_surface(config, req, audience)
    dual = req.variable == "rate"
    units = "incidents per 1,000 residents" if dual else "incidents per km²"
    out = g.drop(columns=["count"]).copy()
    out.insert(5, "density", dens)
    note = f"{req.kernel} kernel, bandwidth {req.bandwidth:g} m, at the centroids of a {grid_words(req)}"
    if dual:
        note += ("; dual KDE: the incidents' density over the residents' (each LSOA's Census 2021 residents spread "
                 "evenly over it), same kernel and bandwidth; blank where no resident is within reach")
    if audience is Audience.VIEWER:
        note += (f"; no single incident can be located: bandwidth ≥ {config.kde_min_bandwidth_m:g} m, smoothed "
                 "from protected cell counts")
    st = maps.classify(out["density"], req.classes, req.k, title=units[0].upper() + units[1:], note=note)
    title = f"Kernel density, {units} ({req.kernel}, {req.bandwidth:g} m): {filters_text(req)}"
    tags = {"units": units, "bandwidth_m": f"{req.bandwidth:g}", "kernel": req.kernel,
            "cell_m": f"{req.cell:g}", "filters": filters_text(req), "computed_from": source,
            "crs": "EPSG:27700"}
    meta = {"grid": _grid_meta(req, g), "kde": {"units": units, "dual": dual, "bandwidth_m": req.bandwidth,
            "kernel": req.kernel, "computed_from": source,
            "kernel_formula": "quartic: 3/π·(1−u²)²/h² (ArcGIS, Silverman 1986 eq. 4.5)" if req.kernel == "quartic"
            else "gaussian: exp(−u²/2)/(2π h²), h the standard deviation"}}
    raster = pd.DataFrame({"ix": g["ix"].to_numpy(), "iy": g["iy"].to_numpy(), "value": dens})
    raster.attrs.update({"cell_m": req.cell, "shape": req.shape})
    fields = [["code", "Cell"], ["density", units[0].upper() + units[1:]], ["share_inside", "Share of cell inside the area"]]
    return Analysed("kde", title, style(_display(out), st), cell_legend(st.legend), fields, meta, g.attrs["role"],
                    grid_filename(req, req.kernel, f"bw{req.bandwidth:g}", *(("per1000",) if dual else ())),
                    summary={"raster": raster, "raster_tags": tags})


# -- emerging hot spots on grid cells ------------------------------------------------------------------------

def grid_cube(config: Config, req: LayerRequest, audience: Audience, codes: list[str]) -> tuple[np.ndarray, list[str]]:
    """(cells × time steps) counts of the request's categories and period, zero-filled, and the step labels: from
    the grid's base table, as grid Gi* gets its counts (viewers: protected cells; analysts: exact)."""
    from .kinds_time import time_steps
    labels, groups = time_steps(req.month_from, req.month_to, req.step)
    base = grid_base_table(config, req.cell, req.shape, audience, req.where)
    monthly = base.by_month(list(codes), normalise_categories(list(req.categories)),
                            month_range(req.month_from, req.month_to), protected=audience is Audience.VIEWER)
    return np.stack([monthly[:, g].sum(axis=1) for g in groups], axis=1), labels


def grid_emerging_result(config: Config, req: LayerRequest, audience: Audience):
    """(cells, cube, EmergingResult) of an emerging hot spot analysis on grid cells (cached per request and
    audience): the space-time cube of :func:`grid_cube` and the grid's weights (:func:`grid_weights`)."""
    _viewer_cell_floor(req, audience)
    key = ("grid-emerging-result", req.cell, req.shape, req.categories, req.month_from, req.month_to, req.step,
           req.time_neighbours, req.weights, req.alpha, audience.value, req.where)

    def run():
        from .emerging import emerging_hotspots
        g = cell_counts(config, req, audience)
        _no_incidents(req, g)
        cube, steps = grid_cube(config, req, audience, list(g["code"]))
        w = grid_weights(config, req, _full_cells(g), req.weights)
        return g, cube, emerging_hotspots(cube, w, time_neighbours=req.time_neighbours, alpha=req.alpha, fdr=True,
                                          permutations=0, seed=config.seed, steps=steps)
    return cached(config, key, run)


def _grid_emerging(config: Config, req: LayerRequest, audience: Audience) -> Analysed:
    from .kinds_time import EMERGING_COLOURS, EMERGING_EXPLAIN, EMERGING_PLAIN, style_classes
    g, cube, res = grid_emerging_result(config, req, audience)
    out = g.drop(columns=["count"]).copy()
    for c, v in {"count": cube.sum(axis=1), "category": list(res.category), "category_code": res.category_code,
                 "mk_tau": res.mk_tau, "mk_z": res.mk_z, "mk_p": res.mk_p, "n_hot_steps": res.n_hot_steps,
                 "n_cold_steps": res.n_cold_steps}.items():
        out.insert(len(out.columns) - 2, c, v)  # before clipped and geometry
    steps = list(res.steps)
    note = (f"{len(steps)} {req.step}s ({steps[0]} to {steps[-1]}) on a {grid_words(req)}, {req.time_neighbours} "
            f"time step(s) back, {req.weights} weights between cell centroids; bins significant at "
            f"p ≤ {res.cutoff:.3g} (FDR at {req.alpha:g})") + "".join(f". Warning: {w}" for w in res.warnings)
    st = style_classes(res.category, "Emerging hot spots", EMERGING_COLOURS, EMERGING_PLAIN, EMERGING_EXPLAIN, note)
    fields = [["code", "Cell"], ["category", "Pattern"], ["n_hot_steps", "Hot steps"],
              ["n_cold_steps", "Cold steps"], ["mk_tau", "Trend of Gi* z (tau)"], ["mk_p", "Trend p"],
              ["share_inside", "Share of cell inside the area"]]
    meta = {"grid": _grid_meta(req, g), "steps": steps, "step": req.step, "time_neighbours": req.time_neighbours,
            "weights": req.weights, "alpha": req.alpha, "fdr": True, "bin_cutoff": res.cutoff,
            "bin_cutoffs": res.bin_cutoffs, "outcomes": res.counts(), "warnings": list(res.warnings),
            "method": "ArcGIS Pro Emerging Hot Spot Analysis on grid cells (docs/methods.md)",
            "computed_from": "protected table" if audience is Audience.VIEWER else "exact counts"}
    title = f"Emerging hot spots ({grid_words(req)}): {filters_text(req)} by {req.step}"
    return Analysed("grid_emerging", title, style(_display(out), st), cell_legend(st.legend), fields, meta, g.attrs["role"],
                    grid_filename(req, req.step, f"k{req.time_neighbours}", req.weights.replace(":", "")))


# -- incident points (analysts only) --------------------------------------------------------------------

def _points(config: Config, req: LayerRequest, audience: Audience) -> Analysed:
    from . import store
    if audience is Audience.VIEWER:  # checked before any work (publish refuses too)
        raise ForbiddenError("incident points are for analysts: sign in with an analyst account", column="layer")
    from .filters import terms
    total, rows = store.incidents(config.db_path, list(req.categories), req.month_from, req.month_to, None,
                                  MAX_POINTS, 0, terms(config, req.where))
    if total == 0:
        raise AnalysisError(f"no incidents in this period ({filters_text(req)}): choose another period or category",
                            column="from")
    if total > MAX_POINTS:
        raise AnalysisError(f"{total:,} incidents match ({filters_text(req)}), more than the {MAX_POINTS:,} a point "
                            "map draws: choose fewer categories or a shorter period", column="category")
    f = pd.DataFrame(rows)
    f = f[f["easting"].notna() & f["northing"].notna()].reset_index(drop=True)
    f.insert(0, "code", [f"p{i}" for i in range(len(f))])
    f["category_label"] = [category_label(c) for c in f["category"]]
    geom = gpd.points_from_xy(f["easting"], f["northing"], crs=BNG)
    g = gpd.GeoDataFrame(f[list(POINT_COLUMNS)], geometry=geom, crs=BNG)
    g["class_label"], g["fill"] = "Incident", POINT_COLOUR
    legend = {"title": "Incidents (clustered markers)", "items": [{"label": f"Incidents ({len(g):,})",
              "colour": POINT_COLOUR, "n": len(g)}],
              "note": "police.uk locations are snapped to a nearby street point, not the exact address"}
    fields = [["category_label", "Category"], ["month", "Month"], ["date", "Date"], ["location", "Location"],
              ["outcome", "Outcome"], ["ward_name", "Ward"]]
    return Analysed("points", f"Incident points: {filters_text(req)}", g, legend, fields,
                    {"points": len(g), "without_coordinates": total - len(g)}, "points",
                    _points_filename(req))


def _points_filename(req: LayerRequest) -> str:
    parts = ["hotspots", "points", "+".join(req.categories) or "all", f"{req.month_from}_{req.month_to}"]
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", "_".join(parts))


_GRID_USES = ("layer", "geography", "categories", "month_from", "month_to", "cell", "shape", "where")
register(LayerKind("grid_count", "Incident count per grid cell", "crime", _grid_count, _GRID_USES + ("classes", "k"),
                   {Audience.ANALYST: GRID_COLUMNS, Audience.VIEWER: GRID_COLUMNS}, counts=("count",),
                   reclassify="count"))
register(LayerKind("grid_gistar", "Gi* hot and cold spots on a grid", "crime", _grid_gistar,
                   _GRID_USES + ("weights", "significance", "alpha", "permutations", "optimized"),
                   {Audience.ANALYST: GRID_COLUMNS + GRID_GI, Audience.VIEWER: GRID_COLUMNS + GRID_GI},
                   counts=("count",), redact=("value", "gi_z", "gi_p", "gi_p_sim")))
register(LayerKind("kde", "Kernel density (per km² or per 1,000 residents)", "crime", _kde,
                   _GRID_USES + ("bandwidth", "kernel", "classes", "k", "variable"),
                   {Audience.ANALYST: KDE_COLUMNS, Audience.VIEWER: KDE_COLUMNS}))
# the map's layer menu lists the grid layers with the area layers (their grid controls: web/static/hotspots.js)
CRIME_TITLES.update(grid_count="Incident count per grid cell", grid_gistar="Gi* hot and cold spots on a grid",
                    kde="Kernel density (per km² or per 1,000 residents)", grid_emerging="Emerging hot spots on a grid (over time)")
_EMERGING_COLUMNS = ("category", "category_code", "mk_tau", "mk_z", "mk_p", "n_hot_steps", "n_cold_steps")
# Viewers get the outcome classes and statistics of the protected cube; the period total is for analysts only.
register(LayerKind("grid_emerging", "Emerging hot spots on a grid", "crime", _grid_emerging,
                   _GRID_USES + ("step", "alpha", "weights", "time_neighbours"),
                   {Audience.ANALYST: GRID_COLUMNS + _EMERGING_COLUMNS,
                    Audience.VIEWER: ("code", "share_inside", "partial") + _EMERGING_COLUMNS}))
register(LayerKind("points", "Incident points", "crime", _points, ("layer", "categories", "month_from", "month_to", "where"),
                   {Audience.ANALYST: POINT_COLUMNS}, analyst_only=True))
