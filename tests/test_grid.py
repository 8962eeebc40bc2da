"""Grids: lattice alignment and codes, clipping shares, hexagon geometry, caps and bad sizes, the exact
point-to-cell rule against a brute-force GEOS check, and weights and Gi* on grid cells."""
from __future__ import annotations

import math
import warnings

import geopandas as gpd
import numpy as np
import pytest
import shapely
from scipy.spatial import cKDTree

from hotspots.errors import AnalysisError
from hotspots.grid import MIN_CELL_M, assign_cells, auto_cell_size, make_grid
from hotspots.stats import gi_star
from hotspots.weights import build_weights

CENTRE = (390_010.0, 298_020.0)
AREA = shapely.Point(*CENTRE).buffer(2_000, quad_segs=32)


def test_square_grid_codes_shares_and_coverage():
    g = make_grid(AREA, 250)
    assert g.crs.to_epsg() == 27700
    assert g["code"].is_unique and list(g["code"]) == sorted(g["code"])
    for code, cell in zip(g["code"], g.geometry):
        minx, miny, maxx, maxy = cell.bounds
        assert (maxx - minx, maxy - miny) == (250.0, 250.0)
        assert minx % 250 == 0 and miny % 250 == 0  # national-grid aligned
        assert code == f"sq250_E{minx:.0f}_N{miny:.0f}"
    clipped_area = shapely.area(np.asarray(g["clipped"].values))
    np.testing.assert_allclose(g["share_inside"], clipped_area / 250 ** 2, rtol=1e-12)
    assert clipped_area.sum() == pytest.approx(AREA.area, rel=1e-9)  # every bit of the area is covered once
    assert (g["share_inside"] > 0).all() and (g["share_inside"] <= 1).all()
    assert (g["partial"] == (g["share_inside"] < 1 - 1e-9)).all()
    assert g["partial"].any() and (~g["partial"]).any()
    # Cells kept are exactly the lattice cells that overlap the area with positive area.
    x0 = math.floor((CENTRE[0] - 2000) / 250) * 250
    y0 = math.floor((CENTRE[1] - 2000) / 250) * 250
    expected = set()
    for x in np.arange(x0, CENTRE[0] + 2000, 250):
        for y in np.arange(y0, CENTRE[1] + 2000, 250):
            if shapely.intersection(shapely.box(x, y, x + 250, y + 250), AREA).area > 0:
                expected.add(f"sq250_E{x:.0f}_N{y:.0f}")
    assert set(g["code"]) == expected


def test_nested_grids_align():
    small, big = make_grid(AREA, 250), make_grid(AREA, 500)
    big_codes = set(big["code"])
    for cell in small.geometry:
        minx, miny = cell.bounds[:2]
        parent = f"sq500_E{math.floor(minx / 500) * 500:.0f}_N{math.floor(miny / 500) * 500:.0f}"
        assert parent in big_codes
        assert shapely.contains(big.geometry[list(big["code"]).index(parent)], cell)


def test_hex_grid_geometry():
    w = 300.0
    g = make_grid(AREA, w, shape="hex")
    assert g["code"].str.startswith("hx300_E").all() and g["code"].is_unique
    np.testing.assert_allclose(g.geometry.area, w * w * math.sqrt(3) / 2, rtol=1e-12)
    c = shapely.get_coordinates(g.geometry.centroid)
    d, _ = cKDTree(c).query(c, k=2)
    np.testing.assert_allclose(d[:, 1], w, rtol=1e-9)  # neighbouring centres are one width apart
    assert shapely.area(np.asarray(g["clipped"].values)).sum() == pytest.approx(AREA.area, rel=1e-9)
    # Neighbouring hexagons share edges exactly: queen contiguity finds 6 around an interior cell.
    w6 = build_weights(g[["code", "geometry"]], "rook", id_col="code")
    assert w6.cardinalities.max() == 6


def test_geodataframe_area_is_dissolved_and_checked():
    parts = gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1000, 1000), shapely.box(1000, 0, 2000, 1000)], crs=27700)
    g = make_grid(parts, 500)
    assert len(g) == 8 and not g["partial"].any()
    with pytest.raises(AnalysisError, match="EPSG:27700"):
        make_grid(parts.to_crs(4326), 500)


@pytest.mark.parametrize("bad", [0, -250, float("nan"), float("inf"), "abc", None, MIN_CELL_M / 2])
def test_bad_cell_size_is_a_clear_error(bad):
    with pytest.raises(AnalysisError, match="cell size"):
        make_grid(AREA, bad)


def test_cap_says_the_cap_and_the_count():
    with pytest.raises(AnalysisError, match=rf"about {AREA.area / 100:,.0f} cells .* cap of 1,000"):
        make_grid(AREA, 10, max_cells=1_000)
    n = len(make_grid(AREA, 250))  # the estimate passes but the exact count (boundary cells) does not
    with pytest.raises(AnalysisError, match=rf"would make {n:,} cells, more than the cap of {n - 1:,}"):
        make_grid(AREA, 250, max_cells=n - 1)
    with pytest.raises(AnalysisError, match="shape"):
        make_grid(AREA, 250, shape="triangle")


def _brute_force(x, y, g):
    codes = list(g["code"])
    out = []
    for px, py in zip(x, y):
        if not (np.isfinite(px) and np.isfinite(py)):
            out.append(-1)
            continue
        pt = shapely.Point(px, py)
        hits = [i for i, c in enumerate(g["clipped"]) if c.intersects(pt)]
        out.append(min(hits, key=lambda i: codes[i]) if hits else -1)
    return np.array(out)


@pytest.mark.parametrize("shape", ["square", "hex"])
def test_assign_cells_equals_brute_force_geos(shape):
    g = make_grid(AREA, 250, shape=shape)
    rng = np.random.default_rng(3)
    x = rng.uniform(CENTRE[0] - 2300, CENTRE[0] + 2300, 1500)  # many inside cells cut by the boundary
    y = rng.uniform(CENTRE[1] - 2300, CENTRE[1] + 2300, 1500)
    # Points on shared edges, on shared corners, on the area's boundary, and missing coordinates.
    corners = shapely.get_coordinates(g.geometry.values[:30])
    bx, by = shapely.get_coordinates(AREA.exterior)[:20].T
    x = np.concatenate([x, corners[:, 0], corners[:-1, 0] / 2 + corners[1:, 0] / 2, bx, [np.nan, 0.0]])
    y = np.concatenate([y, corners[:, 1], corners[:-1, 1] / 2 + corners[1:, 1] / 2, by, [0.0, np.nan]])
    got = assign_cells(x, y, g)
    np.testing.assert_array_equal(got, _brute_force(x, y, g))
    assert (got == -1).any() and (got >= 0).sum() > 1000
    cut = got >= 0
    cut[cut] = g["partial"].to_numpy()[got[cut]]
    assert cut.sum() > 100  # the one-predicate path for cut cells is exercised


def test_auto_cell_size_follows_the_stated_rule():
    rng = np.random.default_rng(4)
    xy = np.c_[rng.uniform(380_000, 392_345, 500), rng.uniform(290_000, 301_000, 500)]
    cell, text = auto_cell_size(xy)
    short = min(np.ptp(xy[:, 0]), np.ptp(xy[:, 1]))
    assert cell == max(50, (short / 50) // 50 * 50)
    assert f"{cell:,.0f} m" in text and "sfhotspot" in text and "50" in text
    with pytest.raises(AnalysisError, match="two incidents"):
        auto_cell_size(xy[:1])


def test_distance_and_knn_weights_on_grid_cells():
    g = make_grid(shapely.box(0, 0, 5000, 5000), 250)
    w = build_weights(g, "distance:500", id_col="code")
    # Centroid offsets within 500 m on a 250 m lattice: (±1,0),(0,±1),(±1,±1),(±2,0),(0,±2) → 12.
    c = shapely.get_coordinates(g.geometry.centroid)
    interior = ((c[:, 0] > 500) & (c[:, 0] < 4500) & (c[:, 1] > 500) & (c[:, 1] < 4500))
    assert set(w.cardinalities[interior].tolist()) == {12}
    assert w.islands == ()
    k = build_weights(g, "knn:8", id_col="code")
    assert (k.cardinalities == 8).all()


def test_islands_on_a_grid_are_reported():
    two_parts = shapely.MultiPolygon([shapely.box(0, 0, 2000, 2000), shapely.box(10_000, 0, 10_250, 250)])
    g = make_grid(two_parts, 250)
    w = build_weights(g, "distance:500", id_col="code")
    assert w.islands == ("sq250_E10000_N0",)
    y = np.arange(len(g), dtype=float) % 7
    res = gi_star(y, w)
    assert any("no neighbours" in m for m in res.warnings)
    assert res.labels[list(g["code"]).index("sq250_E10000_N0")] == "No neighbours"


def test_gi_star_on_grid_equals_esda_with_distance_band():
    import esda
    import libpysal
    g = make_grid(AREA, 200)
    rng = np.random.default_rng(5)
    y = rng.poisson(3, len(g)).astype(float)
    w = build_weights(g, "distance:500", id_col="code")
    ours = gi_star(y, w)
    c = shapely.get_coordinates(g.geometry.centroid)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # libpysal's island and esda's numba notices are theirs, not ours
        lw = libpysal.weights.DistanceBand(c, threshold=500, binary=True, silence_warnings=True)
        ref = esda.G_Local(y, lw, transform="B", star=True, permutations=0)
    np.testing.assert_allclose(ours.z, ref.Zs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("band", [250, 500, 600, 1000])
def test_lattice_distance_weights_equal_the_geometric_weights(band):
    from hotspots.grid import lattice_distance_weights
    area = AREA.union(shapely.box(385_010, 296_000, 386_140, 302_500))  # a thin arm: cells cut on both sides
    g = make_grid(area, 250)
    geo = build_weights(g, f"distance:{band}", id_col="code")
    lat = lattice_distance_weights(g, band)
    assert lat.ids == geo.ids and lat.spec == geo.spec
    assert (lat.matrix != geo.matrix).nnz == 0 and lat.matrix.nnz == geo.matrix.nnz > 0
    np.testing.assert_array_equal(lat.cardinalities, geo.cardinalities)
    with pytest.raises(AnalysisError, match="square grid"):
        lattice_distance_weights(make_grid(AREA, 250, "hex"), band)


@pytest.mark.parametrize("shape", ["square", "hex"])
def test_cells_geojson_equals_geopandas_to_json(shape):
    import json
    from hotspots.grid import cell_geometry_texts, cells_geojson
    g = make_grid(AREA, 250, shape)
    n = len(g)
    z = np.linspace(-3, 3, n)
    z[2] = np.nan
    props = {"code": g["code"].to_numpy(), "count": np.arange(n), "gi_z": z, "partial": g["partial"].to_numpy(),
             "label": np.where(z > 0, "Hot spot – 99 %", "Not significant")}
    ours = json.loads(cells_geojson(g["clipped"].to_numpy(), props))
    ref = json.loads(gpd.GeoDataFrame(props, geometry=g["clipped"].values, crs=27700).to_crs(4326).to_json())
    assert len(ours["features"]) == len(ref["features"]) == n
    for a, b in zip(ours["features"], ref["features"]):
        assert a["properties"] == {k: v for k, v in b["properties"].items()}
        pa, pb = shapely.geometry.shape(a["geometry"]), shapely.geometry.shape(b["geometry"])
        assert pa.is_valid and shapely.is_ccw(pa.exterior)  # RFC 7946: exteriors counter-clockwise
        assert pa.equals_exact(shapely.orient_polygons(pb), 1e-6)  # 6 decimals of a degree
    kept = cell_geometry_texts(g["clipped"].to_numpy())
    assert cells_geojson(g["clipped"].to_numpy(), props, geometry_texts=kept) == \
        cells_geojson(g["clipped"].to_numpy(), props)
    with pytest.raises(AnalysisError, match="values for"):
        cells_geojson(g["clipped"].to_numpy(), {"count": [1, 2]})
