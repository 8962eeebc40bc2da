"""Bounded load test against a running hotspots server on 127.0.0.1 (standard library only).

    python benchmarks/load.py                       # 50 clients for 60 s, default URL mix, port 5000
    python benchmarks/load.py --quick               # 10 s
    python benchmarks/load.py --clients 20 --duration 30 --port 8000 / /api/v1/categories

Each client is a thread with its own keep-alive HTTP/1.1 connection, picking URLs from the mix in turn
(weighted by repetition). It refuses any host other than a loopback address, stops hard after the
duration (a request in flight is cut by its socket timeout), and prints requests/s, latency p50/p95/p99,
the error count and a status histogram. ``--json FILE`` also writes the numbers. Exit status 1 if any
request failed (connection error or status >= 400), or if fewer than ``--min-success`` succeeded.
Optional ``--cookie`` sends a session cookie (e.g. to load-test as an analyst).

Hostile mix (issue 14), against a server in public mode:

    python benchmarks/load.py --hostile --server-pid PID          # 50 clients for 60 s
    python benchmarks/load.py --hostile --quick --server-pid PID  # 10 s (CI smoke)

Half the clients ask for distinct uncached analyses (every request a new combination of weights,
permutations, variable, significance and category, shuffled by ``--seed``), half for cached views
(warmed once before the clock starts). Each client has its own loopback source address (127.0.1.N), so a
server limiting work per address sees 50 clients. Reported per class: p50/p95/max, status counts
(200/429/503), 429/503 answers without ``Retry-After``, and requests slower than the budget
(``--budget``, default 20 s: the server's ``analysis_budget_s``); the peak RSS of the server and its
child processes (VmHWM of ``/proc/PID/status``) against ``--max-rss-mb``. Exit status 1 unless: cached
p95 < 300 ms and no cached errors; every uncached answer 200, or 429/503 with Retry-After, none past the
budget (+5 s); peak RSS within the bound.
"""
from __future__ import annotations

import argparse
import gzip
import http.client
import ipaddress
import itertools
import json
import random
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode, urlsplit

#: What a visitor's browser asks for (the map page, then the layers, panel and legend data it fetches),
#: plus API tables and downloads; the real routes of this app (see docs/api.md). Public mode or a viewer
#: session (``--cookie``) serves them at viewer level (small numbers suppressed).
DEFAULT_MIX = [
    "/",
    "/api/v1/layers/gistar.geojson",
    "/api/v1/layers/wards.geojson",
    "/api/v1/hotspots",
    "/",
    "/api/v1/layers/count.geojson?geography=ward",
    "/api/v1/categories",
    "/api/v1/periods",
    "/api/v1/layers/count?category=violent-crime&from=2018-06&to=2018-06",
    "/api/v1/compare",
    "/api/v1/downloads/gistar.csv",
    "/api/v1/downloads/count.geojson?geography=ward",
    "/api/v1/layers/lisa.geojson",
    "/print",
]


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def check_loopback(host: str) -> None:
    try:
        addrs = {ai[4][0] for ai in socket.getaddrinfo(host, None)}
    except socket.gaierror as exc:
        raise SystemExit(f"error: cannot resolve {host!r}: {exc}")
    if not addrs or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs):
        raise SystemExit(f"error: refusing to load-test {host!r}: only loopback addresses (127.0.0.1, ::1)")


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.statuses: Counter = Counter()
        self.errors: Counter = Counter()
        self.bytes = 0
        self.per_url: dict[str, list[float]] = {}
        self.no_retry_after = 0  # 429/503 answers without a Retry-After header

    def ok(self, url: str, status: int, seconds: float, nbytes: int, retry_after: str | None = None) -> None:
        with self.lock:
            self.latencies.append(seconds)
            self.statuses[status] += 1
            self.bytes += nbytes
            self.per_url.setdefault(url, []).append(seconds)
            if status in (429, 503) and not (retry_after or "").strip().isdigit():
                self.no_retry_after += 1

    def error(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] += 1


def client(idx: int, host: str, port: int, urls: list[str] | Callable[[int], str], stop_at: float, timeout: float,
           stats: Stats, headers: dict[str, str], start: threading.Event, source: str | None = None) -> None:
    """One keep-alive client until ``stop_at``: ``urls`` in turn (a list) or ``urls(i)`` (a callable);
    ``source`` binds its socket to that loopback address."""
    start.wait()
    conn: http.client.HTTPConnection | None = None
    i = idx  # clients start at different points of the mix
    while True:
        now = time.monotonic()
        if now >= stop_at:
            break
        url = urls(i) if callable(urls) else urls[i % len(urls)]
        i += 1
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=min(timeout, max(stop_at - now, 0.05)),
                                                  source_address=(source, 0) if source else None)
            conn.timeout = min(timeout, max(stop_at - now, 0.05))
            if conn.sock is not None:
                conn.sock.settimeout(conn.timeout)
            t0 = time.perf_counter()
            conn.request("GET", url, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            dt = time.perf_counter() - t0
            stats.ok(url, resp.status, dt, len(body), resp.getheader("Retry-After"))
            if resp.getheader("Connection", "").lower() == "close" or resp.will_close:
                conn.close()
                conn = None
        except (socket.timeout, TimeoutError):
            if time.monotonic() < stop_at:
                stats.error("timeout")
            if conn:
                conn.close()
            conn = None
        except (ConnectionError, http.client.HTTPException, OSError) as exc:
            if time.monotonic() < stop_at:
                stats.error(type(exc).__name__)
            if conn:
                conn.close()
            conn = None
            time.sleep(0.01)
    if conn:
        conn.close()


def run(host: str, port: int, urls: list[str], clients: int, duration: float, timeout: float = 30.0,
        headers: dict[str, str] | None = None) -> dict:
    check_loopback(host)
    stats = Stats()
    elapsed, threads = _drive(host, port, [(urls, stats, None)] * clients, duration, timeout, headers or {})
    return {"host": host, "port": port, "clients": clients, **summarise(stats, elapsed, threads)}


def _drive(host: str, port: int, plan: list[tuple], duration: float, timeout: float,
           headers: dict[str, str]) -> tuple[float, list[threading.Thread]]:
    """One thread per ``(urls, stats, source)`` in ``plan``, all started together, stopped at ``duration``."""
    start = threading.Event()
    box = {"stop_at": time.monotonic() + duration + 0.05}  # set properly when all threads exist
    threads = [threading.Thread(target=lambda k=k, u=u, st=st, src=src: client(
        k, host, port, u, box["stop_at"], timeout, st, headers, start, src), daemon=True)
        for k, (u, st, src) in enumerate(plan)]
    t0 = time.monotonic()
    box["stop_at"] = t0 + duration
    for t in threads:
        t.start()
    start.set()
    for t in threads:
        t.join(timeout=max(box["stop_at"] - time.monotonic(), 0) + 2.0)
    return time.monotonic() - t0, threads


def summarise(stats: Stats, elapsed: float, threads: list[threading.Thread]) -> dict:
    with stats.lock:
        lat = sorted(stats.latencies)
        n = len(lat)
        server_errors = sum(c for s, c in stats.statuses.items() if s >= 400)  # 4xx too: the mix must all work
        per_url = {u: {"requests": len(v), "p50_ms": round(percentile(sorted(v), 0.5) * 1000, 1),
                       "p95_ms": round(percentile(sorted(v), 0.95) * 1000, 1)}
                   for u, v in stats.per_url.items()}
        return {
            "duration_s": round(elapsed, 2),
            "requests": n, "requests_per_s": round(n / elapsed, 1) if elapsed else 0.0,
            "p50_ms": round(percentile(lat, 0.50) * 1000, 1), "p95_ms": round(percentile(lat, 0.95) * 1000, 1),
            "p99_ms": round(percentile(lat, 0.99) * 1000, 1), "max_ms": round(lat[-1] * 1000, 1) if lat else None,
            "errors": sum(stats.errors.values()) + server_errors,
            "connection_errors": dict(stats.errors), "status": {str(k): v for k, v in sorted(stats.statuses.items())},
            "bytes": stats.bytes, "per_url": per_url, "no_retry_after": stats.no_retry_after,
            "threads_still_running": sum(t.is_alive() for t in threads),
        }


# -- hostile mix ---------------------------------------------------------------------------------------

#: cheap views a visitor's browser asks for, warmed before the clock starts (so each is a cache hit)
CACHED_MIX = ["/api/v1/periods", "/api/v1/categories", "/api/v1/layers/gistar.geojson", "/api/v1/hotspots", "/",
              "/api/v1/layers/count.geojson?geography=ward", "/api/v1/layers", "/api/v1/layers/lisa.geojson"]
#: parameter values of the distinct uncached analyses (the API's menus: hotspots.request.WEIGHTS_MENU, ...;
#: not distance:250, under which Wolverhampton's LSOAs have no neighbours, a 400 by design)
UNCACHED_WEIGHTS = ["queen", "rook", "knn:3", "knn:5", "knn:8", "knn:12", "distance:500", "distance:750",
                    "distance:1000", "distance:1500", "distance:2000"]
UNCACHED_PERMUTATIONS = [99, 999, 9999]
UNCACHED_VARIABLES = ["count", "rate", "eb_rate"]
UNCACHED_SIGNIFICANCE = ["raw", "fdr", "bonferroni"]
#: a request slower than the budget by more than this has "hung"
HANG_MARGIN_S = 5.0


def _get_json(host: str, port: int, path: str, headers: dict[str, str]) -> dict:
    conn = http.client.HTTPConnection(host, port, timeout=120)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise SystemExit(f"error: {path} answered {resp.status} before the run (is the server in public "
                             f"mode with incidents ingested?): {body[:200]!r}")
        if resp.getheader("Content-Encoding", "") == "gzip":
            body = gzip.decompress(body)
        return json.loads(body) if body[:1] in (b"{", b"[") else {}
    finally:
        conn.close()


def uncached_urls(categories: list[str], seed: int) -> Callable[[int], str]:
    """Every call a new analysis: the next of all combinations, shuffled by ``seed``."""
    combos = list(itertools.product(UNCACHED_WEIGHTS, UNCACHED_PERMUTATIONS, UNCACHED_VARIABLES,
                                    UNCACHED_SIGNIFICANCE, categories or ["violent-crime"]))
    random.Random(seed).shuffle(combos)
    counter = itertools.count()
    lock = threading.Lock()

    def next_url(_: int) -> str:
        with lock:
            w, p, v, sig, cat = combos[next(counter) % len(combos)]
        q = urlencode({"weights": w, "permutations": p, "variable": v, "significance": sig, "category": cat})
        return f"/api/v1/layers/gistar?{q}"
    return next_url


class RssSampler:
    """The server's resident memory: VmRSS of the server and of its children (the analysis process)
    sampled twice a second, and VmHWM (each process's own peak) at the end."""

    def __init__(self, pid: int | None) -> None:
        self.pid, self.peak_sampled_kb, self.start_kb = pid, 0, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def read(pid: int, field: str) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        except (OSError, ValueError):
            return 0
        return 0

    def children(self) -> list[int]:
        try:
            return [int(c) for c in Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()]
        except (OSError, ValueError):
            return []

    def total(self, field: str) -> int:
        return self.read(self.pid, field) + sum(self.read(c, field) for c in self.children())

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.peak_sampled_kb = max(self.peak_sampled_kb, self.total("VmRSS"))

    def __enter__(self) -> "RssSampler":
        if self.pid:
            self.start_kb = self.total("VmRSS")
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def result(self) -> dict:
        if not self.pid:
            return {}
        mb = lambda kb: round(kb / 1024, 1) if kb else None  # noqa: E731
        return {"server_pid": self.pid, "children": self.children(), "rss_start_mb": mb(self.start_kb),
                "rss_peak_sampled_mb": mb(self.peak_sampled_kb),
                "vm_hwm_server_mb": mb(self.read(self.pid, "VmHWM")), "vm_hwm_mb": mb(self.total("VmHWM"))}


def hostile(host: str, port: int, clients: int, duration: float, timeout: float, headers: dict[str, str],
            budget_s: float, server_pid: int | None, seed: int, max_rss_mb: float) -> dict:
    """Half the clients on distinct uncached analyses, half on cached views; targets checked."""
    check_loopback(host)
    cats = [c["slug"] for c in _get_json(host, port, "/api/v1/categories", headers).get("categories", [])]
    for path in CACHED_MIX:  # warm: each cached view computed once before the clock starts
        _get_json(host, port, path, headers)
    cached, uncached = Stats(), Stats()
    next_uncached = uncached_urls(cats, seed)
    plan = [(next_uncached, uncached, f"127.0.1.{k + 1}") if k % 2 == 0 else (CACHED_MIX, cached, f"127.0.1.{k + 1}")
            for k in range(clients)]
    with RssSampler(server_pid) as rss:
        elapsed, threads = _drive(host, port, plan, duration, timeout, headers)
    res = {"host": host, "port": port, "clients": clients, "seed": seed, "budget_s": budget_s,
           "cached": summarise(cached, elapsed, threads[1::2]),
           "uncached": summarise(uncached, elapsed, threads[0::2]), "memory": rss.result()}
    u = res["uncached"]
    hung = sum(1 for x in uncached.latencies if x > budget_s + HANG_MARGIN_S) + u["connection_errors"].get("timeout", 0)
    bad_status = sum(c for s, c in u["status"].items() if s not in ("200", "429", "503"))
    peak = res["memory"].get("vm_hwm_mb")
    res["targets"] = {
        "cached_p95_under_300_ms": res["cached"]["p95_ms"] < 300,
        "cached_no_errors": res["cached"]["errors"] == 0,
        "uncached_only_200_429_503": bad_status == 0 and not any(
            k != "timeout" for k in u["connection_errors"]),
        "uncached_retry_after_on_429_503": u["no_retry_after"] == 0,
        "uncached_none_past_budget": hung == 0,
        f"rss_peak_under_{max_rss_mb:g}_mb": peak is None or peak < max_rss_mb,
    }
    res["uncached_past_budget"] = hung
    return res


def _print_class(name: str, r: dict) -> None:
    print(f"  {name:<9} {r['requests']:>6,} requests ({r['requests_per_s']} req/s)  p50 {r['p50_ms']} ms  "
          f"p95 {r['p95_ms']} ms  max {r['max_ms']} ms")
    print(f"            status {', '.join(f'{k}: {v:,}' for k, v in r['status'].items()) or 'none'}; connection "
          f"errors {r['connection_errors'] or 'none'}; 429/503 without Retry-After: {r['no_retry_after']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("urls", nargs="*", help="paths (or http://127.0.0.1:PORT/... URLs); default: a mix of map "
                                            "page, API and downloads")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds (hard stop)")
    ap.add_argument("--quick", action="store_true", help="10 s")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-request socket timeout")
    ap.add_argument("--cookie", help="Cookie header to send (e.g. session=...)")
    ap.add_argument("--identity", action="store_true", help="ask for uncompressed answers (default: gzip, "
                                                            "as browsers ask)")
    ap.add_argument("--json", dest="json_out", help="also write the results to this file")
    ap.add_argument("--min-success", type=int, default=1, help="fail if fewer requests than this succeeded")
    ap.add_argument("--hostile", action="store_true", help="the hostile mix: half distinct uncached analyses, "
                                                           "half cached views, per-class targets")
    ap.add_argument("--server-pid", type=int, help="(hostile) the server's process id, for its peak RSS")
    ap.add_argument("--budget", type=float, default=20.0, help="(hostile) the server's analysis budget, s")
    ap.add_argument("--max-rss-mb", type=float, default=1024.0, help="(hostile) bound on the server's peak RSS")
    ap.add_argument("--seed", type=int, default=None, help="(hostile) shuffles the uncached analyses "
                                                           "(default: from the clock, so a rerun is uncached too)")
    args = ap.parse_args(argv)
    if args.clients < 1 or args.clients > 1000:
        ap.error("--clients must be 1..1000")
    duration = 10.0 if args.quick else args.duration
    if duration <= 0 or duration > 3600:
        ap.error("--duration must be in (0, 3600]")
    host, port = args.host, args.port
    paths = []
    for u in args.urls or DEFAULT_MIX:
        if u.startswith(("http://", "https://")):
            parts = urlsplit(u)
            if parts.scheme != "http":
                ap.error("only http:// URLs (the server under test runs on loopback)")
            host, port = parts.hostname or host, parts.port or 80
            u = parts.path + (f"?{parts.query}" if parts.query else "")
        if not u.startswith("/"):
            u = "/" + u
        paths.append(u)
    # gzip as every browser asks (the map's GeoJSON is 6x smaller); --identity to measure uncompressed
    headers = {"User-Agent": "hotspots-load/1", "Accept-Encoding": "identity" if args.identity else "gzip"}
    if args.cookie:
        headers["Cookie"] = args.cookie
    if args.hostile:
        return _main_hostile(args, host, port, duration, headers)
    print(f"Load test: {args.clients} clients for {duration:g} s against http://{host}:{port} "
          f"({len(paths)} URLs in the mix)", flush=True)
    res = run(host, port, paths, args.clients, duration, args.timeout, headers)
    print(f"  requests      {res['requests']:,} in {res['duration_s']} s = {res['requests_per_s']} req/s")
    print(f"  latency       p50 {res['p50_ms']} ms, p95 {res['p95_ms']} ms, p99 {res['p99_ms']} ms, "
          f"max {res['max_ms']} ms")
    print(f"  errors        {res['errors']} (connection: {res['connection_errors'] or 'none'})")
    print(f"  status        {', '.join(f'{k}: {v:,}' for k, v in res['status'].items()) or 'none'}")
    print(f"  transferred   {res['bytes'] / 1e6:.1f} MB")
    for u, s in res["per_url"].items():
        print(f"    {s['requests']:>7,}  p50 {s['p50_ms']:>8} ms  p95 {s['p95_ms']:>8} ms  {u}")
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as fh:
            json.dump(res, fh, indent=2)
    ok = res["requests"] - res["errors"]
    return 1 if res["errors"] or ok < args.min_success else 0


def _main_hostile(args: argparse.Namespace, host: str, port: int, duration: float, headers: dict[str, str]) -> int:
    seed = args.seed if args.seed is not None else int(time.time())
    timeout = max(args.timeout, args.budget + 2 * HANG_MARGIN_S)  # a hang shows as a latency, not a cut
    print(f"Hostile load: {args.clients} clients for {duration:g} s against http://{host}:{port} (half distinct "
          f"uncached analyses, half cached views; seed {seed}, budget {args.budget:g} s)", flush=True)
    res = hostile(host, port, args.clients, duration, timeout, headers, args.budget, args.server_pid, seed,
                  args.max_rss_mb)
    _print_class("cached", res["cached"])
    _print_class("uncached", res["uncached"])
    print(f"            uncached slower than the budget + {HANG_MARGIN_S:g} s: {res['uncached_past_budget']}")
    m = res["memory"]
    if m:
        print(f"  memory    server + {len(m['children'])} child process(es): RSS {m['rss_start_mb']} MB at start, "
              f"peak {m['vm_hwm_mb']} MB (sum of VmHWM; server alone {m['vm_hwm_server_mb']} MB; sampled peak "
              f"during the run {m['rss_peak_sampled_mb']} MB), bound {args.max_rss_mb:g} MB")
    for name, ok in res["targets"].items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as fh:
            json.dump(res, fh, indent=2)
    return 0 if all(res["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
