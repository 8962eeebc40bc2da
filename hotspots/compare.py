"""Comparing two sources area by area (issue 12): do the police data and the hospital data agree on where?

Why: the needs assessment's sharpest finding came from putting two sources side by side (Heath Town: most
under-25 hospital admissions for assault in the West Midlands, yet 15th in police data). Three views:

* **rankings** with Spearman's rank correlation: ranks by average rank for ties, rho the Pearson
  correlation of the ranks, p from Student's t with n − 2 degrees of freedom (two-sided): what
  ``scipy.stats.spearmanr`` computes, written out here and checked against it in the tests;
* **joint hot spots**: each source's Gi* (95 %, the request's correction) on the same weights, then one
  class per area: hot in both, in only one, in neither;
* **bivariate LISA** in GeoDa's convention: ``I_i = (n − 1) · zx_i · Σ_j w_ij zy_j / Σ zx²`` with x and y
  standardised and row-standardised weights, which is x_i standardised (by the sample standard deviation)
  times the spatial lag of y standardised: exactly esda's ``Moran_Local_BV.Is``. Inference holds x_i fixed
  and draws the neighbours' y from the other n − 1 areas (conditional permutation, as esda); the engine
  draws with its own reproducible generator, and accepts a permutation matrix so that the tests can give it
  esda's draws and get esda's ``p_sim`` back.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import AnalysisError
from .weights import SpatialWeights

#: GeoDa's bivariate LISA quadrants: (x high?, lag of y high?) -> label
BV_QUADRANTS = {(True, True): "High-High", (False, False): "Low-Low", (True, False): "High-Low",
                (False, True): "Low-High"}
NOT_SIGNIFICANT, NO_NEIGHBOURS = "Not significant", "No neighbours"


@dataclass(frozen=True)
class Spearman:
    rho: float
    p: float
    n: int


def spearman(a, b) -> Spearman:
    """Spearman's rank correlation of ``a`` and ``b`` (ties: average ranks) and its two-sided p (t with
    n − 2 df); NaN when either is constant or n < 3."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    n = len(a)
    if n < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return Spearman(float("nan"), float("nan"), n)
    from scipy import stats as sps  # here, not at import: scipy.stats takes 0.6 s to import, every CLI call paid it
    ra, rb = sps.rankdata(a), sps.rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    rho = float((ra * rb).sum() / np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    rho = max(-1.0, min(1.0, rho))
    if abs(rho) == 1.0:
        return Spearman(rho, 0.0, n)
    t = rho * np.sqrt((n - 2) / ((1.0 - rho) * (1.0 + rho)))
    return Spearman(rho, float(2.0 * sps.t.sf(abs(t), n - 2)), n)


def ranks(values) -> np.ndarray:
    """1 = the largest value; ties share the best rank (competition ranking, as league tables do)."""
    from scipy import stats as sps
    v = np.asarray(values, dtype=float)
    return sps.rankdata(-v, method="min").astype(np.int64)


@dataclass(frozen=True)
class BivariateLisa:
    Is: np.ndarray  #: esda Moran_Local_BV.Is
    lag: np.ndarray  #: spatial lag of standardised y (row-standardised weights)
    zx: np.ndarray
    p_sim: np.ndarray  #: two-sided pseudo p, 2·(min tail + 1)/(R + 1) (the engine's convention)
    p_folded: np.ndarray  #: esda's p_sim: (min(#≥, #<) + 1)/(R + 1)
    labels: tuple[str, ...]
    cutoff: float
    permutations: int
    seed: int


def bivariate_lisa(x, y, w: SpatialWeights, permutations: int = 9999, seed: int = 12345, alpha: float = 0.05,
                   fdr: bool = False, perm: np.ndarray | None = None) -> BivariateLisa:
    """Bivariate local Moran of ``x`` against the neighbours' ``y`` (see module doc). ``perm`` (R × k_max
    indices into the other n − 1 areas) replaces the engine's own draws."""
    from .stats import _conditional_matrix, fdr_cutoff
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    n = len(x)
    if len(y) != n or w.n != n:
        raise AnalysisError(f"{n} values of x, {len(y)} of y and weights for {w.n} areas")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise AnalysisError("a value is missing in one of the two sources: use variable=count")
    if n < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        raise AnalysisError("each source must vary between areas (at least 4 areas, not all equal) for a "
                            "bivariate LISA: choose a longer period or other categories")
    zx = (x - x.mean()) / x.std()
    zy = (y - y.mean()) / y.std()
    m = w.matrix
    card = np.diff(m.indptr)
    data = np.repeat(1.0 / np.maximum(card, 1), card)
    import scipy.sparse as sp
    wr = sp.csr_matrix((data, m.indices, m.indptr), shape=(n, n))
    lag = wr @ zy
    scaling = (n - 1) / (zx * zx).sum()
    Is = scaling * zx * lag
    k_max = int(card.max()) if n else 0
    if perm is None:
        if permutations < 99:
            raise AnalysisError(f"a bivariate LISA needs at least 99 permutations, got {permutations}")
        perm = _conditional_matrix(n - 1, k_max, int(permutations), int(seed)) if k_max else np.zeros((0, 0), int)
    R = perm.shape[0]
    ge = np.zeros(n, dtype=np.int64)
    le = np.zeros(n, dtype=np.int64)
    for i in range(n):
        k = card[i]
        if k == 0:
            continue
        idx = perm[:, :k].astype(np.int64)
        idx = idx + (idx >= i)  # index into the other n − 1 areas
        sims = zx[i] * (zy[idx] @ data[m.indptr[i]:m.indptr[i + 1]] + 0.0) * scaling
        ge[i], le[i] = int((sims >= Is[i]).sum()), int((sims <= Is[i]).sum())
    island = card == 0
    p_sim = np.where(island, np.nan, np.minimum(1.0, 2.0 * (np.minimum(ge, le) + 1.0) / (R + 1.0)))
    p_folded = np.where(island, np.nan, (np.minimum(ge, R - ge) + 1.0) / (R + 1.0))
    cutoff = fdr_cutoff(p_sim, alpha) if fdr else float(alpha)
    labels = tuple(NO_NEIGHBOURS if island[i] else BV_QUADRANTS[(bool(zx[i] > 0), bool(lag[i] > 0))]
                   if p_sim[i] <= cutoff else NOT_SIGNIFICANT for i in range(n))
    return BivariateLisa(Is, lag, zx, p_sim, p_folded, labels, cutoff, R, int(seed))


#: joint hot-spot classes, in legend order, and their colours (ColorBrewer-like: purple both, red A, blue B)
JOINT = ("both", "a", "b", "neither")
JOINT_COLOURS = {"both": "#762a83", "a": "#d6604d", "b": "#4393c3", "neither": "#f0f0f0"}


def joint_classes(hot_a, hot_b) -> np.ndarray:
    """'both' / 'a' / 'b' / 'neither' per area from two boolean hot-spot masks."""
    a, b = np.asarray(hot_a, bool), np.asarray(hot_b, bool)
    return np.where(a & b, "both", np.where(a, "a", np.where(b, "b", "neither")))
