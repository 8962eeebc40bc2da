"""Optimized distance band: the Moran's I table equals esda over libpysal distance bands, the choice is
the first significant peak (found independently here), the no-peak fallback follows ArcGIS's rule,
and bad input is refused."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import shapely

from hotspots.errors import AnalysisError
from hotspots.grid import make_grid
from hotspots.scale import default_distances, optimized_distance

CELL = 100.0


def _grid_centroids(side_m: float = 4_000) -> np.ndarray:
    g = make_grid(shapely.box(390_000, 290_000, 390_000 + side_m, 290_000 + side_m), CELL)
    return shapely.get_coordinates(g.geometry.centroid)


def _clustered(xy: np.ndarray, seed: int = 1) -> np.ndarray:
    """Counts with blobs about 500 m across planted on a quiet background."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(xy.min(0) + 500, xy.max(0) - 500, (6, 2))
    lam = 1 + sum(12 * np.exp(-((xy - c) ** 2).sum(1) / (2 * 250.0 ** 2)) for c in centres)
    return rng.poisson(lam).astype(float)


def _esda_table(y, xy, distances):
    import esda
    import libpysal
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # libpysal/esda notices are theirs
        for d in distances:
            w = libpysal.weights.DistanceBand(xy, threshold=d * (1 + 1e-9), binary=True, silence_warnings=True)
            w.transform = "r"
            m = esda.Moran(y, w, permutations=0)
            out.append((m.I, m.z_rand, m.p_rand))
    return np.array(out)


def test_default_distances_on_a_grid_follow_arcgis():
    ds = default_distances(_grid_centroids())
    np.testing.assert_allclose(ds, CELL * np.arange(1, 11), rtol=1e-9)  # every cell's nearest neighbour is one cell away


def test_table_equals_esda_and_choice_is_the_first_significant_peak():
    xy = _grid_centroids()
    y = _clustered(xy)
    distance, table, text = optimized_distance(y, xy)
    ref = _esda_table(y, xy, table["distance_m"])
    np.testing.assert_allclose(table["I"], ref[:, 0], rtol=1e-9)
    np.testing.assert_allclose(table["z"], ref[:, 1], rtol=1e-9)
    np.testing.assert_allclose(table["p"], ref[:, 2], rtol=1e-6, atol=1e-300)
    z, p = ref[:, 1], ref[:, 2]
    peaks = [i for i in range(1, len(z) - 1) if z[i] > z[i - 1] and z[i] > z[i + 1] and p[i] <= 0.05]
    assert peaks, "the planted blobs should give a peak"
    assert distance == pytest.approx(table["distance_m"][peaks[0]])
    assert table["peak"].sum() == 1 and table["peak"][peaks[0]]
    assert text.startswith(f"The distance band chosen is {distance:,.0f} m: the first peak")
    assert (table["min_neighbours"] >= 1).all()


def test_no_peak_falls_back_to_the_average_k_nearest_neighbour_distance():
    from scipy.spatial import cKDTree
    xy = _grid_centroids(2_000)
    # A west-east trend: Moran's z rises with every distance, so there is no peak. (Pure noise is no
    # good here: one band in twenty is "significant" by chance, and then it may be a peak.)
    for values in (xy[:, 0] - xy[:, 0].min(), np.hypot(*(xy - xy.min(0)).T)):
        distance, table, text = optimized_distance(values, xy)
        assert not table["peak"].any()
        k = min(max(round(0.05 * len(xy)), 3), 30)
        d, _ = cKDTree(xy).query(xy, k=k + 1)
        sd = math.sqrt(((xy - xy.mean(0)) ** 2).sum(1).mean())
        assert distance == pytest.approx(min(d[:, k].mean(), sd), rel=1e-12)
        assert "no statistically significant peak" in text and f"{k} nearest neighbours" in text


def test_bad_input():
    xy = _grid_centroids(1_000)
    y = np.arange(len(xy), dtype=float)
    with pytest.raises(AnalysisError, match="at least 30 features"):
        optimized_distance(y[:20], xy[:20])
    with pytest.raises(AnalysisError, match="values for"):
        optimized_distance(y[:-1], xy)
    with pytest.raises(AnalysisError, match="increasing"):
        optimized_distance(y, xy, distances=[300, 200, 100])
    with pytest.raises(AnalysisError, match="the value is the same"):
        optimized_distance(np.ones(len(xy)), xy)
