"""The compiled point-in-polygon (hotspots.pip) against its oracle, GEOS via shapely's STRtree predicate.

Every comparison is exact equality of the area index per point, with points chosen where a re-written
point-in-polygon test would go wrong: on vertices, on shared, horizontal and vertical edges, in and on
holes, in multipolygons, in invalid geometries, and one ulp off a vertex or an edge. The grid's
bounding-box candidates are compared with the STRtree's, pair for pair, at the same points, and at
those where a grid goes wrong: on bounding-box edges and corners, on cell boundaries, outside the
extent, NaN.
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from hotspots import pip
from hotspots.geocode import Geocoder, Placement, bng_to_lonlat, lonlat_to_bng

X0, Y0, SIZE = 400_000.0, 250_000.0, 20_000.0
_NONE = np.iinfo(np.int64).max


def reference_locate(tree: shapely.STRtree, points: np.ndarray) -> np.ndarray:
    """The implementation before hotspots.pip: GEOS decides every candidate pair."""
    pt_idx, poly_idx = tree.query(points, predicate="intersects")
    out = np.full(len(points), _NONE, dtype=np.int64)
    np.minimum.at(out, pt_idx, poly_idx)
    out[out == _NONE] = -1
    return out


def reference_assign_indices(geo: Geocoder, easting: np.ndarray, northing: np.ndarray) -> dict[str, np.ndarray]:
    """``Geocoder.assign_indices`` before hotspots.pip (millimetre dedup, then GEOS)."""
    import pandas as pd
    e, n = np.asarray(easting, float), np.asarray(northing, float)
    packed = (np.round(e * 1000).astype(np.int64) << 31) ^ np.round(n * 1000).astype(np.int64)
    codes, uniques = pd.factorize(packed)
    first = np.full(len(uniques), len(packed), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(packed)))
    points = shapely.points(e[first], n[first])
    return {role: reference_locate(layer.tree, points)[codes] for role, layer in geo.layers.items()}


def frame(geoms, prefix: str = "E01") -> gpd.GeoDataFrame:
    codes = [f"{prefix}{i:06d}" for i in range(len(geoms))]  # already in code order
    return gpd.GeoDataFrame({"code": codes, "name": codes}, geometry=list(geoms), crs="EPSG:27700")


def layer_of(geoms):
    return Geocoder.from_frames({"lsoa21": frame(geoms)}).layers["lsoa21"]


def check(layer, x: np.ndarray, y: np.ndarray) -> dict:
    """Assert locate and locate_xy equal the GEOS reference, and the grid's bounding-box candidates the
    STRtree's (the same pairs); return the kernel's pair counts."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    points = shapely.points(x, y)
    expected = reference_locate(layer.tree, points)
    stats: dict = {}
    got = layer.locate_xy(x, y, stats=stats)
    mismatch = np.flatnonzero(got != expected)
    assert len(mismatch) == 0, [(x[i], y[i], got[i], expected[i]) for i in mismatch[:5]]
    np.testing.assert_array_equal(layer.locate(points), expected)
    assert stats["pairs"] == check_candidates(layer, x, y)
    return stats


def check_candidates(layer, x: np.ndarray, y: np.ndarray) -> int:
    """Assert the grid's candidate pairs are exactly ``STRtree.query(points)`` (bounding boxes, edges
    included); return their number."""
    pt, poly = pip.candidates(layer.rings, x, y)
    t_pt, t_poly = layer.tree.query(shapely.points(x, y))
    order, t_order = np.lexsort((poly, pt)), np.lexsort((t_poly, t_pt))
    np.testing.assert_array_equal(pt[order], t_pt[t_order])
    np.testing.assert_array_equal(poly[order], t_poly[t_order])
    return len(pt)


def tessellation(n: int, seed: int = 3) -> np.ndarray:
    """Voronoi cells clipped to a square and densified (as benchmarks/ingest.py builds them)."""
    rng = np.random.default_rng(seed)
    frame_box = shapely.box(X0, Y0, X0 + SIZE, Y0 + SIZE)
    pts = shapely.points(rng.uniform(X0, X0 + SIZE, n), rng.uniform(Y0, Y0 + SIZE, n))
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=frame_box))
    return shapely.segmentize(shapely.intersection(cells, frame_box), 150.0)


@pytest.fixture(scope="module")
def voronoi_layer():
    """~2,000 Voronoi cells, with holes carved (each hole filled by its own area, so hole boundaries
    are shared), a multipolygon of two distant cells, and a multipolygon whose part has a hole."""
    cells = list(tessellation(2_000))
    extra = []
    for i in range(0, 40, 4):  # holes: a box around the centroid, carved out and added as an area
        c = shapely.centroid(cells[i])
        hole = shapely.box(c.x - 20.0, c.y - 15.0, c.x + 20.0, c.y + 15.0)
        if shapely.contains(cells[i], hole):
            cells[i] = shapely.difference(cells[i], hole)
            extra.append(hole)
    cells[100] = shapely.MultiPolygon([cells[100], cells[1500]])  # cell 1500 also in area 100
    ring_cell = cells[200]
    c = shapely.centroid(ring_cell)
    inner = shapely.box(c.x - 10.0, c.y - 10.0, c.x + 10.0, c.y + 10.0)
    cells[200] = shapely.MultiPolygon([shapely.difference(ring_cell, inner), shapely.box(0, 0, 1, 1)])
    geoms = np.array(cells + extra, dtype=object)
    assert (shapely.get_num_interior_rings(shapely.get_parts(geoms)) > 0).sum() >= 10
    return layer_of(geoms)


def ring_vertices(layer) -> np.ndarray:
    return layer.rings.coords


def test_rings_are_flat_csr(voronoi_layer):
    r = voronoi_layer.rings
    geoms = voronoi_layer.tree.geometries
    assert r.n_polygons == len(geoms) and r.ok.all()
    assert r.part_ptr[-1] == len(r.ring_ptr) - 1 and r.ring_ptr[-1] == len(r.coord_ptr) - 1
    assert r.coord_ptr[-1] == len(r.coords) == shapely.get_num_coordinates(geoms).sum()
    # area 100 is a multipolygon of two parts; its parts' shells come first in each part's rings
    assert r.part_ptr[101] - r.part_ptr[100] == 2


def test_random_points_match_geos(voronoi_layer):
    rng = np.random.default_rng(11)
    x = rng.uniform(X0 - 500, X0 + SIZE + 500, 60_000)
    y = rng.uniform(Y0 - 500, Y0 + SIZE + 500, 60_000)
    stats = check(voronoi_layer, x, y)
    assert stats["points"] == 60_000 and stats["pairs"] > 60_000


def test_vertices_edges_and_ulp_nudges_match_geos(voronoi_layer):
    v = ring_vertices(voronoi_layer)
    x, y = v[:, 0], v[:, 1]
    check(voronoi_layer, x, y)  # every vertex, of shells and holes: on two or three boundaries at once
    # midpoints of every edge (rounded, so mostly a hair off the line: the near-degenerate case)
    r = voronoi_layer.rings
    last = r.coord_ptr[1:] - 1
    keep = np.ones(len(v), dtype=bool)
    keep[last] = False  # no edge starts at a ring's closing vertex
    start = np.flatnonzero(keep)
    mx = (v[start, 0] + v[start + 1, 0]) / 2
    my = (v[start, 1] + v[start + 1, 1]) / 2
    check(voronoi_layer, mx, my)
    # one ulp off each vertex, in all four directions
    sub = slice(None, None, 3)
    for dx, dy in ((np.inf, 0), (-np.inf, 0), (0, np.inf), (0, -np.inf)):
        nx = np.nextafter(x[sub], dx) if dx else x[sub]
        ny = np.nextafter(y[sub], dy) if dy else y[sub]
        check(voronoi_layer, nx, ny)


@pytest.fixture(scope="module")
def grid_layer():
    """Integer 4x4 squares (so edge midpoints are exact), one with a hole filled by its own area,
    one multipolygon of two squares, and a triangle with a horizontal and a vertical edge."""
    squares = [shapely.box(i, j, i + 4, j + 4) for j in range(0, 40, 4) for i in range(0, 40, 4)]
    squares[11] = shapely.Polygon(squares[11].exterior.coords, [shapely.box(5, 5, 7, 7).exterior.coords])
    filler = shapely.box(5, 5, 7, 7)
    squares[55] = shapely.MultiPolygon([squares[55], squares[99]])  # and 99 stays: shared area, min index
    tri = shapely.Polygon([(40, 0), (44, 0), (40, 4)])
    return layer_of(squares + [filler, tri])


def test_grid_vertices_midpoints_holes_and_outside_match_geos(grid_layer):
    g = np.arange(-2, 46.5, 0.5)  # vertices, edge midpoints, cell centres, quarter points, outside
    x, y = (a.ravel() for a in np.meshgrid(g, g))
    check(grid_layer, x, y)
    got = grid_layer.locate_xy(np.array([6.0, 5.0, 4.5, 100.0, 42.0, 43.0]), np.array([6.0, 6.0, 6.0, 100.0, 2.0, 1.0]))
    # hole interior -> the filler (index 100); hole boundary -> square 11 (smaller than 100);
    # inside square 11 -> 11; nowhere; on the triangle's hypotenuse; inside the triangle
    assert got.tolist() == [100, 11, 11, -1, 101, 101]
    assert grid_layer.locate_xy(np.array([38.0]), np.array([38.0])).tolist() == [55]  # multipolygon wins


def test_invalid_geometries_follow_geos_not_crossing_parity():
    """GEOS locates per polygon part and per ring (shell, then holes); parity over all rings would
    disagree on every one of these invalid shapes."""
    geoms = [
        shapely.MultiPolygon([shapely.box(0, 0, 2, 2), shapely.box(1, 1, 3, 3)]),  # overlapping parts
        shapely.Polygon(shapely.box(10, 0, 11, 1).exterior.coords, [shapely.box(12, 2, 13, 3).exterior.coords]),
        shapely.Polygon(shapely.box(20, 0, 22, 2).exterior.coords, [shapely.box(21, 1, 23, 3).exterior.coords]),
        shapely.Polygon(shapely.box(30, 0, 40, 10).exterior.coords,
                        [shapely.box(31, 1, 33, 3).exterior.coords, shapely.box(32, 2, 34, 4).exterior.coords]),
        shapely.MultiPolygon([shapely.box(50, 0, 54, 4), shapely.box(51, 1, 52, 2)]),  # nested parts
        shapely.Polygon([(60, 0), (64, 4), (64, 0), (60, 4), (60, 0)]),  # bow-tie
        shapely.Polygon([(70, 0), (74, 0), (74, 4), (70, 4), (70, 0), (71, 1), (73, 1), (73, 3), (71, 3), (71, 1)]),
    ]
    assert not shapely.is_valid(np.array(geoms)).any()
    layer = layer_of(geoms)
    g = np.arange(-1, 76, 0.25)
    x, y = (a.ravel() for a in np.meshgrid(g, np.arange(-1, 5.5, 0.25)))
    check(layer, x, y)
    got = layer.locate_xy(np.array([1.5, 12.5, 22.5, 32.5, 51.5]), np.array([1.5, 2.5, 2.5, 2.5, 1.5]))
    assert got.tolist() == [0, -1, -1, -1, 4]


def test_non_polygonal_geometries_go_to_shapely():
    geoms = [shapely.box(0, 0, 1, 1), shapely.LineString([(2, 0), (3, 1)]),
             shapely.GeometryCollection([shapely.box(4, 0, 5, 1), shapely.Point(6, 0)])]
    layer = layer_of(geoms)
    assert layer.rings.ok.tolist() == [True, False, False]
    stats = check(layer, np.array([0.5, 2.5, 2.6, 4.5, 6.0, 9.0]), np.array([0.5, 0.5, 0.1, 0.5, 0.0, 9.0]))
    assert stats["fallback_points"] == 4


def test_undecided_orientation_falls_back_to_shapely():
    """Points a hair off a long sloping edge: the double-precision filter cannot tell the side, GEOS
    goes to double-double, and the kernel hands the pair to shapely rather than guess."""
    a, b = (431_234.567, 251_000.123), (447_654.321, 268_765.987)
    tri = shapely.Polygon([a, b, (a[0], b[1]), a])  # left of the edge a->b
    other = shapely.Polygon([a, (b[0], a[1]), b, a])  # right of it
    layer = layer_of([tri, other])
    t = np.linspace(0.01, 0.99, 2_000)
    x = a[0] + t * (b[0] - a[0])
    y = a[1] + t * (b[1] - a[1])
    undecided = np.array([pip._orientation_filter(a[0], a[1], b[0], b[1], px, py) == 2 for px, py in zip(x, y)])
    assert undecided.sum() > 100  # the construction does hit GEOS's double-double path
    stats = check(layer, np.concatenate([x, np.nextafter(x, np.inf)]), np.concatenate([y, y]))
    assert stats["undecided_pairs"] > 0 and stats["fallback_points"] > 0
    assert stats["fallback_points"] <= stats["points"]


def test_empty_inputs():
    layer = layer_of([shapely.box(0, 0, 1, 1)])
    assert layer.locate_xy(np.empty(0), np.empty(0)).shape == (0,)
    assert layer.locate(np.empty(0, dtype=object)).shape == (0,)
    assert layer.locate(np.array([None, shapely.Point(), shapely.Point(0.5, 0.5)])).tolist() == [-1, -1, 0]


def test_factorize_pairs_is_exact_and_in_first_appearance_order():
    x = np.array([1.0, 2.0, 1.0, np.nextafter(1.0, 2.0), 1.0, 2.0])
    y = np.array([5.0, 5.0, 5.0, 5.0, np.nextafter(5.0, 6.0), 5.0])
    codes, first = pip.factorize_pairs(x.view(np.uint64), y.view(np.uint64))
    assert codes.tolist() == [0, 1, 0, 2, 3, 1] and first.tolist() == [0, 1, 3, 4]
    codes, first = pip.factorize_pairs(np.empty(0, np.uint64), np.empty(0, np.uint64))
    assert len(codes) == len(first) == 0


def bbox_edge_points(geoms: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per geometry: its bbox's four corners, a point on each edge, and each corner one ulp in/out."""
    b = shapely.bounds(geoms)
    b = b[np.isfinite(b).all(axis=1)]
    x0, y0, x1, y1 = b.T
    tx, ty = rng.uniform(x0, x1), rng.uniform(y0, y1)
    xs = [x0, x1, x0, x1, tx, tx, x0, x1]
    ys = [y0, y0, y1, y1, y0, y1, ty, ty]
    for dx in (np.inf, -np.inf):
        for dy in (np.inf, -np.inf):
            xs += [np.nextafter(x0, dx), np.nextafter(x1, dx)]
            ys += [np.nextafter(y0, dy), np.nextafter(y1, dy)]
    return np.concatenate(xs), np.concatenate(ys)


def test_points_on_bounding_box_edges_and_corners(voronoi_layer, grid_layer):
    """Closed boxes: a point exactly on a bbox edge or corner is a candidate (STRtree's intersects), also
    where the edge lies on a cell boundary (the 4x4 squares, whose bbox sides are the grid's cells)."""
    rng = np.random.default_rng(4)
    for layer in (voronoi_layer, grid_layer):
        x, y = bbox_edge_points(layer.tree.geometries, rng)
        stats = check(layer, x, y)
        assert stats["pairs"] > len(x)
    # shapes whose bbox corners are not on the shape: diamonds and triangles, corners just outside
    shapes = [shapely.Polygon([(i + 0.5, 0), (i + 1, 0.5), (i + 0.5, 1), (i, 0.5)]) for i in range(0, 20, 2)]
    shapes += [shapely.Polygon([(i, 2), (i + 1.3, 2), (i + 0.2, 3.7)]) for i in np.arange(0, 20, 1.7)]
    layer = layer_of(shapes)
    x, y = bbox_edge_points(layer.tree.geometries, rng)
    check(layer, x, y)
    g0, g1 = layer.rings.grid.extent[0], layer.rings.grid.extent[2]
    xs = np.linspace(g0, g1, 997)  # cell boundaries (and between them) along every bbox edge
    for yy in np.unique(shapely.bounds(layer.tree.geometries)[:, [1, 3]]):
        check(layer, xs, np.full(len(xs), yy))


def test_huge_polygon_spanning_the_grid():
    """One polygon covering everything (a frame with a hole, so the small ones still answer) sits in every
    cell; the grid is sized from the small ones, so it stays fine-grained and small."""
    cells = list(tessellation(2_000, seed=5))
    outer = shapely.box(X0 - 5_000, Y0 - 5_000, X0 + SIZE + 5_000, Y0 + SIZE + 5_000)
    hole = shapely.box(X0 + 1_000, Y0 + 1_000, X0 + SIZE - 1_000, Y0 + SIZE - 1_000)
    frame_ = shapely.Polygon(outer.exterior.coords, [hole.exterior.coords])
    rng = np.random.default_rng(9)
    x = rng.uniform(X0 - 6_000, X0 + SIZE + 6_000, 20_000)
    y = rng.uniform(Y0 - 6_000, Y0 + SIZE + 6_000, 20_000)
    for geoms in ([frame_] + cells, cells + [frame_]):  # first (wins every tie) or last
        layer = layer_of(geoms)
        grid = layer.rings.grid
        nx, ny = grid.shape
        assert nx * ny >= len(cells) // 4  # not one coarse cell
        assert len(grid.entry) <= 16 * len(geoms)
        big = geoms.index(frame_)
        assert (grid.entry == big).sum() == nx * ny  # in every cell
        stats = check(layer, x, y)
        bx, by = bbox_edge_points(np.array(geoms), rng)
        check(layer, bx, by)
        got = layer.locate_xy(x, y)
        assert (got == big).sum() > 5_000 and ((got >= 0) & (got != big)).sum() > 5_000
        assert stats["fallback_points"] == 0
    # many huge overlapping polygons: the cells grow rather than the entries explode
    boxes = [shapely.box(X0 - i, Y0 - i, X0 + SIZE + i, Y0 + SIZE + i) for i in range(60)]
    layer = layer_of(cells + boxes)
    grid = layer.rings.grid
    assert len(grid.entry) <= 16 * (len(cells) + 60)
    check(layer, x[:5_000], y[:5_000])


def test_single_polygon_layer():
    tri = shapely.Polygon([(10.0, 10.0), (14.0, 10.0), (10.0, 13.0)])
    layer = layer_of([tri])
    nx, ny = layer.rings.grid.shape
    assert nx * ny <= 4 and layer.rings.grid.entry.tolist() == [0] * (nx * ny)
    g = np.arange(8.0, 16.01, 0.25)
    x, y = (a.ravel() for a in np.meshgrid(g, g))
    check(layer, x, y)
    got = layer.locate_xy(np.array([11.0, 14.0, 14.0, 10.0, 12.0, 13.9, 9.99]),
                          np.array([11.0, 10.0, 13.0, 13.0, 11.5, 12.9, 11.0]))
    assert got.tolist() == [0, 0, -1, 0, 0, -1, -1]  # bbox corner (14, 13) and (13.9, 12.9): outside
    check(layer, *bbox_edge_points(np.array([tri]), np.random.default_rng(1)))
    square = layer_of([shapely.box(0, 0, 1, 1)])
    got = square.locate_xy(np.array([0.0, 1.0, 0.5, 1.0 + 1e-12]), np.array([0.0, 1.0, 0.5, 0.5]))
    assert got.tolist() == [0, 0, 0, -1]


def test_points_outside_the_grid_extent(voronoi_layer):
    x0, y0, x1, y1 = voronoi_layer.rings.grid.extent
    rng = np.random.default_rng(6)
    far = np.array([-1e300, 1e300, np.inf, -np.inf, x0 - 1, x1 + 1, x1 + 1e6])
    x = np.concatenate([far, np.nextafter(np.full(4, x0), -np.inf), rng.uniform(x0, x1, 4),
                        np.nextafter(np.full(4, x1), np.inf)])
    y = np.concatenate([np.full(len(far), (y0 + y1) / 2), rng.uniform(y0, y1, 4),
                        np.nextafter(np.array([y0, y0, y1, y1]), np.array([-np.inf, -np.inf, np.inf, np.inf])),
                        rng.uniform(y0, y1, 4)])
    stats = check(voronoi_layer, x, y)
    assert (voronoi_layer.locate_xy(x, y) == -1).all()
    assert stats["pairs"] == 0 and stats["fallback_points"] == 0
    # the extent's own edges and corners are inside (closed), as with the STRtree
    check(voronoi_layer, np.array([x0, x1, x0, x1]), np.array([y0, y0, y1, y1]))


def test_nan_coordinates_are_outside(voronoi_layer, two_layer_geocoder):
    nan = np.nan
    x = np.array([nan, X0 + 500.0, nan, X0 + 500.0, np.inf, -np.inf])
    y = np.array([Y0 + 500.0, nan, nan, Y0 + 500.0, nan, Y0 + 500.0])
    got = voronoi_layer.locate_xy(x, y)
    assert got[[0, 1, 2, 4, 5]].tolist() == [-1] * 5 and got[3] >= 0
    check(voronoi_layer, x, y)
    pts = np.array([shapely.Point(nan, nan), shapely.Point(X0 + 500.0, nan), shapely.Point(X0 + 500.0, Y0 + 500.0)])
    assert voronoi_layer.locate(pts).tolist() == [-1, -1, got[3]]
    placed = two_layer_geocoder.place(x, y, "EPSG:27700")
    for role, idx in placed.indices.items():
        assert idx[[0, 1, 2, 4, 5]].tolist() == [-1] * 5 and idx[3] >= 0, role


def test_degenerate_geometries_match_geos():
    """Empty and missing geometries have no envelope (never candidates); zero-width and zero-size
    envelopes are candidates on their closed box; non-polygonal geometries go to shapely."""
    geoms = [
        shapely.box(0, 0, 2, 2),
        shapely.Polygon(),  # empty: no envelope
        None,
        shapely.LineString([(3, 0), (3, 2)]),  # zero-width bbox
        shapely.Point(4, 1),  # zero-size bbox
        shapely.MultiPolygon([shapely.box(0, 3, 1, 4), shapely.box(10, 3, 11, 4)]),
        shapely.MultiPolygon([shapely.box(5, 0, 6, 1), shapely.Polygon()]),  # an empty part
        shapely.box(1, 1, 3, 3),
    ]
    layer = layer_of(geoms)
    assert not layer.rings.ok[[2, 3, 4]].any() and layer.rings.ok[[0, 1, 5, 6, 7]].all()
    assert len(layer.rings.grid.odd) == 0
    g = np.arange(-1, 12.01, 0.5)
    x, y = (a.ravel() for a in np.meshgrid(g, np.arange(-1, 5.01, 0.5)))
    x = np.concatenate([x, [3.0, 4.0, 1e6, np.inf, np.nan]])
    y = np.concatenate([y, [1.0, 1.0, 0.5, 0.5, 0.5]])
    stats = check(layer, x, y)
    assert stats["fallback_points"] > 0
    # nothing with an envelope at all: every point outside
    empty = layer_of([shapely.Polygon(), None])
    assert empty.locate_xy(np.array([0.0, np.nan]), np.array([0.0, 0.0])).tolist() == [-1, -1]
    check(empty, np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    # an extent too wide for floating point (its width overflows): one column of cells, still exact
    wide = layer_of([shapely.box(-1e308, 0, 1e308, 1), shapely.box(0, 0, 1, 1), shapely.box(1e307, 0.5, 1.1e307, 2)])
    check(wide, np.array([0.5, 1e308, -1e308, 1.05e307, 1.05e307, 2.0, 0.5]),
          np.array([0.5, 0.5, 1.0, 0.75, 1.5, 2.0, 1.0]))


def test_non_finite_vertices_keep_the_pairwise_answer():
    """Infinite or NaN vertices: GEOS's predicate raises on them, so there is no oracle; the answer is
    the kernel's on the STRtree's candidates, as before the grid. An infinite envelope is in no cell: it
    is tested for every point, also outside the grid, with GEOS's envelope test."""
    with np.errstate(invalid="ignore"):
        nan_vertex = shapely.Polygon([(8, 0), (9, np.nan), (9, 2), (8, 0)])
    geoms = [shapely.box(0, 0, 2, 2), shapely.box(5, 0, np.inf, 1), nan_vertex, shapely.box(1, 1, 3, 3)]
    layer = layer_of(geoms)
    assert layer.rings.grid.odd.tolist() == [1]
    x = np.array([0.5, 1.5, 2.5, 6.0, 1e9, np.inf, 8.5, 8.9, 5.0, np.nan, 6.0, -1.0])
    y = np.array([0.5, 1.5, 2.5, 0.5, 0.5, 0.5, 0.5, 1.5, 1.0, 0.5, np.nan, 0.5])
    stats: dict = {}
    got = layer.locate_xy(x, y, stats=stats)
    assert stats["pairs"] == check_candidates(layer, x, y) and stats["fallback_points"] == 0
    t_pt, t_poly = layer.tree.query(shapely.points(x, y))
    expected = np.full(len(x), -1)
    for i, j in sorted(zip(t_pt, t_poly), key=lambda p: p[1], reverse=True):
        r = layer.rings
        s = pip._intersects(x[i], y[i], j, r.part_ptr, r.ring_ptr, r.coord_ptr, r.bbox, r.coords, r.ok)
        assert s != pip.PAIR_UNDECIDED
        if s == pip.PAIR_YES:
            expected[i] = j
    np.testing.assert_array_equal(got, expected)
    assert got[:4].tolist() == [0, 0, 3, 1] and got[-3:].tolist() == [-1, -1, -1]
    np.testing.assert_array_equal(layer.locate(shapely.points(x, y)), expected)


def test_grid_sizing():
    """Cells about the median bbox (1-4 polygons touch a cell), bounded cells and entries per polygon."""
    squares = [shapely.box(i, j, i + 4, j + 4) for j in range(0, 400, 4) for i in range(0, 400, 4)]
    grid = layer_of(squares).rings.grid
    assert grid.shape == (100, 100) and np.diff(grid.cell_ptr).max() <= 4
    x = np.random.default_rng(2).uniform(-10, 410, 2_000)
    check(layer_of(squares), x, x[::-1].copy())
    # a sparse outlier far away: the cell count stays bounded (cells grow), the answer exact
    far = squares + [shapely.box(1e7, 1e7, 1e7 + 4, 1e7 + 4)]
    layer = layer_of(far)
    nx, ny = layer.rings.grid.shape
    assert nx * ny <= 1.01 * max(4 * len(far), 1 << 16) + 1 and len(layer.rings.grid.entry) <= 16 * len(far)
    assert np.diff(layer.rings.grid.cell_ptr).max() <= 100
    check(layer, np.concatenate([x, [1e7 + 1, 5e6]]), np.concatenate([x[::-1], [1e7 + 1, 5e6]]))


@pytest.fixture(scope="module")
def two_layer_geocoder(voronoi_layer):
    cells = voronoi_layer.tree.geometries
    wards = [shapely.box(X0 + i, Y0 + j, X0 + i + 5_000, Y0 + j + 5_000)
             for j in range(0, 20_000, 5_000) for i in range(0, 20_000, 5_000)]
    return Geocoder.from_frames({"lsoa21": frame(cells), "ward": frame(wards, "E05")})


def test_place_lonlat_equals_reprojecting_every_row(two_layer_geocoder, voronoi_layer):
    geo = two_layer_geocoder
    rng = np.random.default_rng(21)
    v = voronoi_layer.rings.coords[::7]
    ex = np.concatenate([rng.uniform(X0 - 300, X0 + SIZE + 300, 4_000), v[:, 0]])
    ey = np.concatenate([rng.uniform(Y0 - 300, Y0 + SIZE + 300, 4_000), v[:, 1]])
    lon, lat = bng_to_lonlat(ex, ey)
    lon, lat = np.round(lon, 6), np.round(lat, 6)  # police.uk precision
    pick = rng.integers(0, len(lon), 40_000)
    lon, lat = lon[pick], lat[pick]
    placed = geo.place(lon, lat, "EPSG:4326")
    assert isinstance(placed, Placement)
    e, n = lonlat_to_bng(lon, lat)
    np.testing.assert_array_equal(placed.easting, e)
    np.testing.assert_array_equal(placed.northing, n)
    expected = reference_assign_indices(geo, e, n)
    assert placed.indices.keys() == expected.keys() == geo.assign_indices(e, n).keys()
    for role in expected:
        np.testing.assert_array_equal(placed.indices[role], expected[role])
        np.testing.assert_array_equal(geo.assign_indices(e, n)[role], expected[role])
        assert placed.indices[role].dtype == np.int64
    # duplicates broadcast: rows with the same input location get the same answer
    same = np.flatnonzero(pick == pick[0])
    assert len({(placed.easting[i], placed.indices["lsoa21"][i]) for i in same}) == 1
    assert (placed.indices["lsoa21"] >= 0).any() and (placed.indices["lsoa21"] == -1).any()


def test_place_bng_and_empty(two_layer_geocoder):
    geo = two_layer_geocoder
    rng = np.random.default_rng(5)
    x = np.repeat(rng.uniform(X0, X0 + SIZE, 500), 3)
    y = np.repeat(rng.uniform(Y0, Y0 + SIZE, 500), 3)
    placed = geo.place(x, y, "EPSG:27700")
    np.testing.assert_array_equal(placed.easting, x)
    np.testing.assert_array_equal(placed.northing, y)
    expected = reference_assign_indices(geo, x, y)
    for role in expected:
        np.testing.assert_array_equal(placed.indices[role], expected[role])
    mask = np.arange(len(x)) % 4 == 1
    for rows in (mask, np.flatnonzero(mask)):
        sub = placed.subset(rows)
        np.testing.assert_array_equal(sub.easting, x[mask])
        np.testing.assert_array_equal(sub.northing, y[mask])
        assert all(np.array_equal(sub.indices[r], placed.indices[r][mask]) for r in placed.indices)
    out = geo.assign(x, y)
    assert out["in_area"].all() and out["lsoa21"][0] == geo.layers["lsoa21"].codes[placed.indices["lsoa21"][0]]
    empty = geo.place(np.empty(0), np.empty(0), "EPSG:4326")
    assert empty.easting.shape == empty.northing.shape == (0,)
    assert all(v.shape == (0,) and v.dtype == np.int64 for v in empty.indices.values())
    assert set(empty.indices) == set(geo.layers)
    with pytest.raises(ValueError):
        geo.place(x, y, "EPSG:3857")


PIP_WARM_UP_PROBE = """
import json
import numpy as np
import shapely
from hotspots import pip
entry = ("_fill_grid", "locate_grid", "factorize_pairs")
before = {n: len(getattr(pip, n).signatures) for n in entry}
pip.warm_up()
after = {n: len(getattr(pip, n).signatures) for n in entry}
tree = shapely.STRtree(np.array([shapely.box(0, 0, 2, 2), shapely.box(2, 0, 4, 2)]))
x, y = np.array([1.0, 2.0, 3.0, 5.0, 2.0]), np.array([1.0, 1.0, 2.0, 1.0, 2.0 + 1e-9])
print(json.dumps([before, after, pip.locate(tree, pip.build_rings(tree.geometries), x, y).tolist()]))
"""


def test_warm_up_compiles_the_kernels_and_answers_stay_geos():
    """In a fresh process: no kernel is ready before ``warm_up``, the entry kernels are after it, and a
    call afterwards gives GEOS's answer (interior, shared edge -> smallest index, corner, outside, just
    above the top edge)."""
    import json
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", PIP_WARM_UP_PROBE], capture_output=True, text=True, check=True,
                         timeout=300)
    before, after, got = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(before.values()) == {0}
    assert all(n >= 1 for n in after.values()), after
    tree = shapely.STRtree(np.array([shapely.box(0, 0, 2, 2), shapely.box(2, 0, 4, 2)]))
    assert got == reference_locate(tree, shapely.points([1.0, 2.0, 3.0, 5.0, 2.0],
                                                        [1.0, 1.0, 2.0, 1.0, 2.0 + 1e-9])).tolist()
    assert got == [0, 0, 1, -1, -1]


@pytest.mark.bundle
def test_real_wolverhampton_lsoa21(real_bundle):
    gdf = gpd.read_file(real_bundle / "boundaries" / "wolverhampton_lsoa21_bgc.geojson")
    gdf = gdf.rename(columns={"LSOA21CD": "code", "LSOA21NM": "name"})[["code", "name", "geometry"]]
    layer = Geocoder.from_frames({"lsoa21": gdf}).layers["lsoa21"]
    v = layer.rings.coords
    xmin, ymin, xmax, ymax = shapely.total_bounds(layer.tree.geometries)
    rng = np.random.default_rng(8)
    x = np.concatenate([rng.uniform(xmin - 200, xmax + 200, 100_000), v[:, 0]])
    y = np.concatenate([rng.uniform(ymin - 200, ymax + 200, 100_000), v[:, 1]])
    stats = check(layer, x, y)
    assert stats["points"] == len(x)
    nudged = check(layer, np.nextafter(v[:, 0], np.inf), np.nextafter(v[:, 1], -np.inf))
    assert nudged["points"] == len(v)


def test_detailed_polygons_with_few_points_go_to_geos_with_the_same_answer(monkeypatch):
    """Polygons of about a thousand vertices queried with fewer than FEW_POINTS points are located by
    GEOS alone (measured faster there: benchmarks/pip.py); the answer equals the reference, and the
    kernel's on the same layer, on random points and on every vertex nudged one ulp either way."""
    cells = shapely.segmentize(tessellation(12, seed=9), 20.0)
    layer = layer_of(cells)
    assert layer.rings.mean_vertices > pip.DETAILED_VERTICES
    v = ring_vertices(layer)
    rng = np.random.default_rng(12)
    x = np.concatenate([rng.uniform(X0 - 100, X0 + SIZE + 100, 5_000), v[:, 0], np.nextafter(v[:, 0], np.inf),
                        v[:, 0]])
    y = np.concatenate([rng.uniform(Y0 - 100, Y0 + SIZE + 100, 5_000), v[:, 1], v[:, 1],
                        np.nextafter(v[:, 1], -np.inf)])
    assert len(x) < pip.FEW_POINTS
    expected = reference_locate(layer.tree, shapely.points(x, y))
    stats: dict = {}
    by_geos = layer.locate_xy(x, y, stats=stats)
    assert stats["geos_points"] == len(x) and "pairs" not in stats
    np.testing.assert_array_equal(by_geos, expected)
    monkeypatch.setattr(pip, "FEW_POINTS", 0)  # the kernel on the same layer and points
    stats = {}
    np.testing.assert_array_equal(layer.locate_xy(x, y, stats=stats), expected)
    assert stats["pairs"] > 0 and "geos_points" not in stats
    # NaN points keep the kernel's convention (-1) whichever engine would be chosen
    monkeypatch.undo()
    got = layer.locate_xy(np.array([np.nan, x[0]]), np.array([y[0], np.nan]))
    assert got.tolist() == [-1, -1]
