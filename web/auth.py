"""Sign-in, roles and the access gate.

Every request resolves ``g.user``: the signed-in account (``UserStore.session_user``: the session holds
the username and the account's ``auth_stamp``, so removing a user or changing their password or role
ends their sessions), else ``PUBLIC_VIEWER`` when public mode is on, else None. Without a user only the
sign-in page, static files and ``/api/v1/health`` answer: pages redirect to ``/login``, the API answers
401 JSON. Views check permissions, not role names (``require("view_incidents")`` → 403 otherwise).

Sign-in (``POST /login``) is throttled per username + address and per address (``LoginThrottle``: 429
with ``Retry-After``); the session is cleared and re-made on sign-in and sign-out, and is permanent for
``[server] session_hours``.
"""
from __future__ import annotations

import functools
import logging
from typing import Callable
from urllib.parse import urlsplit

from flask import (Blueprint, Response, current_app, g, redirect, render_template, request, session,
                   url_for)

from hotspots.users import PUBLIC_VIEWER, LoginThrottle, LoginThrottled, User, UserStore

logger = logging.getLogger("web")

bp = Blueprint("auth", __name__)

#: endpoints anyone may reach (the gate lets them through without a user)
OPEN_ENDPOINTS = {"auth.login", "auth.logout", "static", "api.health"}


def store() -> UserStore:
    ext = current_app.extensions
    if "hotspots_users" not in ext:
        ext["hotspots_users"] = UserStore.from_config(current_app.config["HOTSPOTS"])
    return ext["hotspots_users"]


def throttle() -> LoginThrottle:
    ext = current_app.extensions
    if "hotspots_throttle" not in ext:
        ext["hotspots_throttle"] = LoginThrottle(store(), **current_app.config.get("LOGIN_THROTTLE", {}))
    return ext["hotspots_throttle"]


def current_user() -> User | None:
    return getattr(g, "user", None)


def can(permission: str) -> bool:
    u = current_user()
    return bool(u and u.can(permission))


def load_user() -> None:
    user = None
    name, stamp = session.get("user"), session.get("stamp")
    if name:
        user = store().session_user(name, stamp)
        if user is None:  # account removed, or password or role changed: the session is void
            session.pop("user", None)
            session.pop("stamp", None)
    if user is None and current_app.config["HOTSPOTS"].public_mode:
        user = PUBLIC_VIEWER
    g.user = user


def gate():
    """Before every request (after ``load_user``): sign-in required unless public mode or an open route."""
    if current_user() is not None or request.endpoint in OPEN_ENDPOINTS or request.routing_exception is not None:
        return None
    from . import error_response, wants_json
    if wants_json() or request.method != "GET":
        resp = error_response(401, "sign in required")
        resp.headers["WWW-Authenticate"] = 'FormBased realm="hotspots", login="/login"'
        return resp
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def require(permission: str) -> Callable:
    """View decorator: 403 (JSON for the API) unless the user has ``permission``."""
    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*a, **kw):
            if not can(permission):
                from . import error_response, wants_json
                anonymous = current_user() is None or current_user() is PUBLIC_VIEWER
                if anonymous and request.method == "GET" and not wants_json():
                    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
                if current_user() is None:
                    return error_response(401, "sign in required")
                return error_response(403, f"your role ({current_user().role}) may not do this: it needs "
                                           f"the {permission.replace('_', ' ')} right")
            return fn(*a, **kw)
        return wrapper
    return deco


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths (no scheme, host or protocol-relative ``//``)."""
    if not target:
        return url_for("views.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("views.index")
    return target


def _config():
    """The app's ``hotspots.config.Config`` (templates read ``config.area_name`` and ``config.public_mode``;
    without it Jinja's ``config`` is Flask's settings, which have neither)."""
    return current_app.config["HOTSPOTS"]


@bp.route("/login", methods=["GET", "POST"])
def login():
    nxt = request.values.get("next")
    if request.method == "GET":
        return render_template("login.html", next=nxt, error=None, username="", config=_config())
    username = (request.form.get("username") or "").strip()
    password = request.form.get("password") or ""
    try:
        user = store().login(username, password, request.remote_addr or "?", throttle())
    except LoginThrottled as exc:
        logger.warning("sign-in throttled for %r from %s", username[:64], request.remote_addr)
        resp = Response(render_template("login.html", next=nxt, error=exc.reason, username=username,
                                        config=_config()), status=429,
                        mimetype="text/html")
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp
    if user is None:
        logger.info("failed sign-in for %r from %s", username[:64], request.remote_addr)
        return Response(render_template("login.html", next=nxt, error="wrong username or password",
                                        username=username, config=_config()),
                        status=401, mimetype="text/html")
    session.clear()  # a fresh session (and a fresh CSRF token) for the signed-in user
    session.permanent = True
    session["user"], session["stamp"] = user.username, user.auth_stamp
    logger.info("%s signed in (%s) from %s", user.username, user.role, request.remote_addr)
    return redirect(_safe_next(nxt))


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("auth.login") if not current_app.config["HOTSPOTS"].public_mode
                    else url_for("views.index"))


@bp.get("/admin/users")
@require("manage_users")
def users():
    """Accounts (read-only: users are managed with ``hotspots users add|remove|passwd``)."""
    return render_template("users.html", users=store().list_users(), config=_config())


def init_app(app) -> None:
    app.register_blueprint(bp)
    app.before_request(load_user)
    app.before_request(gate)

    @app.context_processor
    def inject_user():
        return {"current_user": current_user(), "can": can}
