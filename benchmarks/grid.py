"""Benchmark: patrol-scale grids on London's 12 months of police.uk crime, against named peers in the same run.

(a) Gi* with 999 permutations on a 250 m grid over the bundle's 25 covered London boroughs, 500 m
    distance band, violence (the map's default category, about 165,000 incidents), as a WHOLE PROCESS:
    a new Python process goes from the store to the layer's GeoJSON.
    Ours: the service's own path, ``pipeline.parse`` → ``pipeline.build_layer`` (counts from the store's
    columnar snapshot → cells → lattice weights → Gi* with FDR and global Moran's I → publish) →
    ``render.display_geojson`` (the map's GeoJSON with place labels), in two states of the instance:
    *first use of the grid* (the grid's cells, display geometry and labels are built and kept; the store's
    columnar snapshot is there, as every ingest leaves it, and its making is timed apart) and *every later
    process*.
    Peer: the usual PySAL route in its own process: the points by SQL, ``make_grid`` over the dissolved
    boroughs (our code: a fishnet clipped to the area), geopandas ``sjoin`` for the counts,
    ``libpysal.weights.DistanceBand`` and ``esda.G_Local(transform="B", star=True, permutations=999)``,
    then geopandas' GeoJSON writer. esda's kernels are not cached by numba, so its first G_Local call in a
    process compiles them; the table counts its SECOND call (the first is printed apart).
    Python imports are timed apart on both sides. The z-scores must be identical (to ~1e-12).
(b) Kernel density of violence (about 165,000 points) on a 100 m grid with a 400 m bandwidth:
    our quartic kernel (checked against a direct numpy sum over every point on a random subset
    of cells) and our Gaussian kernel against scikit-learn's ``KernelDensity(kernel="gaussian")``
    on the same points and cells (values to 1e-9 relative). scikit-learn has no quartic kernel.

Run::

    python benchmarks/grid.py                    # ingests London into a temporary instance (~40 s)
    python benchmarks/grid.py --workdir /tmp/ldn # keeps / reuses that instance
    python benchmarks/grid.py --quick            # KDE on 5 boroughs, fewer cells for its peer (Gi* runs the
                                                 # configured 25: the service's own area)

scikit-learn's exact Gaussian KDE takes about 30 ms per cell here, so it runs on a random subset of
2,000 cells (hours for every cell); ours runs on the same subset and on every cell.

Prints numbers; it is not a test. Reading points with SQL here is allowed: benchmarks may.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hotspots import store  # noqa: E402
from hotspots.config import load_config  # noqa: E402
from hotspots.grid import make_grid  # noqa: E402
from hotspots.kde import kde  # noqa: E402

CONFIG = REPO / "config" / "london.toml"
GI_CELL_M, BAND_M, PERMUTATIONS, SEED = 250.0, 500.0, 999, 12345
KDE_CELL_M, BANDWIDTH_M = 100.0, 400.0
QUICK_BOROUGHS = 5
DIRECT_SUBSET = 500  # cells checked against a direct sum over every point
#: Cells for scikit-learn: its exact Gaussian KDE takes about 30 ms per cell on 165,000 points.
PEER_SUBSET = 2_000


def instance(workdir: Path) -> Path:
    """The London store under ``workdir``, ingested from the bundle unless it is already there."""
    db = workdir / "inst" / "hotspots.db"
    if db.exists():
        return db
    env = dict(os.environ, HOTSPOTS_CONFIG=str(CONFIG), HOTSPOTS_DATA_DIR=str(workdir / "data"),
               HOTSPOTS_INSTANCE_DIR=str(workdir / "inst"))
    cli = [sys.executable, "-c", "import sys; from hotspots.cli import main; sys.exit(main())"]
    t = time.perf_counter()
    for args in (["data", "install"], ["ingest", "--bundle"]):
        subprocess.run(cli + args, env=env, cwd=REPO, check=True, capture_output=True)
    print(f"ingested London into {workdir} in {time.perf_counter() - t:.1f} s")
    return db


def london_area(quick: bool):
    """The covered boroughs (config ``lad_codes``) dissolved from the bundle's LSOA 2021 layer."""
    cfg = load_config(CONFIG)
    lads = list(cfg.lad_codes)[:QUICK_BOROUGHS] if quick else list(cfg.lad_codes)
    bundle = Path(os.environ.get("HOTSPOTS_BUNDLE") or REPO.parent / "shared" / "data")
    lsoa = gpd.read_file(bundle / "london" / "boundaries" / "london_lsoa21_bgc.geojson").to_crs(27700)
    return shapely.union_all(np.asarray(lsoa[lsoa["LADCD"].isin(lads)].geometry.values)), len(lads)


def points(db: Path, category: str | None = None) -> np.ndarray:
    con = store.connect(db, readonly=True)
    try:
        sql = ("SELECT i.easting_dm, i.northing_dm FROM incidents i JOIN categories c ON c.id = i.category_id "
               "WHERE i.in_area = 1 AND i.easting_dm IS NOT NULL" + (" AND c.slug = ?" if category else ""))
        rows = con.execute(sql, (category,) if category else ()).fetchall()
    finally:
        con.close()
    return np.asarray(rows, dtype=float).reshape(-1, 2) / 10.0


#: Ours: the service's path from the store to the map's GeoJSON, ``1 + runs`` times in one process. Between
#: runs every in-memory cache is emptied, so each run reads the store's snapshot and the grid's files again.
OURS = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from hotspots.config import load_config
from hotspots import cache, pipeline, render, stats, weights
from hotspots.request import Audience
t1 = time.perf_counter()
cfg = load_config()
runs = []
for r in range(1 + int(sys.argv[2])):
    cache.clear(); weights.clear_cache(); stats._counts_memo.clear(); stats._shared_draws.cache_clear()
    a = time.perf_counter()
    req = pipeline.parse(cfg, {"layer": "grid_gistar", "cell": "%(cell)g", "weights": "distance:%(band)g",
                               "permutations": "%(perms)d", "category": "%(category)s"})
    b = time.perf_counter()
    pub = pipeline.build_layer(cfg, req, Audience.ANALYST)
    c = time.perf_counter()
    body = render.display_geojson(cfg, pub)
    d = time.perf_counter()
    runs.append({"parse": b - a, "build": c - b, "geojson": d - c, "total": d - a})
f = pub.frame
np.savez(sys.argv[1], code=np.asarray(f["code"], dtype=str), z=f["gi_z"].to_numpy(float),
         count=f["count"].to_numpy(float), hot=np.asarray(f["gi_bin"].to_numpy(float) > 0))
print(json.dumps({"imports": t1 - t0, "runs": runs, "bytes": len(body), "cells": len(f)}))
"""

#: The peer, ``1 + runs`` times in one process: SQL, make_grid, sjoin, libpysal DistanceBand, esda G_Local
#: (n_jobs=1: on this machine's two cores its fastest setting), geopandas to_json. Its first run includes
#: numba compiling esda's kernels (esda does not cache them), which a new process pays every time.
PEER = r"""
import json, os, sys, time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
import geopandas as gpd, numpy as np, shapely, sqlite3, esda, libpysal
from hotspots.grid import make_grid
t1 = time.perf_counter()
def read():
    con = sqlite3.connect("file:%(db)s?mode=ro", uri=True)
    rows = con.execute("SELECT i.easting_dm, i.northing_dm FROM incidents i JOIN categories c ON c.id = i.category_id "
                       "WHERE i.in_area = 1 AND i.easting_dm IS NOT NULL AND c.slug = ?", ("%(category)s",)).fetchall()
    con.close()
    return np.asarray(rows, dtype=float).reshape(-1, 2) / 10.0
def grid():
    lsoa = gpd.read_file("%(lsoa)s").to_crs(27700)
    area = shapely.union_all(np.asarray(lsoa[lsoa["LADCD"].isin(%(lads)r)].geometry.values))
    return make_grid(area, %(cell)g)
def counts(xy, g):
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=27700)
    cells = gpd.GeoDataFrame({"i": np.arange(len(g))}, geometry=g["clipped"].values, crs=27700)
    j = gpd.sjoin(pts, cells, predicate="intersects", how="inner").sort_values("i", kind="stable")
    j = j[~j.index.duplicated(keep="first")]  # a point on a shared edge: the cell with the smallest code
    return np.bincount(j["i"].to_numpy(), minlength=len(g)).astype(float)
def geojson(g, y, gl):
    lab = np.where(gl.p_sim <= 0.05, np.where(gl.Zs > 0, "Hot", "Cold"), "Not significant")
    out = gpd.GeoDataFrame({"code": g["code"], "count": y, "gi_z": gl.Zs, "gi_p": gl.p_norm, "label": lab},
                           geometry=g["clipped"].values, crs=27700)
    return out.to_crs(4326).to_json()
runs = []
for r in range(1 + int(sys.argv[2])):
    T = {}
    def step(name, fn):
        t = time.perf_counter(); out = fn(); T[name] = time.perf_counter() - t; return out
    xy = step("points from the store (SQL)", read)
    g = step("study area and grid (make_grid)", grid)
    y = step("incidents -> cells (sjoin)", lambda: counts(xy, g))
    c = shapely.get_coordinates(g.geometry.centroid)
    w = step("weights (DistanceBand)", lambda: libpysal.weights.DistanceBand(c, threshold=%(band)g, binary=True,
                                                                             silence_warnings=True))
    gl = step("Gi* (G_Local)", lambda: esda.G_Local(y, w, transform="B", star=True, permutations=%(perms)d,
                                                     seed=12345, n_jobs=1))
    body = step("GeoJSON (geopandas to_json)", lambda: geojson(g, y, gl))
    T["total"] = sum(T.values())
    runs.append(T)
np.savez(sys.argv[1], code=np.asarray(g["code"], dtype=str), z=gl.Zs, count=y)
print(json.dumps({"imports": t1 - t0, "runs": runs, "bytes": len(body)}))
"""


def run_script(code: str, out: Path, env: dict, runs: int) -> dict:
    import json
    r = subprocess.run([sys.executable, "-c", code, str(out), str(runs)], env=env, cwd=REPO, capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise SystemExit(f"benchmark process failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def bench_gi(workdir: Path, db: Path, repeats: int, processes: int) -> None:
    cfg = load_config(CONFIG)
    bundle = Path(os.environ.get("HOTSPOTS_BUNDLE") or REPO.parent / "shared" / "data")
    params = {"cell": GI_CELL_M, "band": BAND_M, "perms": PERMUTATIONS, "category": "violent-crime", "db": db,
              "lsoa": bundle / "london" / "boundaries" / "london_lsoa21_bgc.geojson", "lads": list(cfg.lad_codes)}
    env = dict(os.environ, HOTSPOTS_CONFIG=str(CONFIG), HOTSPOTS_DATA_DIR=str(workdir / "data"),
               HOTSPOTS_INSTANCE_DIR=str(workdir / "inst"), PYTHONPATH=str(REPO))
    cache = workdir / "inst" / "cache"
    print(f"(a) violence, {GI_CELL_M:.0f} m grid, distance band {BAND_M:.0f} m, {PERMUTATIONS} permutations")
    with tempfile.TemporaryDirectory() as tmp:
        for pattern in ("incidents-*.npz", "values-*.npz", "grid-*.npz", "weights-*.npz"):
            for f in cache.glob(pattern):  # nothing kept on disk yet
                f.unlink()
        t = time.perf_counter()  # what the ingest does at its end: the store's columnar snapshot
        store.incident_columns(db, cache)
        t_snapshot = time.perf_counter() - t
        first = run_script(OURS % params, Path(tmp) / "first.npz", env, 0)
        ours_procs = [run_script(OURS % params, Path(tmp) / "ours.npz", env, repeats) for _ in range(processes)]
        peer_procs = [run_script(PEER % params, Path(tmp) / "peer.npz", env, repeats) for _ in range(processes)]
        ours_z, peer_z = np.load(Path(tmp) / "ours.npz"), np.load(Path(tmp) / "peer.npz")
        first_z = np.load(Path(tmp) / "first.npz")
    steps = [k for k in peer_procs[0]["runs"][0] if k != "total"]
    print(f"    each side: {processes} new processes, each running the path {1 + repeats} times; 'new process' is "
          f"the median of the first runs, 'warm' of the others")

    def med(rows, key):
        return float(np.median([row[key] for row in rows]))
    new_peer = {k: med([p["runs"][0] for p in peer_procs], k) for k in steps + ["total"]}
    new_ours = {k: med([p["runs"][0] for p in ours_procs], k) for k in ("parse", "build", "geojson", "total")}
    warm_peer = [r for p in peer_procs for r in p["runs"][1:]]
    warm_ours = [r for p in ours_procs for r in p["runs"][1:]]
    peer = {"imports": med(peer_procs, "imports"), "bytes": peer_procs[0]["bytes"]}
    ours = {"imports": med(ours_procs, "imports"), "bytes": ours_procs[0]["bytes"]}
    print(f"{'':58} {'new process':>12} {'warm':>9}")
    print(f"{'peer: imports (geopandas, libpysal, esda)':58} {peer['imports']:12.3f}")
    for k in steps:
        print(f"{'peer: ' + k:58} {new_peer[k]:12.3f} {med(warm_peer, k):9.3f}")
    print(f"{'peer: store → GeoJSON':58} {new_peer['total']:12.3f} {med(warm_peer, 'total'):9.3f}")
    peer_new_no_jit = new_peer["total"] - new_peer["Gi* (G_Local)"] + med(warm_peer, "Gi* (G_Local)")
    print(f"{'peer: store → GeoJSON, new process without esda compiling':58} {peer_new_no_jit:12.3f}")
    print(f"{'ours: imports (hotspots)':58} {ours['imports']:12.3f}")
    for k in ("parse", "build", "geojson"):
        print(f"{'ours: ' + k:58} {new_ours[k]:12.3f} {med(warm_ours, k):9.3f}")
    print(f"{'ours: store → GeoJSON':58} {new_ours['total']:12.3f} {med(warm_ours, 'total'):9.3f}")
    print(f"{'ours: store → GeoJSON, each new process':58} "
          + " ".join(f"{p['runs'][0]['total']:.3f}" for p in ours_procs))
    print(f"{'ours: the snapshot, at the end of an ingest (once per ingest)':58} {t_snapshot:12.3f}")
    print(f"{'ours: store → GeoJSON, first use of this grid (builds its files)':58} {first['runs'][0]['total']:12.3f}")
    print(f"ratio, warm (both runtimes started, data read again each run): "
          f"{med(warm_peer, 'total') / med(warm_ours, 'total'):.1f}×")
    print(f"ratio, new process, peer without its compile: {peer_new_no_jit / new_ours['total']:.1f}×; with it: "
          f"{new_peer['total'] / new_ours['total']:.1f}×; with imports on both sides: "
          f"{(peer_new_no_jit + peer['imports']) / (new_ours['total'] + ours['imports']):.1f}×")
    print(f"ratio, ours at the first use of this grid (building its cells, display geometry and labels) against "
          f"the peer's new process without its compile: {peer_new_no_jit / first['runs'][0]['total']:.1f}×")
    same_order = np.array_equal(ours_z["code"], peer_z["code"])
    ok = np.isfinite(ours_z["z"]) & np.isfinite(peer_z["z"])
    print(f"check: same cells in the same order: {same_order} ({len(ours_z['code']):,}); counts identical to sjoin: "
          f"{np.array_equal(ours_z['count'], peer_z['count'])}; max |z_ours − esda Zs| = "
          f"{np.abs(ours_z['z'][ok] - peer_z['z'][ok]).max():.2e} over {ok.sum():,} cells; first and later processes "
          f"identical: {np.array_equal(first_z['z'], ours_z['z'], equal_nan=True)}; hot cells (FDR) "
          f"{int(ours_z['hot'].sum()):,}; GeoJSON ours {ours['bytes'] / 1e6:.1f} MB (all the layer's fields and "
          f"place labels), peer {peer['bytes'] / 1e6:.1f} MB")


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def bench_kde(db: Path, area, quick: bool) -> None:
    from sklearn.neighbors import KernelDensity
    xy = points(db, "violent-crime")
    grid = make_grid(area, KDE_CELL_M)
    c = shapely.get_coordinates(grid.geometry.centroid)
    print(f"\n(b) {len(xy):,} violence incidents, {len(grid):,} cells of {KDE_CELL_M:.0f} m, "
          f"bandwidth {BANDWIDTH_M:.0f} m")
    kde(xy[:100], c[:100], BANDWIDTH_M)
    kde(xy[:100], c[:100], BANDWIDTH_M, "gaussian")  # load the compiled kernels
    t_q, dq = timed(lambda: kde(xy, c, BANDWIDTH_M, "quartic", cell_m=KDE_CELL_M))
    sub = np.random.default_rng(SEED).choice(len(c), min(DIRECT_SUBSET, len(c)), replace=False)

    def direct(kernel: str) -> np.ndarray:
        """Every point × every subset cell in plain numpy, from the formulas in docs/methods.md."""
        out = np.zeros(len(sub))
        for k in range(0, len(xy), 20_000):
            p = xy[k:k + 20_000]
            u2 = ((c[sub, None, 0] - p[None, :, 0]) ** 2 + (c[sub, None, 1] - p[None, :, 1]) ** 2) / BANDWIDTH_M ** 2
            out += (np.where(u2 < 1, (1 - u2) ** 2, 0.0) if kernel == "quartic" else np.exp(-u2 / 2)).sum(axis=1)
        norm = 3 / np.pi if kernel == "quartic" else 1 / (2 * np.pi)
        return out * norm / BANDWIDTH_M ** 2 * 1e6

    t_direct, ref_q = timed(lambda: direct("quartic"))
    nz = ref_q > 0
    rel_q = float(np.max(np.abs(dq[sub][nz] / ref_q[nz] - 1))) if nz.any() else 0.0
    zeros_agree = bool((dq[sub][~nz] == 0).all())
    t_g, dg = timed(lambda: kde(xy, c, BANDWIDTH_M, "gaussian", cell_m=KDE_CELL_M))
    peer_cells = np.random.default_rng(SEED + 1).choice(len(c), min(PEER_SUBSET // (4 if quick else 1), len(c)),
                                                         replace=False)
    skl = KernelDensity(kernel="gaussian", bandwidth=BANDWIDTH_M).fit(xy)
    t_s, log_d = timed(lambda: skl.score_samples(c[peer_cells]))
    ds = np.exp(log_d) * len(xy) * 1e6
    rel_g = np.abs(dg[peer_cells] / ds - 1)
    ref_g = direct("gaussian")
    rel_g_direct = float(np.max(np.abs(dg[sub] / ref_g - 1)))
    ds_sub = np.exp(skl.score_samples(c[sub])) * len(xy) * 1e6
    rel_skl_direct = float(np.max(np.abs(ds_sub / ref_g - 1)))
    t_g_same, _ = timed(lambda: kde(xy, c[peer_cells], BANDWIDTH_M, "gaussian"))
    print(f"{'step':52} {'seconds':>9}")
    print(f"{'ours, quartic, every cell':52} {t_q:9.3f}")
    print(f"{f'direct numpy sum, quartic, {len(sub):,} cells':52} {t_direct:9.3f}")
    print(f"{'ours, Gaussian, every cell':52} {t_g:9.3f}")
    print(f"{f'ours, Gaussian, the peer cells ({len(peer_cells):,})':52} {t_g_same:9.3f}")
    print(f"{f'scikit-learn KernelDensity gaussian, {len(peer_cells):,} cells':52} {t_s:9.3f}   "
          f"ratio {t_s / t_g_same:.1f}×")
    print(f"check: quartic vs direct sum: max relative difference {rel_q:.2e} ({nz.sum():,} non-zero cells; "
          f"zero cells agree: {zeros_agree}); max quartic density {dq.max():,.0f} incidents per km²")
    print(f"check: Gaussian vs scikit-learn: max relative difference {rel_g.max():.2e}, median {np.median(rel_g):.1e}, "
          f"{(rel_g <= 1e-9).mean():.1%} of cells within 1e-9")
    print(f"check: on {len(sub):,} cells against a direct numpy sum over every point: ours (Gaussian) "
          f"{rel_g_direct:.2e}, scikit-learn {rel_skl_direct:.2e} (its tree summation is the less exact one)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, help="directory holding (or to hold) the London instance")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_BOROUGHS} boroughs; KDE peer on fewer cells")
    ap.add_argument("--only", choices=("gi", "kde"), help="run one part")
    ap.add_argument("--repeats", type=int, default=4, help="warm runs in each Gi* process")
    ap.add_argument("--processes", type=int, default=3, help="new processes on each side (medians shown)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hotspots-grid-") as tmp:
        db = instance(args.workdir or Path(tmp))
        area, n_lads = london_area(args.quick)
        print(f"London, {n_lads} boroughs, {area.area / 1e6:,.0f} km²; {os.cpu_count()} CPUs")
        if args.only in (None, "gi"):
            bench_gi(args.workdir or Path(tmp), db, args.repeats, args.processes)
        if args.only in (None, "kde"):
            bench_kde(db, area, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
