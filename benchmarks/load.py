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
"""
from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import socket
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

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

    def ok(self, url: str, status: int, seconds: float, nbytes: int) -> None:
        with self.lock:
            self.latencies.append(seconds)
            self.statuses[status] += 1
            self.bytes += nbytes
            self.per_url.setdefault(url, []).append(seconds)

    def error(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] += 1


def client(idx: int, host: str, port: int, urls: list[str], stop_at: float, timeout: float, stats: Stats,
           headers: dict[str, str], start: threading.Event) -> None:
    start.wait()
    conn: http.client.HTTPConnection | None = None
    i = idx  # clients start at different points of the mix
    while True:
        now = time.monotonic()
        if now >= stop_at:
            break
        url = urls[i % len(urls)]
        i += 1
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=min(timeout, max(stop_at - now, 0.05)))
            conn.timeout = min(timeout, max(stop_at - now, 0.05))
            if conn.sock is not None:
                conn.sock.settimeout(conn.timeout)
            t0 = time.perf_counter()
            conn.request("GET", url, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            dt = time.perf_counter() - t0
            stats.ok(url, resp.status, dt, len(body))
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
    start = threading.Event()
    stop_at = time.monotonic() + duration + 0.05  # set properly when all threads exist
    threads = []
    box = {"stop_at": stop_at}
    for k in range(clients):
        t = threading.Thread(target=lambda k=k: client(k, host, port, urls, box["stop_at"], timeout, stats,
                                                      headers or {}, start), daemon=True)
        threads.append(t)
    t0 = time.monotonic()
    box["stop_at"] = t0 + duration
    for t in threads:
        t.start()
    start.set()
    for t in threads:
        t.join(timeout=max(box["stop_at"] - time.monotonic(), 0) + 2.0)
    elapsed = time.monotonic() - t0
    with stats.lock:
        lat = sorted(stats.latencies)
        n = len(lat)
        server_errors = sum(c for s, c in stats.statuses.items() if s >= 400)  # 4xx too: the mix must all work
        per_url = {u: {"requests": len(v), "p50_ms": round(percentile(sorted(v), 0.5) * 1000, 1),
                       "p95_ms": round(percentile(sorted(v), 0.95) * 1000, 1)}
                   for u, v in stats.per_url.items()}
        return {
            "host": host, "port": port, "clients": clients, "duration_s": round(elapsed, 2),
            "requests": n, "requests_per_s": round(n / elapsed, 1) if elapsed else 0.0,
            "p50_ms": round(percentile(lat, 0.50) * 1000, 1), "p95_ms": round(percentile(lat, 0.95) * 1000, 1),
            "p99_ms": round(percentile(lat, 0.99) * 1000, 1), "max_ms": round(lat[-1] * 1000, 1) if lat else None,
            "errors": sum(stats.errors.values()) + server_errors,
            "connection_errors": dict(stats.errors), "status": {str(k): v for k, v in sorted(stats.statuses.items())},
            "bytes": stats.bytes, "per_url": per_url,
            "threads_still_running": sum(t.is_alive() for t in threads),
        }


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
    ap.add_argument("--json", dest="json_out", help="also write the results to this file")
    ap.add_argument("--min-success", type=int, default=1, help="fail if fewer requests than this succeeded")
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
    headers = {"User-Agent": "hotspots-load/1", "Accept-Encoding": "identity"}
    if args.cookie:
        headers["Cookie"] = args.cookie
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


if __name__ == "__main__":
    sys.exit(main())
