"""Emerging hot spot analysis: space-time Gi* against a direct computation, the 17 outcomes on
hand-built series (and their borderline cases), Mann-Kendall against pymannkendall, bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from cities import lattice
from hotspots.emerging import (CATEGORY_CODES, MIN_STEPS, NO_PATTERN, classify_emerging, emerging_hotspots,
                               spacetime_gistar, spacetime_weights)
from hotspots.errors import AnalysisError
from hotspots.stats import LABEL_NO_NEIGHBOURS, fdr_cutoff, gi_star

pmk = pytest.importorskip("pymannkendall")

SIDE = 7


def lattice_with_island(side: int = SIDE) -> sp.csr_matrix:
    """A queen lattice plus one extra area with no neighbours (the last row)."""
    a = lattice(side)
    n = a.shape[0]
    return sp.bmat([[a, None], [None, sp.csr_matrix((1, 1))]], format="csr", dtype=float) if n else a


def planted_cube(n: int, steps: int = 12, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.poisson(3.0, size=(n, steps)).astype(float)
    x[:4, :] += np.linspace(2, 14, steps)  # a corner that heats up
    x[20:23, 8:] += 12  # a block that turns hot in the last steps
    return x


def direct_spacetime_gistar(x: np.ndarray, a: sp.spmatrix, k: int) -> np.ndarray:
    """Gi* of every bin, written out: an explicit space-time weights matrix and the textbook formula.

    Independent of hotspots.emerging: the neighbour pairs are enumerated one by one, the bins are
    numbered area-major (i·T + t, the opposite of the engine), and the formula is applied densely.
    """
    n, steps = x.shape
    a = sp.csr_matrix(a)
    rows, cols = [], []
    for i in range(n):
        around = [i] + list(a.indices[a.indptr[i]:a.indptr[i + 1]])
        for t in range(steps):
            for s in range(max(0, t - k), t + 1):
                for j in around:
                    rows.append(i * steps + t)
                    cols.append(j * steps + s)
    big_n = n * steps
    w = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(big_n, big_n)).toarray()
    flat = x.ravel()  # area-major
    xbar = flat.mean()
    s = math.sqrt((flat ** 2).mean() - xbar ** 2)
    wsum = w.sum(axis=1)
    wsq = (w ** 2).sum(axis=1)
    z = (w @ flat - xbar * wsum) / (s * np.sqrt((big_n * wsq - wsum ** 2) / (big_n - 1)))
    z = z.reshape(n, steps)
    card = np.diff(a.indptr)
    z[card == 0, :] = np.nan  # islands: no inference
    return z


@pytest.mark.parametrize("k", [0, 1, 2])
def test_spacetime_gistar_equals_a_direct_computation(k):
    a = lattice_with_island()
    n = a.shape[0]
    x = planted_cube(n)
    z, p_norm, p_sim = spacetime_gistar(x, a, time_neighbours=k)
    expected = direct_spacetime_gistar(x, a, k)
    assert z.shape == (n, 12)
    np.testing.assert_allclose(z, expected, rtol=1e-12, atol=1e-12)
    assert np.isnan(z[-1]).all() and np.isnan(p_norm[-1]).all()
    finite = np.isfinite(z)
    np.testing.assert_allclose(p_norm[finite], [math.erfc(abs(v) / math.sqrt(2)) for v in z[finite]],
                               rtol=1e-13)
    assert np.isnan(p_sim).all()  # no permutations asked for


def test_first_steps_look_back_only_as_far_as_the_cube_goes():
    a = lattice(3)
    x = np.arange(27 * 1.0).reshape(9, 3) % 5
    z = spacetime_gistar(x, a, time_neighbours=1)[0]
    np.testing.assert_allclose(z, direct_spacetime_gistar(x, a, 1), rtol=1e-12)
    # Step 0 has no past: its Gi* is the purely spatial one against the cube's mean and SD.
    flat = x.ravel()
    centre = 4  # neighbours of the centre of a 3×3 queen lattice: every cell
    wsum = 9.0
    num = x[:, 0].sum() - flat.mean() * wsum
    den = flat.std() * math.sqrt((27 * wsum - wsum ** 2) / 26)
    assert z[centre, 0] == pytest.approx(num / den, rel=1e-12)


def test_permutation_p_is_seeded_and_sensible():
    a = lattice(SIDE)
    x = planted_cube(a.shape[0])
    z, p_norm, p1 = spacetime_gistar(x, a, permutations=199, seed=7)
    _, _, p2 = spacetime_gistar(x, a, permutations=199, seed=7)
    _, _, p3 = spacetime_gistar(x, a, permutations=199, seed=8)
    np.testing.assert_array_equal(p1, p2)
    assert not np.array_equal(p1, p3)
    assert np.nanmin(p1) >= 2 / 200 and np.nanmax(p1) <= 1
    hottest = np.unravel_index(np.nanargmax(z), z.shape)
    # Nothing random beats the strongest hot bin: p = 2/(R_b + 1), R_b ≤ 199 the draws that did not
    # pick that bin itself (shared_conditional_p drops those).
    valid_draws = 2 / p1[hottest] - 1
    assert valid_draws == pytest.approx(round(valid_draws)) and 190 <= round(valid_draws) <= 199
    # The two p-values tell the same story, though a small neighbourhood (a corner: 8 bins) of
    # skewed counts is less extreme under permutation than under the normal approximation.
    assert (p1[np.abs(z) > 4] <= 0.1).all()
    assert np.median(p1[np.abs(z) < 0.5]) > 0.3
    assert np.corrcoef(p_norm.ravel(), p1.ravel())[0, 1] > 0.8


def exact_conditional_p(x: np.ndarray, a: sp.spmatrix, k: int) -> np.ndarray:
    """The exact two-sided conditional-permutation p of every bin, by enumerating every neighbour set.

    Independent of the engine's sampling: for bin b with c neighbours, every c-subset of the other
    bins is listed (itertools) and the shares of subset sums ≥ and ≤ b's neighbour sum are counted.
    The sampled pseudo p 2·(min tail + 1)/(R + 1) tends to min(1, 2·min share) as R grows.
    """
    import itertools
    n, steps = x.shape
    st = spacetime_weights(a, steps, k).matrix
    flat = x.T.ravel()
    p = np.empty(len(flat))
    for b in range(len(flat)):
        nb = st.indices[st.indptr[b]:st.indptr[b + 1]]
        obs = flat[nb].sum()
        others = np.delete(flat, b)
        sums = np.array([sum(c) for c in itertools.combinations(others, len(nb))])
        p[b] = min(1.0, 2 * min((sums >= obs).mean(), (sums <= obs).mean()))
    return p.reshape(steps, n).T


def test_permutation_p_converges_to_the_exact_conditional_p():
    """2×2 queen areas × 4 steps, k = 1: 16 bins, neighbour sets of 3 or 7 bins (≤ 6,435 subsets each)."""
    a = lattice(2)
    x = np.array([[0, 1, 5, 9], [2, 0, 4, 8], [1, 1, 0, 2], [3, 0, 1, 0]], dtype=float)
    _, _, p = spacetime_gistar(x, a, time_neighbours=1, permutations=9999, seed=11)
    exact = exact_conditional_p(x, a, 1)
    # Binomial sampling error of a two-sided p from ~9,999 draws: 2·sqrt(q(1 − q)/R) ≤ 0.01 (q the
    # smaller tail share), plus the +1 in the pseudo p; 4 standard errors.
    np.testing.assert_allclose(p, exact, atol=0.04)
    assert np.abs(p - exact).mean() < 0.01


def test_permutation_p_agrees_with_the_per_site_kernel():
    """The esda-style reference: stats.gi_star's per-site conditional kernel (each site draws from the
    n − 1 others through its own index shift) on the same space-time graph; both with 9,999 draws."""
    a = lattice(SIDE)
    x = planted_cube(a.shape[0])
    _, _, p = spacetime_gistar(x, a, time_neighbours=1, permutations=9999, seed=5)
    ref = gi_star(x.T.ravel(), spacetime_weights(a, 12, 1), permutations=9999, seed=6).p_sim
    ref = ref.reshape(12, -1).T
    assert np.abs(p - ref).max() < 0.08  # seeds 5 and 7: 0.029 and 0.045
    assert np.abs(p - ref).mean() < 0.02  # seeds 5 and 7: 0.007 and 0.011


def test_permutation_p_is_valid_under_the_null():
    """Counts with no pattern (independent Poisson): about α of the bins have p ≤ α, never many more."""
    a = lattice(10)
    rng = np.random.default_rng(2024)
    x = rng.poisson(4.0, size=(100, 10)).astype(float)
    _, _, p = spacetime_gistar(x, a, time_neighbours=1, permutations=999, seed=3)
    for alpha in (0.05, 0.10, 0.5):
        share = (p <= alpha).mean()
        assert alpha * 0.4 <= share <= alpha * 1.4, (alpha, share)


def test_mann_kendall_of_the_z_series_equals_pymannkendall():
    a = lattice_with_island()
    x = planted_cube(a.shape[0])
    res = emerging_hotspots(x, a, alpha=0.05)
    for i in range(a.shape[0] - 1):
        ref = pmk.original_test(res.gi_z[i], alpha=0.05)
        assert res.mk_tau[i] == pytest.approx(ref.Tau, rel=1e-15)
        assert res.mk_z[i] == pytest.approx(ref.z, rel=1e-14, abs=1e-15)
        assert res.mk_p[i] == pytest.approx(ref.p, rel=1e-12, abs=1e-15)
        assert {1: "increasing", -1: "decreasing", 0: "no trend"}[int(res.mk_trend[i])] == ref.trend
    assert np.isnan(res.mk_tau[-1]) and res.category[-1] == LABEL_NO_NEIGHBOURS


# -- the 17 outcomes on hand-built series ---------------------------------------------------------

HOT, COLD, NONE = (3.0, 0.001), (-3.0, 0.001), (0.5, 0.6)


def series(pattern: str) -> tuple[list[float], list[float]]:
    """'H' a significant hot bin, 'C' a cold one, '.' not significant."""
    z, p = [], []
    for ch in pattern:
        zz, pp = {"H": HOT, "C": COLD, ".": NONE}[ch]
        z.append(zz)
        p.append(pp)
    return z, p


def classify(patterns: list[str], trends: list[int], **kw) -> list[str]:
    z, p = zip(*(series(pat) for pat in patterns))
    kw.setdefault("fdr", False)
    return classify_emerging(np.array(z), np.array(p), np.array(trends), **kw)


OUTCOME_CASES = [  # (pattern over 12 steps, Mann-Kendall trend of z, ArcGIS outcome)
    ("...........H", 0, "New hot spot"),
    (".........HHH", 1, "Consecutive hot spot"),
    ("HHHHHHHHHHHH", 1, "Intensifying hot spot"),
    ("HHHHHHHHHHHH", 0, "Persistent hot spot"),
    ("HHHHHHHHHHHH", -1, "Diminishing hot spot"),
    ("..H..H...H.H", 0, "Sporadic hot spot"),
    ("C....H.....H", 0, "Oscillating hot spot"),
    ("HHHHHHHHHHH.", -1, "Historical hot spot"),
    ("...........C", 0, "New cold spot"),
    (".........CCC", -1, "Consecutive cold spot"),
    ("CCCCCCCCCCCC", -1, "Intensifying cold spot"),
    ("CCCCCCCCCCCC", 0, "Persistent cold spot"),
    ("CCCCCCCCCCCC", 1, "Diminishing cold spot"),
    ("..C..C...C.C", 0, "Sporadic cold spot"),
    ("H....C.....C", 0, "Oscillating cold spot"),
    ("CCCCCCCCCCC.", 1, "Historical cold spot"),
    ("HHH.........", -1, NO_PATTERN),
]


def test_each_of_the_17_outcomes():
    got = classify([c[0] for c in OUTCOME_CASES], [c[1] for c in OUTCOME_CASES])
    assert got == [c[2] for c in OUTCOME_CASES]
    assert set(got) == set(CATEGORY_CODES) - {LABEL_NO_NEIGHBOURS}  # all 17 are reachable


BORDERLINE_CASES = [
    # exactly 90 % (9 of 10 steps) counts as "90 % of the time-step intervals"
    (".HHHHHHHHH", 0, "Persistent hot spot"),
    ("HHHHHHHHH.", 0, "Historical hot spot"),
    (".CCCCCCCCC", -1, "Intensifying cold spot"),
    # 8 of 10 is below 90 %: an uninterrupted final run is Consecutive, with a gap it is Sporadic
    ("..HHHHHHHH", 1, "Consecutive hot spot"),
    ("HH..HHHHHH", 0, "Sporadic hot spot"),
    # significance only in the final step
    (".........H", 0, "New hot spot"),
    # a gap inside a long hot history: 9 of 10 still 90 %, with the final step hot
    ("HHHH.HHHHH", 0, "Persistent hot spot"),
    # a single hot step before the final run breaks "never hot before the run"
    ("H....HHHHH", 0, "Sporadic hot spot"),
    # cold long ago, then ≥ 90 % hot: the 90 % rule comes first
    ("CHHHHHHHHH", 0, "Persistent hot spot"),
    # hot for 9 of 10 steps but cold at the end: the final step decides (a cold spot with a hot past)
    ("HHHHHHHHHC", 0, "Oscillating cold spot"),
    # hot at the start only, nothing at the end, under 90 %
    ("HHHHHHHH..", 0, NO_PATTERN),
    # nothing significant at all
    ("..........", 0, NO_PATTERN),
]


@pytest.mark.parametrize("pattern,trend,expected", BORDERLINE_CASES)
def test_borderline_outcomes(pattern, trend, expected):
    assert classify([pattern], [trend]) == [expected]


def test_p_equal_to_alpha_is_significant_and_islands_have_no_neighbours():
    z = np.array([[0.1] * 9 + [2.0], [np.nan] * 10])
    p = np.array([[0.9] * 9 + [0.05], [np.nan] * 10])
    assert classify_emerging(z, p, [0, 0], alpha=0.05, fdr=False) == ["New hot spot", LABEL_NO_NEIGHBOURS]
    assert classify_emerging(z, p, [0, 0], alpha=0.04, fdr=False) == [NO_PATTERN, LABEL_NO_NEIGHBOURS]


def test_constant_z_series_has_no_trend_and_is_persistent():
    """Tied z-scores (a constant series): Mann-Kendall S = 0, p = 1, so a hot spot is Persistent."""
    a = lattice(SIDE)
    n = a.shape[0]
    x = np.ones((n, 12))
    x[:9] = 20.0  # the same hot block every month: every bin's z repeats over time (after step 0)
    res = emerging_hotspots(x, a, time_neighbours=0)
    assert np.allclose(res.gi_z[0], res.gi_z[0, 0])
    assert res.mk_trend[0] == 0 and res.mk_p[0] == 1.0
    assert res.category[0] == "Persistent hot spot"


def test_fdr_raises_the_bar_for_a_significant_bin():
    z = np.array([[0.1] * 9 + [2.1]] + [[0.1] * 10] * 5)
    p = np.array([[0.9] * 9 + [0.03]] + [[0.9] * 10] * 5)
    assert classify_emerging(z, p, np.zeros(6), fdr=False)[0] == "New hot spot"
    assert fdr_cutoff(p, 0.05) == 0.0  # one p = 0.03 among 60 bins does not survive BH
    assert classify_emerging(z, p, np.zeros(6), fdr=True)[0] == NO_PATTERN


# -- the whole analysis ---------------------------------------------------------------------------

def test_emerging_hotspots_result_is_consistent():
    a = lattice_with_island()
    n = a.shape[0]
    x = planted_cube(n)
    x[:, 5] = 0.0  # a month with nothing anywhere: a gap in the source, or a quiet month?
    res = emerging_hotspots(x, a, steps=[f"2024-{m:02d}" for m in range(1, 13)])
    assert len(res.category) == n and sum(res.counts().values()) == n
    assert res.steps[0] == "2024-01" and res.time_neighbours == 1 and res.fdr
    assert any("2024-06" in w for w in res.warnings) and any("no neighbours" in w for w in res.warnings)
    assert res.category[-1] == LABEL_NO_NEIGHBOURS and res.island[-1] and (res.gi_bin[-1] == 0).all()
    assert res.category[0] in ("Intensifying hot spot", "Persistent hot spot", "Consecutive hot spot")
    assert res.category_code.tolist() == [CATEGORY_CODES[c] for c in res.category]
    # Bins: the 95 % level passes exactly the bins whose p meets the BH cut-off at 0.05.
    cut95 = fdr_cutoff(res.gi_p_norm, 0.05)
    assert res.bin_cutoffs["95%"] == cut95 == res.cutoff
    sig = np.nan_to_num(res.gi_p_norm, nan=1.0) <= cut95
    assert ((np.abs(res.gi_bin) >= 2) == sig).all()
    assert (np.sign(res.gi_bin[sig]) == np.sign(res.gi_z[sig])).all()
    assert res.n_hot_steps.tolist() == (sig & (res.gi_z > 0)).sum(axis=1).tolist()
    assert classify_emerging(res.gi_z, res.gi_p_norm, res.mk_trend) == list(res.category)
    with pytest.raises(ValueError):
        res.gi_z[0, 0] = 1.0  # results are read-only


def test_emerging_hotspots_does_not_touch_the_callers_cube():
    a = lattice(SIDE)
    x = planted_cube(a.shape[0])
    before = x.copy()
    emerging_hotspots(x, a)
    np.testing.assert_array_equal(x, before)


def varied(areas: int = 49, steps: int = 12) -> np.ndarray:
    """A valid cube (ones with one busier bin), so that only the parameter under test is wrong."""
    x = np.ones((areas, steps))
    x[0, 0] = 3.0
    return x


@pytest.mark.parametrize("cube,kw,message", [
    (varied(steps=9), {}, f"9 time step\\(s\\) but a trend needs at least {MIN_STEPS}"),
    (varied(), {"time_neighbours": 12}, "time_neighbours = 12 needs more than 12 time steps"),
    (np.zeros((49, 12)), {}, "every bin of the cube is zero"),
    (np.full((49, 12), 2.0), {}, "same value"),
    (-np.ones((49, 12)), {}, "negative"),
    (np.full((49, 12), np.nan), {}, "missing or non-finite"),
    (np.ones((49, 12, 2)), {}, "2-D array"),
    (varied(areas=48), {}, "48 areas"),
    (varied(), {"time_neighbours": -1}, "whole number ≥ 0"),
    (varied(), {"time_neighbours": 1.5}, "whole number ≥ 0"),
])
def test_bad_input_is_refused_with_the_fix(cube, kw, message):
    with pytest.raises(AnalysisError, match=message):
        emerging_hotspots(cube, lattice(SIDE), **kw)


def test_a_neighbourhood_covering_the_whole_cube_is_undefined_not_an_error():
    """Four mutually adjacent areas, k = 9 of 10 steps: the last bins see every bin of the cube."""
    a = sp.csr_matrix(np.ones((4, 4)) - np.eye(4))
    x = np.arange(40.0).reshape(4, 10) % 7
    res = emerging_hotspots(x, a, time_neighbours=9, fdr=False)
    assert np.isnan(res.gi_z[:, -1]).all() and np.isfinite(res.gi_z[:, 0]).all()
    assert np.isnan(res.mk_tau).all() and (res.mk_trend == 0).all()
    assert any("undefined for 4 bin(s)" in w for w in res.warnings)


def test_one_month_says_more_months_are_needed():
    with pytest.raises(AnalysisError, match="1 time step\\(s\\) but a trend needs at least 10"):
        emerging_hotspots(np.arange(49.0)[:, None], lattice(SIDE))
