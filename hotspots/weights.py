"""Spatial weights for polygon layers in British National Grid (EPSG:27700).

Why our own builder: the statistics need one immutable, binary CSR matrix that no statistic can
re-transform in place (the esda/libpysal ``W.transform`` side effect described in
docs/methods.md). Queen and rook contiguity are built from the snapped shared vertices (or edges)
by two small numba kernels, a hash table that numbers the distinct vertices and a pass that
writes the CSR rows directly, symmetric and sorted: O(number of vertices), no sort of all the
vertices and no sparse matrix products. On the 34,753 LSOAs of England and Wales that is about
3× faster than ``pygeoda.queen_weights`` (docs/benchmarks.md). The tests check that the result
equals ``libpysal.weights.Queen``/``Rook`` and ``pygeoda.queen_weights``/``rook_weights`` on the
real Wolverhampton boundaries.

Specs (strings, because they travel through the CLI, the config file and URLs):

* ``queen`` (default): polygons sharing at least one vertex (as libpysal and GeoDa define it).
* ``rook``: polygons sharing at least one edge (two consecutive vertices, in either order).
* ``knn:K``: the K nearest centroids (asymmetric in general; no islands by construction).
* ``distance:D``: every centroid within D metres (symmetric).

Islands policy: an area with no neighbours (an *island*) gets no inference. Gi* and local
Moran give it ``p = NaN`` and the label "No neighbours", and the analysis reports a warning that
names it. Islands still count in the global mean and variance, because they are real areas.
"""
from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import shapely
from scipy.sparse.csgraph import connected_components

from . import filecache
from .errors import AnalysisError

#: The only projected CRS the engine accepts: distances and snapping are in metres.
BNG_EPSG = 27700
#: Vertices closer than this (metres) are the same vertex. Reprojection noise is far below it
#: and real distinct vertices on generalised boundaries are far above it.
SNAP_GRID_M = 1e-6
#: How many weights objects the in-memory cache keeps.
MEMORY_CACHE_SIZE = 16
#: Bumped whenever the on-disk cache format or the construction rules change.
CACHE_VERSION = 2

_SPEC_RE = re.compile(r"^\s*(queen|rook|knn|distance)\s*(?::\s*([0-9]+(?:\.[0-9]+)?)\s*)?$", re.I)


@dataclass(frozen=True)
class WeightsSpec:
    """A parsed weights specification: ``kind`` and its parameter (k or metres)."""

    kind: str
    param: float | None = None

    def __str__(self) -> str:
        if self.kind == "knn":
            return f"knn:{int(self.param)}"
        if self.kind == "distance":
            return f"distance:{self.param:g}"
        return self.kind


def parse_spec(spec: str | WeightsSpec) -> WeightsSpec:
    """Parse ``queen|rook|knn:K|distance:METRES`` into a :class:`WeightsSpec`.

    Raises AnalysisError with the accepted forms when the spec is not understood.
    """
    if isinstance(spec, WeightsSpec):
        return spec
    m = _SPEC_RE.match(str(spec))
    usage = "use queen, rook, knn:K (e.g. knn:8) or distance:METRES (e.g. distance:800)"
    if not m:
        raise AnalysisError(f"weights spec {spec!r} not understood: {usage}")
    kind, param = m.group(1).lower(), m.group(2)
    if kind in ("queen", "rook"):
        if param is not None:
            raise AnalysisError(f"weights spec {spec!r}: {kind} takes no parameter; {usage}")
        return WeightsSpec(kind)
    if param is None:
        raise AnalysisError(f"weights spec {spec!r}: {kind} needs a parameter; {usage}")
    value = float(param)
    if kind == "knn":
        if value != int(value) or value < 1:
            raise AnalysisError(f"weights spec {spec!r}: k must be a whole number ≥ 1")
        return WeightsSpec("knn", float(int(value)))
    if value <= 0:
        raise AnalysisError(f"weights spec {spec!r}: the distance must be > 0 metres")
    return WeightsSpec("distance", value)


@dataclass(frozen=True, eq=False)
class SpatialWeights:
    """Binary spatial weights: an immutable CSR matrix and what the reports need about it.

    ``matrix[i, j] = 1`` when j is a neighbour of i; there are no self-loops (Gi* adds the
    self-weight itself). Arrays are read-only so that no statistic can change a shared object.
    """

    matrix: sp.csr_matrix
    ids: tuple
    cardinalities: np.ndarray
    islands: tuple
    n_components: int
    spec: str

    @property
    def n(self) -> int:
        return self.matrix.shape[0]

    @property
    def island_mask(self) -> np.ndarray:
        return self.cardinalities == 0

    def neighbours(self, i: int) -> np.ndarray:
        """Positions of the neighbours of area position ``i``."""
        m = self.matrix
        return m.indices[m.indptr[i]:m.indptr[i + 1]]

    def summary(self) -> dict[str, Any]:
        c = self.cardinalities
        return {"spec": self.spec, "n": self.n, "islands": list(self.islands),
                "n_components": self.n_components,
                "min_neighbours": int(c.min()) if len(c) else 0,
                "max_neighbours": int(c.max()) if len(c) else 0,
                "mean_neighbours": float(c.mean()) if len(c) else 0.0}


def _freeze(matrix: sp.csr_matrix) -> sp.csr_matrix:
    matrix = sp.csr_matrix(matrix, dtype=np.float64)
    matrix.sum_duplicates()
    matrix.sort_indices()
    matrix.data[:] = 1.0
    for a in (matrix.data, matrix.indices, matrix.indptr):
        a.flags.writeable = False
    return matrix


def from_matrix(matrix: sp.spmatrix, ids: Any = None, spec: str = "custom") -> SpatialWeights:
    """Wrap any square sparse 0/1 matrix (self-loops are dropped) as :class:`SpatialWeights`."""
    m = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    if m.shape[0] != m.shape[1]:
        raise AnalysisError(f"weights matrix must be square, got {m.shape}")
    m.setdiag(0)
    m.eliminate_zeros()
    m = _freeze(m)
    n = m.shape[0]
    ids_t = tuple(range(n)) if ids is None else tuple(ids)
    if len(ids_t) != n:
        raise AnalysisError(f"{len(ids_t)} ids for a {n}×{n} weights matrix")
    card = np.diff(m.indptr).astype(np.int64)
    card.flags.writeable = False
    islands = tuple(ids_t[i] for i in np.flatnonzero(card == 0))
    # Components of the symmetrised graph, as libpysal reports them.
    n_comp = int(connected_components(m + m.T, directed=False)[0]) if n else 0
    return SpatialWeights(matrix=m, ids=ids_t, cardinalities=card, islands=islands,
                          n_components=n_comp, spec=spec)


def _from_clean_csr(indptr: np.ndarray, indices: np.ndarray, ids: tuple, spec: str) -> SpatialWeights:
    """Wrap CSR arrays that are already symmetric, sorted, duplicate-free and without diagonal
    (what ``_contiguity`` returns): no copy, no re-sorting, no symmetrising."""
    n = len(indptr) - 1
    data = np.ones(len(indices))
    m = sp.csr_matrix((data, indices, indptr), shape=(n, n))
    m.has_sorted_indices = True
    m.has_canonical_format = True
    for a in (m.data, m.indices, m.indptr):
        a.flags.writeable = False
    card = np.diff(indptr).astype(np.int64)
    card.flags.writeable = False
    islands = tuple(ids[i] for i in np.flatnonzero(card == 0))
    n_comp = int(connected_components(m, directed=False)[0]) if n else 0
    return SpatialWeights(matrix=m, ids=ids, cardinalities=card, islands=islands, n_components=n_comp,
                          spec=spec)


# -- construction ---------------------------------------------------------------------------------

def _check_crs(areas: Any) -> None:
    crs = getattr(areas, "crs", None)
    if crs is None:
        raise AnalysisError("the areas have no CRS: set or reproject them to EPSG:27700 (British National Grid)")
    if crs.is_geographic:
        raise AnalysisError(f"the areas are in a geographic CRS ({crs.name}); spatial weights need "
                            "metres: reproject to EPSG:27700 first")
    if crs.to_epsg() != BNG_EPSG:
        raise AnalysisError(f"the areas are in {crs.name}; reproject to EPSG:27700 (British National Grid)")


def _snap_keys(coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertex coordinates snapped to the SNAP_GRID_M grid, as two uint64 key arrays."""
    keys = np.round(coords / SNAP_GRID_M).astype(np.int64)
    return np.ascontiguousarray(keys[:, 0]).view(np.uint64), np.ascontiguousarray(keys[:, 1]).view(np.uint64)


def _adjacency_py(item: np.ndarray, slot_ptr: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Polygons sharing any item (a vertex or an edge id) are neighbours, as a clean CSR.

    Polygon i owns the slots ``slot_ptr[i]:slot_ptr[i + 1]`` and slot s holds ``item[s]``. The
    result is symmetric by construction, with sorted unique column indices and no diagonal, so
    no symmetrising, de-duplicating or sorting pass is needed afterwards.
    """
    n = slot_ptr.shape[0] - 1
    # item -> polygons (in polygon order, so duplicates are adjacent)
    iptr = np.zeros(n_items + 1, dtype=np.int64)
    for s in range(item.shape[0]):
        iptr[item[s] + 1] += 1
    for t in range(n_items):
        iptr[t + 1] += iptr[t]
    fill = iptr[:-1].copy()
    ipoly = np.empty(item.shape[0], dtype=np.int32)
    for i in range(n):
        for s in range(slot_ptr[i], slot_ptr[i + 1]):
            t = item[s]
            ipoly[fill[t]] = i
            fill[t] += 1
    cap = 0  # upper bound on the output: each occurrence of an item sees its other polygons
    for t in range(n_items):
        k = iptr[t + 1] - iptr[t]
        if k > 1:
            cap += k * (k - 1)
    out = np.empty(cap, dtype=np.int32)
    mark = np.full(n, -1, dtype=np.int64)
    indptr = np.zeros(n + 1, dtype=np.int32)
    pos = 0
    for i in range(n):
        lo = pos
        for s in range(slot_ptr[i], slot_ptr[i + 1]):
            t = item[s]
            if iptr[t + 1] - iptr[t] < 2:
                continue
            for q in range(iptr[t], iptr[t + 1]):
                p = ipoly[q]
                if p != i and mark[p] != i:
                    mark[p] = i
                    # insertion sort as we go: rows are short (about 6 neighbours)
                    r = pos
                    while r > lo and out[r - 1] > p:
                        out[r] = out[r - 1]
                        r -= 1
                    out[r] = p
                    pos += 1
        indptr[i + 1] = pos
    indices = out[:pos].copy()
    return indptr, indices


_KERNELS: dict = {}


def _kernel(name: str):
    """The numba-compiled kernel (compiled on first use, then loaded from numba's disk cache).

    Compiled lazily so that importing this module (e.g. for ``parse_spec``) never imports numba.
    """
    k = _KERNELS.get(name)
    if k is None:
        from numba import njit
        k = _KERNELS[name] = njit(cache=True, nogil=True)(globals()[name + "_py"])
    return k


def _dense_ids(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int]:
    """Number the distinct (a, b) pairs 0, 1, ... in order of first appearance: (ids, count). O(m) by
    hashing, where sorting the 430,993 vertices of the E&W LSOAs (an earlier ``np.lexsort``) took 60 ms."""
    from .pip import factorize_pairs  # compiled; imported here so that importing weights stays cheap
    ids, first = factorize_pairs(a, b)
    return ids, len(first)


def _ring_sizes(geoms: np.ndarray, n_coords: np.ndarray) -> np.ndarray:
    """Coordinates per ring, rings in ``shapely.get_coordinates`` order.

    Polygons without holes (almost all areas) are one ring of all their coordinates, so only the
    others are split into parts and rings (creating geometry objects is the slow part).
    """
    simple = (shapely.get_type_id(geoms) == 3) & (shapely.get_num_interior_rings(geoms) == 0)
    s_idx = np.flatnonzero(simple)
    c_idx = np.flatnonzero(~simple)
    if len(c_idx) == 0:
        return n_coords
    parts, part_geom = shapely.get_parts(geoms[c_idx], return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    ring_geom = np.concatenate([s_idx, c_idx[part_geom[ring_part]]])
    sizes = np.concatenate([n_coords[s_idx], shapely.get_num_coordinates(rings)])
    return sizes[np.argsort(ring_geom, kind="stable")]


def _contiguity(geoms: np.ndarray, rook: bool, coords: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Queen or rook contiguity as clean CSR arrays (indptr, indices)."""
    n = len(geoms)
    xy, vert_poly = coords if coords is not None else shapely.get_coordinates(geoms, return_index=True)
    n_coords = np.bincount(vert_poly, minlength=n)
    slot_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(n_coords, out=slot_ptr[1:])
    if len(xy) == 0:
        return np.zeros(n + 1, dtype=np.int32), np.zeros(0, dtype=np.int32)
    kx, ky = _snap_keys(xy)
    vid, n_vert = _dense_ids(kx, ky)
    if not rook:
        # Queen needs no ring structure: any shared vertex makes two polygons neighbours.
        return _kernel("_adjacency")(vid, slot_ptr, n_vert)
    sizes = _ring_sizes(geoms, n_coords)
    if int(sizes.sum()) != len(xy):  # pragma: no cover - shapely guarantees the order
        raise AnalysisError("internal error: ring structure does not match the coordinates")
    ring_end = np.cumsum(sizes) - 1  # last vertex of each ring: no edge starts there
    starts = np.ones(len(xy), dtype=bool)
    starts[ring_end] = False
    a, b = vid[:-1][starts[:-1]], vid[1:][starts[:-1]]
    edge_poly = vert_poly[:-1][starts[:-1]]
    keep = a != b  # zero-length edges after snapping
    a, b, edge_poly = a[keep], b[keep], edge_poly[keep]
    lo = np.minimum(a, b).view(np.uint64)
    hi = np.maximum(a, b).view(np.uint64)
    edge_id, n_edges = _dense_ids(lo, hi)
    edge_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(edge_poly, minlength=n), out=edge_ptr[1:])
    return _kernel("_adjacency")(edge_id, edge_ptr, n_edges)


def _centroids(geoms: np.ndarray) -> np.ndarray:
    return shapely.get_coordinates(shapely.centroid(geoms))


def _knn(geoms: np.ndarray, k: int) -> sp.csr_matrix:
    n = len(geoms)
    if k >= n:
        raise AnalysisError(f"knn:{k} needs more than {k} areas (have {n})")
    from scipy.spatial import cKDTree  # imported here: 0.15 s that contiguity never needs
    xy = _centroids(geoms)
    _, idx = cKDTree(xy).query(xy, k=k + 1)
    is_self = idx == np.arange(n)[:, None]
    # Normally the area itself comes first; with coincident centroids it may be elsewhere or
    # missing, so drop it where present and otherwise the farthest, leaving exactly k per row.
    no_self = ~is_self.any(axis=1)
    is_self[no_self, k] = True
    cols = idx[~is_self].reshape(n, k)
    rows = np.repeat(np.arange(n), k)
    return sp.csr_matrix((np.ones(n * k), (rows, cols.ravel())), shape=(n, n))


def _distance_band(geoms: np.ndarray, threshold: float) -> sp.csr_matrix:
    n = len(geoms)
    from scipy.spatial import cKDTree
    xy = _centroids(geoms)
    pairs = cKDTree(xy).query_pairs(threshold, output_type="ndarray")
    if len(pairs) == 0:
        return sp.csr_matrix((n, n))
    r = np.concatenate([pairs[:, 0], pairs[:, 1]])
    c = np.concatenate([pairs[:, 1], pairs[:, 0]])
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, n))


def _build(geoms: np.ndarray, spec: WeightsSpec, ids: tuple, coords: tuple | None = None) -> SpatialWeights:
    if spec.kind in ("queen", "rook"):
        indptr, indices = _contiguity(geoms, rook=spec.kind == "rook", coords=coords)
        return _from_clean_csr(indptr, indices, ids, str(spec))
    if spec.kind == "knn":
        return from_matrix(_knn(geoms, int(spec.param)), ids, str(spec))
    return from_matrix(_distance_band(geoms, float(spec.param)), ids, str(spec))


# -- cache ----------------------------------------------------------------------------------------

_memory: "OrderedDict[str, SpatialWeights]" = OrderedDict()
_lock = threading.Lock()


def cache_key(geoms: np.ndarray, ids: tuple, spec: WeightsSpec, coords: tuple | None = None) -> str:
    """Hash of the geometry (every coordinate, how many belong to each polygon, and the part
    structure), the ids and the spec: the same layer and spec hit the cache."""
    xy, idx = coords if coords is not None else shapely.get_coordinates(geoms, return_index=True)
    # SHA-256 runs in hardware on current CPUs: twice as fast as BLAKE2 on 7 MB of coordinates.
    h = hashlib.sha256(f"v{CACHE_VERSION}|{spec}|{len(geoms)}|".encode())
    h.update(np.ascontiguousarray(xy).data)
    h.update(np.bincount(idx, minlength=len(geoms)).astype(np.int64).data)
    h.update(shapely.get_num_geometries(geoms).astype(np.int64).data)
    h.update(shapely.get_num_interior_rings(geoms).astype(np.int64).data)
    h.update(shapely.get_type_id(geoms).astype(np.int64).data)
    try:
        text = "\x1f".join(ids)
    except TypeError:  # not all strings
        text = "\x1f".join(map(str, ids))
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:32]


def clear_cache() -> None:
    """Empty the in-memory cache (tests and benchmarks use it to time a cold build)."""
    with _lock:
        _memory.clear()


def _disk_path(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / f"weights-{key}.npz"


def _load_disk(path: Path, ids: tuple, spec: WeightsSpec) -> SpatialWeights | None:
    z = filecache.load(path)
    if z is None or not {"n", "indices", "indptr"} <= set(z):
        return None
    n = int(z["n"])
    try:
        m = sp.csr_matrix((np.ones(len(z["indices"])), z["indices"], z["indptr"]), shape=(n, n))
    except ValueError:  # arrays of another shape: not ours
        return None
    return from_matrix(m, ids, str(spec))


def _save_disk(path: Path, w: SpatialWeights) -> None:
    filecache.save(path, compress=True, n=np.asarray(w.n), indptr=w.matrix.indptr, indices=w.matrix.indices)


def build_weights(areas: Any, spec: str | WeightsSpec = "queen", *, id_col: str | None = None,
                  cache_dir: str | Path | None = None) -> SpatialWeights:
    """Build (or fetch from cache) the weights of a polygon GeoDataFrame in EPSG:27700.

    Parameters
    ----------
    areas : GeoDataFrame of Polygon/MultiPolygon in EPSG:27700 (AnalysisError otherwise).
    spec : ``queen`` (default), ``rook``, ``knn:K`` or ``distance:METRES``.
    id_col : column holding the area ids; the index is used when omitted.
    cache_dir : optional directory for an on-disk cache (``weights-<hash>.npz``).
    """
    wspec = parse_spec(spec)
    _check_crs(areas)
    geoms = np.asarray(areas.geometry.values, dtype=object)
    if len(geoms) == 0:
        raise AnalysisError("no areas to build weights from")
    if shapely.is_missing(geoms).any() or shapely.is_empty(geoms).any():
        raise AnalysisError("some areas have an empty or missing geometry")
    ids = tuple(areas[id_col].tolist() if id_col else areas.index.tolist())
    if len(set(ids)) != len(ids):
        raise AnalysisError("area ids are not unique", column=id_col)
    coords = shapely.get_coordinates(geoms, return_index=True)
    key = cache_key(geoms, ids, wspec, coords)
    with _lock:
        hit = _memory.get(key)
        if hit is not None:
            _memory.move_to_end(key)
            return hit
    w = None
    if cache_dir is not None and _disk_path(Path(cache_dir), key).exists():
        w = _load_disk(_disk_path(Path(cache_dir), key), ids, wspec)
    if w is None:
        types = set(shapely.get_type_id(geoms).tolist())
        if wspec.kind in ("queen", "rook") and not types <= {3, 6}:
            raise AnalysisError(f"{wspec.kind} contiguity needs polygons; got other geometry types")
        w = _build(geoms, wspec, ids, coords)
        if cache_dir is not None:
            _save_disk(_disk_path(Path(cache_dir), key), w)
    with _lock:
        _memory[key] = w
        while len(_memory) > MEMORY_CACHE_SIZE:
            _memory.popitem(last=False)
    return w
