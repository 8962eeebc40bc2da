"""Square and hexagonal grids over an area, in EPSG:27700, and the assignment of incidents to cells.

Why grids: an LSOA (about 1,500 residents) is right for a needs assessment but too coarse for a
patrol plan. Police analysts use a fishnet or hexagon grid (ArcGIS Optimized Hot Spot Analysis,
sfhotspot ``hotspot_gistar``). A grid is one more geography: a GeoDataFrame with a ``code`` per
cell, so weights, Gi* and the rest of the engine take it as they take LSOAs.

Decisions (docs/methods.md, "Grids, kernel density and the optimized distance band"):

* The lattice is aligned to the national grid origin (cell corners at multiples of the cell
  size), so a 250 m grid nests exactly in a 500 m or 1 km grid and a cell keeps its code from
  one run to the next. Codes name the lower-left corner of a square cell
  (``sq250_E390000_N298250``) and the centre of a hexagon (``hx250_E390125_N298217``).
* ``geometry`` is the FULL cell: every cell has the same area and its centroid is on the lattice,
  so distance-band weights and densities are comparable across the city. ``clipped`` is the cell
  cut to the area, for display and for assigning incidents. ``share_inside`` is the fraction of
  the cell's area inside the area and ``partial`` flags cells cut by the boundary.
* Cells wholly outside the area (or touching it only along an edge or at a corner) are dropped.
"""
from __future__ import annotations

import json
import math
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from .errors import AnalysisError

BNG_EPSG = 27700
#: Grids larger than this are refused unless the caller raises the cap: 200,000 polygons is about
#: the most a browser map and a 999-permutation Gi* on two cores handle in seconds.
DEFAULT_MAX_CELLS = 200_000
#: Below this a grid only resolves the snapping of police.uk locations, and hexagon codes (centres
#: rounded to the metre) would no longer be unique.
MIN_CELL_M = 5.0
#: sfhotspot's automatic cell size: the shorter side of the points' bounding box divided by this.
AUTO_CELLS_ON_SHORT_SIDE = 50
#: Automatic cell sizes are rounded down to a multiple of this, so that they nest with 50/100/250 m grids.
AUTO_ROUND_M = 50.0
#: Tolerance on share_inside: cells cut by less than this fraction are not flagged partial.
PARTIAL_TOLERANCE = 1e-9
SHAPES = ("square", "hex")


def positive_metres(value: Any, what: str) -> float:
    """``value`` as a finite number of metres > 0, or an AnalysisError naming ``what``."""
    try:
        metres = float(value)
    except (TypeError, ValueError):
        raise AnalysisError(f"{what} {value!r} is not a number of metres") from None
    if not math.isfinite(metres) or metres <= 0:
        raise AnalysisError(f"{what} must be a finite number of metres > 0, got {value!r}")
    return metres


def _check_cell(cell_m: Any) -> float:
    cell = positive_metres(cell_m, "cell size")
    if cell < MIN_CELL_M:
        raise AnalysisError(f"cell size {cell:g} m is below the minimum of {MIN_CELL_M:g} m")
    return cell


def _check_area(area: Any) -> Any:
    if isinstance(area, (gpd.GeoDataFrame, gpd.GeoSeries)):
        crs = area.crs
        if crs is None or crs.to_epsg() != BNG_EPSG:
            raise AnalysisError("the area must be in EPSG:27700 (British National Grid) to build a grid in metres")
        area = shapely.union_all(np.asarray(area.geometry.values if hasattr(area, "geometry") else area.values))
    if not isinstance(area, shapely.Geometry) or shapely.get_type_id(area) not in (3, 6):
        raise AnalysisError("the area must be a Polygon or MultiPolygon in EPSG:27700")
    if area.is_empty or area.area <= 0:
        raise AnalysisError("the area is empty: nothing to cover with a grid")
    return area


def _fmt(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.3f}".rstrip("0").rstrip(".")


def _square_lattice(bounds: tuple, cell: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    minx, miny, maxx, maxy = bounds
    ix = np.arange(math.floor(minx / cell), math.ceil(maxx / cell))
    iy = np.arange(math.floor(miny / cell), math.ceil(maxy / cell))
    gx, gy = np.meshgrid(ix, iy)
    gx, gy = gx.ravel(), gy.ravel()
    return cell_polygons(gx, gy, cell, "square"), gx, gy


def _hex_lattice(bounds: tuple, cell: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pointy-topped hexagons whose width across flats (= the distance between neighbouring
    centres) is ``cell``, as ``sf::st_make_grid(square = FALSE)`` sizes them."""
    minx, miny, maxx, maxy = bounds
    half_r = cell / math.sqrt(3.0) / 2.0  # half the circumradius; rows are 3 half-radii apart
    jy = np.arange(math.floor(miny / (3 * half_r)) - 1, math.ceil(maxy / (3 * half_r)) + 2)
    ix = np.arange(math.floor(minx / cell) - 1, math.ceil(maxx / cell) + 2)
    gi, gj = np.meshgrid(ix, jy)
    gi, gj = gi.ravel(), gj.ravel()
    return cell_polygons(gi, gj, cell, "hex"), gi, gj


def cell_polygons(ix: np.ndarray, iy: np.ndarray, cell: float, shape: str) -> np.ndarray:
    """The full polygons of lattice cells (column ``ix``, row ``iy``), bit for bit as :func:`make_grid` makes
    them: corners are integer multiples of the cell size (squares) or of the half width and half radius
    (hexagons), so neighbours share their vertices exactly and a kept grid can rebuild its cells."""
    ix, iy = np.asarray(ix), np.asarray(iy)
    if shape == "square":
        return shapely.box(ix * cell, iy * cell, (ix + 1) * cell, (iy + 1) * cell)
    half_w = cell / 2.0
    half_r = cell / math.sqrt(3.0) / 2.0
    kx = 2 * ix + (iy & 1)  # centre x in half-widths
    ky = 3 * iy  # centre y in half-radii
    dx = np.array([1, 0, -1, -1, 0, 1, 1])
    dy = np.array([1, 2, 1, -1, -2, -1, 1])
    vx = (kx[:, None] + dx[None, :]) * half_w
    vy = (ky[:, None] + dy[None, :]) * half_r
    return shapely.polygons(np.stack([vx, vy], axis=-1))


def cell_codes(ix: np.ndarray, iy: np.ndarray, cell: float, shape: str) -> list[str]:
    """The codes of lattice cells (column ``ix``, row ``iy``): the lower-left corner of a square cell
    (``sq250_E390000_N298250``), the centre of a hexagon rounded to the metre (``hx250_E390125_N298217``)."""
    if shape == "square":
        prefix = f"sq{_fmt(cell)}"
        return [f"{prefix}_E{_fmt(a)}_N{_fmt(b)}" for a, b in zip((ix * cell).tolist(), (iy * cell).tolist())]
    kx, ky = 2 * ix + (iy & 1), 3 * iy
    cx, cy = kx * (cell / 2.0), ky * (cell / math.sqrt(3.0) / 2.0)
    prefix = f"hx{_fmt(cell)}"
    return [f"{prefix}_E{round(a)}_N{round(b)}" for a, b in zip(cx.tolist(), cy.tolist())]


def make_grid(area: Any, cell_m: float, shape: str = "square", max_cells: int = DEFAULT_MAX_CELLS) -> gpd.GeoDataFrame:
    """Cover ``area`` (a Polygon/MultiPolygon, or a GeoDataFrame/GeoSeries to be dissolved, in
    EPSG:27700) with square or hexagonal cells of ``cell_m`` metres.

    Returns a GeoDataFrame in EPSG:27700 with ``code``, ``ix``/``iy`` (lattice column and row from
    the national grid origin), ``share_inside``, ``partial``, ``clipped`` (the cell cut to the
    area) and ``geometry`` (the full cell). Cells are ordered by code.

    Raises AnalysisError for a cell size that is not a finite number ≥ MIN_CELL_M, an unknown
    shape, or a grid that would have more than ``max_cells`` cells (saying how many it would make).
    """
    cell = _check_cell(cell_m)
    if shape not in SHAPES:
        raise AnalysisError(f"grid shape {shape!r} not understood: use 'square' or 'hex'")
    area = _check_area(area)
    cell_area = cell * cell if shape == "square" else cell * cell * math.sqrt(3.0) / 2.0
    estimate = area.area / cell_area
    if estimate > max_cells:
        raise AnalysisError(f"a {_fmt(cell)} m {shape} grid would make about {estimate:,.0f} cells "
                            f"(the area divided by the cell area), more than the cap of {max_cells:,}: "
                            "use a larger cell size")
    minx, miny, maxx, maxy = area.bounds
    lattice_cells = (maxx - minx) * (maxy - miny) / cell_area
    if lattice_cells > 50 * max_cells:
        raise AnalysisError(f"a {_fmt(cell)} m {shape} grid over this area's bounding box would need "
                            f"{lattice_cells:,.0f} candidate cells (cap {50 * max_cells:,}): use a larger cell size")
    build = _square_lattice if shape == "square" else _hex_lattice
    geoms, gx, gy = build(area.bounds, cell)
    shapely.prepare(area)
    keep = shapely.intersects(area, geoms)
    geoms, gx, gy = geoms[keep], gx[keep], gy[keep]
    inside = shapely.contains(area, geoms)
    codes = cell_codes(gx, gy, cell, shape)
    clipped = geoms.copy()
    edge = np.flatnonzero(~inside)
    if len(edge):
        clipped[edge] = shapely.intersection(geoms[edge], area)
    share = np.ones(len(geoms))
    share[edge] = shapely.area(clipped[edge]) / cell_area
    # Cells that only touch the area (a shared edge or corner) have nothing inside: drop them.
    solid = share > 0
    if int(solid.sum()) > max_cells:
        raise AnalysisError(f"a {_fmt(cell)} m {shape} grid would make {int(solid.sum()):,} cells, "
                            f"more than the cap of {max_cells:,}: use a larger cell size")
    if not solid.any():
        raise AnalysisError("no grid cell overlaps the area")
    share = np.minimum(share, 1.0)
    grid = gpd.GeoDataFrame({
        "code": np.asarray(codes, dtype=object)[solid],
        "ix": gx[solid].astype(np.int64), "iy": gy[solid].astype(np.int64),
        "share_inside": share[solid], "partial": share[solid] < 1.0 - PARTIAL_TOLERANCE,
        "clipped": gpd.GeoSeries(clipped[solid], crs=BNG_EPSG),
    }, geometry=gpd.GeoSeries(geoms[solid], crs=BNG_EPSG), crs=BNG_EPSG)
    grid.attrs.update({"cell_m": cell, "shape": shape})
    return grid.sort_values("code", kind="stable").reset_index(drop=True)


def auto_cell_size(points_xy: Any, area: Any = None) -> tuple[float, str]:
    """sfhotspot's default cell size: the shorter side of the points' bounding box / 50, here rounded
    down to a multiple of 50 m (at least 50 m). Returns (cell_m, the rule as a sentence).

    ``area`` (optional) bounds the box: points outside the area's bounding box are ignored.
    """
    xy = np.asarray(points_xy, dtype=float).reshape(-1, 2)
    xy = xy[np.isfinite(xy).all(axis=1)]
    if area is not None:
        minx, miny, maxx, maxy = _check_area(area).bounds
        xy = xy[(xy[:, 0] >= minx) & (xy[:, 0] <= maxx) & (xy[:, 1] >= miny) & (xy[:, 1] <= maxy)]
    if len(xy) < 2:
        raise AnalysisError("an automatic cell size needs at least two incidents with coordinates")
    width, height = np.ptp(xy[:, 0]), np.ptp(xy[:, 1])
    short = float(min(width, height))
    if short <= 0:
        raise AnalysisError("the incidents lie on one line: no automatic cell size; give one in metres")
    raw = short / AUTO_CELLS_ON_SHORT_SIDE
    cell = max(AUTO_ROUND_M, math.floor(raw / AUTO_ROUND_M) * AUTO_ROUND_M)
    text = (f"Cell size {cell:,.0f} m: the shorter side of the incidents' bounding box ({short:,.0f} m) "
            f"divided by {AUTO_CELLS_ON_SHORT_SIDE} ({raw:,.0f} m), rounded down to a multiple of "
            f"{AUTO_ROUND_M:.0f} m (sfhotspot's default rule, so that grids nest).")
    return float(cell), text


def _lattice_fast_path(x: np.ndarray, y: np.ndarray, grid: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Square grids: a point strictly inside a lattice square (on none of its edges) can only be in that
    square's cell, whose bounds are exactly ``ix·cell`` … ``(ix + 1)·cell`` (as make_grid builds them), so two
    comparisons find its one candidate. A whole cell holds it; a cell cut by the boundary holds it when its
    clipped polygon does (one GEOS predicate per point, no tree); a square with no cell does not. Returns
    (row position or −1, needs the GEOS query: the points on a lattice line)."""
    cell = float(grid.attrs["cell_m"])
    ix0, iy0 = int(grid["ix"].min()), int(grid["iy"].min())
    nx, ny = int(grid["ix"].max()) - ix0 + 1, int(grid["iy"].max()) - iy0 + 1
    lookup = np.full((ny, nx), -1, dtype=np.int64)
    lookup[grid["iy"].to_numpy() - iy0, grid["ix"].to_numpy() - ix0] = np.arange(len(grid))
    with np.errstate(invalid="ignore"):
        fx, fy = np.floor(x / cell), np.floor(y / cell)
        strict = (fx * cell < x) & (x < (fx + 1) * cell) & (fy * cell < y) & (y < (fy + 1) * cell)
    cx, cy = fx - ix0, fy - iy0
    inside = strict & (cx >= 0) & (cx < nx) & (cy >= 0) & (cy < ny)
    out = np.full(len(x), -1, dtype=np.int64)
    out[inside] = lookup[cy[inside].astype(np.int64), cx[inside].astype(np.int64)]
    cut = np.flatnonzero(out >= 0)
    cut = cut[grid["partial"].to_numpy()[out[cut]]]
    if len(cut):
        clipped = np.asarray(grid["clipped"].values if "clipped" in grid else grid.geometry.values, dtype=object)
        held = shapely.intersects(clipped[out[cut]], shapely.points(x[cut], y[cut]))
        out[cut[~held]] = -1
    # Left to GEOS: points on a lattice line (a cell edge or corner, shared by up to four cells).
    return out, ~strict
def assign_cells(x: Any, y: Any, grid: gpd.GeoDataFrame) -> np.ndarray:
    """Index (row position in ``grid``) of the cell holding each point, −1 outside every cell.

    The same exact GEOS rule as areas: a point belongs to a cell when it *intersects* the cell's
    clipped geometry (boundary included), and a point on a shared edge or corner goes to the cell
    with the smallest code. NaN coordinates give −1. On square grids from :func:`make_grid`, a point strictly
    inside a lattice square is placed by arithmetic (and one GEOS predicate when its cell is cut by the
    boundary); points on a lattice line, and every point of a hexagonal grid, through a GEOS STRtree query.
    """
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise AnalysisError(f"{len(x)} eastings but {len(y)} northings")
    out = np.full(len(x), -1, dtype=np.int64)
    if len(grid) == 0:
        return out
    slow = np.isfinite(x) & np.isfinite(y)
    if grid.attrs.get("shape") == "square" and {"ix", "iy", "partial"} <= set(grid.columns):
        out, rest = _lattice_fast_path(x, y, grid)
        slow &= rest
    ok = np.flatnonzero(slow)
    if len(ok) == 0:
        return out
    cells = np.asarray(grid["clipped"].values if "clipped" in grid else grid.geometry.values, dtype=object)
    tree = shapely.STRtree(cells)
    pidx, cidx = tree.query(shapely.points(x[ok], y[ok]), predicate="intersects")
    rank = np.empty(len(grid), dtype=np.int64)
    rank[np.argsort(np.asarray(grid["code"], dtype=str), kind="stable")] = np.arange(len(grid))
    best = np.full(len(ok), len(grid), dtype=np.int64)
    np.minimum.at(best, pidx, rank[cidx])
    by_rank = np.argsort(rank)  # rank -> row position
    hit = best < len(grid)
    out[ok[hit]] = by_rank[best[hit]]
    return out


#: GeoJSON coordinates in degrees to 6 decimals: about 0.1 m, finer than police.uk's snapping of locations
GEOJSON_DECIMALS = 6


def _json_column(values: Any) -> list[str]:
    """One JSON text per value of a column (numbers as Python writes them, NaN and None as null)."""
    a = np.asarray(values)
    if a.dtype.kind == "b":
        return ["true" if v else "false" for v in a.tolist()]
    if a.dtype.kind in "iu":
        return [str(v) for v in a.tolist()]
    if a.dtype.kind == "f":
        return [repr(v) if math.isfinite(v) else "null" for v in a.tolist()]
    return [json.dumps(v if not (isinstance(v, float) and not math.isfinite(v)) else None, ensure_ascii=False,
                       default=_json_default) for v in a.tolist()]


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"{type(v).__name__} is not JSON serialisable")


def cell_geometry_texts(cells: Any, decimals: int = GEOJSON_DECIMALS) -> list[str]:
    """The GeoJSON geometry text of each cell (polygons in EPSG:27700) in EPSG:4326, rounded to ``decimals``
    (6: about 0.1 m), exteriors counter-clockwise (RFC 7946): one pyproj call for every coordinate and one
    vectorised GEOS writer call. A grid's texts depend on the grid only, so a caller may keep them."""
    from pyproj import Transformer
    geoms = np.asarray(cells, dtype=object)
    to_wgs = Transformer.from_crs(BNG_EPSG, 4326, always_xy=True)

    def reproject(xy: np.ndarray) -> np.ndarray:
        lon, lat = to_wgs.transform(xy[:, 0], xy[:, 1])
        return np.round(np.column_stack([lon, lat]), decimals)
    wgs = shapely.transform(geoms, reproject)
    # make_grid's whole cells are already counter-clockwise (and the projection keeps the winding): only the
    # cells cut by the boundary, whose winding GEOS's intersection decides, need orienting
    cw = np.flatnonzero(~shapely.is_ccw(shapely.get_exterior_ring(wgs)) | (shapely.get_num_interior_rings(wgs) > 0)
                        | (shapely.get_type_id(wgs) != 3))
    if len(cw):
        wgs[cw] = shapely.orient_polygons(wgs[cw], exterior_cw=False)
    return shapely.to_geojson(wgs).tolist()


def cells_geojson(cells: Any, properties: dict[str, Any], decimals: int = GEOJSON_DECIMALS,
                  geometry_texts: list[str] | None = None) -> bytes:
    """A GeoJSON FeatureCollection (EPSG:4326, RFC 7946 winding) of ``cells`` (polygons in EPSG:27700, e.g. the
    clipped cells of :func:`make_grid`), with ``properties`` (name -> one value per cell) in each feature.

    Why: geopandas' ``to_json`` builds a Python dict per feature and coordinate; on London's 21,611 cells that
    took longer than the whole Gi* analysis. Here the geometries are written by :func:`cell_geometry_texts`
    (or given, as kept for the grid: ``geometry_texts``) and the properties are joined as text.
    """
    n = len(cells)
    for name, values in properties.items():
        if len(values) != n:
            raise AnalysisError(f"property {name!r} has {len(values)} values for {n} cells")
    gtext = cell_geometry_texts(cells, decimals) if geometry_texts is None else geometry_texts
    if len(gtext) != n:
        raise AnalysisError(f"{len(gtext)} geometry texts for {n} cells")
    keys = [json.dumps(str(k), ensure_ascii=False) + ":" for k in properties]
    cols = [_json_column(v) for v in properties.values()]
    head = '{"type":"Feature","properties":{'
    feats = [head + ",".join(k + v for k, v in zip(keys, row)) + '},"geometry":' + g + "}"
             for row, g in zip(zip(*cols) if cols else ([()] * n), gtext)]
    return ('{"type":"FeatureCollection","features":[' + ",".join(feats) + "]}").encode("utf-8")


def lattice_distance_weights(grid: gpd.GeoDataFrame, band_m: float):
    """Binary distance-band weights between the centroids of a SQUARE grid from :func:`make_grid` (columns
    ``code``, ``ix``, ``iy``; ``attrs`` cell_m and shape), from the lattice: two cells are neighbours when
    (Δix² + Δiy²)·cell² ≤ band², so no centroid, tree or sort is needed.

    Why: it is the same graph as ``build_weights(grid, "distance:D")`` (a test checks it) in a fraction of the
    time, because a cell's neighbours are the same lattice offsets everywhere. Full cells are used (every
    centroid on the lattice), as for the geometric weights.
    """
    from .weights import _from_clean_csr
    band = positive_metres(band_m, "distance band")
    if grid.attrs.get("shape") != "square" or not {"ix", "iy", "code"} <= set(grid.columns):
        raise AnalysisError("lattice weights need a square grid from make_grid (code, ix, iy and its cell size)")
    cell = float(grid.attrs["cell_m"])
    ix, iy = grid["ix"].to_numpy(np.int64), grid["iy"].to_numpy(np.int64)
    n = len(grid)
    reach = int(math.floor(band / cell)) + 1
    offsets = [(dx, dy) for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1)
               if (dx or dy) and (dx * cell) ** 2 + (dy * cell) ** 2 <= band * band]
    x0, y0 = int(ix.min()), int(iy.min())
    width, height = int(ix.max()) - x0 + 1, int(iy.max()) - y0 + 1
    lookup = np.full((height + 2 * reach, width + 2 * reach), -1, dtype=np.int64)
    lookup[iy - y0 + reach, ix - x0 + reach] = np.arange(n)
    rows, cols = [], []
    for dx, dy in offsets:
        nb = lookup[iy - y0 + reach + dy, ix - x0 + reach + dx]
        hit = nb >= 0
        rows.append(np.flatnonzero(hit))
        cols.append(nb[hit])
    r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    order = np.lexsort((c, r))
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=n), out=indptr[1:])
    return _from_clean_csr(indptr, c[order].astype(np.int32), tuple(grid["code"].tolist()), f"distance:{band:g}")
