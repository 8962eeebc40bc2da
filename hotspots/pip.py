"""Compiled point-in-polygon that gives exactly GEOS's "point intersects polygon" answer.

Why: ``STRtree.query(points, predicate="intersects")`` spends most of its time evaluating the predicate
pair by pair in GEOS, and even the bare bounding-box query needs a shapely point per query point
(building them costs more than the query). So both stages are compiled here: a uniform grid over the
polygons' bounding boxes (:class:`Grid`, built once per layer) finds each point's candidates, and the
same kernel pass decides each candidate pair over flat ring arrays (:func:`locate_grid`).

The grid gives exactly the STRtree's candidates: a polygon is a candidate when its bounding box
contains the point, edges included (GEOS's envelope ``intersects``). Cells are computed by one
monotone function of the coordinate for both bbox corners and points, so a point between two corners
(closed) always falls in a cell between theirs: rounding cannot lose a candidate. Geometries with an
empty envelope are never candidates, as in the STRtree.

Why the answer is GEOS's, bit for bit: shapely evaluates the predicate as
``PreparedPoint::intersects(polygon)``, i.e. ``PointLocator``: per polygon part, locate the point in
the shell (exterior / boundary / interior), then in each hole, and a multipolygon is intersected when
any part is. Each ring uses ``RayCrossingCounter::countSegment`` with ``Orientation::index``, whose
first stage is ``CGAlgorithmsDD::orientationIndexFilter`` (a double-precision determinant with a
1e-15 relative error bound). The kernel copies both, statement for statement. Where the filter
cannot decide, GEOS switches to double-double arithmetic; the kernel does not guess, it marks the
pair undecided and that point is re-run through the STRtree predicate query, so its answer is GEOS's
by construction. It needs a point within ~1e-15 relative of an edge's line (e.g. the rounded
midpoint of a sloping edge): none among 300,000 random points. Non-polygonal geometries go the same
way. (Polygons with NaN or infinite vertices, on which GEOS's predicate raises, are decided by the
kernel's arithmetic, as they always were; a geometry with an infinite envelope is tested against
every point, with GEOS's envelope test, so its candidates are the STRtree's too.)

Per part, not crossing parity over all rings: for valid polygons the two agree, but for invalid ones
(overlapping parts, a hole outside its shell, overlapping holes) only the per-part rule reproduces
GEOS, so that is what is implemented.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numba import njit

#: Ring / part locations (GEOS ``Location``), plus "the double-precision filter could not decide".
EXTERIOR, INTERIOR, BOUNDARY, UNDECIDED = 0, 1, 2, 3
#: Pair results returned by the kernel.
PAIR_NO, PAIR_YES, PAIR_UNDECIDED = 0, 1, 2
_NONE = np.iinfo(np.int64).max
_POLYGONAL = (3, 6)  # shapely type ids: Polygon, MultiPolygon (curved types go to the fallback)


@dataclass(frozen=True)
class Grid:
    """A uniform grid over the polygons' bounding boxes: cell -> polygons whose closed bbox overlaps it.

    Cell (ix, iy) is number ``iy * nx + ix``; its entries are ``entry[cell_ptr[c]:cell_ptr[c + 1]]``,
    polygon indices in ascending order, each with a copy of its polygon's bbox in ``entry_bbox`` (read
    contiguously by the query). A point outside ``extent`` (or NaN) has no candidates.

    Cells are counted from ``origin`` and clamped to the grid at both ends: usually the grid spans the
    extent, but with far-off outliers it spans the core of the layer and the outliers (and any point
    out there) land in its border cells."""
    extent: tuple[float, float, float, float]  # minx, miny, maxx, maxy over all finite bboxes (closed)
    origin: tuple[float, float]  # where cell (0, 0) starts
    scale: tuple[float, float]  # cells per unit along x and y (0 when the extent is flat along that axis)
    shape: tuple[int, int]      # nx, ny
    cell_ptr: np.ndarray        # int64 (nx * ny + 1)
    entry: np.ndarray           # int32 (n_entries): polygon index
    entry_bbox: np.ndarray      # float64 (n_entries, 4): that polygon's minx, miny, maxx, maxy
    #: Geometries whose envelope is neither finite nor null (an infinite coordinate; none in practice):
    #: not in any cell, every point is tested against them, with GEOS's envelope test.
    odd: np.ndarray        # int32 (n_odd): polygon index, ascending
    odd_bbox: np.ndarray   # float64 (n_odd, 4)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.cell_ptr, self.entry, self.entry_bbox, self.odd, self.odd_bbox))

    def describe(self) -> str:
        nx, ny = self.shape
        filled = np.diff(self.cell_ptr)
        return (f"{nx} x {ny} cells of {1 / self.scale[0] if self.scale[0] else 0:.0f} x "
                f"{1 / self.scale[1] if self.scale[1] else 0:.0f}, {len(self.entry):,} entries "
                f"({filled.mean():.2f} per cell, max {filled.max()}), {self.nbytes / 1e6:.2f} MB")


#: Grid sizing (see build_grid): cells about this many times the median bbox side ...
_CELL_PER_MEDIAN_BBOX = 1.0
#: ... but no more cells than this many per polygon (or _FEW_CELLS, for small layers), nor more entries
#: than this many per polygon.
_MAX_CELLS_PER_POLYGON = 4.0
_FEW_CELLS = 1 << 16
_MAX_ENTRIES_PER_POLYGON = 16.0


@njit(cache=True, nogil=True)
def _cell(v: float, v0: float, scale: float, n: int) -> int:
    """Cell index along one axis for a non-NaN coordinate: floor((v - v0) * scale) clamped to [0, n - 1].
    Monotone non-decreasing in v (IEEE subtraction and multiplication round monotonically), which is
    what makes bbox corners and points agree; the same function serves both."""
    t = (v - v0) * scale
    if not t >= 0.0:  # also NaN (inf * 0 when the extent overflows, so scale is 0): cell 0, monotone
        return 0
    if t >= n:
        return n - 1
    return int(t)


@njit(cache=True, nogil=True)
def _cell_span(bounds: np.ndarray, j: int, x0: float, y0: float, sx: float, sy: float, nx: int,
               ny: int) -> tuple[int, int, int, int]:
    """First and last grid column and row that polygon ``j``'s bounding box overlaps."""
    return (_cell(bounds[j, 0], x0, sx, nx), _cell(bounds[j, 2], x0, sx, nx),
            _cell(bounds[j, 1], y0, sy, ny), _cell(bounds[j, 3], y0, sy, ny))


@njit(cache=True, nogil=True)
def _fill_grid(bounds: np.ndarray, use: np.ndarray, x0: float, y0: float, sx: float, sy: float,
               nx: int, ny: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR cell -> polygons for the rows of ``bounds`` flagged in ``use`` (counting sort, two passes;
    polygons are visited in index order, so each cell's entries come out ascending)."""
    n = bounds.shape[0]
    cell_ptr = np.zeros(nx * ny + 1, dtype=np.int64)
    for j in range(n):
        if use[j]:
            ix0, ix1, iy0, iy1 = _cell_span(bounds, j, x0, y0, sx, sy, nx, ny)
            for iy in range(iy0, iy1 + 1):
                for ix in range(ix0, ix1 + 1):
                    cell_ptr[iy * nx + ix + 1] += 1
    for c in range(nx * ny):
        cell_ptr[c + 1] += cell_ptr[c]
    m = cell_ptr[nx * ny]
    fill = cell_ptr[:-1].copy()
    entry = np.empty(m, dtype=np.int32)
    entry_bbox = np.empty((m, 4), dtype=np.float64)
    for j in range(n):
        if use[j]:
            ix0, ix1, iy0, iy1 = _cell_span(bounds, j, x0, y0, sx, sy, nx, ny)
            for iy in range(iy0, iy1 + 1):
                for ix in range(ix0, ix1 + 1):
                    e = fill[iy * nx + ix]
                    entry[e] = j
                    for k in range(4):
                        entry_bbox[e, k] = bounds[j, k]
                    fill[iy * nx + ix] = e + 1
    return cell_ptr, entry, entry_bbox


def _axis(lo: float, hi: float, cell: float) -> tuple[float, int]:
    """(cells per unit, number of cells) along one axis of the span [lo, hi] for a cell side."""
    width = hi - lo
    if not (np.isfinite(width) and width > 0.0 and cell > 0.0):
        return 0.0, 1  # flat (or overflowing) span: one cell
    n = int(min(max(np.ceil(width / cell), 1), 1 << 20))
    return n / width, n


def _core(lo: np.ndarray, hi: np.ndarray) -> tuple[float, float]:
    """The span of the grid along one axis: the extent, unless trimming the outermost 0.1 % of the
    polygons (at least one at each end) more than halves it, i.e. there are far-off outliers."""
    full = float(lo.min()), float(hi.max())
    if len(lo) < 3:
        return full
    a = float(np.quantile(lo, 0.001, method="higher"))
    b = float(np.quantile(hi, 0.999, method="lower"))
    with np.errstate(over="ignore"):
        if a < b and (b - a) < 0.5 * (full[1] - full[0]):
            return a, b
    return full


def _spans(lo: np.ndarray, hi: np.ndarray, o: float, s: float, n: int) -> np.ndarray:
    """Cells each [lo, hi] covers along one axis (as _cell computes them, up to NaN handling)."""
    with np.errstate(invalid="ignore", over="ignore"):
        c0 = np.clip(np.nan_to_num(np.floor((lo - o) * s), nan=0.0), 0, n - 1)
        c1 = np.clip(np.nan_to_num(np.floor((hi - o) * s), nan=0.0), 0, n - 1)
    return c1 - c0 + 1


def build_grid(bounds: np.ndarray, cell: float | None = None) -> Grid:
    """The grid over ``bounds`` (``shapely.bounds`` of the layer, one row per geometry, NaN rows for
    empty envelopes). Built once per layer: ~5 ms for 35k polygons.

    Cell side: the median bbox side (most polygons then touch 1-4 cells and a point's cell holds a few
    of them), enlarged so that there are at most max(4 per polygon, 65,536) cells and 16 entries per
    polygon: a few huge polygons must not blow up memory, nor a wide extent the per-query work over
    cells. A huge polygon simply sits in every cell it spans. Far-off outliers do not stretch the grid
    (see ``_core``), so they cannot herd the rest into a few cells. The query time is flat over a wide
    range of sides (measured: 0.4x-1.3x the median bbox side within 5 %), since the exact test
    dominates. ``cell`` overrides the side (benchmarks, tests)."""
    b = np.ascontiguousarray(bounds, dtype=np.float64).reshape(-1, 4)
    finite = np.isfinite(b).all(axis=1) & (b[:, 0] <= b[:, 2]) & (b[:, 1] <= b[:, 3])
    # GEOS: an envelope is null (never intersects: no candidate) when maxx is NaN, as for empty and
    # missing geometries. Any other non-finite envelope goes to the list tested for every point.
    odd_idx = np.flatnonzero(~finite & ~np.isnan(b[:, 2]))
    odd = odd_idx.astype(np.int32)
    odd_bbox = np.ascontiguousarray(b[odd_idx])
    use = finite
    m = int(use.sum())
    if m == 0:
        return Grid((np.inf, np.inf, -np.inf, -np.inf), (0.0, 0.0), (0.0, 0.0), (1, 1),
                    np.zeros(2, dtype=np.int64), np.empty(0, dtype=np.int32), np.empty((0, 4), dtype=np.float64),
                    odd, odd_bbox)
    fb = b[use]
    extent = (float(fb[:, 0].min()), float(fb[:, 1].min()), float(fb[:, 2].max()), float(fb[:, 3].max()))
    (x0, x1), (y0, y1) = _core(fb[:, 0], fb[:, 2]), _core(fb[:, 1], fb[:, 3])
    if cell is None:
        max_cells = max(_MAX_CELLS_PER_POLYGON * m, _FEW_CELLS)
        with np.errstate(over="ignore", invalid="ignore"):  # widths beyond the float range: inf
            side = np.sqrt(np.median(fb[:, 2] - fb[:, 0]) * np.median(fb[:, 3] - fb[:, 1]))
            cell = _CELL_PER_MEDIAN_BBOX * float(side)
            area = (x1 - x0) * (y1 - y0)
        if np.isfinite(area) and area > 0:
            cell = max(cell, float(np.sqrt(area / max_cells)))
        elif not cell > 0:
            cell = max(x1 - x0, y1 - y0)  # points or segments along one line
        for _ in range(60):  # grow the cell until the entries fit
            sx, nx = _axis(x0, x1, cell)
            sy, ny = _axis(y0, y1, cell)
            entries = _spans(fb[:, 0], fb[:, 2], x0, sx, nx) * _spans(fb[:, 1], fb[:, 3], y0, sy, ny)
            if nx * ny <= max_cells * 1.01 + 1 and entries.sum() <= _MAX_ENTRIES_PER_POLYGON * m:
                break
            cell *= 1.5
    sx, nx = _axis(x0, x1, cell)
    sy, ny = _axis(y0, y1, cell)
    cell_ptr, entry, entry_bbox = _fill_grid(b, use, x0, y0, sx, sy, nx, ny)
    return Grid(extent, (x0, y0), (sx, sy), (nx, ny), cell_ptr, entry, entry_bbox, odd, odd_bbox)


@dataclass(frozen=True)
class Rings:
    """A polygon layer as flat CSR arrays: polygon -> parts -> rings (shell first) -> coordinates."""
    part_ptr: np.ndarray   # int64 (n_polygons + 1): parts of polygon i are part_ptr[i]:part_ptr[i+1]
    ring_ptr: np.ndarray   # int64 (n_parts + 1): rings of part k, the first being its shell
    coord_ptr: np.ndarray  # int64 (n_rings + 1): closed ring coordinates (first == last)
    bbox: np.ndarray       # float64 (n_rings, 4): minx, miny, maxx, maxy (GEOS checks the ring envelope)
    coords: np.ndarray     # float64 (n_coords, 2)
    ok: np.ndarray         # bool (n_polygons): False for non-polygonal geometries, always sent to shapely
    grid: Grid             # candidate search over the geometries' bounding boxes

    @property
    def n_polygons(self) -> int:
        return len(self.ok)

    @property
    def mean_vertices(self) -> float:
        """Coordinates per polygon: the kernel walks every edge of a candidate, GEOS's prepared polygon
        indexes them, so very detailed polygons favour GEOS."""
        return len(self.coords) / max(1, self.n_polygons)


def _ptr(owner: np.ndarray, n: int) -> np.ndarray:
    """CSR row pointer from a sorted owner index (shapely's return_index)."""
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=n), out=ptr[1:])
    return ptr


def build_rings(geoms: np.ndarray) -> Rings:
    """Flatten polygons and multipolygons and grid their bounding boxes, once per layer (about 0.1 s
    for 35k areas)."""
    geoms = np.asarray(geoms, dtype=object)
    n = len(geoms)
    ok = np.isin(shapely.get_type_id(geoms), _POLYGONAL)
    polys = np.where(ok, geoms, None)  # None has no parts, so non-polygonal rows are empty here
    parts, part_owner = shapely.get_parts(polys, return_index=True)
    rings, ring_owner = shapely.get_rings(parts, return_index=True)  # shell first, then holes
    coords, coord_owner = shapely.get_coordinates(rings, return_index=True)
    bbox = shapely.bounds(rings).reshape(-1, 4)
    empty = np.isnan(bbox[:, 0])
    bbox[empty] = (np.inf, np.inf, -np.inf, -np.inf)
    return Rings(part_ptr=_ptr(part_owner, n), ring_ptr=_ptr(ring_owner, len(parts)),
                 coord_ptr=_ptr(coord_owner, len(rings)), bbox=np.ascontiguousarray(bbox, dtype=np.float64),
                 coords=np.ascontiguousarray(coords, dtype=np.float64), ok=ok,
                 grid=build_grid(shapely.bounds(geoms)))


@njit(cache=True, nogil=True)
def _orientation_filter(pax: float, pay: float, pbx: float, pby: float, pcx: float, pcy: float) -> int:
    """``CGAlgorithmsDD::orientationIndexFilter``: -1 right, 1 left, 0 straight, 2 cannot tell."""
    detleft = (pax - pcx) * (pby - pcy)
    detright = (pay - pcy) * (pbx - pcx)
    det = detleft - detright
    if detleft > 0.0:
        if detright <= 0.0:
            return -1 if det < 0 else (1 if det > 0 else 0)
        detsum = detleft + detright
    elif detleft < 0.0:
        if detright >= 0.0:
            return -1 if det < 0 else (1 if det > 0 else 0)
        detsum = -detleft - detright
    else:
        return -1 if det < 0 else (1 if det > 0 else 0)
    errbound = 1e-15 * detsum  # DP_SAFE_EPSILON
    if det >= errbound or -det >= errbound:
        return -1 if det < 0 else (1 if det > 0 else 0)
    return 2


@njit(cache=True, nogil=True)
def _ring_location(px: float, py: float, r: int, coord_ptr: np.ndarray, bbox: np.ndarray,
                   coords: np.ndarray) -> int:
    """``PointLocator::locateInPolygonRing``: envelope test, then ``RayCrossingCounter``."""
    if not (px >= bbox[r, 0] and px <= bbox[r, 2] and py >= bbox[r, 1] and py <= bbox[r, 3]):
        return EXTERIOR
    crossings = 0
    undecided = False
    c0 = coord_ptr[r]
    c1 = coord_ptr[r + 1]
    if c1 - c0 < 1:
        return EXTERIOR
    p1x = coords[c0, 0]
    p1y = coords[c0, 1]
    for c in range(c0 + 1, c1):
        p2x = coords[c, 0]
        p2y = coords[c, 1]
        # RayCrossingCounter::countSegment(p1, p2). Shortcut first: a segment wholly above or wholly
        # below the ray takes none of GEOS's branches below (each needs p1.y and p2.y on either side
        # of, or equal to, the point's y); that is most segments. The product of the two differences
        # is > 0 only when both have the same nonzero sign (rounding cannot make a product of opposite
        # or zero factors positive), so this skips nothing GEOS would look at.
        if (p1y - py) * (p2y - py) > 0.0:
            pass
        elif p1x < px and p2x < px:
            pass  # segment strictly left of the point
        elif px == p2x and py == p2y:
            return BOUNDARY
        elif p1y == py and p2y == py:  # horizontal: only the on-segment check
            minx = p1x
            maxx = p2x
            if minx > maxx:
                minx = p2x
                maxx = p1x
            if px >= minx and px <= maxx:
                return BOUNDARY
        elif (p1y > py and p2y <= py) or (p2y > py and p1y <= py):
            sign = _orientation_filter(p1x, p1y, p2x, p2y, px, py)
            if sign == 2:
                undecided = True  # GEOS would use double-double here; a later boundary hit still decides
            elif sign == 0:
                return BOUNDARY
            else:
                if p2y < p1y:
                    sign = -sign
                if sign > 0:
                    crossings += 1
        p1x = p2x
        p1y = p2y
    if undecided:
        return UNDECIDED
    return INTERIOR if crossings % 2 == 1 else EXTERIOR


@njit(cache=True, nogil=True)
def _intersects(px: float, py: float, j: int, part_ptr: np.ndarray, ring_ptr: np.ndarray,
                coord_ptr: np.ndarray, bbox: np.ndarray, coords: np.ndarray, ok: np.ndarray) -> int:
    """``PointLocator::intersects`` for one polygon or multipolygon: PAIR_NO / PAIR_YES / PAIR_UNDECIDED."""
    if not ok[j]:
        return PAIR_UNDECIDED
    undecided = False
    for k in range(part_ptr[j], part_ptr[j + 1]):
        r0 = ring_ptr[k]
        r1 = ring_ptr[k + 1]
        if r1 == r0:
            continue  # empty part
        loc = _ring_location(px, py, r0, coord_ptr, bbox, coords)  # shell
        if loc == INTERIOR:
            for r in range(r0 + 1, r1):  # holes, in order, as GEOS does
                hole = _ring_location(px, py, r, coord_ptr, bbox, coords)
                if hole == INTERIOR:
                    loc = EXTERIOR
                    break
                if hole == BOUNDARY:
                    loc = BOUNDARY
                    break
                if hole == UNDECIDED:
                    loc = UNDECIDED
                    break
        if loc == INTERIOR or loc == BOUNDARY:
            return PAIR_YES  # any part not exterior: the multipolygon intersects
        if loc == UNDECIDED:
            undecided = True
    return PAIR_UNDECIDED if undecided else PAIR_NO


@njit(cache=True, nogil=True)
def _point_cells(x: np.ndarray, y: np.ndarray, x0: float, y0: float, x1: float, y1: float, ox: float,
                 oy: float, sx: float, sy: float, nx: int, ny: int) -> np.ndarray:
    """Grid cell of each point, -1 outside the extent (NaN included)."""
    n = x.shape[0]
    cell = np.empty(n, dtype=np.int64)
    for i in range(n):
        px = x[i]
        py = y[i]
        if px >= x0 and px <= x1 and py >= y0 and py <= y1:
            cell[i] = _cell(py, oy, sy, ny) * nx + _cell(px, ox, sx, nx)
        else:
            cell[i] = -1
    return cell


@njit(cache=True, nogil=True)
def _geos_envelope_hit(px: float, py: float, odd_bbox: np.ndarray, k: int) -> bool:
    """GEOS ``Envelope::intersects`` of a non-NaN point with a non-null envelope, written as GEOS does
    (a NaN bound then excludes nothing), for the odd envelopes only."""
    return not (px < odd_bbox[k, 0] or px > odd_bbox[k, 2] or py < odd_bbox[k, 1] or py > odd_bbox[k, 3])


@njit(cache=True, nogil=True, inline="always")
def _consider(px: float, py: float, j: int, found: int, und: np.ndarray, n_und: int, part_ptr: np.ndarray,
              ring_ptr: np.ndarray, coord_ptr: np.ndarray, bbox: np.ndarray, coords: np.ndarray,
              ok: np.ndarray) -> tuple[int, int]:
    """Test candidate polygon ``j`` unless it cannot beat ``found`` (a smaller index already intersects):
    (answer so far, undecided count), recording an undecided ``j`` in ``und``."""
    if j >= found:
        return found, n_und
    s = _intersects(px, py, j, part_ptr, ring_ptr, coord_ptr, bbox, coords, ok)
    if s == PAIR_YES:
        return j, n_und
    if s == PAIR_UNDECIDED:
        und[n_und] = j
        return found, n_und + 1
    return found, n_und


@njit(cache=True, nogil=True)
def locate_grid(x: np.ndarray, y: np.ndarray, x0: float, y0: float, x1: float, y1: float, ox: float,
                oy: float, sx: float, sy: float, nx: int, ny: int, cell_ptr: np.ndarray, entry: np.ndarray,
                entry_bbox: np.ndarray, odd: np.ndarray, odd_bbox: np.ndarray, part_ptr: np.ndarray,
                ring_ptr: np.ndarray, coord_ptr: np.ndarray, bbox: np.ndarray, coords: np.ndarray,
                ok: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Candidate search and exact test in one pass.

    Returns (smallest intersecting polygon per point, int64 max where none; whether the point has an
    undecided pair below that answer, i.e. one that could change it; bounding-box candidate pairs;
    such undecided pairs). Points are visited cell by cell (a counting sort), so the polygons of a cell
    are read once for all its points rather than once per pair (35k polygons' 34 MB of coordinates do
    not stay in cache; visiting points in input order is 2.5x slower). A cell's candidates come in
    ascending polygon order, so a point's first intersecting polygon is its answer and the exact test
    is skipped for the rest (their bbox tests still run, to count the pairs: the count equals the
    STRtree's, which the tests check)."""
    n = x.shape[0]
    n_cells = nx * ny
    n_odd = odd.shape[0]
    cell = _point_cells(x, y, x0, y0, x1, y1, ox, oy, sx, sy, nx, ny)
    start = np.zeros(n_cells + 2, dtype=np.int64)  # the last bucket: points outside the grid
    for i in range(n):
        c = cell[i] if cell[i] >= 0 else n_cells
        start[c + 1] += 1
    max_entries = 0
    for c in range(n_cells):
        start[c + 1] += start[c]
        if cell_ptr[c + 1] - cell_ptr[c] > max_entries:
            max_entries = cell_ptr[c + 1] - cell_ptr[c]
    start[n_cells + 1] += start[n_cells]
    fill = start[:-1].copy()
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        c = cell[i] if cell[i] >= 0 else n_cells
        order[fill[c]] = i
        fill[c] += 1
    best = np.full(n, _NONE, dtype=np.int64)
    fallback = np.zeros(n, dtype=np.bool_)
    und = np.empty(max_entries + n_odd, dtype=np.int64)  # one point's undecided polygons
    n_pairs = 0
    n_undecided = 0
    for c in range(n_cells + 1):
        if c < n_cells:
            e0 = cell_ptr[c]
            e1 = cell_ptr[c + 1]
        elif n_odd == 0:
            break  # outside the grid and nothing unbounded: no candidates, no work
        else:
            e0 = 0
            e1 = 0
        for q in range(start[c], start[c + 1]):
            i = order[q]
            px = x[i]
            py = y[i]
            found = _NONE
            n_und = 0
            for e in range(e0, e1):
                if not (px >= entry_bbox[e, 0] and px <= entry_bbox[e, 2]
                        and py >= entry_bbox[e, 1] and py <= entry_bbox[e, 3]):
                    continue
                n_pairs += 1  # ascending: once found, no later polygon can beat the answer
                found, n_und = _consider(px, py, np.int64(entry[e]), found, und, n_und, part_ptr, ring_ptr,
                                         coord_ptr, bbox, coords, ok)
            if n_odd and px == px and py == py:  # a NaN point has a null envelope: no candidates
                for k in range(n_odd):
                    if not _geos_envelope_hit(px, py, odd_bbox, k):
                        continue
                    n_pairs += 1
                    found, n_und = _consider(px, py, np.int64(odd[k]), found, und, n_und, part_ptr, ring_ptr,
                                             coord_ptr, bbox, coords, ok)
            best[i] = found
            for k in range(n_und):
                if und[k] < found:  # an undecided pair matters only if it could beat the answer
                    fallback[i] = True
                    n_undecided += 1
    return best, fallback, n_pairs, n_undecided


@njit(cache=True, nogil=True)
def grid_candidates(x: np.ndarray, y: np.ndarray, x0: float, y0: float, x1: float, y1: float, ox: float,
                    oy: float, sx: float, sy: float, nx: int, ny: int, cell_ptr: np.ndarray, entry: np.ndarray,
                    entry_bbox: np.ndarray, odd: np.ndarray, odd_bbox: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (point, polygon) bounding-box candidate pair, by point (a point's grid candidates in
    ascending order, then its odd ones): what ``STRtree.query(points)`` returns, up to order (tests
    compare the two; not used on the hot path)."""
    n = x.shape[0]
    cell = _point_cells(x, y, x0, y0, x1, y1, ox, oy, sx, sy, nx, ny)
    count = np.zeros(n + 1, dtype=np.int64)
    pt = np.empty(0, dtype=np.int64)
    poly = np.empty(0, dtype=np.int64)
    for fill in range(2):
        if fill:
            for i in range(n):
                count[i + 1] += count[i]
            pt = np.empty(count[n], dtype=np.int64)
            poly = np.empty(count[n], dtype=np.int64)
        for i in range(n):
            k = count[i]
            c = cell[i]
            if c >= 0:
                for e in range(cell_ptr[c], cell_ptr[c + 1]):
                    if (x[i] >= entry_bbox[e, 0] and x[i] <= entry_bbox[e, 2]
                            and y[i] >= entry_bbox[e, 1] and y[i] <= entry_bbox[e, 3]):
                        if fill:
                            pt[k] = i
                            poly[k] = entry[e]
                            k += 1
                        else:
                            count[i + 1] += 1
            if x[i] == x[i] and y[i] == y[i]:
                for o in range(odd.shape[0]):
                    if _geos_envelope_hit(x[i], y[i], odd_bbox, o):
                        if fill:
                            pt[k] = i
                            poly[k] = odd[o]
                            k += 1
                        else:
                            count[i + 1] += 1
    return pt, poly


def _grid_args(grid: Grid) -> tuple:
    (x0, y0, x1, y1), (ox, oy), (sx, sy), (nx, ny) = grid.extent, grid.origin, grid.scale, grid.shape
    return (float(x0), float(y0), float(x1), float(y1), float(ox), float(oy), float(sx), float(sy), int(nx), int(ny),
            grid.cell_ptr, grid.entry, grid.entry_bbox, grid.odd, grid.odd_bbox)


def candidates(rings: Rings, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounding-box candidate pairs from the grid (point index, polygon index): tests and diagnostics."""
    return grid_candidates(np.ascontiguousarray(x, dtype=np.float64), np.ascontiguousarray(y, dtype=np.float64),
                           *_grid_args(rings.grid))


#: Where GEOS is used instead of the kernel (measured by ``benchmarks/pip.py``, docs/benchmarks.md):
#: polygons of more than DETAILED_VERTICES coordinates on average queried with fewer than FEW_POINTS
#: points. There a tree of the points queried with each (prepared, edge-indexed) polygon is about 2x
#: faster than the kernel (160 areas of 850 vertices, 30,000 points: 0.10 s against 0.19 s); with more
#: points, and on every generalised boundary layer (LSOAs and wards: 38-155 vertices), the kernel is
#: 1.7-4.4x faster than either shapely query.
DETAILED_VERTICES = 400
FEW_POINTS = 100_000


def _smallest_per_point(n: int, point_idx: np.ndarray, poly_idx: np.ndarray) -> np.ndarray:
    """Smallest polygon index per point from (point, polygon) pairs; _NONE where no pair."""
    best = np.full(n, _NONE, dtype=np.int64)
    np.minimum.at(best, point_idx, poly_idx)
    return best


def locate_geos(tree: shapely.STRtree, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``locate`` by GEOS alone: a tree of the (finite) points queried with each polygon, which GEOS
    prepares. The answer is GEOS's by construction (``intersects`` is symmetric)."""
    best = np.full(len(x), -1, dtype=np.int64)
    finite = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    if len(finite) and len(tree.geometries):
        poly, pt = shapely.STRtree(shapely.points(x[finite], y[finite])).query(tree.geometries,
                                                                                predicate="intersects")
        found = _smallest_per_point(len(finite), pt, poly)
        best[finite] = np.where(found == _NONE, -1, found)
    return best


def locate(tree: shapely.STRtree, rings: Rings, x: np.ndarray, y: np.ndarray,
           stats: dict | None = None) -> np.ndarray:
    """Smallest index of a tree polygon that each point (x, y) intersects (interior or boundary), -1 if
    none (NaN coordinates: -1): the same answer as ``tree.query(points, predicate="intersects")`` +
    minimum, computed by the grid + kernel, with shapely re-running only the points the kernel left
    undecided (shapely points are made for those alone); or by GEOS alone (``locate_geos``) for a few
    points in very detailed polygons, where GEOS is measured faster.

    ``stats``, when given, receives the bounding-box pair and fallback counts."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    n = len(x)
    if n < FEW_POINTS and rings.mean_vertices > DETAILED_VERTICES and np.isfinite(rings.coords).all() and \
            np.isfinite(x).all() and np.isfinite(y).all():  # (GEOS raises on non-finite polygons)
        if stats is not None:
            stats["points"] = stats.get("points", 0) + n
            stats["geos_points"] = stats.get("geos_points", 0) + n
        return locate_geos(tree, x, y)
    best, fallback, n_pairs, n_undecided = locate_grid(x, y, *_grid_args(rings.grid), rings.part_ptr,
                                                       rings.ring_ptr, rings.coord_ptr, rings.bbox,
                                                       rings.coords, rings.ok)
    fb = np.flatnonzero(fallback)
    if len(fb):
        f_pt, f_poly = tree.query(shapely.points(x[fb], y[fb]), predicate="intersects")
        best[fb] = _smallest_per_point(len(fb), f_pt, f_poly)
    best[best == _NONE] = -1
    if stats is not None:
        stats["points"] = stats.get("points", 0) + n
        stats["pairs"] = stats.get("pairs", 0) + int(n_pairs)
        stats["undecided_pairs"] = stats.get("undecided_pairs", 0) + int(n_undecided)
        stats["fallback_points"] = stats.get("fallback_points", 0) + len(fb)
    return best


@njit(cache=True, nogil=True)
def factorize_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number the distinct (a, b) uint64 pairs 0, 1, ... in order of first appearance.

    Returns (code per row, row of each code's first occurrence). Open addressing: the hash only
    picks the slot, equality is checked on both keys, so it is exact. Used on float64 bit patterns
    (one pass, about 3x faster than pandas.factorize on the pair as complex128 for 1M rows)."""
    m = a.shape[0]
    size = 1
    while size < 2 * m + 2:
        size *= 2
    mask = np.uint64(size - 1)
    table = np.full(size, -1, dtype=np.int64)  # row of the first occurrence, -1 = empty
    codes = np.empty(m, dtype=np.int64)
    first = np.empty(m, dtype=np.int64)
    n = 0
    c1 = np.uint64(0x9E3779B97F4A7C15)
    c2 = np.uint64(0xD6E8FEB86659FD93)
    s32 = np.uint64(32)
    for v in range(m):
        h = a[v] * c1 ^ b[v]
        h = (h ^ (h >> s32)) * c2
        h = h ^ (h >> s32)
        slot = np.int64(h & mask)
        while True:
            rep = table[slot]
            if rep < 0:
                table[slot] = v
                codes[v] = n
                first[n] = v
                n += 1
                break
            if a[rep] == a[v] and b[rep] == b[v]:
                codes[v] = codes[rep]
                break
            slot = (slot + 1) & (size - 1)
    return codes, first[:n].copy()


def warm_up() -> None:
    """Compile the kernels (or load them from numba's on-disk cache, ~0.3 s; compiling takes a few s) on
    a one-square layer, so the first ingest does not pay for it."""
    square = shapely.box(0.0, 0.0, 1.0, 1.0)
    tree = shapely.STRtree(np.array([square]))
    x = np.array([0.5, 1.0, 2.0])
    y = np.array([0.5, 0.5, 2.0])
    locate(tree, build_rings(tree.geometries), x, y)  # build_grid's and locate_grid's kernels
    factorize_pairs(x.view(np.uint64), y.view(np.uint64))
