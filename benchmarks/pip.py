"""Benchmark: point-in-polygon, the compiled kernel (``hotspots/pip.py``) against shapely 2 / GEOS.

Question (issue 9 item 4): does the compiled kernel clearly win (> ~1.5x) over shapely's own tools at
160, 5,000 and 35,000 areas? Every engine must give the same answer (smallest index of a polygon that
the point intersects, -1 for none); the script checks it in the same run.

Engines, all on the same points and polygons (EPSG:27700):

* ``kernel``: ``hotspots.pip.locate`` forced onto its compiled kernel (grid + GEOS's arithmetic; the
  grid and flat rings are built once per layer, timed separately as ``build``), and ``pip.locate`` as
  it runs, choosing the kernel or GEOS (``pip.DETAILED_VERTICES``, ``pip.FEW_POINTS``);
* ``shapely polygon tree``: ``STRtree(polygons).query(points, predicate="intersects")`` (what
  ``geopandas.sjoin`` runs), including making the shapely points;
* ``shapely point tree``: ``STRtree(points).query(polygons, predicate="intersects")``: a tree of the
  points queried with each polygon, which GEOS prepares, including building the points and their tree.

Layers: synthetic Voronoi tessellations as ``benchmarks/ingest.py`` builds them (densified to about
the vertex count of generalised LSOAs) and the real Wolverhampton LSOA 2021 boundaries (161) when the
data bundle is present. Points: uniform over the layer's extent (distinct locations, as ingest
geocodes each distinct location once).

Run: ``python benchmarks/pip.py`` (300,000 points, best of 3) or ``--quick``. Prints numbers; not a test.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hotspots import pip  # noqa: E402
from ingest import tessellation  # noqa: E402  (benchmarks/ingest.py)

_NONE = np.iinfo(np.int64).max


def smallest(n: int, point_idx: np.ndarray, poly_idx: np.ndarray) -> np.ndarray:
    """Smallest polygon index per point from (point, polygon) pairs, -1 where none."""
    best = np.full(n, _NONE, dtype=np.int64)
    np.minimum.at(best, point_idx, poly_idx)
    best[best == _NONE] = -1
    return best


def polygon_tree(polys: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    tree = shapely.STRtree(polys)
    pt, poly = tree.query(shapely.points(x, y), predicate="intersects")
    return smallest(len(x), pt, poly)


def point_tree(polys: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    tree = shapely.STRtree(shapely.points(x, y))
    poly, pt = tree.query(polys, predicate="intersects")
    return smallest(len(x), pt, poly)


def best_of(reps: int, fn, *args) -> tuple[float, np.ndarray]:
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - t0)
    return min(times), out


def real_lsoas() -> np.ndarray | None:
    bundle = Path(os.environ.get("HOTSPOTS_BUNDLE", Path(__file__).resolve().parents[2] / "shared" / "data"))
    f = bundle / "boundaries" / "wolverhampton_lsoa21_bgc.geojson"
    if not f.exists():
        return None
    import geopandas as gpd
    gdf = gpd.read_file(f).to_crs("EPSG:27700").sort_values("LSOA21CD")
    return gdf.geometry.to_numpy()


def run(label: str, polys: np.ndarray, n_points: int, reps: int) -> dict:
    rng = np.random.default_rng(5)
    x0, y0, x1, y1 = shapely.total_bounds(polys)
    x, y = rng.uniform(x0, x1, n_points), rng.uniform(y0, y1, n_points)
    t0 = time.perf_counter()
    tree = shapely.STRtree(polys)
    rings = pip.build_rings(tree.geometries)
    build = time.perf_counter() - t0
    few, pip.FEW_POINTS = pip.FEW_POINTS, 0  # the kernel on every layer, whatever locate would choose
    try:
        t_kernel, kernel = best_of(reps, pip.locate, tree, rings, x, y)
    finally:
        pip.FEW_POINTS = few
    stats: dict = {}
    t_locate, chosen = best_of(reps, pip.locate, tree, rings, x, y, stats)
    engine = "GEOS point tree" if stats.get("geos_points") else "kernel"
    t_polytree, by_polytree = best_of(reps, polygon_tree, polys, x, y)
    t_pointtree, by_pointtree = best_of(reps, point_tree, polys, x, y)
    assert np.array_equal(kernel, by_polytree), f"{label}: kernel differs from the polygon-tree query"
    assert np.array_equal(kernel, by_pointtree), f"{label}: kernel differs from the point-tree query"
    assert np.array_equal(kernel, chosen), f"{label}: hotspots.pip.locate differs from the kernel"
    verts = shapely.get_num_coordinates(polys).mean()
    best_shapely = min(t_polytree, t_pointtree)
    print(f"{label:>28}: {len(polys):>6,} areas ({verts:4.0f} vertices), {n_points:,} points, "
          f"{(kernel >= 0).mean():.0%} inside | kernel {t_kernel:6.3f} s (+ build {build:.2f} s once) | "
          f"polygon tree {t_polytree:6.3f} s | point tree {t_pointtree:6.3f} s | "
          f"kernel {best_shapely / t_kernel:5.1f}x faster than the best shapely | "
          f"pip.locate chooses the {engine}: {t_locate:6.3f} s")
    return {"label": label, "areas": len(polys), "kernel": t_kernel, "build": build, "locate": t_locate,
            "polygon_tree": t_polytree, "point_tree": t_pointtree, "ratio": best_shapely / t_kernel}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=300_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="30,000 points, one repetition")
    args = ap.parse_args()
    if args.quick:
        args.points, args.reps = 30_000, 1
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, numpy {np.__version__}, "
          f"shapely {shapely.__version__} (GEOS {shapely.geos_version_string})")
    pip.warm_up()  # numba: loads compiled kernels from its cache (compiles them on the very first run)
    layers = [(f"synthetic Voronoi {n:,}", tessellation(n).geometry.to_numpy()) for n in (160, 5_000, 35_000)]
    real = real_lsoas()
    if real is not None:
        layers.insert(1, ("real Wolverhampton LSOA21", real))
    else:
        print("(real Wolverhampton LSOAs not found: set HOTSPOTS_BUNDLE)")
    for label, polys in layers:
        run(label, polys, args.points, args.reps)
    if not args.quick:  # the corner where GEOS wins: few points in very detailed polygons
        run("synthetic Voronoi 160, few points", layers[0][1], 30_000, args.reps)


if __name__ == "__main__":
    main()
