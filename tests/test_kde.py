"""Kernel density: equal to a direct sum over every point × every cell (both kernels, with weights),
the quartic kernel integrates to 1, Gaussian equals scikit-learn, bandwidth rules by their formulas,
errors, the dual (per resident) KDE and the GeoTIFF round trip."""
from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from hotspots.errors import AnalysisError
from hotspots.grid import make_grid
from hotspots.kde import QUARTIC_PER_GAUSSIAN, bandwidth_rule, dual_kde, kde, write_geotiff

RNG = np.random.default_rng(11)
POINTS = np.c_[RNG.normal(390_000, 600, 700), RNG.normal(298_000, 400, 700)]
POINTS = np.vstack([POINTS, POINTS[:50], [[390_000.0, 298_000.0]] * 5])  # repeated locations, as police.uk snaps
WEIGHTS = RNG.integers(0, 4, len(POINTS)).astype(float)


def _targets(step: float = 50.0) -> np.ndarray:
    gx, gy = np.meshgrid(np.arange(388_000, 392_000, step) + step / 2, np.arange(296_500, 299_500, step) + step / 2)
    return np.c_[gx.ravel(), gy.ravel()]


def direct(points, targets, h, kernel, weights=None):
    """Every point × every target in plain numpy, from the formulas in docs/methods.md."""
    w = np.ones(len(points)) if weights is None else weights
    d2 = (targets[:, None, 0] - points[None, :, 0]) ** 2 + (targets[:, None, 1] - points[None, :, 1]) ** 2
    u2 = d2 / h ** 2
    if kernel == "quartic":
        k = np.where(u2 < 1, 3 / math.pi * (1 - u2) ** 2, 0.0)
    else:
        k = np.exp(-u2 / 2) / (2 * math.pi)
    return (k * w).sum(axis=1) / h ** 2 * 1e6


@pytest.mark.parametrize("kernel", ["quartic", "gaussian"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("h", [150.0, 400.0])
def test_kde_equals_direct_sum(kernel, weighted, h):
    t = _targets(100.0)
    w = WEIGHTS if weighted else None
    got = kde(POINTS, t, h, kernel, weights=w)
    want = direct(POINTS, t, h, kernel, w)
    assert (want > 0).sum() > 100
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


def test_quartic_kernel_integrates_to_one():
    h, step = 1000.0, 5.0
    c = np.arange(-h, h, step) + step / 2
    gx, gy = np.meshgrid(c, c)
    dens = kde([[0.0, 0.0]], np.c_[gx.ravel(), gy.ravel()], h)
    assert dens.sum() * (step / 1000) ** 2 == pytest.approx(1.0, abs=1e-4)
    assert dens.max() == pytest.approx(3 / math.pi / h ** 2 * 1e6, rel=1e-4)  # peak 3/(πh²)


def test_gaussian_equals_scikit_learn():
    from sklearn.neighbors import KernelDensity
    t = np.vstack([_targets(100.0), [[393_000.0, 301_000.0], [386_000.0, 295_500.0]]])  # and 2 cells far away
    h = 300.0
    ours = kde(POINTS, t, h, "gaussian")
    skl = KernelDensity(kernel="gaussian", bandwidth=h).fit(POINTS)
    ref = np.exp(skl.score_samples(t)) * len(POINTS) * 1e6  # sklearn: probability density per m²
    assert ref.min() < 1e-6 * ref.max()  # cells far from every incident are compared too
    np.testing.assert_allclose(ours, ref, rtol=1e-9)


def test_points_far_away_and_targets_far_away():
    far = np.array([[0.0, 0.0], [700_000.0, 1_200_000.0]])
    dens = kde(far, np.array([[0.0, 0.0], [350_000.0, 600_000.0]]), 500)
    assert dens[0] == pytest.approx(3 / math.pi / 500 ** 2 * 1e6) and dens[1] == 0.0


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "wide"])
def test_bad_bandwidth(bad):
    with pytest.raises(AnalysisError, match="bandwidth"):
        kde(POINTS, _targets(), bad)


def test_bandwidth_smaller_than_cell_and_other_bad_input():
    with pytest.raises(AnalysisError, match="smaller than the cell size 250 m"):
        kde(POINTS, _targets(), 200, cell_m=250)
    with pytest.raises(AnalysisError, match="kernel"):
        kde(POINTS, _targets(), 400, kernel="epanechnikov")
    with pytest.raises(AnalysisError, match="non-finite"):
        kde(np.vstack([POINTS, [[np.nan, 1.0]]]), _targets(), 400)
    with pytest.raises(AnalysisError, match="weights"):
        kde(POINTS, _targets(), 400, weights=-WEIGHTS)


def test_arcgis_bandwidth_rule_formula():
    h, text = bandwidth_rule(POINTS, "arcgis")
    c = POINTS.mean(axis=0)
    d = np.hypot(*(POINTS - c).T)
    sd = math.sqrt((d ** 2).mean())
    expected = 0.9 * min(sd, math.sqrt(1 / math.log(2)) * np.median(d)) * len(POINTS) ** -0.2
    # np.median averages the two middle values of an even count; the weighted median takes the lower one.
    assert h == pytest.approx(expected, rel=1e-3)
    assert "ArcGIS" in text and f"{h:,.0f} m" in text


def test_silverman_rule_and_quartic_factor():
    hg, _ = bandwidth_rule(POINTS, "silverman", kernel="gaussian")
    sigma = math.sqrt((POINTS.var(axis=0)).mean())
    assert hg == pytest.approx(sigma * len(POINTS) ** (-1 / 6), rel=1e-12)
    hq, text = bandwidth_rule(POINTS, "silverman", kernel="quartic")
    assert hq == pytest.approx(hg * 2.78, rel=1e-3) and QUARTIC_PER_GAUSSIAN == pytest.approx(2.779, abs=1e-3)
    with pytest.raises(AnalysisError, match="rule"):
        bandwidth_rule(POINTS, "scott")


def test_dual_kde_is_the_ratio_of_two_direct_sums():
    res = np.c_[RNG.uniform(388_500, 391_500, 40), RNG.uniform(297_000, 299_000, 40)]
    pop = RNG.integers(1_000, 2_000, 40).astype(float)
    t = _targets(100.0)
    got = dual_kde(POINTS, res, pop, t, 600)
    num, den = direct(POINTS, t, 600, "quartic"), direct(res, t, 600, "quartic", pop)
    ok = den > 0
    np.testing.assert_allclose(got[ok], 1000 * num[ok] / den[ok], rtol=1e-12)
    assert np.isnan(got[~ok]).all() and (~ok).any()


def test_geotiff_round_trip(tmp_path):
    import rasterio
    area = shapely.Point(390_000, 298_000).buffer(1_500)
    g = make_grid(area, 100)
    c = shapely.get_coordinates(g.geometry.centroid)
    dens = kde(POINTS, c, 400)
    path = write_geotiff(dens, g, tmp_path / "kde.tif", {"bandwidth_m": 400, "kernel": "quartic"})
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 27700 and src.res == (100.0, 100.0)
        assert src.tags()["bandwidth_m"] == "400" and src.tags()["kernel"] == "quartic"
        band = src.read(1)
        west, north = src.transform.c, src.transform.f
        rows = np.floor((north - c[:, 1]) / 100).astype(int)
        cols = np.floor((c[:, 0] - west) / 100).astype(int)
        np.testing.assert_array_equal(band[rows, cols], dens)
        assert np.isnan(band).sum() == band.size - len(g)  # corners outside the circle are NoData
    with pytest.raises(AnalysisError, match="square grid"):
        write_geotiff(np.zeros(len(h := make_grid(area, 200, "hex"))), h, tmp_path / "hex.tif")
