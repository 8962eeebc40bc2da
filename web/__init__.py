"""The web shell: ``create_app()`` builds a Flask app over the engine (never computes statistics itself).

One blueprint for pages (``views``), one for the JSON API under ``/api/v1/`` (``api``); one error handler
turns ``HotspotsError`` into the JSON envelope ``{"ok": false, "error", "status", ...}`` for the API and an
HTML page otherwise. Responses are gzip-compressed when the client accepts it (JSON, GeoJSON, HTML, CSS,
JS). The numba kernels of the statistics are compiled in a background thread at start, so no request
pays the ~15 s compile. Never runs in debug mode.

Trust (issue 5): ``web.auth`` (sign-in, roles, the access gate), ``web.security`` (CSP with a per-request
nonce, security headers, CSRF, session cookie flags), ``web.uploads`` (incident files through the web),
disclosure control in the engine's pipeline (``hotspots.publish`` over ``hotspots.protect``). Bounded work
(issue 14): ``create_app`` makes the analysis pool (``hotspots.jobs.AnalysisPool``, used through
``web.limits.bounded``); its refusals (429) and over-budget answers (503) carry ``Retry-After``. The secret
key comes from ``HOTSPOTS_SECRET_KEY`` or
``<instance>/secret_key`` (``hotspots.users.secret_key``).
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from hotspots.config import Config, load_config
from hotspots.errors import HotspotsError
from hotspots.jobs import RetryLater

logger = logging.getLogger("web")

COMPRESSIBLE = ("application/json", "application/geo+json", "text/html", "text/css", "text/javascript",
                "application/javascript", "text/csv", "image/svg+xml", "application/schema+json")
MIN_GZIP_BYTES = 500


def create_app(config: Config | None = None, test_config: dict | None = None) -> Flask:
    """Build the app. ``config`` defaults to ``load_config()`` (file + environment); ``test_config``
    overrides Flask settings (e.g. ``{"TESTING": True, "WARM_UP": False}``)."""
    config = config or load_config()
    config.instance_dir.mkdir(parents=True, exist_ok=True)
    app = Flask(__name__, instance_path=str(config.instance_dir), instance_relative_config=True)
    # the upload limit plus room for the multipart envelope; larger requests get 413
    app.config.from_mapping(HOTSPOTS=config, WARM_UP=True, JSON_SORT_KEYS=False, GZIP=True,
                            SEND_FILE_MAX_AGE_DEFAULT=3600,
                            MAX_CONTENT_LENGTH=int(config.max_upload_mb * (1 << 20)) + (64 << 10),
                            MAX_FORM_MEMORY_SIZE=1 << 20)
    if not (test_config or {}).get("TESTING"):
        app.config.from_pyfile("config.py", silent=True)  # local settings in <instance>/config.py
    app.config.from_mapping(test_config or {})
    app.debug = False  # whatever FLASK_DEBUG or <instance>/config.py say
    app.config["DEBUG"] = False
    app.json.sort_keys = False
    from hotspots.users import secret_key
    app.secret_key = app.config.get("SECRET_KEY") if (test_config or {}).get("SECRET_KEY") else secret_key(config)
    _setup_logging(app)

    from . import api, auth, security, uploads, views
    auth.init_app(app)
    security.init_app(app)
    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(uploads.bp)
    _register_errors(app)
    from .limits import make_pool
    app.extensions["hotspots_pool"] = make_pool(config)  # threads start with the first job
    if app.config.get("WARM_UP"):
        from hotspots.stats import warm_up
        app.extensions["hotspots_pool"].start(warm=warm_up)  # the analysis process imports in the background
    from .front import Front
    # memo of anonymous views and refusals at the door (web/front.py); inside ProxyFix: it sees the client
    app.wsgi_app = Front(app.wsgi_app, config, app.config.get("SESSION_COOKIE_NAME") or "session")  # type: ignore[method-assign]
    app.extensions["hotspots_front"] = app.wsgi_app
    if config.trusted_proxy:
        # behind one TLS-terminating proxy: scheme, host and client address from its X-Forwarded-* headers
        # (so the Origin check, Secure cookies, HSTS and the sign-in throttle see what the browser sees)
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    if app.config.get("GZIP"):
        app.after_request(_gzip)
    if app.config.get("WARM_UP"):
        _start_warm_up(app)
    else:
        app.extensions["hotspots_warm"] = {"state": "skipped"}
    return app


def get_config() -> Config:
    from flask import current_app
    return current_app.config["HOTSPOTS"]


def _setup_logging(app: Flask) -> None:
    """One stream handler with path and line, on the web and engine loggers, unless one exists."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(pathname)s:%(lineno)d]: %(message)s")
    for name in ("web", "hotspots"):
        lg = logging.getLogger(name)
        if not any(getattr(h, "_hotspots", False) for h in lg.handlers) and not logging.getLogger().handlers:
            h = logging.StreamHandler()
            h.setFormatter(fmt)
            h._hotspots = True  # type: ignore[attr-defined]
            lg.addHandler(h)
        if lg.level == logging.NOTSET:
            lg.setLevel(logging.INFO)
    app.logger.setLevel(logging.INFO)


def _start_warm_up(app: Flask) -> None:
    state: dict[str, Any] = {"state": "running", "started": time.time()}
    app.extensions["hotspots_warm"] = state

    def run() -> None:
        try:
            from hotspots.stats import warm_up
            warm_up()
            state.update(state="kernels", seconds=round(time.time() - state["started"], 1))
            logger.info("statistics kernels ready in %.1f s", state["seconds"])
            from hotspots.pipeline import prewarm
            prewarm(app.config["HOTSPOTS"])
            from hotspots.ingest import warm_up as warm_up_ingest
            warm_up_ingest()  # uploads: compiled key, geocoding and storage loops
            state.update(state="done", seconds=round(time.time() - state["started"], 1))
            logger.info("default view computed; warm-up done in %.1f s", state["seconds"])
        except Exception as exc:  # never take the server down; requests will compile on demand
            state.update(state="failed", error=str(exc))
            logger.warning("warm-up failed: %s", exc)

    threading.Thread(target=run, name="hotspots-warm-up", daemon=True).start()


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def error_response(status: int, message: str, **extra: Any) -> Response:
    """The one error shape: JSON envelope for the API, a small HTML page for people."""
    if wants_json():
        body = {"ok": False, "error": message, "status": status}
        body.update({k: v for k, v in extra.items() if v is not None})
        resp = jsonify(body)
        resp.status_code = status
        return resp
    from flask import current_app
    html = render_template("error.html", status=status, message=message, extra=extra,
                           config=current_app.config["HOTSPOTS"])
    return Response(html, status=status, mimetype="text/html")


def _register_errors(app: Flask) -> None:
    from .security import CSRFError

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        logger.warning("CSRF check failed on %s %s from %s", request.method, request.path, request.remote_addr)
        return error_response(400, str(exc))

    @app.errorhandler(HotspotsError)
    def hotspots_error(exc: HotspotsError):
        d = exc.to_dict()
        if exc.status >= 500:
            logger.error("%s", exc.message)
        # never leak server file paths to the web
        return error_response(exc.status, exc.reason, column=d.get("column"), row=d.get("row"))

    @app.errorhandler(RetryLater)
    def retry_later(exc: RetryLater):
        # debug, not info: a client ignoring Retry-After would otherwise fill the log at request rate
        logger.debug("%s %s for %s: %s", exc.status, request.path, request.remote_addr, exc.reason)
        resp = error_response(exc.status, exc.reason, retry_after=exc.retry_after)
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code == 413:
            limit = app.config["HOTSPOTS"].max_upload_mb
            return error_response(413, f"the file is too large (the limit is {limit:g} MB)", limit_mb=limit)
        resp = error_response(exc.code or 500, exc.description or exc.name)
        for name, value in exc.get_headers():  # e.g. Allow on 405 (RFC 9110 §15.5.6)
            if name.lower() != "content-type":
                resp.headers[name] = value
        return resp

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        logger.exception("unhandled error on %s", request.path)
        return error_response(500, "internal error; the server log has the details")


#: gzip of recent large bodies, by digest: a cached map layer (200 KB of GeoJSON) is sent many times, and
#: compressing it took ~5 ms of CPU each time against ~0.2 ms for the digest (benchmarks/load.py --hostile)
_GZIP_MEMO: "OrderedDict[bytes, bytes]" = OrderedDict()
_GZIP_MEMO_SIZE = 32
_GZIP_MEMO_MIN = 16 << 10
_gzip_lock = threading.Lock()


def _compressed(data: bytes) -> bytes:
    if len(data) < _GZIP_MEMO_MIN:
        return gzip.compress(data, compresslevel=6)
    digest = hashlib.blake2b(data, digest_size=20).digest()
    with _gzip_lock:
        hit = _GZIP_MEMO.get(digest)
        if hit is not None:
            _GZIP_MEMO.move_to_end(digest)
            return hit
    out = gzip.compress(data, compresslevel=6)
    with _gzip_lock:
        _GZIP_MEMO[digest] = out
        while len(_GZIP_MEMO) > _GZIP_MEMO_SIZE:
            _GZIP_MEMO.popitem(last=False)
    return out


def _gzip(resp: Response) -> Response:
    """Compress text responses when the client accepts gzip (no flask-compress dependency)."""
    if (resp.status_code != 200 or "Content-Encoding" in resp.headers
            or "gzip" not in request.headers.get("Accept-Encoding", "").lower()
            or (resp.mimetype or "") not in COMPRESSIBLE or resp.is_streamed and not resp.direct_passthrough):
        return resp
    resp.direct_passthrough = False
    data = resp.get_data()
    if len(data) < MIN_GZIP_BYTES:
        return resp
    resp.set_data(_compressed(data))
    resp.headers["Content-Encoding"] = "gzip"
    resp.headers["Content-Length"] = str(len(resp.get_data()))
    resp.vary.add("Accept-Encoding")
    if resp.headers.get("ETag"):
        resp.headers["ETag"] = resp.headers["ETag"].rstrip('"') + '-gz"'
    return resp
