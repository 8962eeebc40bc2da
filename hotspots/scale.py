"""The scale of analysis for a fixed distance band: incremental spatial autocorrelation, as ArcGIS's
Optimized Hot Spot Analysis chooses it.

Why: a distance band picked by hand (500 m? 1 km?) changes which cells are hot. ArcGIS's optimized
mode measures global Moran's I over increasing distances and takes the first statistically
significant peak of its z-score: the distance at which clustering is most pronounced before larger
bands start to mix in other clusters. This module does that with ``hotspots.stats.moran_global``
(row-standardised distance-band weights and the randomisation z, as ArcGIS's Spatial
Autocorrelation tool) and says in a sentence which distance it chose and why.

Defaults (docs/methods.md, "Optimized distance band"): the first distance is the smallest that gives
every feature at least one neighbour, the increment is the average distance to the nearest
neighbour, 10 distances; with no peak, the fallback is the average distance to the K nearest
neighbours, K = 5 % of the features clamped to 3…30, capped at one standard distance.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import AnalysisError
from .stats import moran_global
from .weights import _from_clean_csr  # the pairs are already a clean CSR

N_BANDS = 10
ALPHA = 0.05
#: ArcGIS's fallback neighbour count: 5 % of the features, never fewer than 3 nor more than 30.
FALLBACK_SHARE, FALLBACK_MIN_K, FALLBACK_MAX_K = 0.05, 3, 30
#: A centroid exactly one band away counts as inside: lattices put many neighbours at exactly d.
_BAND_SLACK = 1e-9


class ScaleChoice(NamedTuple):
    """What :func:`optimized_distance` chose, the table it chose from (``peak`` marks the chosen row;
    no row is marked when the fallback was used) and the sentence that says why."""

    distance_m: float
    table: pd.DataFrame  #: distance_m, I, EI, z, p, min_neighbours, mean_neighbours, peak
    text: str


def _check_centroids(values: Any, centroids: Any) -> tuple[np.ndarray, np.ndarray]:
    xy = np.asarray(centroids, dtype=float)
    y = np.asarray(values, dtype=float).ravel()
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise AnalysisError(f"centroids must be an (n, 2) array of eastings and northings, got shape {xy.shape}")
    if len(xy) != len(y):
        raise AnalysisError(f"{len(y)} values for {len(xy)} centroids")
    if len(y) < 30:
        raise AnalysisError(f"the optimized distance band needs at least 30 features (ArcGIS's minimum), got {len(y)}")
    if not np.isfinite(xy).all():
        raise AnalysisError("some centroids have missing or non-finite coordinates")
    return y, xy


class _Bands:
    """Every neighbour pair up to the largest distance, once, as CSR-ordered (row, column, distance):
    the weights of any smaller band are then a mask over it, already symmetric and sorted."""

    def __init__(self, xy: np.ndarray, max_d: float) -> None:
        from scipy.spatial import cKDTree
        pairs = cKDTree(xy).query_pairs(max_d * (1 + _BAND_SLACK), output_type="ndarray")
        dist = np.hypot(*(xy[pairs[:, 0]] - xy[pairs[:, 1]]).T) if len(pairs) else np.zeros(0)
        rows, cols = np.r_[pairs[:, 0], pairs[:, 1]], np.r_[pairs[:, 1], pairs[:, 0]]
        # scipy's COO → CSR is a counting sort (O(pairs), where a lexsort took seconds); each entry carries
        # its 1-based ordinal rather than its distance, which could be 0 and would then be dropped.
        n = len(xy)
        m = sp.csr_matrix((np.arange(1, len(rows) + 1, dtype=np.float64), (rows, cols)), shape=(n, n))
        m.sort_indices()
        self.n = n
        self.rows = np.repeat(np.arange(n), np.diff(m.indptr))
        self.cols = m.indices.astype(np.int32)
        self.dist = np.r_[dist, dist][m.data.astype(np.int64) - 1]

    def weights(self, d: float):
        keep = self.dist <= d * (1 + _BAND_SLACK)
        indptr = np.zeros(self.n + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.rows[keep], minlength=self.n), out=indptr[1:])
        return _from_clean_csr(indptr, self.cols[keep], tuple(range(self.n)), f"distance:{d:g}")


def default_distances(centroids: Any, n_bands: int = N_BANDS) -> np.ndarray:
    """ArcGIS's defaults: start where every feature has a neighbour (the largest nearest-neighbour
    distance), step by the average nearest-neighbour distance, ``n_bands`` distances."""
    from scipy.spatial import cKDTree
    xy = np.asarray(centroids, dtype=float)
    d, _ = cKDTree(xy).query(xy, k=2)
    nn = d[:, 1]
    if not (nn > 0).all():
        raise AnalysisError("some features share a centroid: distances between features are undefined")
    return float(nn.max()) + float(nn.mean()) * np.arange(n_bands)


def fallback_distance(centroids: Any) -> tuple[float, int, str]:
    """ArcGIS's no-peak fallback: the average distance to the K-th nearest neighbour, K = 5 % of
    the features (3 to 30), but no more than one standard distance. Returns (metres, K, how)."""
    from scipy.spatial import cKDTree
    xy = np.asarray(centroids, dtype=float)
    n = len(xy)
    k = int(min(max(round(FALLBACK_SHARE * n), FALLBACK_MIN_K), FALLBACK_MAX_K, n - 1))
    d, _ = cKDTree(xy).query(xy, k=k + 1)
    avg = float(d[:, k].mean())
    sd = float(math.sqrt(((xy - xy.mean(axis=0)) ** 2).sum(axis=1).mean()))
    if avg > sd:
        return sd, k, f"one standard distance ({sd:,.0f} m), smaller than the average distance to the {k} nearest neighbours"
    return avg, k, f"the average distance to the {k} nearest neighbours ({avg:,.0f} m)"


def first_peak(z: np.ndarray, p: np.ndarray, alpha: float = ALPHA) -> int | None:
    """Index of the first distance whose z is above both its neighbours' and whose p ≤ alpha."""
    for i in range(1, len(z) - 1):
        if z[i] > z[i - 1] and z[i] > z[i + 1] and p[i] <= alpha:
            return i
    return None


def optimized_distance(values: Any, centroids: Any, distances: Any = None, alpha: float = ALPHA) -> ScaleChoice:
    """Choose a distance band from the first significant peak of global Moran's I z over ``distances``
    (metres; ArcGIS's defaults when None): ``distance_m, table, text``.
    """
    y, xy = _check_centroids(values, centroids)
    ds = default_distances(xy) if distances is None else np.asarray(distances, dtype=float).ravel()
    if len(ds) < 3 or not np.isfinite(ds).all() or (ds <= 0).any() or (np.diff(ds) <= 0).any():
        raise AnalysisError("distances must be at least 3 increasing positive numbers of metres")
    bands = _Bands(xy, float(ds[-1]))
    rows = []
    for d in ds:
        w = bands.weights(float(d))
        m = moran_global(y, w, permutations=0, transform="r")
        rows.append({"distance_m": float(d), "I": m["I"], "EI": m["EI"], "z": m["z_rand"], "p": m["p_rand"],
                     "min_neighbours": int(w.cardinalities.min()),
                     "mean_neighbours": float(w.cardinalities.mean())})
    table = pd.DataFrame(rows)
    z, p = table["z"].to_numpy(), table["p"].to_numpy()
    i = first_peak(np.nan_to_num(z, nan=-np.inf), np.nan_to_num(p, nan=1.0), alpha)
    table["peak"] = False
    span = f"{len(ds)} distances from {ds[0]:,.0f} m to {ds[-1]:,.0f} m"
    if i is not None:
        table.loc[i, "peak"] = True
        d = float(ds[i])
        text = (f"The distance band chosen is {d:,.0f} m: the first peak of spatial autocorrelation "
                f"(global Moran's I = {table['I'][i]:.4f}, z = {z[i]:.2f}, p = {p[i]:.2g}) among {span}, "
                "as ArcGIS's Optimized Hot Spot Analysis chooses it.")
        return ScaleChoice(d, table, text)
    d, k, how = fallback_distance(xy)
    text = (f"The distance band chosen is {d:,.0f} m: no statistically significant peak of spatial "
            f"autocorrelation among {span}, so the band is {how}, as ArcGIS's Optimized Hot Spot "
            "Analysis does when it finds no peak.")
    return ScaleChoice(d, table, text)
