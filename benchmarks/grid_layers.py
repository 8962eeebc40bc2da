"""Benchmark: the grid layers of issue 11 as served, on Wolverhampton (not a test).

(a) The whole layer through the pipeline, `grid_gistar` on a 250 m grid (about 1,200 cells), 500 m band,
    999 permutations: points → cells → counts → weights → Gi* → publish → the map's GeoJSON (the grid over the area
    and the points read from the store are shared with the peer and timed apart). The peer
    in the same run is the PySAL route on the same cells and points: geopandas ``sjoin`` for the counts,
    ``libpysal.weights.DistanceBand`` and ``esda.G_Local(transform="B", star=True, permutations=999)``, then
    geopandas ``to_json``. The z-scores must be equal.
(b) The map in headless Chromium: time from navigation to every grid cell drawn (the animation frame after the
    layer was added, on a canvas for grid layers), for the grid Gi* layer and the KDE layer, against the LSOA Gi*
    map in the same run (the issue's budget is under 1 s, like the area layers).
    With ``--shots DIR`` it saves screenshots of both grid layers.

    .venv/bin/python benchmarks/grid_layers.py [--quick] [--shots /tmp/shots]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

#: the layer is drawn when the map's script marks it so (``drawnAt``: the animation frame after it was added,
#: once its renderer, SVG or canvas, has drawn it) and it holds at least the expected number of features
WATCH = """
(() => {
  window.__bench = {};
  const t = setInterval(() => {
    const e = window.hotspots && window.hotspots.entries[%r];
    if (e && e.drawnAt && e.count >= %d && !window.__bench.cells) {
      window.__bench.cells = e.drawnAt; window.__bench.n = e.count; clearInterval(t);
    }
  }, 5);
})();
"""


def bench_pipeline(bundle: Path, permutations: int) -> None:
    import geopandas as gpd
    import numpy as np
    from esda.getisord import G_Local
    from libpysal.weights import DistanceBand
    from hotspots import pipeline, render
    from hotspots.aggregate import grid_cells, incident_points
    from hotspots.bundle import install_bundle
    from hotspots.cache import clear
    from hotspots.config import load_config
    from hotspots.ingest import ingest_paths
    from hotspots.request import Audience
    root = Path(tempfile.mkdtemp(prefix="grid-layers-"))
    config = load_config(env={}, data_dir=root / "data", instance_dir=root / "inst", bundle=bundle)
    install_bundle(config)
    ingest_paths(config, [bundle / "crime"])
    q = {"layer": "grid_gistar", "cell": "250", "category": "violent-crime", "from": "2018-06", "to": "2018-06",
         "permutations": str(permutations)}
    req = pipeline.parse(config, q)
    pipeline.build_layer(config, req, Audience.ANALYST)  # compile the kernels once
    clear()
    t = time.perf_counter()
    grid_cells(config, 250, "square")  # shared with the peer: the grid over the area and the points from the store
    incident_points(config)
    shared = time.perf_counter() - t
    t = time.perf_counter()
    r = pipeline.build_layer(config, req, Audience.ANALYST)
    gj = render.display_geojson(config, r)
    ours = time.perf_counter() - t
    # the peer, from the same points and the same cells (run twice: its numba kernels compile on the first call)
    cells = grid_cells(config, 250, "square")
    pts = incident_points(config)
    pts = pts[(pts["category"] == "violent-crime") & (pts["month"] == "2018-06")]

    def peer_run():
        pg = gpd.GeoDataFrame(geometry=gpd.points_from_xy(pts["easting"], pts["northing"]), crs=27700)
        clipped = gpd.GeoDataFrame({"code": cells["code"]}, geometry=cells["clipped"].to_numpy(), crs=27700)
        j = gpd.sjoin(pg, clipped, predicate="intersects").sort_values("code").reset_index()
        j = j.drop_duplicates("index")  # a point on a shared edge: the smallest code
        counts = j.groupby("code").size().reindex(cells["code"]).fillna(0).to_numpy(float)
        c = cells.geometry.centroid
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = DistanceBand(np.column_stack([c.x, c.y]), threshold=500 * (1 + 1e-9), binary=True,
                             silence_warnings=True)
            g = G_Local(counts, w, transform="B", star=True, permutations=permutations, seed=12345)
        out = gpd.GeoDataFrame({"code": cells["code"], "count": counts, "z": g.Zs, "p": g.p_sim},
                               geometry=cells["clipped"].to_numpy(), crs=27700).to_crs(4326).to_json()
        return counts, g, out
    peer_run()
    t = time.perf_counter()
    counts, g, out = peer_run()
    peer = time.perf_counter() - t
    z = dict(zip(r.frame["code"], r.frame["gi_z"]))
    dz = max(abs(z[code] - zz) for code, zz in zip(cells["code"], g.Zs))
    same = all(dict(zip(r.frame["code"], r.frame["count"]))[code] == n for code, n in zip(cells["code"], counts))
    print(f"(a) grid_gistar 250 m, {len(cells)} cells, {permutations} permutations, {len(pts)} incidents")
    print(f"    shared by both (250 m grid over the area, points from the store): {shared:.2f} s")
    print(f"    ours (pipeline: cells → counts → weights → Gi* → publish → GeoJSON {len(gj) / 1e6:.2f} MB): {ours:.2f} s")
    print(f"    sjoin + libpysal + esda + to_json ({len(out) / 1e6:.2f} MB): {peer:.2f} s  → {peer / ours:.1f}×")
    print(f"    counts identical: {same}; max |z − esda Zs| = {dz:.2g}")


def wait_cells(page, timeout: float = 120.0) -> float:
    """Milliseconds from navigation to the cells drawn (polled from Python: the page's CSP forbids eval)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = page.evaluate("window.__bench && window.__bench.cells")
        if v:
            return float(v)
        time.sleep(0.05)
    raise TimeoutError("the layer was not drawn in time")


def compute(url: str, layer: str, query: str, timeout: float = 600.0) -> float:
    """Seconds until the server has the layer (GET its GeoJSON, retrying while it answers 503 "goes on in the
    background"), so that every measured visit is served from the cache whatever the machine's load."""
    import urllib.error
    import urllib.request
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/api/v1/layers/{layer}.geojson{query}", timeout=120) as r:
                r.read()
                return time.time() - t0
        except urllib.error.HTTPError as exc:
            if exc.code != 503:
                raise
            time.sleep(float(exc.headers.get("Retry-After") or 2))
    raise TimeoutError(f"{layer} was not computed in {timeout:.0f} s")


def renderer(browser, url: str, layer: str) -> str:
    """How the layer is drawn: 'canvas' or 'SVG paths' (grid layers use a canvas unless a cell is hatched)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    page.add_init_script(WATCH % (layer, 1))
    page.goto(url)
    wait_cells(page)
    on_canvas = page.locator(".leaflet-overlay-pane canvas").count() > 0
    ctx.close()
    return "canvas" if on_canvas else "SVG paths"


def bench_map(bundle: Path, shots: Path | None, runs: int) -> None:
    import statistics
    import importlib.util
    from playwright.sync_api import sync_playwright
    spec = importlib.util.spec_from_file_location("web_bench", REPO / "benchmarks" / "web.py")
    wb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wb)
    os.environ["PYTHONPATH"] = str(REPO)  # the server runs this checkout, not another editable install
    os.environ["HOTSPOTS_PUBLIC"] = "1"  # anonymous visitors are viewers: the layers the public sees
    proc, url, root = wb.start_server(bundle)
    ARGS, CHROMIUM, wait_warm = wb.ARGS, wb.CHROMIUM, wb.wait_warm
    views = {"LSOA Gi* (peer)": ("gistar", "?layer=gistar&category=violent-crime", 161),
             "grid Gi* 250 m": ("grid_gistar", "?layer=grid_gistar&cell=250&category=violent-crime", 1200),
             "KDE 250 m, 400 m quartic": ("kde", "?layer=kde&cell=250&bandwidth=400&category=violent-crime", 1200)}
    try:
        wait_warm(url)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for label, (layer, query, n) in views.items():
                computed = compute(url, layer, query)
                times = []
                for i in range(runs + 1):  # the first visit: the browser's first load of this page and layer
                    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
                    page = ctx.new_page()
                    page.add_init_script(WATCH % (layer, n))
                    page.goto(url + query)
                    times.append(wait_cells(page))
                    if shots and i == runs:
                        shots.mkdir(parents=True, exist_ok=True)
                        page.wait_for_timeout(500)
                        page.screenshot(path=str(shots / (label.split(" (")[0].replace(" ", "_").replace("*", "")
                                                          .replace(",", "") + ".png")))
                    ctx.close()
                print(f"(b) {label}: computed on the server in {computed:.1f} s; first visit {times[0]:.0f} ms; median "
                      f"{statistics.median(times[1:]):.0f} ms, max {max(times[1:]):.0f} ms to {n}+ features drawn "
                      f"({renderer(browser, url + query, layer)})")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=os.environ.get("HOTSPOTS_BUNDLE") or str(REPO.parent / "shared" / "data"))
    ap.add_argument("--quick", action="store_true", help="99 permutations, 1 cached map run per layer")
    ap.add_argument("--shots", type=Path, help="save screenshots of the grid layers here")
    ap.add_argument("--no-map", action="store_true", help="skip the browser part")
    ap.add_argument("--map-only", action="store_true", help="skip the pipeline part (a)")
    a = ap.parse_args()
    if not a.map_only:
        bench_pipeline(Path(a.bundle), 99 if a.quick else 999)
    if not a.no_map:
        bench_map(Path(a.bundle), a.shots, 1 if a.quick else 5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
