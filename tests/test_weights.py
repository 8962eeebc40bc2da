"""Spatial weights: spec parsing, contiguity against an arithmetic lattice and libpysal/pygeoda,
knn and distance bands, islands, immutability and the cache."""
from __future__ import annotations

import numpy as np
import pytest

from cities import ISLAND_ID, grid_city, lattice
from hotspots.errors import AnalysisError
from hotspots.weights import (SpatialWeights, WeightsSpec, build_weights, clear_cache, from_matrix,
                              parse_spec)


@pytest.mark.parametrize("spec, expected", [
    ("queen", WeightsSpec("queen")), ("ROOK", WeightsSpec("rook")), ("knn:8", WeightsSpec("knn", 8.0)),
    ("distance:800", WeightsSpec("distance", 800.0)), (" distance : 150.5 ", WeightsSpec("distance", 150.5)),
])
def test_parse_spec(spec, expected):
    assert parse_spec(spec) == expected
    assert str(parse_spec(str(expected))) == str(expected)


@pytest.mark.parametrize("bad", ["", "queens", "knn", "knn:0", "knn:2.5", "distance", "distance:0",
                                 "queen:3", "distance:-5", "kernel:3"])
def test_bad_spec_is_a_clear_error(bad):
    with pytest.raises(AnalysisError, match="weights spec"):
        parse_spec(bad)


@pytest.mark.parametrize("rook", [False, True])
def test_grid_contiguity_equals_arithmetic_lattice(rook):
    city = grid_city(10)
    w = build_weights(city, "rook" if rook else "queen", id_col="code")
    expected = lattice(10, queen=not rook)
    assert (w.matrix != expected).nnz == 0
    assert w.islands == () and w.n_components == 1
    assert w.cardinalities.max() == (4 if rook else 8)
    assert w.matrix.diagonal().sum() == 0


def test_island_is_reported():
    w = build_weights(grid_city(10, island=True), "queen", id_col="code")
    assert w.islands == (ISLAND_ID,)
    assert w.n_components == 2
    assert w.cardinalities[w.ids.index(ISLAND_ID)] == 0


def test_knn_and_distance_band():
    city = grid_city(10)
    knn = build_weights(city, "knn:4", id_col="code")
    assert (knn.cardinalities == 4).all()
    assert knn.matrix.diagonal().sum() == 0
    band = build_weights(city, "distance:100", id_col="code")  # centroids 100 m apart = rook
    assert (band.matrix != lattice(10, queen=False)).nnz == 0
    band2 = build_weights(city, "distance:142", id_col="code")  # diagonal 141.4 m = queen
    assert (band2.matrix != lattice(10, queen=True)).nnz == 0
    far = build_weights(grid_city(10, island=True), "distance:500", id_col="code")
    assert far.islands == (ISLAND_ID,)


def test_crs_is_checked():
    city = grid_city(4)
    with pytest.raises(AnalysisError, match="geographic"):
        build_weights(city.to_crs(4326), "queen")
    with pytest.raises(AnalysisError, match="no CRS"):
        build_weights(city.set_crs(None, allow_override=True), "queen")


def test_weights_are_immutable_and_cached(tmp_path):
    clear_cache()
    city = grid_city(6)
    w1 = build_weights(city, "queen", id_col="code", cache_dir=tmp_path)
    assert build_weights(city, "queen", id_col="code") is w1  # memory hit
    assert list(tmp_path.glob("weights-*.npz"))
    with pytest.raises(ValueError):
        w1.matrix.data[0] = 5.0
    with pytest.raises(Exception):
        w1.spec = "rook"  # frozen dataclass
    clear_cache()
    w2 = build_weights(city, "queen", id_col="code", cache_dir=tmp_path)  # disk hit
    assert w2 is not w1 and (w2.matrix != w1.matrix).nnz == 0 and w2.ids == w1.ids
    moved = city.copy()
    moved["geometry"] = moved.translate(1.0, 0.0)
    assert build_weights(moved, "queen", id_col="code") is not w2  # geometry is part of the key


def test_from_matrix_drops_self_loops():
    m = lattice(3).tolil()
    m.setdiag(1)
    w = from_matrix(m.tocsr(), ids=list("abcdefghi"))
    assert isinstance(w, SpatialWeights) and w.matrix.diagonal().sum() == 0
    assert list(w.neighbours(0)) == [1, 3, 4]


@pytest.mark.bundle
def test_queen_and_rook_equal_libpysal_and_pygeoda_on_wolverhampton(real_bundle):
    import geopandas as gpd
    import libpysal
    pygeoda = pytest.importorskip("pygeoda")
    g = gpd.read_file(real_bundle / "boundaries" / "wolverhampton_lsoa21_bgc.geojson").to_crs(27700)
    assert len(g) == 161
    q = build_weights(g, "queen", id_col="LSOA21CD")
    r = build_weights(g, "rook", id_col="LSOA21CD")
    lq = libpysal.weights.Queen.from_dataframe(g, use_index=False, silence_warnings=True)
    lr = libpysal.weights.Rook.from_dataframe(g, use_index=False, silence_warnings=True)
    assert (q.matrix != (lq.sparse > 0)).nnz == 0
    assert (r.matrix != (lr.sparse > 0)).nnz == 0
    gw = pygeoda.queen_weights(pygeoda.open(g))
    for i in range(q.n):
        assert sorted(gw.get_neighbors(i)) == q.neighbours(i).tolist()
    assert q.islands == () and q.n_components == 1
    assert np.isclose(q.cardinalities.mean(), gw.mean_neighbors())


def test_holes_and_multipolygons():
    """Rings other than the exterior: a hole with a polygon inside it, and a two-part area."""
    import geopandas as gpd
    from shapely.geometry import MultiPolygon, Polygon, box
    donut = Polygon([(0, 0), (300, 0), (300, 100), (300, 300), (0, 300)], [[(100, 100), (200, 100), (200, 200), (100, 200)]])
    inner = box(100, 100, 200, 200)
    east = box(300, 0, 400, 100)  # shares the edge (300, 0)-(300, 100) with the donut
    pair = MultiPolygon([box(400, 0, 500, 100), box(300, 300, 400, 400)])  # edge with east, corner with donut
    far = box(1000, 1000, 1100, 1100)
    g = gpd.GeoDataFrame({"code": list("abcde")}, geometry=[donut, inner, east, pair, far], crs=27700)
    q = build_weights(g, "queen", id_col="code")
    r = build_weights(g, "rook", id_col="code")
    nb = lambda w, i: {w.ids[j] for j in w.neighbours(i)}  # noqa: E731
    assert nb(q, 0) == {"b", "c", "d"} and nb(r, 0) == {"b", "c"}
    assert nb(q, 3) == {"a", "c"} and nb(r, 3) == {"c"}
    assert q.islands == ("e",) and r.islands == ("e",)
    assert (q.matrix != q.matrix.T).nnz == 0 and (r.matrix != r.matrix.T).nnz == 0


def test_corrupt_disk_cache_is_a_miss(tmp_path):
    """A truncated cache file (two writers, a full disk) must not break every later analysis."""
    from cities import grid_city
    from hotspots import weights as W
    city = grid_city(5)
    w1 = W.build_weights(city, "queen", cache_dir=tmp_path)
    files = list(tmp_path.glob("weights-*.npz"))
    assert len(files) == 1
    files[0].write_bytes(files[0].read_bytes()[:20])
    W.clear_cache()
    w2 = W.build_weights(city, "queen", cache_dir=tmp_path)
    assert (w1.matrix != w2.matrix).nnz == 0
