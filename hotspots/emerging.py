"""Emerging Hot Spot Analysis (EHSA) as ArcGIS Pro defines it: space-time Gi* and 17 trend outcomes.

Why: a planner needs to know whether a hot spot is new, persistent, intensifying or fading before
moving patrols or outreach. ArcGIS Pro's "Emerging Hot Spot Analysis" answers that behind a licence;
R's sfdep and Python's pyehsa reimplement it with a rule set that differs from ArcGIS's text in
places (docs/methods.md lists every difference). Here it is pure functions over a cube of values
(areas × time steps) and the spatial weights, fast enough to run per request.

The pipeline (docs/methods.md, "Emerging hot spots"):

1. :func:`spacetime_gistar`: Gi* of every bin (area i, step t) over its space-time neighbourhood,
   i.e. itself and its spatial neighbours at step t and at each of the ``time_neighbours`` previous
   steps, with binary weights, against the mean and SD of the whole cube (ArcGIS's default
   "entire cube" global window). It is :func:`hotspots.stats.gi_star` on the space-time graph, so
   the z formula and the two-sided p are the ones documented for Gi*; the optional seeded
   conditional-permutation p comes from one shared set of draws for all bins
   (:func:`shared_conditional_p`, docs/methods.md).
2. Bin classes −3…+3 (ArcGIS's Gi_Bin), with the Benjamini-Hochberg cut-offs over every bin of the
   cube when ``fdr`` (ArcGIS applies FDR to the bins of EHSA).
3. :func:`hotspots.trend.mann_kendall` of each location's series of bin z-scores.
4. :func:`classify_emerging`: ArcGIS's 8 hot, 8 cold and "No pattern detected" outcomes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from .errors import AnalysisError
from .stats import (GI_BIN_ALPHA, LABEL_NO_NEIGHBOURS, MIN_AREAS_GISTAR, _check_seed, _resolve_permutations,
                    fdr_cutoff, gi_star, shared_conditional_p)
from .trend import mann_kendall
from .weights import SpatialWeights, from_matrix

logger = logging.getLogger(__name__)

#: The fewest time steps we analyse. ArcGIS never builds a space-time cube with fewer than ten
#: time-step intervals by default ("Create Space Time Cube By Aggregating Points": when its two
#: bin-count algorithms give fewer than ten, ten are used), and ten is also where the normal
#: approximation of the Mann-Kendall statistic is usually taken to hold (Kendall 1975).
MIN_STEPS = 10
#: ArcGIS's default "neighborhood time step".
DEFAULT_TIME_NEIGHBOURS = 1
#: A location is hot (cold) "for 90 % of the time-step intervals" when 10 · n_hot ≥ 9 · T
#: (integer arithmetic, so exactly 90 % counts and no float rounding decides a borderline case).
SHARE_NUM, SHARE_DEN = 9, 10

NO_PATTERN = "No pattern detected"
#: ArcGIS's outcome names, with a signed code for maps and downloads (hot +1…+8, cold −1…−8, 0 none).
OUTCOMES = ("New", "Consecutive", "Intensifying", "Persistent", "Diminishing", "Sporadic", "Oscillating",
            "Historical")
CATEGORY_CODES: dict[str, int] = {NO_PATTERN: 0}
for _k, _name in enumerate(OUTCOMES, start=1):
    CATEGORY_CODES[f"{_name} hot spot"] = _k
    CATEGORY_CODES[f"{_name} cold spot"] = -_k
#: The map's outcome for a location with no spatial neighbours (no inference, as in stats.py).
CATEGORY_CODES[LABEL_NO_NEIGHBOURS] = 0


# -- the space-time neighbourhood -----------------------------------------------------------------

def _spatial_matrix(w: SpatialWeights | sp.spmatrix, n: int) -> SpatialWeights:
    if not isinstance(w, SpatialWeights):
        if not sp.issparse(w):
            raise AnalysisError("weights must be a SpatialWeights or a scipy sparse matrix")
        w = from_matrix(w)
    if w.n != n:
        raise AnalysisError(f"the cube has {n} areas (rows) but the weights are for {w.n} areas: build the "
                            "weights from the same areas, in the same order")
    return w


def spacetime_weights(w: SpatialWeights | sp.spmatrix, n_steps: int, time_neighbours: int) -> SpatialWeights:
    """The binary space-time neighbour graph of a cube, bins numbered time-major (t·n + i).

    Bin (i, t) has as neighbours (j, s) for every j in {i} ∪ N(i) and t − k ≤ s ≤ t, except itself
    (Gi* adds the self-weight). The first k steps have fewer past steps to look back to, so their
    neighbourhood is smaller (the Gi* weights Σw say so); nothing is wrapped round or padded.
    ``kron(band, A + I) − I`` with band[t, s] = 1 for t − k ≤ s ≤ t.
    """
    k = int(time_neighbours)
    a = w.matrix if isinstance(w, SpatialWeights) else sp.csr_matrix(w)
    n = a.shape[0]
    band = sp.diags([np.ones(n_steps - d) for d in range(k + 1)], [-d for d in range(k + 1)],
                    shape=(n_steps, n_steps), format="csr")
    st = sp.kron(band, a + sp.identity(n, format="csr"), format="csr")
    return from_matrix(st, spec=f"space-time(k={k})")


def _check_cube(values: Any) -> np.ndarray:
    try:
        x = np.array(values, dtype=np.float64)  # a copy: never touch the caller's cube
    except (TypeError, ValueError) as exc:
        raise AnalysisError(f"the cube must be numbers (areas × time steps): {exc}") from None
    if x.ndim != 2:
        raise AnalysisError(f"the cube must be a 2-D array, one row per area and one column per time step; "
                            f"got {x.ndim}-D with shape {x.shape}")
    if not np.isfinite(x).all():
        r, t = np.argwhere(~np.isfinite(x))[0]
        raise AnalysisError(f"the cube has {int((~np.isfinite(x)).sum())} missing or non-finite values (first: "
                            f"area row {int(r)}, step {int(t)}): fill zero counts as 0 and drop steps with no data")
    if (x < 0).any():
        r, t = np.argwhere(x < 0)[0]
        raise AnalysisError(f"the cube has negative values (first: area row {int(r)}, step {int(t)}): "
                            "Gi* is for counts or rates, which are ≥ 0")
    return x


def _check_time_neighbours(time_neighbours: int, n_steps: int) -> int:
    k = int(time_neighbours)
    if k != time_neighbours or k < 0:
        raise AnalysisError(f"time_neighbours must be a whole number ≥ 0, got {time_neighbours!r}")
    if k >= n_steps:
        raise AnalysisError(f"time_neighbours = {k} needs more than {k} time steps but the cube has {n_steps}: "
                            f"use time_neighbours ≤ {n_steps - 1} (ArcGIS's default is {DEFAULT_TIME_NEIGHBOURS})")
    return k


def spacetime_gistar(values: Any, w: SpatialWeights | sp.spmatrix, time_neighbours: int = DEFAULT_TIME_NEIGHBOURS,
                     permutations: int = 0, seed: int = 12345) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gi* z, two-sided normal p and two-sided permutation p of every bin, each (n_areas, n_steps).

    Parameters
    ----------
    values : (n_areas, n_steps) counts or rates ≥ 0, areas in the order of the weights.
    w : binary spatial weights (no self-loops).
    time_neighbours : ArcGIS's "neighborhood time step" k: the neighbourhood of bin (i, t) is i and
        its spatial neighbours at steps t − k … t. Steps t < k look back over the t steps they have.
    permutations : 0 for the analytical z only (what ArcGIS's EHSA uses); R for a conditional pseudo p
        as well (the bin fixed, its neighbourhood drawn from the other bins of the cube; seeded).

    Notes
    -----
    Binary weights with self, X̄ and the population S over all n·T bins (ArcGIS's "entire cube"
    global window), z as docs/methods.md §Gi*: with W = (k_i + 1)·(steps in the window),
    z = (Σ x − X̄ W)/(S √((nT·W − W²)/(nT − 1))). Areas without spatial neighbours get NaN.
    """
    x = _check_cube(values)
    n, n_steps = x.shape
    k = _check_time_neighbours(time_neighbours, n_steps)
    sw = _spatial_matrix(w, n)
    if np.ptp(x) == 0:
        raise AnalysisError(f"every bin of the cube has the same value ({x.flat[0]:g}), so nothing can stand out: "
                            "check the categories and the period")
    n_perm = _resolve_permutations(permutations, n * n_steps)
    seed = _check_seed(seed)
    st = spacetime_weights(sw, n_steps, k)
    flat = x.T.ravel()  # time-major, as spacetime_weights numbers the bins
    res = gi_star(flat, st, permutations=0, seed=seed)
    island = np.tile(sw.island_mask, n_steps)
    z = np.where(island, np.nan, res.z).reshape(n_steps, n).T.copy()
    p_norm = np.where(island, np.nan, res.p_norm).reshape(n_steps, n).T.copy()
    p_all = shared_conditional_p(flat, st.matrix, ~island & (res.n_neighbours > 0), n_perm, seed)
    p_sim = p_all.reshape(n_steps, n).T.copy()
    for a in (z, p_norm, p_sim):
        a.flags.writeable = False
    return z, p_norm, p_sim


def bin_classes(z: np.ndarray, p: np.ndarray, fdr: bool = True) -> tuple[np.ndarray, dict[str, float]]:
    """ArcGIS's Gi_Bin (−3…+3) of every bin, and the p cut-off used for each confidence level.

    With ``fdr`` the cut-off of each level (α = 0.10, 0.05, 0.01) is the Benjamini-Hochberg cut-off
    over every bin of the cube that has a p-value; without it, the level's α. A bin takes the
    strictest level it passes, the sign of its z. Bins of islands (p = NaN) are 0.
    """
    pf = np.asarray(p, dtype=float)
    zf = np.asarray(z, dtype=float)
    bins = np.zeros(pf.shape, dtype=np.int8)
    cutoffs: dict[str, float] = {}
    for level, alpha_level in sorted(GI_BIN_ALPHA, key=lambda la: la[0]):  # 90 %, 95 %, 99 %
        cut = fdr_cutoff(pf, alpha_level) if fdr else alpha_level
        cutoffs[f"{100 - round(alpha_level * 100)}%"] = float(cut)
        with np.errstate(invalid="ignore"):
            bins[(pf <= cut) & (cut > 0)] = level
    bins = np.where(np.nan_to_num(zf) < 0, -bins, bins).astype(np.int8)
    return bins, cutoffs


# -- the 17 outcomes ------------------------------------------------------------------------------

def significance_cutoff(p: Any, alpha: float = 0.05, fdr: bool = True) -> float:
    """The p cut-off of a significant bin: α, or the BH cut-off at α over every bin with a p."""
    return float(fdr_cutoff(p, alpha)) if fdr else float(alpha)


def classify_emerging(z: Any, p: Any, mk_trend: Any, alpha: float = 0.05, fdr: bool = True) -> list[str]:
    """ArcGIS's emerging hot spot outcome of each location (row), from its bins and its trend.

    Parameters
    ----------
    z, p : (n_locations, n_steps) Gi* z and two-sided p of each bin; a row of NaN is an island.
    mk_trend : per location, +1 / −1 / 0: the Mann-Kendall trend of the row's z series at α.
    alpha, fdr : a bin is a significant hot (cold) spot when p ≤ cut-off and z > 0 (z < 0); the cut-off
        is α, or the Benjamini-Hochberg cut-off at α over all bins of the cube.

    Notes
    -----
    ArcGIS Pro, "How Emerging Hot Spot Analysis works" (hot; cold mirrors it with the trend
    reversed), with T steps and "90 %" meaning 10·count ≥ 9·T:

    * final step hot and ≥ 90 % of steps hot: **Intensifying** if the z trend is significantly
      increasing, **Diminishing** if significantly decreasing, else **Persistent**;
    * final step hot, < 90 % hot, and a cold step before: **Oscillating**;
    * otherwise final step hot and never hot before: **New**; hot in an uninterrupted final run
      of ≥ 2 steps and never before it: **Consecutive**; hot before the final run too: **Sporadic**;
    * final step not significant, ≥ 90 % hot: **Historical**;
    * anything else: "No pattern detected". Islands: "No neighbours".
    """
    zf = np.asarray(z, dtype=float)
    pf = np.asarray(p, dtype=float)
    if zf.ndim != 2 or zf.shape != pf.shape:
        raise AnalysisError(f"z and p must be two arrays of the same 2-D shape (locations × steps), got "
                            f"{zf.shape} and {pf.shape}")
    trend = np.asarray(mk_trend).ravel()
    if trend.shape[0] != zf.shape[0]:
        raise AnalysisError(f"{zf.shape[0]} locations but {trend.shape[0]} trends")
    n, n_steps = zf.shape
    cut = significance_cutoff(pf, alpha, fdr)
    with np.errstate(invalid="ignore"):
        sig = np.isfinite(pf) & (pf <= cut) & (cut > 0)
    hot = sig & (zf > 0)
    cold = sig & (zf < 0)
    island = ~np.isfinite(zf).any(axis=1)
    # At most one family applies: hot needs a hot final step or ≥ 90 % hot steps, cold the same in
    # cold, and a location cannot be both ≥ 90 % hot and ≥ 90 % cold.
    out = np.full(n, NO_PATTERN, dtype=object)
    for kind, this, other, up in (("hot", hot, cold, 1), ("cold", cold, hot, -1)):
        count = this.sum(axis=1)
        run = np.cumprod(this[:, ::-1], axis=1).sum(axis=1)  # length of the final uninterrupted run
        mostly = SHARE_DEN * count >= SHARE_NUM * n_steps
        final = this[:, -1]
        rules = [  # in ArcGIS's order of specificity: the first matching rule wins
            (final & mostly & (trend == up), "Intensifying"),
            (final & mostly & (trend == -up), "Diminishing"),
            (final & mostly, "Persistent"),
            (final & other.any(axis=1), "Oscillating"),
            (final & (count == 1), "New"),
            (final & (run == count) & (run >= 2), "Consecutive"),
            (final, "Sporadic"),
            (~final & ~other[:, -1] & mostly, "Historical"),
        ]
        for mask, name in reversed(rules):  # later rules are overwritten by earlier ones
            out[mask] = f"{name} {kind} spot"
    out[island] = LABEL_NO_NEIGHBOURS
    return out.tolist()


# -- the whole analysis ---------------------------------------------------------------------------

@dataclass(frozen=True)
class EmergingResult:
    """Emerging hot spot analysis of one cube: per location, per bin, and how it was computed."""

    category: tuple  #: per location: "New hot spot" … "Historical cold spot", "No pattern detected", "No neighbours"
    category_code: np.ndarray  #: +1…+8 hot (New … Historical), −1…−8 cold, 0 none or island
    mk_tau: np.ndarray  #: Mann-Kendall tau of each location's Gi* z series (NaN for islands)
    mk_z: np.ndarray
    mk_p: np.ndarray
    mk_trend: np.ndarray  #: +1 / −1 / 0 at alpha
    n_hot_steps: np.ndarray  #: significant hot bins (at alpha, FDR when fdr) per location
    n_cold_steps: np.ndarray
    gi_z: np.ndarray  #: (n_areas, n_steps) Gi* z of every bin
    gi_p_norm: np.ndarray  #: two-sided normal p of every bin
    gi_p_sim: np.ndarray  #: two-sided permutation p (NaN when permutations = 0)
    gi_bin: np.ndarray  #: ArcGIS Gi_Bin −3…+3 of every bin
    island: np.ndarray
    ids: tuple
    steps: tuple
    time_neighbours: int
    alpha: float
    fdr: bool
    cutoff: float  #: p cut-off of a significant bin for the outcomes (α or the BH cut-off at α)
    bin_cutoffs: dict  #: confidence level → p cut-off used for gi_bin
    permutations: int
    seed: int
    warnings: tuple = field(default=())

    def counts(self) -> dict[str, int]:
        """How many locations have each outcome (every outcome listed, zeros included)."""
        names = [NO_PATTERN] + [f"{o} {k} spot" for k in ("hot", "cold") for o in OUTCOMES] + [LABEL_NO_NEIGHBOURS]
        tally = {name: 0 for name in names}
        for c in self.category:
            tally[c] += 1
        return tally


def emerging_hotspots(values: Any, w: SpatialWeights | sp.spmatrix, time_neighbours: int = DEFAULT_TIME_NEIGHBOURS,
                      alpha: float = 0.05, fdr: bool = True, permutations: int = 0, seed: int = 12345,
                      steps: Sequence | None = None) -> EmergingResult:
    """Emerging Hot Spot Analysis of a cube of counts (areas × time steps), as ArcGIS Pro defines it.

    Parameters
    ----------
    values : (n_areas, n_steps) counts or rates ≥ 0, zero-filled, areas in the weights' order and
        steps in time order.
    w : binary spatial weights of the areas.
    time_neighbours : ArcGIS's "neighborhood time step" (default 1).
    alpha : significance of a bin for the outcomes, and of the Mann-Kendall trend.
    fdr : Benjamini-Hochberg over all bins of the cube (ArcGIS's EHSA applies FDR to the bins).
    permutations, seed : optional conditional-permutation p per bin (reported, not used for the
        outcomes, as ArcGIS uses the analytical z).
    steps : labels of the time steps (e.g. "2024-01"), default 0…T−1.

    Raises
    ------
    AnalysisError
        fewer than :data:`MIN_STEPS` steps, time_neighbours ≥ number of steps, an all-zero or constant
        cube, or values that are not a 2-D finite array ≥ 0.
    """
    x = _check_cube(values)
    n, n_steps = x.shape
    if n_steps < MIN_STEPS:
        raise AnalysisError(f"the cube has {n_steps} time step(s) but a trend needs at least {MIN_STEPS} "
                            f"(ArcGIS's minimum for a space-time cube): use a longer period or a shorter "
                            f"time step (e.g. months instead of quarters)")
    k = _check_time_neighbours(time_neighbours, n_steps)
    if not (x > 0).any():
        raise AnalysisError("every bin of the cube is zero (no incidents in any area at any step): check the "
                            "categories and the period")
    labels = tuple(range(n_steps)) if steps is None else tuple(steps)
    if len(labels) != n_steps:
        raise AnalysisError(f"{len(labels)} step labels for a cube with {n_steps} steps")
    sw = _spatial_matrix(w, n)
    z, p_norm, p_sim = spacetime_gistar(x, sw, k, permutations=permutations, seed=seed)
    gi_bin, bin_cutoffs = bin_classes(z, p_norm, fdr)
    island = sw.island_mask.copy()
    mk_tau = np.full(n, np.nan)
    mk_z = np.full(n, np.nan)
    mk_p = np.full(n, np.nan)
    mk_trend = np.zeros(n, dtype=np.int8)
    whole = np.isfinite(z).all(axis=1)  # islands, and the rare bin whose neighbourhood is the whole cube, have no z
    if whole.any():
        mk = mann_kendall(z[whole], alpha=alpha)
        mk_tau[whole], mk_z[whole], mk_p[whole], mk_trend[whole] = mk.tau, mk.z, mk.p, mk.trend
    category = tuple(classify_emerging(z, p_norm, mk_trend, alpha=alpha, fdr=fdr))
    code = np.array([CATEGORY_CODES[c] for c in category], dtype=np.int8)
    cutoff = significance_cutoff(p_norm, alpha, fdr)
    with np.errstate(invalid="ignore"):
        sig = np.isfinite(p_norm) & (p_norm <= cutoff) & (cutoff > 0)
    n_hot = (sig & (z > 0)).sum(axis=1)
    n_cold = (sig & (z < 0)).sum(axis=1)
    warn = []
    if island.any():
        names = ", ".join(str(sw.ids[i]) for i in np.flatnonzero(island)[:10])
        warn.append(f"{int(island.sum())} area(s) have no neighbours under '{sw.spec}' weights and are excluded "
                    f"(z = NaN, outcome 'No neighbours'): {names}")
    empty = np.flatnonzero(~(x > 0).any(axis=0))
    if len(empty):
        warn.append(f"{len(empty)} time step(s) have no incidents in any area ({', '.join(str(labels[t]) for t in empty)}):"
                    " if that is a gap in the source data rather than a quiet step, the trends are wrong")
    undefined = int((~np.isfinite(z[~island])).sum())
    if undefined:
        warn.append(f"Gi* is undefined for {undefined} bin(s) whose space-time neighbourhood covers the whole cube "
                    "(z = NaN; their locations get no trend): use more areas or fewer time_neighbours")
    if n < MIN_AREAS_GISTAR:
        warn.append(f"Gi* is unreliable with fewer than {MIN_AREAS_GISTAR} areas (ArcGIS's minimum); there are {n}")
    logger.info("emerging hot spots: %d areas × %d steps, time_neighbours=%d, alpha=%g, fdr=%s, permutations=%d, "
                "seed=%d, weights=%s", n, n_steps, k, alpha, fdr, permutations, seed, sw.spec)
    for a in (mk_tau, mk_z, mk_p, mk_trend, n_hot, n_cold, gi_bin, island, code):
        a.flags.writeable = False
    return EmergingResult(category=category, category_code=code, mk_tau=mk_tau, mk_z=mk_z, mk_p=mk_p,
                          mk_trend=mk_trend, n_hot_steps=n_hot, n_cold_steps=n_cold, gi_z=z, gi_p_norm=p_norm,
                          gi_p_sim=p_sim, gi_bin=gi_bin, island=island, ids=tuple(sw.ids), steps=labels,
                          time_neighbours=k, alpha=float(alpha), fdr=bool(fdr), cutoff=cutoff,
                          bin_cutoffs=bin_cutoffs, permutations=int(permutations), seed=int(seed),
                          warnings=tuple(warn))
