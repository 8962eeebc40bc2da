"""The statistics engine: Getis-Ord Gi*, global and local Moran's I, multiple testing, EB rates.

This is the only module that computes statistics. It takes plain arrays and a
:class:`~hotspots.weights.SpatialWeights` (or a square scipy sparse 0/1 matrix) and returns
frozen result objects, so that the web app, the CLI and the tests all read the same numbers.

Why our own implementation rather than esda's classes:

* esda's defaults do not reproduce ArcGIS (``G_Local`` defaults to row-standardised Gi, its
  ``p_norm`` is one-tailed and its ``p_sim`` is "directed", half a two-sided p); islands come out
  as maximally significant; and ``W.transform`` is changed in place on a shared object. Here every
  convention is fixed and written down in docs/methods.md.
* Conditional permutation inference is a numba kernel that draws one matrix of random
  neighbour sets (as esda and GeoDa do) from our own counter-based generator, so results depend
  only on ``seed`` and never on the number of threads. It is faster than pygeoda on 34,753 LSOAs.

Conventions (all p-values are TWO-SIDED):

* ``p_norm``: 2·(1 − Φ(|z|)).
* ``p_sim``: 2·(min(#{sim ≥ obs}, #{sim ≤ obs}) + 1)/(R + 1), capped at 1. Its floor is
  2/(R + 1), i.e. twice the one-tailed floor 1/(R + 1): 0.0002 with R = 9,999, 0.002 with 999.
* An area is significant when p ≤ cut-off (the cut-off being α, the Benjamini-Hochberg cut-off
  or the Bonferroni bound), as GeoDa does.
* Islands (no neighbours) get NaN p-values and the label "No neighbours".
"""
from __future__ import annotations

import hashlib
import math
import threading
import warnings as _warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
from numba import njit, prange

from .errors import AnalysisError
from .weights import SpatialWeights, from_matrix

# -- named constants ------------------------------------------------------------------------------

#: Permutations when the caller does not say: 9,999 below this many areas, 999 at or above it.
LARGE_N_THRESHOLD = 10_000
DEFAULT_PERMUTATIONS_SMALL = 9_999
DEFAULT_PERMUTATIONS_LARGE = 999
#: GeoDa's smallest offered permutation count; fewer gives a uselessly coarse pseudo p.
MIN_LOCAL_PERMUTATIONS = 99
#: ArcGIS's minimum number of features for Hot Spot Analysis.
MIN_AREAS_GISTAR = 30
WARN_FEW_AREAS = "Gi* is unreliable with fewer than 30 areas (ArcGIS's minimum)"
#: ArcGIS Gi_Bin thresholds: |z| ≥ these ↔ 99 / 95 / 90 % confidence (bins ±3 / ±2 / ±1).
GI_BIN_Z = ((3, 2.576), (2, 1.960), (1, 1.645))
#: The matching two-sided alphas, used for the FDR version of Gi_Bin.
GI_BIN_ALPHA = ((3, 0.01), (2, 0.05), (1, 0.10))
GI_LABELS = {3: "Hot spot 99% confidence", 2: "Hot spot 95% confidence", 1: "Hot spot 90% confidence",
             0: "Not significant", -1: "Cold spot 90% confidence", -2: "Cold spot 95% confidence",
             -3: "Cold spot 99% confidence"}
#: numba's parallel kernels run one at a time in a process: the "workqueue" threading layer (numba's
#: fallback where neither OpenMP nor TBB loads) aborts when two threads (two web requests) enter
#: parallel code at once, and on two cores two concurrent kernels gain nothing anyway. Because this lock
#: (not the GIL) keeps them apart, the permutation kernels are ``nogil``: a web server's other threads
#: answer cached views while an analysis runs (benchmarks/load.py --hostile).
_PARALLEL_LOCK = threading.Lock()

LABEL_NO_NEIGHBOURS = "No neighbours"
LABEL_UNDEFINED = "Undefined"
LABEL_NOT_SIGNIFICANT = "Not significant"
#: PySAL quadrant numbering: 1 HH, 2 LH, 3 LL, 4 HL.
LISA_QUADRANTS = {1: "High-High", 2: "Low-High", 3: "Low-Low", 4: "High-Low"}
#: Local Moran scaling: we report I_i = (n − 1)·z_i·Σ_j w_ij z_j / Σ z², which is exactly what
#: pygeoda/GeoDa ``local_moran`` (y standardised with the sample SD) and esda 2.9
#: ``Moran_Local.Is`` return (measured equal to 1e-15). Anselin's (1995) textbook form divides by
#: m2 = Σz²/n instead and is larger by n/(n − 1): ``LocalMoranResult.I_anselin``.
#: pygeoda's ``local_gstar`` reports G*_i / (k_i + 1): it row-standardises the weights (self
#: included). See ``GiStarResult.g_star_geoda``.
_U53 = 1.0 / 9007199254740992.0  # 2**-53
_GOLDEN = 0x9E3779B97F4A7C15
_SQRT2 = math.sqrt(2.0)


def _p_normal_two_sided(z: Any) -> Any:
    """2·(1 − Φ(|z|)) = erfc(|z|/√2), for a float or an array (NaN stays NaN).

    ``math.erfc`` instead of ``scipy.stats.norm.sf``: importing scipy.stats costs half a second
    in every CLI process; the values agree to a few ulp (tested against scipy).
    """
    if np.ndim(z) == 0:
        return math.erfc(abs(float(z)) / _SQRT2)
    a = np.abs(np.asarray(z, dtype=float)).ravel() / _SQRT2
    return np.fromiter((math.erfc(v) for v in a.tolist()), dtype=float, count=a.size).reshape(np.shape(z))


def default_permutations(n: int) -> int:
    """9,999 below 10,000 areas (cheap, and reaches Bonferroni at city scale), else 999."""
    return DEFAULT_PERMUTATIONS_SMALL if n < LARGE_N_THRESHOLD else DEFAULT_PERMUTATIONS_LARGE


# -- random numbers (counter-based, reproducible whatever the thread count) -----------------------

@njit(cache=True, inline="always")
def _mix64(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def _next_uniform(state: np.ndarray) -> float:
    """SplitMix64 step → a double in [0, 1)."""
    state[0] = state[0] + np.uint64(_GOLDEN)
    return float(_mix64(state[0]) >> np.uint64(11)) * _U53


@njit(cache=True, nogil=True)
def _draw_conditional(n_pool: int, k: int, n_perm: int, seed: np.uint64) -> np.ndarray:
    """``n_perm`` rows, each an ordered sample of ``k`` distinct ids from ``range(n_pool)``.

    Partial Fisher-Yates with the swaps undone, so each row costs O(k); any prefix of a row is a
    uniform random subset, which lets one matrix serve sites of every cardinality (as in esda's
    ``vec_permutations`` and GeoDa). Site i maps id ``v`` to ``v + (v >= i)`` so that it never
    draws itself.
    """
    out = np.empty((n_perm, k), dtype=np.int32)
    pool = np.arange(n_pool).astype(np.int32)
    swaps = np.empty(k, dtype=np.int64)
    state = np.empty(1, dtype=np.uint64)
    state[0] = _mix64(seed)
    for r in range(n_perm):
        for c in range(k):
            j = c + int(_next_uniform(state) * (n_pool - c))
            swaps[c] = j
            tmp = pool[c]
            pool[c] = pool[j]
            pool[j] = tmp
            out[r, c] = pool[c]
        for c in range(k - 1, -1, -1):
            j = swaps[c]
            tmp = pool[c]
            pool[c] = pool[j]
            pool[j] = tmp
    return out


@lru_cache(maxsize=4)
def _conditional_matrix(n_pool: int, k: int, n_perm: int, seed: int) -> np.ndarray:
    m = _draw_conditional(n_pool, k, n_perm, np.uint64(seed))
    m.flags.writeable = False
    return m


@lru_cache(maxsize=4)
def _shared_draws(n_pool: int, k: int, n_perm: int, seed: int) -> np.ndarray:
    """``n_perm`` rows, each an ordered uniform random sample of ``k`` distinct ids from ``range(n_pool)``
    (so any prefix of a row is a uniform random subset), from numpy's PCG64 seeded by ``seed``.

    Why numpy and not :func:`_draw_conditional`: one matrix of R × k draws is all the shared test needs, and
    numpy draws it in a millisecond, where the first call of a compiled kernel in a new process costs
    0.4 s of numba start-up. Rows are drawn with replacement and a row holding a repeat is drawn again
    (rejection keeps the rows uniform over distinct samples); when repeats would be common (k² > n_pool)
    each row is the head of a random permutation instead."""
    rng = np.random.default_rng(seed)
    if k * k <= n_pool:
        out = rng.integers(0, n_pool, (n_perm, k))
        while True:
            s = np.sort(out, axis=1)
            bad = np.flatnonzero((s[:, 1:] == s[:, :-1]).any(axis=1))
            if not len(bad):
                break
            out[bad] = rng.integers(0, n_pool, (len(bad), k))
    else:
        out = np.stack([rng.permutation(n_pool)[:k] for _ in range(n_perm)]) if n_perm else np.zeros((0, k), int)
    out = out.astype(np.int32)
    out.flags.writeable = False
    return out


@njit(parallel=True, cache=True, nogil=True)
def _conditional_counts(x: np.ndarray, indptr: np.ndarray, indices: np.ndarray, perm: np.ndarray,
                        active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each site i: how many permuted neighbour sums are ≥ and ≤ the observed sum.

    The sum is Σ_{j ∈ N(i)} x_j (self excluded), with i's own value held fixed and the neighbours'
    values drawn without replacement from the other n − 1 sites. Gi* (binary weights) and local
    Moran (row-standardised, i.e. 1/k_i on every neighbour of i) are both monotone in this sum
    given x_i, so one call gives the two-sided pseudo p of both.
    """
    n = x.shape[0]
    n_perm = perm.shape[0]
    ge = np.zeros(n, dtype=np.int64)
    le = np.zeros(n, dtype=np.int64)
    scale = 0.0
    for i in range(n):
        a = abs(x[i])
        if a > scale:
            scale = a
    for i in prange(n):
        start = indptr[i]
        k = indptr[i + 1] - start
        if k == 0 or not active[i]:
            continue
        o = 0.0
        for c in range(k):
            o += x[indices[start + c]]
        tol = 1e-11 * scale * k  # float ties from summation order count as ties
        cge = 0
        cle = 0
        for r in range(n_perm):
            s = 0.0
            for c in range(k):
                v = perm[r, c]
                if v >= i:
                    v += 1
                s += x[v]
            if s >= o - tol:
                cge += 1
            if s <= o + tol:
                cle += 1
        ge[i] = cge
        le[i] = cle
    return ge, le


@njit(parallel=True, cache=True, nogil=True)
def _moran_permutations(z: np.ndarray, uptr: np.ndarray, uind: np.ndarray, udata: np.ndarray,
                        n_perm: int, seed: np.uint64) -> np.ndarray:
    """Σ_ij w_ij z_i z_j for ``n_perm`` full random permutations of z (global Moran).

    ``uptr/uind/udata`` is the strict upper triangle of W + Wᵀ in CSR, so each pair of
    neighbours is visited once (half the work of the full matrix) and the permuted copy of z is
    gathered instead of scattered.
    """
    n = z.shape[0]
    out = np.empty(n_perm, dtype=np.float64)
    base = _mix64(seed ^ np.uint64(0xD1B54A32D192ED03))
    for r in prange(n_perm):
        state = np.empty(1, dtype=np.uint64)
        state[0] = _mix64(base + np.uint64(r) * np.uint64(_GOLDEN))
        zp = z.copy()
        # Fisher-Yates with Lemire's unbiased multiply-shift bounded integers: two 32-bit draws
        # per SplitMix64 output and no float conversion (the shuffle is most of the cost).
        bits = np.uint64(0)
        have = False
        for i in range(n - 1, 0, -1):
            bound = np.uint64(i + 1)
            while True:
                if have:
                    r32 = bits & np.uint64(0xFFFFFFFF)
                    have = False
                else:
                    state[0] = state[0] + np.uint64(_GOLDEN)
                    bits = _mix64(state[0])
                    r32 = bits >> np.uint64(32)
                    have = True
                m = r32 * bound
                low = m & np.uint64(0xFFFFFFFF)
                if low >= bound or low >= (np.uint64(0x100000000) - bound) % bound:
                    break
            j = np.int64(m >> np.uint64(32))
            tmp = zp[i]
            zp[i] = zp[j]
            zp[j] = tmp
        s = 0.0
        for i in range(n):
            li = 0.0
            for p in range(uptr[i], uptr[i + 1]):
                li += udata[p] * zp[uind[p]]
            s += zp[i] * li
        out[r] = s
    return out


# -- helpers --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Graph:
    """Our private, contiguous, read-only copy of the weights."""

    indptr: np.ndarray
    indices: np.ndarray
    card: np.ndarray
    ids: tuple
    spec: str

    @property
    def n(self) -> int:
        return len(self.card)

    @property
    def islands(self) -> np.ndarray:
        return self.card == 0


def _graph(w: SpatialWeights | sp.spmatrix, n: int) -> _Graph:
    if not isinstance(w, SpatialWeights):
        if not sp.issparse(w):
            raise AnalysisError("weights must be a SpatialWeights or a scipy sparse matrix")
        w = from_matrix(w)
    if w.n != n:
        raise AnalysisError(f"{n} values but weights for {w.n} areas")
    m = w.matrix
    indptr = np.ascontiguousarray(m.indptr, dtype=np.int64)
    indices = np.ascontiguousarray(m.indices, dtype=np.int64)
    card = np.diff(indptr)
    for a in (indptr, indices, card):
        a.flags.writeable = False
    return _Graph(indptr, indices, card, w.ids, w.spec)


def _lag(g: _Graph, x: np.ndarray, wdata: np.ndarray) -> np.ndarray:
    m = sp.csr_matrix((wdata, g.indices, g.indptr), shape=(g.n, g.n))
    return m @ x


def _check_y(y: Any, ids: Sequence) -> np.ndarray:
    x = np.array(y, dtype=np.float64).ravel()  # a copy: never touch the caller's array
    bad = np.flatnonzero(~np.isfinite(x))
    if len(bad):
        names = ", ".join(str(ids[i]) for i in bad[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise AnalysisError(f"the value is missing or not finite for {len(bad)} area(s): {names}{more}")
    if len(x) < 4:
        raise AnalysisError(f"need at least 4 areas for these statistics, got {len(x)}")
    if np.ptp(x) == 0:
        raise AnalysisError(f"the value is the same ({x[0]:g}) in every area, so nothing can stand out: "
                            "check the categories and date range")
    return x


def _resolve_permutations(permutations: int | None, n: int) -> int:
    if permutations is None:
        return default_permutations(n)
    r = int(permutations)
    if r < 0:
        raise AnalysisError(f"permutations must be ≥ 0, got {r}")
    return r


def _check_seed(seed: int) -> int:
    s = int(seed)
    if s < 0 or s >= 2**63:
        raise AnalysisError(f"seed must be a whole number between 0 and 2**63 − 1, got {seed}")
    return s


def _pseudo_p(ge: np.ndarray, le: np.ndarray, n_perm: int) -> np.ndarray:
    """Two-sided pseudo p: 2·(min tail count + 1)/(R + 1), capped at 1."""
    return np.minimum(1.0, 2.0 * (np.minimum(ge, le) + 1.0) / (n_perm + 1.0))


_counts_memo: dict = {}
_counts_lock = threading.Lock()


def _conditional_p(x: np.ndarray, g: _Graph, active: np.ndarray, n_perm: int, seed: int) -> np.ndarray:
    """Two-sided pseudo p for the sites in ``active`` (NaN elsewhere).

    The tail counts depend only on (x, weights, R, seed), not on the statistic, so the last
    result is kept: Gi* then local Moran on the same values (what every analysis does) pays for
    the permutations once.
    """
    n = g.n
    p = np.full(n, np.nan)
    if n_perm == 0 or not active.any():
        return p
    key = (hashlib.sha1(x.tobytes()).digest(), hashlib.sha1(g.indptr.tobytes()).digest(),
           hashlib.sha1(g.indices.tobytes()).digest(), n_perm, seed)
    with _counts_lock:
        hit = _counts_memo.get(key)
    if hit is None:
        k_max = int(g.card.max())  # one matrix for every statistic on these weights
        perm = _conditional_matrix(n - 1, k_max, n_perm, seed)
        with _PARALLEL_LOCK:
            hit = _conditional_counts(x, g.indptr, g.indices, perm, ~g.islands)
        with _counts_lock:
            _counts_memo.clear()
            _counts_memo[key] = hit
    ge, le = hit
    p[active] = _pseudo_p(ge, le, n_perm)[active]
    return p


def shared_conditional_p(x: np.ndarray, adjacency: sp.csr_matrix, active: np.ndarray, permutations: int,
                         seed: int) -> np.ndarray:
    """Two-sided conditional-permutation p of the neighbour sum of every active bin (or area, or grid cell),
    all at once: the space-time cube's bins and :func:`gi_star` with ``draws="shared"``.

    Why not the per-site kernel (:func:`_conditional_p`): it sums R random neighbour sets for every
    one of the n·T bins (London: 46,260 bins × 999 × ≈ 13 random reads, most of the analysis time).
    Here the R random sets are drawn ONCE from all N bins (one matrix, :func:`_shared_draws`, as esda and
    GeoDa share one); their prefix sums give, for every cardinality k, R sums of a uniform random k-subset, and each
    bin's tail counts are two binary searches in the sorted sums of its k. The conditional test
    draws a bin's neighbours from the OTHER bins only: a draw is a uniform k-subset of the N bins,
    so the draws that do not contain bin b are exactly uniform k-subsets of the N − 1 others. Those
    that contain b (R·k/N of them on average, ≈ 0.3 for London) are removed from b's counts and from
    its R, so b's p is 2·(min(#≥, #≤) + 1)/(R_b + 1) over its R_b valid draws (docs/methods.md).

    ``x`` is the flat cube (bins in the adjacency's order), ``adjacency`` binary without self-loops;
    bins not ``active`` (islands) get NaN, as does everything when ``permutations`` is 0.
    """
    n_bins = x.shape[0]
    p = np.full(n_bins, np.nan)
    if permutations == 0 or not active.any():
        return p
    a = sp.csr_matrix(adjacency)
    card = np.diff(a.indptr).astype(np.int64)
    observed = a @ x  # each bin's neighbour sum (self excluded: Gi*'s own value is held fixed)
    k_max = int(card[active].max())
    perm = _shared_draws(n_bins, k_max, int(permutations), int(seed))  # R × k_max distinct bins
    sums = np.cumsum(x[perm], axis=1)  # column k − 1: the sum of a uniform random k-subset, per draw
    tol = 1e-11 * float(np.abs(x).max()) * card  # float ties from summation order count as ties (as stats.py)
    ge = np.zeros(n_bins, dtype=np.int64)
    le = np.zeros(n_bins, dtype=np.int64)
    for kk in np.unique(card[active]):
        idx = np.flatnonzero(active & (card == kk))
        ref = np.sort(sums[:, kk - 1])
        ge[idx] = permutations - np.searchsorted(ref, observed[idx] - tol[idx], side="left")
        le[idx] = np.searchsorted(ref, observed[idx] + tol[idx], side="right")
    # The draws that picked bin b itself among its first card[b] bins are not draws for b: take them out.
    rows = np.repeat(np.arange(permutations), k_max)
    cols = np.tile(np.arange(k_max), permutations)
    drawn = perm.ravel().astype(np.int64)
    own = active[drawn] & (cols < card[drawn])
    rows, drawn = rows[own], drawn[own]
    s = sums[rows, card[drawn] - 1]
    ge -= np.bincount(drawn, weights=s >= observed[drawn] - tol[drawn], minlength=n_bins).astype(np.int64)
    le -= np.bincount(drawn, weights=s <= observed[drawn] + tol[drawn], minlength=n_bins).astype(np.int64)
    valid = permutations - np.bincount(drawn, minlength=n_bins)
    p[active] = np.minimum(1.0, 2.0 * (np.minimum(ge, le)[active] + 1.0) / (valid[active] + 1.0))
    return p


def _readonly(**arrays: np.ndarray) -> None:
    for a in arrays.values():
        a.flags.writeable = False


# -- multiple testing -----------------------------------------------------------------------------

def fdr_cutoff(p: Any, alpha: float = 0.05) -> float:
    """Benjamini-Hochberg step-up cut-off: the largest p_(k) with p_(k) ≤ k·α/m.

    Areas with p ≤ the cut-off are significant. NaN p-values (islands) are not tests and do not
    count in m. Returns 0.0 when no p-value passes: unlike ``esda.fdr`` we do not fall back to
    the Bonferroni bound, because "nothing survives FDR" is the honest answer.
    """
    arr = np.asarray(p, dtype=float)
    arr = np.sort(arr[np.isfinite(arr)])
    m = len(arr)
    if m == 0:
        return 0.0
    passed = np.flatnonzero(arr <= alpha * np.arange(1, m + 1) / m)
    return float(arr[passed[-1]]) if len(passed) else 0.0


def bh_adjust(p: Any) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values); NaN stays NaN and is not counted."""
    arr = np.asarray(p, dtype=float)
    out = np.full(arr.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(arr))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(arr[ok], kind="mergesort")]
    q = arr[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(q[::-1])[::-1]
    out[order] = np.minimum(q, 1.0)
    return out


def bonferroni_cutoff(p: Any, alpha: float = 0.05) -> float:
    """α/m with m the number of finite p-values (the tests actually made)."""
    m = int(np.isfinite(np.asarray(p, dtype=float)).sum())
    return alpha / m if m else 0.0


def _cutoff(p: np.ndarray, alpha: float, fdr: bool) -> float:
    return fdr_cutoff(p, alpha) if fdr else float(alpha)


# -- Gi* ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GiStarResult:
    """Getis-Ord Gi* for every area; arrays are aligned with the weights' ids and read-only."""

    z: np.ndarray  #: Gi* z-score (ArcGIS GiZScore); NaN for islands
    p_norm: np.ndarray  #: two-sided normal p (ArcGIS GiPValue); NaN for islands
    p_sim: np.ndarray  #: two-sided conditional-permutation pseudo p; NaN if R = 0 or island
    g_star: np.ndarray  #: G*_i = Σ_j w*_ij x_j / Σ_j x_j with binary w*, self included
    bin: np.ndarray  #: ArcGIS Gi_Bin −3…+3 (0 for islands)
    labels: tuple  #: "Hot spot 99% confidence" … "No neighbours"
    island: np.ndarray
    n_neighbours: np.ndarray
    permutations: int
    seed: int
    alpha: float
    fdr: bool
    bin_cutoffs: dict  #: confidence level → p cut-off used for the bins (z-based when fdr is False)
    warnings: tuple = ()

    @property
    def g_star_geoda(self) -> np.ndarray:
        """pygeoda ``local_gstar`` values: G*_i/(k_i + 1) (row-standardised, self included)."""
        return self.g_star / (self.n_neighbours + 1.0)


#: how the conditional permutations of Gi* are drawn: R random neighbour sets per area (esda's and GeoDa's
#: conditional randomisation), or one shared set of R draws for every area (:func:`shared_conditional_p`)
DRAWS = ("per-site", "shared")


def gi_star(y: Any, w: SpatialWeights | sp.spmatrix, permutations: int | None = 0, seed: int = 12345,
            alpha: float = 0.05, fdr: bool = False, draws: str = "per-site") -> GiStarResult:
    """Ord & Getis (1995) Gi* exactly as ArcGIS "Hot Spot Analysis" computes it.

    Binary weights including the area itself (w*_ii = 1)::

        z_i = (Σ_j w*_ij x_j − X̄ Σ_j w*_ij) / (S · sqrt((n Σ_j w*_ij² − (Σ_j w*_ij)²)/(n − 1)))

    with X̄ the mean and S the population SD of all n values. The z-score is scale invariant, and
    ArcGIS ignores row standardisation for this tool because the z does not change with it.

    Parameters
    ----------
    y : values, one per area, in the order of the weights' ids.
    w : binary weights (no self-loops; the self-weight is added here).
    permutations : 0 for the analytical z only (ArcGIS), N for a conditional-permutation pseudo p
        as well (area i fixed, the others shuffled), None for the default by size.
    seed : makes the pseudo p reproducible, whatever the number of threads.
    alpha : used only to report the raw cut-off; the bins use ArcGIS's 90/95/99 % levels.
    fdr : bins from Benjamini-Hochberg cut-offs at α = 0.10/0.05/0.01 on the two-sided normal p
        (as ArcGIS's Gi_Bin "with FDR correction"); otherwise |z| ≥ 1.645/1.960/2.576.
    draws : ``per-site`` (R random neighbour sets for each area) or ``shared`` (one set of R draws for all
        areas, :func:`shared_conditional_p`: the same test, a few milliseconds for 20,000 grid cells where
        the per-site kernel takes a quarter of a second). Only the pseudo p depends on it.
    """
    if draws not in DRAWS:
        raise AnalysisError(f"draws must be one of {', '.join(DRAWS)}, got {draws!r}")
    g = _graph(w, len(np.ravel(y)))
    x = _check_y(y, g.ids)
    n_perm = _resolve_permutations(permutations, g.n)
    seed = _check_seed(seed)
    n = g.n
    island = g.islands.copy()
    ones = np.ones(len(g.indices))
    lag = _lag(g, x, ones)  # neighbours only
    wi = g.card + 1.0  # Σ_j w*_ij (self included); binary, so Σ w*² is the same
    xbar = x.mean()
    s = math.sqrt(max((x * x).mean() - xbar * xbar, 0.0))
    num = lag + x - xbar * wi
    den = s * np.sqrt((n * wi - wi * wi) / (n - 1.0))
    # An area whose neighbourhood (itself included) is every area has no variance to test against:
    # its Gi* is undefined (0/0), not "not significant".
    whole = den <= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(whole, np.nan, num / np.where(whole, 1.0, den))
    total = x.sum()
    g_star = (lag + x) / total if total != 0 else np.full(n, np.nan)
    z[island] = np.nan
    p_norm = _p_normal_two_sided(z)
    if draws == "shared":
        adjacency = sp.csr_matrix((ones, g.indices, g.indptr), shape=(n, n))
        p_sim = shared_conditional_p(x, adjacency, ~island, n_perm, seed)
    else:
        p_sim = _conditional_p(x, g, ~island, n_perm, seed)

    bins = np.zeros(n, dtype=np.int64)
    absz = np.abs(np.nan_to_num(z, nan=0.0))
    cutoffs: dict[str, float] = {}
    for level, zcrit in GI_BIN_Z[::-1]:  # 90, 95, 99: later (stricter) levels overwrite
        alpha_level = dict(GI_BIN_ALPHA)[level]
        if fdr:
            cut = fdr_cutoff(p_norm, alpha_level)
            sig = (p_norm <= cut) & (cut > 0) & ~island
        else:
            cut = alpha_level
            sig = (absz >= zcrit) & ~island
        cutoffs[f"{100 - round(alpha_level * 100)}%"] = cut
        bins[sig] = level
    bins = np.where(np.nan_to_num(z) < 0, -bins, bins)
    labels = tuple(LABEL_NO_NEIGHBOURS if island[i] else LABEL_UNDEFINED if whole[i] and not island[i]
                   else GI_LABELS[int(bins[i])] for i in range(n))
    warn = []
    if (whole & ~island).any():
        warn.append(f"Gi* is undefined for {int((whole & ~island).sum())} area(s) whose neighbourhood covers "
                    "every area (z = NaN, label 'Undefined'): use more areas or a smaller neighbourhood")
    if n < MIN_AREAS_GISTAR:
        warn.append(WARN_FEW_AREAS)
    if island.any():
        warn.append(_islands_warning(g))
    if total != 0 and (x < 0).any():
        warn.append("Gi* is meant for non-negative values (counts or rates); some values are negative")
    card = g.card.astype(np.int64)
    _readonly(z=z, p_norm=p_norm, p_sim=p_sim, g_star=g_star, bins=bins, island=island, card=card)
    return GiStarResult(z=z, p_norm=p_norm, p_sim=p_sim, g_star=g_star, bin=bins, labels=labels,
                        island=island, n_neighbours=card, permutations=n_perm, seed=seed,
                        alpha=float(alpha), fdr=bool(fdr), bin_cutoffs=cutoffs, warnings=tuple(warn))


def _islands_warning(g: _Graph) -> str:
    idx = np.flatnonzero(g.islands)
    names = ", ".join(str(g.ids[i]) for i in idx[:10]) + (f" and {len(idx) - 10} more" if len(idx) > 10 else "")
    return (f"{len(idx)} area(s) have no neighbours under '{g.spec}' weights and are excluded from "
            f"local inference (p = NaN, label 'No neighbours'): {names}")


# -- local Moran ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LocalMoranResult:
    """Local Moran's I (Anselin 1995) on row-standardised weights, esda/PySAL scaling."""

    I: np.ndarray  #: I_i = z_i · Σ_j w_ij z_j / m2, m2 = Σ z²/(n − 1) (GeoDa, esda); 0 for islands
    q: np.ndarray  #: quadrant 1 HH, 2 LH, 3 LL, 4 HL (PySAL numbering); 0 for islands
    lag: np.ndarray  #: row-standardised spatial lag of z
    p_sim: np.ndarray  #: two-sided conditional-permutation pseudo p; NaN for islands
    significant: np.ndarray
    labels: tuple  #: quadrant name where p ≤ cutoff, else "Not significant"; "No neighbours"
    island: np.ndarray
    cutoff: float
    permutations: int
    seed: int
    alpha: float
    fdr: bool
    warnings: tuple = ()

    @property
    def I_anselin(self) -> np.ndarray:
        """Anselin's (1995) textbook scaling, m2 = Σz²/n: ``I × n/(n − 1)``."""
        n = len(self.I)
        return self.I * n / (n - 1.0)


def local_moran(y: Any, w: SpatialWeights | sp.spmatrix, permutations: int | None = None,
                seed: int = 12345, alpha: float = 0.05, fdr: bool = False) -> LocalMoranResult:
    """Local Moran's I with conditional permutation inference.

    Row-standardised weights (each neighbour 1/k_i). ``I_i = z_i Σ_j w_ij z_j / m2`` with
    z = y − ȳ and m2 = Σ z²/(n − 1): exactly pygeoda/GeoDa's ``local_moran`` and esda's
    ``Moran_Local.Is``, so values can be compared directly. Anselin's (1995) m2 = Σ z²/n gives
    values larger by n/(n − 1) (``I_anselin``); the clusters and p-values are the same.

    Inference holds z_i fixed and shuffles the other n − 1 values into the neighbours
    (``permutations`` times, ``seed`` for reproducibility), then a two-sided pseudo p. The label
    is the quadrant where p ≤ cut-off (α, or the Benjamini-Hochberg cut-off when ``fdr``),
    otherwise "Not significant"; islands are "No neighbours" with p = NaN.
    """
    g = _graph(w, len(np.ravel(y)))
    x = _check_y(y, g.ids)
    n_perm = _resolve_permutations(permutations, g.n)
    if n_perm < MIN_LOCAL_PERMUTATIONS:
        raise AnalysisError(f"local Moran needs at least {MIN_LOCAL_PERMUTATIONS} permutations, got {n_perm}")
    seed = _check_seed(seed)
    n = g.n
    island = g.islands.copy()
    z = x - x.mean()
    m2 = (z * z).sum() / (n - 1.0)
    wdata = np.repeat(1.0 / np.maximum(g.card, 1), g.card)
    lag = _lag(g, z, wdata)
    I = z * lag / m2
    q = np.where(z > 0, np.where(lag > 0, 1, 4), np.where(lag > 0, 2, 3)).astype(np.int64)
    q[island] = 0
    active = ~island & (z != 0)  # z_i = 0 gives I_i = 0 under every permutation: p = 1
    p = _conditional_p(x, g, active, n_perm, seed)
    p[~island & (z == 0)] = 1.0
    cutoff = _cutoff(p, alpha, fdr)
    sig = (p <= cutoff) & ~island
    labels = tuple(LABEL_NO_NEIGHBOURS if island[i] else (LISA_QUADRANTS[int(q[i])] if sig[i]
                   else LABEL_NOT_SIGNIFICANT) for i in range(n))
    warn = [_islands_warning(g)] if island.any() else []
    _readonly(I=I, q=q, lag=lag, p=p, sig=sig, island=island)
    return LocalMoranResult(I=I, q=q, lag=lag, p_sim=p, significant=sig, labels=labels, island=island,
                            cutoff=cutoff, permutations=n_perm, seed=seed, alpha=float(alpha),
                            fdr=bool(fdr), warnings=tuple(warn))


# -- global Moran ---------------------------------------------------------------------------------

def moran_global(y: Any, w: SpatialWeights | sp.spmatrix, permutations: int | None = None,
                 seed: int = 12345, transform: str = "r") -> dict[str, Any]:
    """Global Moran's I with normality, randomisation (Cliff & Ord 1981) and permutation inference.

    ``I = (n/S0) Σ_ij w_ij z_i z_j / Σ_i z_i²`` on row-standardised weights (``transform='r'``,
    the default, as GeoDa and esda) or binary (``'b'``). E[I] = −1/(n − 1). All p-values are
    two-sided; ``p_sim`` = 2·(min tail + 1)/(R + 1) from R full random permutations of y.
    Islands keep a zero row (S0 = number of areas with neighbours).
    """
    g = _graph(w, len(np.ravel(y)))
    x = _check_y(y, g.ids)
    n_perm = _resolve_permutations(permutations, g.n)
    seed = _check_seed(seed)
    n = g.n
    if transform.lower() == "r":
        wdata = np.repeat(1.0 / np.maximum(g.card, 1), g.card)
    elif transform.lower() == "b":
        wdata = np.ones(len(g.indices))
    else:
        raise AnalysisError(f"transform must be 'r' or 'b', got {transform!r}")
    W = sp.csr_matrix((wdata, g.indices, g.indptr), shape=(n, n))
    z = x - x.mean()
    zz = float(z @ z)
    s0 = float(W.sum())
    if s0 == 0:
        raise AnalysisError("no area has a neighbour: Moran's I is undefined")
    I = n / s0 * float(z @ (W @ z)) / zz
    ei = -1.0 / (n - 1.0)
    wt = W + W.T
    s1 = 0.5 * float(wt.multiply(wt).sum())
    s2 = float(((np.asarray(W.sum(axis=1)).ravel() + np.asarray(W.sum(axis=0)).ravel()) ** 2).sum())
    vi_norm = (n * n * s1 - n * s2 + 3 * s0 * s0) / ((n * n - 1.0) * s0 * s0) - ei * ei
    b2 = n * float((z ** 4).sum()) / zz ** 2
    a = n * ((n * n - 3 * n + 3) * s1 - n * s2 + 3 * s0 * s0)
    b = b2 * ((n * n - n) * s1 - 2 * n * s2 + 6 * s0 * s0)
    vi_rand = (a - b) / ((n - 1.0) * (n - 2.0) * (n - 3.0) * s0 * s0) - ei * ei
    # A complete neighbour graph (every area a neighbour of every other) leaves I no variance to test:
    # the variances are 0 up to rounding, so z is undefined rather than a huge or imaginary number.
    tiny = 1e-12 * max(ei * ei, 1e-300)
    z_norm = (I - ei) / math.sqrt(vi_norm) if vi_norm > tiny else float("nan")
    z_rand = (I - ei) / math.sqrt(vi_rand) if vi_rand > tiny else float("nan")
    out: dict[str, Any] = {
        "I": I, "EI": ei, "VI_norm": vi_norm, "z_norm": z_norm,
        "p_norm": _p_normal_two_sided(z_norm) if math.isfinite(z_norm) else float("nan"),
        "VI_rand": vi_rand, "z_rand": z_rand,
        "p_rand": _p_normal_two_sided(z_rand) if math.isfinite(z_rand) else float("nan"),
        "p_sim": float("nan"), "EI_sim": float("nan"), "z_sim": float("nan"),
        "permutations": n_perm, "seed": seed, "n": n, "transform": transform.lower(),
        "weights": g.spec, "sidedness": "two-sided", "islands": int(g.islands.sum()),
    }
    if n_perm > 0:
        up = sp.triu(wt, k=1, format="csr")
        up.sort_indices()
        with _PARALLEL_LOCK:
            sims = _moran_permutations(z, up.indptr.astype(np.int64), up.indices.astype(np.int64),
                                       np.ascontiguousarray(up.data, dtype=np.float64), n_perm,
                                       np.uint64(seed)) * (n / s0 / zz)
        tol = 1e-12 * max(1.0, abs(I))
        ge = int((sims >= I - tol).sum())
        le = int((sims <= I + tol).sum())
        out["p_sim"] = float(min(1.0, 2.0 * (min(ge, le) + 1.0) / (n_perm + 1.0)))
        out["EI_sim"] = float(sims.mean())
        sd = float(sims.std(ddof=1)) if n_perm > 1 else float("nan")
        out["z_sim"] = (I - out["EI_sim"]) / sd if sd and sd > 0 else float("nan")
    return out


# -- rates ----------------------------------------------------------------------------------------

def empirical_bayes_rate(counts: Any, population: Any) -> np.ndarray:
    """Global (aspatial) empirical Bayes rates, Marshall (1991), as ``esda.smoothing.Empirical_Bayes``.

    Small populations give unstable raw rates (one incident in 300 residents looks like a hot
    spot); EB shrinks each rate r_i = e_i/b_i toward the overall rate r̄ = Σe/Σb by the weight
    a/(a + r̄/b_i), with a = Σ b_i (r_i − r̄)²/Σb − r̄/b̄. When the method-of-moments estimate a is
    negative (less spread than Poisson noise alone) we set a = 0, i.e. every rate becomes r̄, as
    Marshall recommends; esda leaves a negative a in place. Rates are per unit of population.
    """
    e = np.asarray(counts, dtype=float).ravel()
    b = np.asarray(population, dtype=float).ravel()
    if e.shape != b.shape:
        raise AnalysisError(f"{len(e)} counts but {len(b)} populations")
    if not np.isfinite(e).all() or not np.isfinite(b).all():
        raise AnalysisError("counts and populations must be finite numbers")
    if (b <= 0).any():
        raise AnalysisError(f"population must be > 0 for a rate; {int((b <= 0).sum())} area(s) have none")
    if (e < 0).any():
        raise AnalysisError("counts must not be negative")
    r_mean = e.sum() / b.sum()
    r = e / b
    a = (b * (r - r_mean) ** 2).sum() / b.sum() - r_mean / b.mean()
    a = max(a, 0.0)
    if a == 0.0:
        return np.full_like(r, r_mean)
    weight = a / (a + r_mean / b)
    return weight * r + (1.0 - weight) * r_mean


# -- warm-up --------------------------------------------------------------------------------------

def warm_up() -> None:
    """Compile (or load from numba's on-disk cache) every kernel on a 5×5 lattice.

    The web app calls this at start so that no request pays the compile time.
    """
    side = 5
    n = side * side
    rows, cols = [], []
    for i in range(side):
        for j in range(side):
            for di, dj in ((0, 1), (1, 0), (0, -1), (-1, 0)):
                a, b = i + di, j + dj
                if 0 <= a < side and 0 <= b < side:
                    rows.append(i * side + j)
                    cols.append(a * side + b)
    w = from_matrix(sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)), spec="rook")
    y = np.arange(n, dtype=float) % 7
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        gi_star(y, w, permutations=99, seed=1)
        local_moran(y, w, permutations=99, seed=1)
        moran_global(y, w, permutations=99, seed=1)
