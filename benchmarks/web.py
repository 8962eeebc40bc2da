"""Web performance budget for the Wolverhampton LSOA map (not a test): page weight and time-to-polygons.

Budgets (issues 4 and 13): at most 500 KB transferred (compressed) and all LSOA polygons drawn within 1 s of
navigation in headless Chromium on this machine, at each of four window sizes (phone 390×844, tablet
768×1024, laptop 1366×768, desktop 1920×1080).

    .venv/bin/python benchmarks/web.py                 # installs the bundle in a tmp dir, starts a server
    .venv/bin/python benchmarks/web.py --url http://127.0.0.1:5000/   # measure a running server
    .venv/bin/python benchmarks/web.py --runs 10 --json out.json

"Cold" is the first browser navigation once the server's warm-up is done (kernels compiled, default view
computed at start); "uncached" is a first visit with another filter set (statistics computed in the request);
"warm" runs use a fresh browser context each time (empty HTTP cache) against the server's result cache.
Each size gets its own browser: its first navigation is that size's "cold" run. The timeline of each run
(HTML, scripts, the layer GeoJSON: start and end after navigation) says where the time goes.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BUDGET_BYTES = 500 * 1024
BUDGET_MS = 1000.0
N_LSOA = 161
#: (name, width, height): the four layouts of issue 13
SIZES = [("phone", 390, 844), ("tablet", 768, 1024), ("laptop", 1366, 768), ("desktop", 1920, 1080)]

WATCH = """
(() => {
  window.__bench = {};
  const t = setInterval(() => {
    const n = document.querySelectorAll('path.leaflet-interactive').length;
    if (n >= %d && !window.__bench.polygons) { window.__bench.polygons = performance.now(); window.__bench.n = n; }
    if (window.__bench.polygons && document.body && document.body.dataset.state === 'ready') {
      window.__bench.ready = performance.now(); clearInterval(t);
    }
  }, 5);
})();
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(bundle: Path, exe: str | None = None) -> tuple[subprocess.Popen, str, Path]:
    root = Path(tempfile.mkdtemp(prefix="hotspots-bench-"))
    env = {**os.environ, "HOTSPOTS_DATA_DIR": str(root / "data"), "HOTSPOTS_INSTANCE_DIR": str(root / "inst"),
           "HOTSPOTS_TILES": "none", "HOTSPOTS_PUBLIC": "1"}  # the map as a public visitor sees it
    exe = exe or str(Path(sys.executable).with_name("hotspots"))
    subprocess.run([exe, "data", "install", str(bundle)], env=env, check=True, capture_output=True)
    subprocess.run([exe, "ingest", str(bundle / "crime" / "wolverhampton-police-api-2018-06")], env=env, check=True,
                   capture_output=True)
    port = _free_port()
    log = open(root / "server.log", "w")
    proc = subprocess.Popen([exe, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}/", root


def wait_warm(url: str, timeout: float = 120) -> float:
    """Wait until the server's warm-up (numba kernels + default view) is done; returns seconds waited."""
    import urllib.request
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/api/v1/health", timeout=2) as r:
                if json.loads(r.read())["warm_up"].get("state") in ("done", "failed", "skipped"):
                    break
        except OSError:
            pass
        time.sleep(0.2)
    return time.time() - t0


def _timeline(res: list, base: str) -> dict:
    """When the resources that gate the first draw started and ended (ms after navigation)."""
    out = {}
    for name, start, end in res:
        path = name.replace(base, "")
        key = ("geojson" if "/layers/" in path and ".geojson" in path else "leaflet.js" if path.endswith("leaflet.js")
               else "hotspots.js" if "hotspots.js" in path else "hotspots.css" if path.endswith("hotspots.css")
               else None)
        if key and key not in out:
            out[key] = [round(start, 1), round(end, 1)]
    return out


def measure(browser, url: str, size: tuple[int, int] = (1400, 900), latency_ms: float = 0.0) -> dict:
    ctx = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = ctx.new_page()
    if latency_ms:  # a network round trip as on a phone or a remote office (Chromium's network emulation)
        cdp = ctx.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": latency_ms,
                                                      "downloadThroughput": -1, "uploadThroughput": -1})
    page.add_init_script(WATCH % N_LSOA)
    sizes: dict[str, int] = {}
    external: list[str] = []

    def on_response(resp):
        try:
            sizes[resp.url] = resp.request.sizes()["responseBodySize"] + resp.request.sizes()["responseHeadersSize"]
        except Exception:
            pass
    page.on("response", on_response)
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(url.rstrip("/")) else None)
    page.goto(url)
    deadline = time.time() + 60  # polled from Python: wait_for_function's string form needs eval, which the CSP forbids
    while not page.evaluate("() => !!(window.__bench && window.__bench.ready)"):
        if time.time() > deadline:
            raise TimeoutError("the map did not draw within 60 s")
        page.wait_for_timeout(20)
    b = page.evaluate("window.__bench")
    nav = page.evaluate("performance.getEntriesByType('navigation')[0].toJSON()")
    res = page.evaluate("performance.getEntriesByType('resource').map(e => [e.name, e.transferSize, e.encodedBodySize])")
    spans = page.evaluate("performance.getEntriesByType('resource').map(e => [e.name, e.startTime, e.responseEnd])")
    transfer = nav["transferSize"] + sum(r[1] for r in res)
    ctx.close()
    timeline = {"html": [0.0, round(nav["responseEnd"], 1)], **_timeline(spans, url.rstrip("/")),
                "dom_content_loaded": round(nav["domContentLoadedEventEnd"], 1)}
    return {"polygons_ms": round(b["polygons"], 1), "ready_ms": round(b["ready"], 1), "paths": b["n"],
            "transfer_bytes": int(transfer), "wire_bytes_playwright": int(sum(sizes.values())),
            "requests": 1 + len(res), "external_requests": external, "timeline": timeline,
            "resources": [{"url": r[0].replace(url.rstrip("/"), ""), "transfer": r[1], "body": r[2]} for r in res]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="measure this running server instead of starting one")
    ap.add_argument("--bundle", default=os.environ.get("HOTSPOTS_BUNDLE") or str(REPO.parent / "shared" / "data"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="2 warm runs per size")
    ap.add_argument("--peer", metavar="HOTSPOTS_EXE",
                    help="also serve the map with this `hotspots` executable (e.g. another checkout's venv, the "
                         "code before a change) and measure it interleaved with ours, run for run")
    ap.add_argument("--latency", type=float, default=0.0, metavar="MS",
                    help="emulate this network round-trip time for every request (0: localhost as it is)")
    ap.add_argument("--size", action="append", choices=[x[0] for x in SIZES], help="only this size (repeatable)")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    if a.quick:
        a.runs = 2
    from playwright.sync_api import sync_playwright
    proc = None
    url = a.url
    if not url:
        proc, url, root = start_server(Path(a.bundle))
        print(f"server: {url} (data in {root})")
    peer_proc = peer_url = None
    if a.peer:
        peer_proc, peer_url, peer_root = start_server(Path(a.bundle), a.peer)
        print(f"peer server ({a.peer}): {peer_url}")
    try:
        waited = wait_warm(url)
        print(f"server warm-up finished after {waited:.1f} s")
        if peer_url:
            wait_warm(peer_url)
        sizes = [x for x in SIZES if not a.size or x[0] in a.size]
        per_size = {}
        with sync_playwright() as p:
            for name, w, h in sizes:  # a new browser per size: its first navigation is that size's cold run
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                per_size[name] = {"size": [w, h], "cold": measure(browser, url, (w, h), a.latency), "warm_runs": []}
                if peer_url:
                    peer_browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                    per_size[name]["peer"] = {"cold": measure(peer_browser, peer_url, (w, h), a.latency), "warm_runs": []}
                for _ in range(a.runs):  # interleaved run for run, so both see the same machine load
                    per_size[name]["warm_runs"].append(measure(browser, url, (w, h), a.latency))
                    if peer_url:
                        per_size[name]["peer"]["warm_runs"].append(measure(peer_browser, peer_url, (w, h), a.latency))
                browser.close()
                if peer_url:
                    peer_browser.close()
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            uncached = measure(browser, url + "?category=violent-crime,public-order&layer=gistar")
            browser.close()
    finally:
        for pr in (proc, peer_proc):
            if pr:
                pr.terminate()
                pr.wait(timeout=10)
    for r in per_size.values():
        warm = r["warm_runs"]
        r["summary"] = {k: statistics.median(x[k] for x in warm) for k in ("polygons_ms", "ready_ms")}
        r["summary"]["polygons_ms_max"] = max(x["polygons_ms"] for x in warm)
        r["summary"]["timeline_median"] = {k: [statistics.median(x["timeline"][k][i] for x in warm) for i in (0, 1)]
                                           for k in warm[0]["timeline"] if k != "dom_content_loaded"
                                           and all(k in x["timeline"] for x in warm)}
    cold = per_size[sizes[0][0]]["cold"]
    out = {"url": url, "sizes": per_size, "uncached_filters": uncached,
           "summary": {"transfer_kb": round(cold["transfer_bytes"] / 1024, 1),
                       "uncached_polygons_ms": uncached["polygons_ms"]}}
    s = out["summary"]
    print("resources (first load):")
    for r in sorted(cold["resources"], key=lambda r: -r["transfer"]):
        print(f"  {r['transfer'] / 1024:7.1f} KB  {r['url'][:100]}")
    print(f"page weight (compressed, all requests): {s['transfer_kb']} KB  (budget {BUDGET_BYTES // 1024} KB) "
          f"{'OK' if cold['transfer_bytes'] <= BUDGET_BYTES else 'OVER'}")
    print(f"time to {N_LSOA} polygons (budget {BUDGET_MS:.0f} ms), {a.runs} warm runs per size:")
    for name, r in per_size.items():
        c, m = r["cold"], r["summary"]
        ok = m["polygons_ms"] <= BUDGET_MS and c["polygons_ms"] <= BUDGET_MS
        tl = "; ".join(f"{k} {v[0]:.0f}-{v[1]:.0f}" for k, v in m["timeline_median"].items())
        print(f"  {name:8s} {r['size'][0]}x{r['size'][1]}: cold {c['polygons_ms']:.0f} ms; warm median "
              f"{m['polygons_ms']:.0f} ms, max {m['polygons_ms_max']:.0f} ms; page ready: cold {c['ready_ms']:.0f} ms, "
              f"warm median {m['ready_ms']:.0f} ms  {'OK' if ok else 'OVER'}")
        print(f"           warm timeline (ms after navigation, median start-end): {tl}")
        if "peer" in r:
            pc, pw = r["peer"]["cold"], r["peer"]["warm_runs"]
            print(f"           peer: cold {pc['polygons_ms']:.0f} ms; warm median "
                  f"{statistics.median(x['polygons_ms'] for x in pw):.0f} ms, max {max(x['polygons_ms'] for x in pw):.0f} ms; "
                  f"page weight {pc['transfer_bytes'] / 1024:.1f} KB")
    print(f"first visit with a filter set not computed yet (analysis runs in the request): "
          f"{s['uncached_polygons_ms']:.0f} ms to polygons")
    if cold["external_requests"]:
        print(f"EXTERNAL REQUESTS: {cold['external_requests']}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
