"""Benchmark: patrol-scale grids on London's 12 months of police.uk crime, against named peers in the same run.

(a) Gi* with 999 permutations on a 250 m grid over the bundle's 25 covered London boroughs, 500 m
    distance band, as a whole process: incidents from the store → cells → weights → Gi* → GeoJSON.
    Peer: the same grid and the same points through the usual PySAL route, geopandas ``sjoin`` for
    the counts, ``libpysal.weights.DistanceBand`` and ``esda.G_Local(transform="B", star=True,
    permutations=999)``, then geopandas' GeoJSON writer. Ours: ``assign_cells``, the lattice weights
    (``lattice_distance_weights``, checked identical to ``build_weights``), ``gi_star`` and
    ``cells_geojson``. The z-scores must be identical (to ~1e-12). Reading the points and building the
    grid are the same code for both (shared); the table gives the total per request (points and grid in
    memory, as the service holds them per data version) and the whole process with the shared steps.
(b) Kernel density of violence (about 165,000 points) on a 100 m grid with a 400 m bandwidth:
    our quartic kernel (checked against a direct numpy sum over every point on a random subset
    of cells) and our Gaussian kernel against scikit-learn's ``KernelDensity(kernel="gaussian")``
    on the same points and cells (values to 1e-9 relative). scikit-learn has no quartic kernel.

Run::

    python benchmarks/grid.py                    # ingests London into a temporary instance (~40 s)
    python benchmarks/grid.py --workdir /tmp/ldn # keeps / reuses that instance
    python benchmarks/grid.py --quick            # 5 boroughs, fewer cells for the KDE peer

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
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hotspots import store  # noqa: E402
from hotspots.config import load_config  # noqa: E402
from hotspots.grid import (assign_cells, cell_geometry_texts, cells_geojson, lattice_distance_weights,  # noqa: E402
                           make_grid)
from hotspots.kde import kde  # noqa: E402
from hotspots.scale import optimized_distance  # noqa: E402
from hotspots.stats import gi_star  # noqa: E402
from hotspots.weights import build_weights, clear_cache  # noqa: E402

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


def geojson(grid, counts, z, p, labels) -> str:
    """The peer's GeoJSON: geopandas' writer, as a PySAL user would write the layer."""
    out = gpd.GeoDataFrame({"code": grid["code"], "count": counts, "gi_z": z, "gi_p": p, "label": labels},
                           geometry=grid["clipped"].values, crs=27700)
    return out.to_crs(4326).to_json()


def our_geojson(grid, counts, z, p, labels, texts=None) -> bytes:
    """Ours: the same features and properties through hotspots.grid.cells_geojson (with the grid's geometry
    texts when given: kept per grid, as the service keeps the display geometry of its boundaries)."""
    return cells_geojson(grid["clipped"].to_numpy(), {"code": grid["code"].to_numpy(), "count": counts, "gi_z": z,
                                                      "gi_p": p, "label": np.asarray(labels)}, geometry_texts=texts)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def bench_gi(db: Path, area) -> None:
    shared: list[tuple[str, float]] = []
    rows: list[tuple[str, float, float]] = []
    t_sql, xy = timed(lambda: points(db))
    shared.append(("points from the store (SQL, shared)", t_sql))
    t_grid, grid = timed(lambda: make_grid(area, GI_CELL_M))
    shared.append((f"{GI_CELL_M:.0f} m grid, make_grid ({len(grid):,} cells, shared)", t_grid))
    centroids = shapely.get_coordinates(grid.geometry.centroid)
    print(f"(a) {len(xy):,} incidents of every category, {len(grid):,} cells of {GI_CELL_M:.0f} m, "
          f"distance band {BAND_M:.0f} m, {PERMUTATIONS} permutations")

    def ours_counts():
        cell = assign_cells(xy[:, 0], xy[:, 1], grid)
        return np.bincount(cell[cell >= 0], minlength=len(grid)).astype(float)

    def peer_counts():
        pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=27700)
        cells = gpd.GeoDataFrame({"i": np.arange(len(grid))}, geometry=grid["clipped"].values, crs=27700)
        j = gpd.sjoin(pts, cells, predicate="intersects", how="inner")
        # A point on a shared edge counts once, in the cell with the smallest code (the grid is in code order).
        j = j.sort_values("i", kind="stable")
        j = j[~j.index.duplicated(keep="first")]
        return np.bincount(j["i"].to_numpy(), minlength=len(grid)).astype(float)

    t_c, y = timed(ours_counts)
    t_pc, y_peer = timed(peer_counts)
    rows.append(("incidents → cells → counts", t_c, t_pc))
    clear_cache()
    # ours: the weights hotspots.kinds_grid.grid_weights builds for a square grid and a distance band
    t_w, w = timed(lambda: lattice_distance_weights(grid, BAND_M))
    import esda
    import libpysal
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_lw, lw = timed(lambda: libpysal.weights.DistanceBand(centroids, threshold=BAND_M, binary=True,
                                                              silence_warnings=True))
    rows.append((f"weights distance:{BAND_M:.0f}", t_w, t_lw))
    t_geo_w, w_geo = timed(lambda: build_weights(grid, f"distance:{BAND_M:g}", id_col="code"))
    gi_star(y[:50], build_weights(grid.iloc[:50], "knn:3", id_col="code"), permutations=99)  # load the kernels
    t_gi, gi = timed(lambda: gi_star(y, w, permutations=PERMUTATIONS, seed=SEED, fdr=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_first, _ = timed(lambda: esda.G_Local(y, lw, transform="B", star=True, permutations=PERMUTATIONS,
                                                seed=SEED, keep_simulations=False))
        t_eg, eg = timed(lambda: esda.G_Local(y, lw, transform="B", star=True, permutations=PERMUTATIONS,
                                              seed=SEED, keep_simulations=False))
    rows.append((f"Gi* {PERMUTATIONS} permutations (warm)", t_gi, t_eg))
    t_opt, choice = timed(lambda: optimized_distance(y, centroids))
    esda_labels = np.where(eg.p_sim <= 0.05, np.where(eg.Zs > 0, "Hot", "Cold"), "Not significant")
    geojson(grid.iloc[:10], y[:10], gi.z[:10], gi.p_norm[:10], gi.labels[:10])  # pyproj's first transform
    our_geojson(grid.iloc[:10], y[:10], gi.z[:10], gi.p_norm[:10], gi.labels[:10])
    t_texts, texts = timed(lambda: cell_geometry_texts(grid["clipped"].to_numpy()))
    t_j, ours_text = timed(lambda: our_geojson(grid, y, gi.z, gi.p_norm, gi.labels, texts))
    t_j_all, ours_all = timed(lambda: our_geojson(grid, y, gi.z, gi.p_norm, gi.labels))
    t_pj, peer_text = timed(lambda: geojson(grid, y_peer, eg.Zs, eg.p_norm, esda_labels))
    rows.append(("GeoJSON (EPSG:4326; ours: the grid's geometry kept)", t_j, t_pj))
    request = (sum(r[1] for r in rows), sum(r[2] for r in rows))
    both = sum(t for _, t in shared)
    print(f"(ours only, once per grid: the cells' geometry as GeoJSON text {t_texts:.3f} s, counted in the whole "
          f"process; written without it the GeoJSON step takes {t_j_all:.3f} s, identical bytes: "
          f"{ours_all == ours_text})")
    print(f"{'step':52} {'hotspots s':>11} {'sjoin+libpysal+esda s':>22} {'ratio':>7}")
    for name, t in shared:
        print(f"{name:52} {t:11.3f} {t:22.3f} {1:6.1f}×")
    for name, a, b in rows:
        print(f"{name:52} {a:11.3f} {b:22.3f} {b / a:6.1f}×")
    print(f"{'per request: counts → weights → Gi* → GeoJSON':52} {request[0]:11.3f} {request[1]:22.3f} "
          f"{request[1] / request[0]:6.1f}×")
    whole = (request[0] + both + t_texts, request[1] + both)
    print(f"{'whole process: store → ... → GeoJSON':52} {whole[0]:11.3f} {whole[1]:22.3f} "
          f"{whole[1] / whole[0]:6.1f}×")
    print(f"esda G_Local first call (numba compile): {t_first:.2f} s (not in the table)")
    print(f"optimized distance band ({len(choice.table)} Moran's I bands, {t_opt:.2f} s): {choice.text}")
    ok = np.isfinite(gi.z)
    import json
    ours_fc, peer_fc = json.loads(ours_text), json.loads(peer_text)
    same_props = all(a["properties"]["code"] == b["properties"]["code"] and a["properties"]["count"]
                     == b["properties"]["count"] for a, b in zip(ours_fc["features"], peer_fc["features"]))
    print(f"check: counts identical to sjoin: {np.array_equal(y, y_peer)}; lattice weights identical to "
          f"build_weights ({t_geo_w:.3f} s): {(w.matrix != w_geo.matrix).nnz == 0}; "
          f"max |z_ours − esda Zs| = {np.abs(gi.z[ok] - eg.Zs[ok]).max():.2e} over {ok.sum():,} cells; "
          f"islands {len(w.islands)}; neighbours min/mean/max {w.cardinalities.min()}/"
          f"{w.cardinalities.mean():.1f}/{w.cardinalities.max()}; hot cells (FDR) {(gi.bin > 0).sum():,}, "
          f"cold {(gi.bin < 0).sum():,}; GeoJSON {len(ours_text) / 1e6:.1f} MB (peer {len(peer_text) / 1e6:.1f} MB), "
          f"same features: {len(ours_fc['features']) == len(peer_fc['features']) and same_props}")


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
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hotspots-grid-") as tmp:
        db = instance(args.workdir or Path(tmp))
        area, n_lads = london_area(args.quick)
        print(f"London, {n_lads} boroughs, {area.area / 1e6:,.0f} km²; {os.cpu_count()} CPUs")
        if args.only in (None, "gi"):
            bench_gi(db, area)
        if args.only in (None, "kde"):
            bench_kde(db, area, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
