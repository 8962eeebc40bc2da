"""Mann-Kendall and Sen's slope against pymannkendall; the change test against scipy.stats.binomtest."""
from __future__ import annotations

import numpy as np
import pytest

from hotspots.errors import AnalysisError
from hotspots.trend import (CHANGE_FALL, CHANGE_NO_BASELINE, CHANGE_NO_INCIDENTS, CHANGE_NONE, CHANGE_RISE,
                            count_change, mann_kendall, sens_slope)

pmk = pytest.importorskip("pymannkendall")
scipy_stats = pytest.importorskip("scipy.stats")

TREND_WORDS = {1: "increasing", -1: "decreasing", 0: "no trend"}


def series_cases() -> list[np.ndarray]:
    """Random, tied, constant, short, monotone and long series (the cases MK variants disagree on)."""
    rng = np.random.default_rng(20261130)
    cases = [rng.normal(size=12) for _ in range(30)]
    cases += [rng.integers(0, 4, size=12).astype(float) for _ in range(30)]  # many ties
    cases += [np.full(12, 3.0), np.zeros(12), np.arange(12.0), -np.arange(12.0),
              np.array([1.0, 2.0, 3.0]), np.array([3.0, 3.0, 1.0]), np.array([1.0, 1.0, 1.0, 2.0]),
              np.r_[np.zeros(6), np.ones(6)], rng.normal(size=40), rng.integers(0, 3, size=40).astype(float)]
    return cases


@pytest.mark.parametrize("alpha", [0.05, 0.10])
def test_mann_kendall_equals_pymannkendall_on_single_series(alpha):
    for y in series_cases():
        ours = mann_kendall(y, alpha=alpha)
        ref = pmk.original_test(y, alpha=alpha)
        assert float(ours.s) == ref.s
        assert float(ours.var_s) == pytest.approx(ref.var_s, rel=1e-15)
        assert float(ours.z) == pytest.approx(ref.z, rel=1e-14, abs=1e-15)
        assert float(ours.p) == pytest.approx(ref.p, rel=1e-12, abs=1e-15)
        assert float(ours.tau) == pytest.approx(ref.Tau, rel=1e-15)
        assert TREND_WORDS[int(ours.trend)] == ref.trend


def test_mann_kendall_rows_equal_the_single_series_and_pymannkendall():
    rng = np.random.default_rng(5)
    cube = rng.poisson(2.0, size=(300, 12)).astype(float)
    cube[0] = 4.0  # a constant row: S = 0, Var(S) = 0, z = 0, p = 1
    cube[1] = np.arange(12)
    many = mann_kendall(cube)
    assert many.s.shape == (300,)
    for i in range(300):
        ref = pmk.original_test(cube[i])
        assert many.s[i] == ref.s and many.var_s[i] == pytest.approx(ref.var_s, rel=1e-15)
        assert many.z[i] == pytest.approx(ref.z, rel=1e-14, abs=1e-15)
        assert many.p[i] == pytest.approx(ref.p, rel=1e-12, abs=1e-15)
        assert TREND_WORDS[int(many.trend[i])] == ref.trend
    assert (many.z[0], many.p[0], many.var_s[0]) == (0.0, 1.0, 0.0)
    assert many.trend[1] == 1 and many.tau[1] == 1.0


def test_mann_kendall_leaves_input_alone_and_refuses_bad_series():
    y = np.array([[1.0, 2.0, 3.0, 4.0]])
    mann_kendall(y)
    assert y.tolist() == [[1.0, 2.0, 3.0, 4.0]]
    with pytest.raises(AnalysisError, match="at least 3 time steps, got 2"):
        mann_kendall([1.0, 2.0])
    with pytest.raises(AnalysisError, match="non-finite"):
        mann_kendall([1.0, np.nan, 3.0, 4.0])
    with pytest.raises(AnalysisError, match="1-D"):
        mann_kendall(np.zeros((2, 3, 4)))


def test_sens_slope_equals_pymannkendall():
    for y in series_cases():
        slope, intercept = sens_slope(y)
        ref = pmk.sens_slope(y)
        assert slope == pytest.approx(ref.slope, rel=1e-15, abs=1e-15)
        assert intercept == pytest.approx(ref.intercept, rel=1e-15, abs=1e-15)
    rows = np.vstack([np.arange(12.0) * 2 + 1, np.full(12, 5.0)])
    slopes, intercepts = sens_slope(rows)
    assert slopes.tolist() == [2.0, 0.0] and intercepts.tolist() == [1.0, 5.0]


def _reference_change(ca: int, cb: int, ta: float, tb: float, alpha: float = 0.05):
    """scipy's binomtest p and Clopper-Pearson interval, turned into a rate ratio by hand."""
    n = ca + cb
    res = scipy_stats.binomtest(ca, n, ta / (ta + tb))
    ci = res.proportion_ci(1 - alpha, method="exact")

    def ratio(pi: float) -> float:
        return np.inf if pi >= 1 else pi / (1 - pi) * tb / ta

    return res.pvalue, ratio(ci.low), ratio(ci.high)


def test_count_change_equals_scipy_binomtest_and_its_exact_interval():
    rng = np.random.default_rng(11)
    ca = rng.integers(0, 60, 400)
    cb = rng.integers(1, 60, 400)
    ta = rng.uniform(0.5, 3.0, 400)
    tb = rng.uniform(0.5, 3.0, 400)
    ca[:5] = [0, 0, 7, 25, 3]  # zero after; k = p0·N exactly (p = 1) in the balanced rows below
    cb[:5] = [9, 1, 7, 25, 3]
    ta[2:5] = tb[2:5] = 1.0
    res = count_change(ca, cb, ta, tb)
    for i in range(400):
        p, lo, hi = _reference_change(int(ca[i]), int(cb[i]), ta[i], tb[i])
        assert res.p[i] == p  # bit-identical: the same "minlike" algorithm, vectorised
        # scipy finds the Clopper-Pearson bounds by root finding (tolerance ~1e-11); ours are the
        # closed-form beta quantiles.
        assert res.rate_ratio_low[i] == pytest.approx(lo, rel=1e-9, abs=1e-12)
        assert res.rate_ratio_high[i] == pytest.approx(hi, rel=1e-9)
        assert res.rate_ratio[i] == pytest.approx(ca[i] / ta[i] / (cb[i] / tb[i]), rel=1e-14)
    assert res.p[2] == res.p[3] == res.p[4] == 1.0


def test_count_change_matches_scipy_beta_quantiles_exactly():
    res = count_change([30], [50], alpha=0.10)
    lo = scipy_stats.beta.ppf(0.05, 30, 51)
    hi = scipy_stats.beta.ppf(0.95, 31, 50)
    assert res.rate_ratio_low[0] == lo / (1 - lo)
    assert res.rate_ratio_high[0] == hi / (1 - hi)
    assert res.pct_change[0] == pytest.approx(100 * (30 / 50 - 1))


def test_count_change_classes_and_the_whole_city_sentence():
    res = count_change([120, 40, 50, 0, 5, 0], [60, 90, 52, 0, 0, 4])
    assert res.labels == (CHANGE_RISE, CHANGE_FALL, CHANGE_NONE, CHANGE_NO_INCIDENTS, CHANGE_NO_BASELINE,
                          CHANGE_NONE)
    assert np.isnan(res.p[3]) and np.isnan(res.rate_ratio[3])
    assert res.rate_ratio[4] == np.inf and res.rate_ratio_high[4] == np.inf and res.rate_ratio_low[4] > 0
    assert res.rate_ratio[5] == 0 and res.rate_ratio_low[5] == 0
    # The Lambeth example: −3 %, and the interval says it could be noise.
    city = count_change(4403, 4546)
    assert city.labels == (CHANGE_NONE,)
    assert city.pct_change[0] == pytest.approx(-3.1456, abs=1e-4)
    assert city.pct_change_low[0] < 0 < city.pct_change_high[0]
    # Different lengths of period: 30 in 1 month against 30 in 3 months is a rise in the rate.
    assert count_change(30, 30, t_after=1, t_before=3).labels == (CHANGE_RISE,)


def test_count_change_fdr_uses_the_bh_cutoff_over_tested_areas():
    ca = np.array([30, 18, 14, 12, 10, 0])
    cb = np.array([10, 10, 10, 10, 10, 0])
    raw = count_change(ca, cb)
    adj = count_change(ca, cb, fdr=True)
    tested = raw.p[:5]
    m = len(tested)
    order = np.sort(tested)
    passing = [order[k] for k in range(m) if order[k] <= (k + 1) * 0.05 / m]
    assert adj.cutoff == (max(passing) if passing else 0.0)
    assert adj.significant.tolist() == [bool(p <= adj.cutoff) for p in tested] + [False]
    assert adj.significant.sum() <= raw.significant.sum()


def test_count_change_refuses_bad_counts():
    with pytest.raises(AnalysisError, match="whole numbers"):
        count_change([1.5], [2])
    with pytest.raises(AnalysisError, match="whole numbers"):
        count_change([-1], [2])
    with pytest.raises(AnalysisError, match="one pair per area"):
        count_change([1, 2], [2])
    with pytest.raises(AnalysisError, match="must be > 0"):
        count_change([1], [2], t_after=0)
    with pytest.raises(AnalysisError, match="one per area \\(2\\)"):
        count_change([1, 2], [2, 3], t_before=[1.0, 2.0, 3.0])
