"""Kernel density of incidents on grid cell centroids, in incidents per km², with a metric bandwidth.

Why our own: ArcGIS Kernel Density, CrimeStat and QGIS Heatmap use the quartic (biweight) kernel,
which neither scipy nor scikit-learn offers; folium's HeatMap is a pixel-radius picture, not a
density. Here the density at a cell centroid is the exact sum over every incident within the
kernel's support, found through a bucket grid (a numba kernel, parallel over cells), so the result
equals a direct sum over every point × every cell (tested to 1e-12).

Kernels, with u = d/h (d the distance in metres, h the bandwidth), density = Σ wᵢ K(uᵢ)/h²:

* ``quartic`` (default): K(u) = 3/π · (1 − u²)² for u < 1, else 0. ArcGIS's Kernel Density
  formula (Silverman 1986, p. 76, eq. 4.5); h is ArcGIS's "search radius". It integrates to 1.
* ``gaussian``: K(u) = 1/(2π) · exp(−u²/2), h the standard deviation (as scikit-learn's
  ``KernelDensity(kernel="gaussian")`` in two dimensions). Summed over the incidents within a
  radius R, starting at h·√(2 ln(2⁵³·Σw)) and widened for each cell until the incidents left out
  (each farther than R) can add less than 2⁻⁵³ of the cell's sum: exact to rounding in every cell.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit, prange

from .errors import AnalysisError
from .grid import positive_metres

KERNELS = ("quartic", "gaussian")
M2_PER_KM2 = 1e6
#: The factor that turns Silverman's Gaussian normal-reference bandwidth into the quartic kernel's
#: radius with the same asymptotic error, (R(K)/μ₂(K)²)^(1/6) ratio in two dimensions:
#: quartic R = 9/(5π), μ₂ = 1/8; Gaussian R = 1/(4π), μ₂ = 1. Equals Silverman's Table 4.1 (2.78).
QUARTIC_PER_GAUSSIAN = (2304.0 / 5.0) ** (1.0 / 6.0)
_EPS53 = 2.0 ** -53
#: Bucket side as a fraction of the support radius: smaller buckets scan less empty ground.
_BUCKETS_PER_RADIUS = 2


def _as_xy(points: Any, what: str) -> np.ndarray:
    xy = np.asarray(points, dtype=float)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise AnalysisError(f"{what} must be an (n, 2) array of eastings and northings in metres, got shape {xy.shape}")
    bad = ~np.isfinite(xy).all(axis=1)
    if bad.any():
        raise AnalysisError(f"{what}: {int(bad.sum())} row(s) have missing or non-finite coordinates "
                            f"(first at row {int(np.flatnonzero(bad)[0])})")
    return np.ascontiguousarray(xy)


def _check_bandwidth(bandwidth_m: Any, cell_m: float | None) -> float:
    h = positive_metres(bandwidth_m, "bandwidth")
    if cell_m is not None and h < float(cell_m):
        raise AnalysisError(f"bandwidth {h:g} m is smaller than the cell size {float(cell_m):g} m: the surface "
                            "would only show which cells hold an incident; use a bandwidth of at least one cell")
    return h


def _check_weights(weights: Any, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = np.asarray(weights, dtype=float).ravel()
    if len(w) != n:
        raise AnalysisError(f"{len(w)} weights for {n} points")
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        raise AnalysisError(f"weights must be finite and ≥ 0: {int(bad.sum())} are not "
                            f"(first at row {int(np.flatnonzero(bad)[0])})")
    return np.ascontiguousarray(w)


def support_radius(bandwidth_m: float, kernel: str, total_weight: float) -> float:
    """Distance beyond which an incident adds nothing (quartic), or the first radius tried for the
    Gaussian (beyond it all incidents together add less than 2⁻⁵³ of one incident's peak)."""
    if kernel == "quartic":
        return bandwidth_m
    return bandwidth_m * math.sqrt(2.0 * math.log(2.0 ** 53 * max(total_weight, 1.0)))


@njit(cache=True, nogil=True)
def _sum_within(x, y, px, py, pw, start, bx0, by0, bsize, nbx, nby, radius, inv_h2, gaussian):  # pragma: no cover
    """Σ w·k(u²) over the points closer than ``radius`` to (x, y), scanning only the buckets in reach."""
    fx0 = math.floor((x - radius - bx0) / bsize)
    fx1 = math.floor((x + radius - bx0) / bsize)
    fy0 = math.floor((y - radius - by0) / bsize)
    fy1 = math.floor((y + radius - by0) / bsize)
    if fx1 < 0 or fy1 < 0 or fx0 > nbx - 1 or fy0 > nby - 1:
        return 0.0
    i0 = max(int(fx0), 0)
    i1 = min(int(fx1), nbx - 1)
    j0 = max(int(fy0), 0)
    j1 = min(int(fy1), nby - 1)
    r2 = radius * radius
    acc = 0.0
    for j in range(j0, j1 + 1):
        # buckets i0..i1 of row j are contiguous in the sorted points
        for k in range(start[j * nbx + i0], start[j * nbx + i1 + 1]):
            dx = px[k] - x
            dy = py[k] - y
            d2 = dx * dx + dy * dy
            if d2 < r2:
                u2 = d2 * inv_h2
                if gaussian:
                    acc += pw[k] * math.exp(-0.5 * u2)
                else:
                    v = 1.0 - u2
                    acc += pw[k] * v * v
    return acc


@njit(cache=True, nogil=True, parallel=True)
def _bucket_sum(tx, ty, px, py, pw, start, bx0, by0, bsize, nbx, nby, radius, h, gaussian, wtot):  # pragma: no cover
    n_t = tx.shape[0]
    out = np.zeros(n_t)
    inv_h2 = 1.0 / (h * h)
    bx1 = bx0 + nbx * bsize
    by1 = by0 + nby * bsize
    for t in prange(n_t):
        x = tx[t]
        y = ty[t]
        r = radius
        acc = _sum_within(x, y, px, py, pw, start, bx0, by0, bsize, nbx, nby, r, inv_h2, gaussian)
        if gaussian:
            # Every point left out is at least r away, so together they add less than
            # wtot·exp(−r²/2h²): widen the radius until that is below 2⁻⁵³ of what was summed, or
            # until the radius reaches every point.
            far = math.sqrt(max((x - bx0) ** 2, (x - bx1) ** 2) + max((y - by0) ** 2, (y - by1) ** 2))
            while r < far and wtot * math.exp(-0.5 * r * r * inv_h2) > _EPS53 * acc:
                r *= 1.25
                acc = _sum_within(x, y, px, py, pw, start, bx0, by0, bsize, nbx, nby, r, inv_h2, gaussian)
        out[t] = acc
    return out


def kde(points_xy: Any, targets_xy: Any, bandwidth_m: float, kernel: str = "quartic", weights: Any = None,
        cell_m: float | None = None) -> np.ndarray:
    """Kernel density at each target (cell centroids), in incidents per km².

    ``weights`` (optional, ≥ 0) count an incident several times, as ArcGIS's population field.
    ``cell_m`` (optional): the grid's cell size; a bandwidth smaller than it is an error.
    """
    if kernel not in KERNELS:
        raise AnalysisError(f"kernel {kernel!r} not understood: use 'quartic' or 'gaussian'")
    h = _check_bandwidth(bandwidth_m, cell_m)
    pts = _as_xy(points_xy, "points")
    tgt = _as_xy(targets_xy, "targets")
    w = _check_weights(weights, len(pts))
    if len(tgt) == 0:
        return np.zeros(0)
    if len(pts) == 0:
        return np.zeros(len(tgt))
    radius = support_radius(h, kernel, float(w.sum()))
    # Buckets of radius/2 over the points' box, fewer (larger) if that would be too many.
    x0, y0 = pts.min(axis=0)
    span = np.maximum(pts.max(axis=0) - (x0, y0), 1e-9)
    bsize = radius / _BUCKETS_PER_RADIUS
    cap = max(4 * len(pts), 1_000_000)
    while (span[0] / bsize + 1) * (span[1] / bsize + 1) > cap:
        bsize *= 2.0
    nbx = int(span[0] // bsize) + 1
    nby = int(span[1] // bsize) + 1
    bx = np.minimum(((pts[:, 0] - x0) // bsize).astype(np.int64), nbx - 1)
    by = np.minimum(((pts[:, 1] - y0) // bsize).astype(np.int64), nby - 1)
    bucket = by * nbx + bx
    order = np.argsort(bucket, kind="stable")
    start = np.zeros(nbx * nby + 1, dtype=np.int64)
    np.cumsum(np.bincount(bucket, minlength=nbx * nby), out=start[1:])
    px, py, pw = (np.ascontiguousarray(a[order]) for a in (pts[:, 0], pts[:, 1], w))
    raw = _bucket_sum(np.ascontiguousarray(tgt[:, 0]), np.ascontiguousarray(tgt[:, 1]), px, py, pw, start,
                      float(x0), float(y0), float(bsize), nbx, nby, radius, h, kernel == "gaussian",
                      float(w.sum()))
    norm = 3.0 / math.pi if kernel == "quartic" else 1.0 / (2.0 * math.pi)
    return raw * (norm / (h * h) * M2_PER_KM2)


def dual_kde(points_xy: Any, population_xy: Any, population: Any, targets_xy: Any, bandwidth_m: float,
             kernel: str = "quartic", per: float = 1_000.0, cell_m: float | None = None) -> np.ndarray:
    """Incidents per ``per`` residents, smoothed: ``per`` × KDE(incidents) / KDE(residents), both with
    the same kernel and bandwidth (sfhotspot's ``hotspot_dual_kde`` "ratio" method).

    Residents are points weighted by their head count (e.g. LSOA population-weighted centroids with
    the usual-resident population). Where no resident is within the kernel the rate is NaN, not ∞.
    """
    incidents = kde(points_xy, targets_xy, bandwidth_m, kernel, cell_m=cell_m)
    residents = kde(population_xy, targets_xy, bandwidth_m, kernel, weights=population, cell_m=cell_m)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(residents > 0, per * incidents / np.where(residents > 0, residents, 1.0), np.nan)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values, kind="stable")
    v, c = values[order], np.cumsum(weights[order])
    return float(v[np.searchsorted(c, 0.5 * c[-1])])


def bandwidth_rule(points_xy: Any, rule: str = "arcgis", kernel: str = "quartic", weights: Any = None) -> tuple[float, str]:
    """A bandwidth in metres from the incidents' spread, and the rule as a sentence.

    * ``arcgis``: ArcGIS Kernel Density's default search radius (ArcGIS 10.2.1 and later),
      0.9 · min(SD, √(1/ln 2) · Dm) · n^−0.2, with SD the standard distance from the (weighted)
      mean centre, Dm the (weighted) median distance to it and n the number of incidents (the sum
      of the weights when given). Meant for the quartic kernel.
    * ``silverman``: Silverman's (1986, eq. 4.14) normal-reference rule in two dimensions,
      σ · n^(−1/6) with σ² the mean of the two coordinate variances, for the Gaussian kernel; for the
      quartic kernel it is multiplied by 2.78 (Silverman's Table 4.1) to give the same smoothing.
    """
    if kernel not in KERNELS:
        raise AnalysisError(f"kernel {kernel!r} not understood: use 'quartic' or 'gaussian'")
    pts = _as_xy(points_xy, "points")
    w = _check_weights(weights, len(pts))
    n = float(w.sum())
    if len(pts) < 2 or n <= 0:
        raise AnalysisError("a bandwidth rule needs at least two incidents")
    centre = (pts * w[:, None]).sum(axis=0) / n
    d2 = ((pts - centre) ** 2).sum(axis=1)
    if rule == "arcgis":
        sd = math.sqrt(float((w * d2).sum()) / n)
        dm = _weighted_median(np.sqrt(d2), w)
        h = 0.9 * min(sd, math.sqrt(1.0 / math.log(2.0)) * dm) * n ** -0.2
        text = (f"Bandwidth {h:,.0f} m: ArcGIS's default search radius 0.9 × min(standard distance {sd:,.0f} m, "
                f"√(1/ln 2) × median distance to the mean centre {dm:,.0f} m) × n^−0.2, n = {n:,.0f}.")
    elif rule == "silverman":
        var = ((pts - centre) ** 2 * w[:, None]).sum(axis=0) / n
        sigma = math.sqrt(float(var.mean()))
        h = sigma * n ** (-1.0 / 6.0)
        text = f"Bandwidth {h:,.0f} m: Silverman's rule σ × n^(−1/6), σ = {sigma:,.0f} m, n = {n:,.0f}"
        if kernel == "quartic":
            h *= QUARTIC_PER_GAUSSIAN
            text = (f"Bandwidth {h:,.0f} m: Silverman's rule σ × n^(−1/6) × {QUARTIC_PER_GAUSSIAN:.2f} for the "
                    f"quartic kernel, σ = {sigma:,.0f} m, n = {n:,.0f}")
        text += "."
    else:
        raise AnalysisError(f"bandwidth rule {rule!r} not understood: use 'arcgis' or 'silverman'")
    if not h > 0:
        raise AnalysisError("the incidents are all at one place: no bandwidth rule applies; give one in metres")
    return float(h), text


def write_geotiff(values: Any, grid: Any, path: str | Path, tags: dict | None = None) -> Path:
    """Write per-cell values of a square grid (from :func:`hotspots.grid.make_grid`) as a one-band
    float64 GeoTIFF in EPSG:27700 for QGIS/ArcGIS; cells not in the grid are NoData (NaN).

    ``tags`` (e.g. ``{"bandwidth_m": 400, "kernel": "quartic", "units": "incidents per km²"}``) are
    written as GeoTIFF metadata tags.
    """
    import rasterio
    from affine import Affine
    if grid.attrs.get("shape", "square") != "square" or not {"ix", "iy"} <= set(grid.columns):
        raise AnalysisError("a GeoTIFF needs a square grid made by make_grid (hexagons are not raster cells)")
    v = np.asarray(values, dtype=float).ravel()
    if len(v) != len(grid):
        raise AnalysisError(f"{len(v)} values for {len(grid)} cells")
    cell = float(grid.attrs.get("cell_m") or grid.geometry.iloc[0].bounds[2] - grid.geometry.iloc[0].bounds[0])
    ix, iy = grid["ix"].to_numpy(), grid["iy"].to_numpy()
    col, row = ix - ix.min(), iy.max() - iy
    raster = np.full((int(row.max()) + 1, int(col.max()) + 1), np.nan)
    raster[row, col] = v
    # Built directly: rasterio's from_origin multiplies two Affines with ``*``, which affine 3 deprecates.
    transform = Affine(cell, 0.0, float(ix.min() * cell), 0.0, -cell, float((iy.max() + 1) * cell))
    path = Path(path)
    with rasterio.open(path, "w", driver="GTiff", height=raster.shape[0], width=raster.shape[1], count=1,
                       dtype="float64", crs="EPSG:27700", transform=transform, nodata=np.nan,
                       compress="deflate") as dst:
        dst.write(raster, 1)
        dst.update_tags(**{str(k): str(t) for k, t in (tags or {}).items()})
    return path
