"""The door of the app: anonymous map views answered from memory, and refused clients kept out cheaply.

Why a WSGI layer in front of Flask: in public mode most traffic is anonymous visitors asking for the same
few views (the default Gi* map, the wards, the panel), and a hostile client can ask for a new analysis
many times a second while ignoring ``Retry-After``. Both paths used to cost a full Flask dispatch (session,
CSRF, parsing, the pipeline's cache lookup, gzip): about 5 ms each, which on two cores let 25 hostile
clients push the cached views' p95 past 300 ms (``benchmarks/load.py --hostile``, docs/benchmarks.md).
Here:

* **Memo.** A ``GET`` of a read-only API view (``MEMO_PATHS``) from a client with no session cookie that
  Flask answered 200, without ``Set-Cookie`` and not ``no-store``, is kept as its final bytes and headers,
  keyed by host, path, query, whether gzip was accepted and the data version
  (:func:`hotspots.cache.data_version`), so an ingest or an overlay change makes it unreachable. Only
  anonymous answers are kept, and anonymous answers are what any anonymous client gets (viewer level in
  public mode; refusals are never 200), so nothing is shared that the asker could not get from Flask.
* **Refusals.** When Flask refuses an anonymous client's analysis with 429 and ``Retry-After: N``,
  that address's further analysis requests that the memo cannot answer are refused here, with the same
  JSON envelope and the seconds left, until the N seconds are over: the behaviour of nginx's
  ``limit_req`` in front of the app (docs/deployment.md), for deployments without it.

Signed-in users (a session cookie) always go to Flask: their answers depend on their role and their
budget is kept per account by ``web.limits``.
"""
from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from hotspots.cache import data_version
from hotspots.config import Config

from .security import BASE_HEADERS, content_security_policy

#: read-only API views whose anonymous answers depend only on the request line and the data
MEMO_PATHS = ("/api/v1/categories", "/api/v1/periods", "/api/v1/geographies", "/api/v1/areas",
              "/api/v1/layers", "/api/v1/hotspots", "/api/v1/compare", "/api/v1/overlays", "/api/v1/series")
#: requests that may start an analysis: refused at the door while their client is told to wait
ANALYSIS_PATHS = ("/api/v1/layers/", "/api/v1/downloads/", "/api/v1/hotspots", "/api/v1/compare",
                  "/api/v1/series", "/briefing.")
MEMO_MAX_BYTES = 64 << 20
MEMO_MAX_BODY = 8 << 20
#: addresses remembered as refused (oldest forgotten first)
MAX_REFUSED = 10_000

StartResponse = Callable[..., Any]


class Front:
    """WSGI middleware around the Flask app (inside ``ProxyFix``, so ``REMOTE_ADDR`` is the client)."""

    def __init__(self, app: Callable, config: Config, session_cookie: str) -> None:
        self.app, self.config, self.cookie = app, config, session_cookie.encode("latin-1")
        self._lock = threading.Lock()
        self._memo: OrderedDict[tuple, tuple[str, list[tuple[str, str]], bytes]] = OrderedDict()
        self._memo_bytes = 0
        self._refused: OrderedDict[str, float] = OrderedDict()  # address -> monotonic time refusals end

    # -- WSGI --------------------------------------------------------------------------------------------
    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not self._anonymous(environ):
            return self.app(environ, start_response)
        key = self._key(environ, path)
        if key is not None:
            with self._lock:
                hit = self._memo.get(key)
                if hit is not None:
                    self._memo.move_to_end(key)
            if hit is not None:
                status, headers, body = hit
                start_response(status, headers)
                return [body]
        addr = environ.get("REMOTE_ADDR") or "unknown"
        if path.startswith(ANALYSIS_PATHS):
            wait = self._still_refused(addr)
            if wait:
                return self._refuse(start_response, wait)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            captured["status"], captured["headers"] = status, headers
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        result = self.app(environ, capture)
        code = captured.get("status", "")[:3]
        if code == "429" and path.startswith(ANALYSIS_PATHS):  # not 503: that job runs on, a retry collects it
            self._note_refusal(addr, captured.get("headers", []))
        if key is None or code != "200" or not self._storable(captured.get("headers", [])):
            return result
        body = b"".join(result)  # a memoised view is small (its size is checked below)
        close = getattr(result, "close", None)
        if close is not None:
            close()
        if len(body) <= MEMO_MAX_BODY:
            self._keep(key, (captured["status"], list(captured["headers"]), body))
        return [body]

    # -- memo ----------------------------------------------------------------------------------------------
    def _anonymous(self, environ: dict) -> bool:
        cookie = environ.get("HTTP_COOKIE", "").encode("latin-1", "replace")
        return self.cookie not in cookie and "HTTP_AUTHORIZATION" not in environ

    def _key(self, environ: dict, path: str) -> tuple | None:
        if (environ.get("REQUEST_METHOD") != "GET" or not path.startswith(MEMO_PATHS)
                or "HTTP_IF_NONE_MATCH" in environ or "HTTP_RANGE" in environ):
            return None
        gz = "gzip" in environ.get("HTTP_ACCEPT_ENCODING", "").lower()
        return (environ.get("wsgi.url_scheme"), environ.get("HTTP_HOST"), path, environ.get("QUERY_STRING", ""),
                gz, data_version(self.config))

    @staticmethod
    def _storable(headers: list[tuple[str, str]]) -> bool:
        # ``Cache-Control: no-store`` is for browsers and shared caches (a signed-out visitor on a shared
        # computer); this memo is the origin's own, like the pipeline's cache, and holds anonymous answers only
        for name, value in headers:
            n = name.lower()
            if n == "set-cookie":
                return False
            if n == "content-type" and value.lower().startswith("text/html"):
                return False  # pages carry a per-response CSP nonce and CSRF token
        return True

    def _keep(self, key: tuple, entry: tuple[str, list[tuple[str, str]], bytes]) -> None:
        with self._lock:
            old = self._memo.pop(key, None)
            if old is not None:
                self._memo_bytes -= len(old[2])
            self._memo[key] = entry
            self._memo_bytes += len(entry[2])
            while self._memo_bytes > MEMO_MAX_BYTES and self._memo:
                _, dropped = self._memo.popitem(last=False)
                self._memo_bytes -= len(dropped[2])

    def memo_size(self) -> int:
        with self._lock:
            return len(self._memo)

    # -- refusals ------------------------------------------------------------------------------------------
    def _note_refusal(self, addr: str, headers: list[tuple[str, str]]) -> None:
        retry = next((v for n, v in headers if n.lower() == "retry-after"), "")
        if not retry.strip().isdigit():
            return
        with self._lock:
            self._refused[addr] = time.monotonic() + int(retry)
            self._refused.move_to_end(addr)
            while len(self._refused) > MAX_REFUSED:
                self._refused.popitem(last=False)

    def _still_refused(self, addr: str) -> int:
        """Whole seconds this address must still wait (0: let it through)."""
        with self._lock:
            until = self._refused.get(addr)
            if until is None:
                return 0
            left = until - time.monotonic()
            if left <= 0:
                del self._refused[addr]
                return 0
        return max(1, int(left + 0.999))

    def _refuse(self, start_response: StartResponse, wait: int) -> list[bytes]:
        message = (f"too many analyses from this address: retry after {wait} s "
                   "(the server was asked to wait and was not)")
        body = json.dumps({"ok": False, "error": message, "status": 429, "retry_after": wait}).encode()
        start_response("429 Too Many Requests", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Retry-After", str(wait)),
            ("Cache-Control", "no-store"), ("Vary", "Cookie"),
            ("Content-Security-Policy", content_security_policy(None, self.config.tiles)),
            *BASE_HEADERS.items()])
        return [body]
