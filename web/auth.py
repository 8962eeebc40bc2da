"""Sign-in, roles and the access gate.

Every request resolves ``g.user``: the signed-in account (the signed cookie carries only a random
session id, looked up server-side in ``users.db`` by ``UserStore.session_user``; signing out, removing a
user or changing their password or role deletes the session rows, so a copied cookie stops working at
once), else ``PUBLIC_VIEWER`` when public mode is on, else None. Without a user only the
sign-in page, static files and ``/api/v1/health`` answer: pages redirect to ``/login``, the API answers
401 JSON. Views check permissions, not role names (``require("view_incidents")`` → 403 otherwise).

Sign-in (``POST /login``) is throttled per username + address and per address (``LoginThrottle``: 429
with ``Retry-After``); the session is cleared and re-made on sign-in and sign-out, and is permanent for
``[server] session_hours`` (the server-side expiry is the same).

Admins manage accounts at ``/admin/users`` (list) and ``/admin/users/<name>`` (new password, sign out
everywhere, remove), as ``hotspots users passwd|remove`` do on the server.
"""
from __future__ import annotations

import functools
import logging
from typing import Callable
from urllib.parse import urlsplit

from flask import (Blueprint, Response, current_app, g, redirect, render_template, request, session,
                   url_for)

from hotspots.users import PUBLIC_VIEWER, LoginThrottle, LoginThrottled, User, UserError, UserStore

logger = logging.getLogger("web")

bp = Blueprint("auth", __name__)

#: endpoints anyone may reach (the gate lets them through without a user)
OPEN_ENDPOINTS = {"auth.login", "auth.logout", "static", "api.health"}
#: the one key the session cookie holds for sign-in (the CSRF secret is the other)
SESSION_KEY = "sid"


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


def open_session(username: str) -> str:
    """Start a server-side session for ``username`` lasting ``[server] session_hours``; its id."""
    return store().create_session(username, current_app.config["HOTSPOTS"].session_hours * 3600.0)


def load_user() -> None:
    user = None
    for legacy in ("user", "stamp"):  # cookies made before server-side sessions: signed out
        session.pop(legacy, None)
    sid = session.get(SESSION_KEY)
    if sid:
        user = store().session_user(sid)
        if user is None:  # signed out, expired, account removed, or password or role changed
            session.pop(SESSION_KEY, None)
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
    if nxt and _safe_next(nxt) != nxt or nxt and len(nxt) > 2000:
        nxt = None  # never echo an off-site or oversized target into the form (it sits beside the CSRF token)
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
    store().end_session(session.get(SESSION_KEY))  # signing in again replaces the old session
    session.clear()  # a fresh session id (and a fresh CSRF secret) for the signed-in user
    session.permanent = True
    session[SESSION_KEY] = open_session(user.username)
    logger.info("%s signed in (%s) from %s", user.username, user.role, request.remote_addr)
    return redirect(_safe_next(nxt))


@bp.post("/logout")
def logout():
    store().end_session(session.get(SESSION_KEY))  # the cookie, wherever copied, is worth nothing now
    session.clear()
    return redirect(url_for("auth.login") if not current_app.config["HOTSPOTS"].public_mode
                    else url_for("views.index"))


@bp.get("/admin/users")
@require("manage_users")
def users():
    """Accounts with their live sessions (added on the server with ``hotspots users add``)."""
    return render_template("users.html", users=store().list_users(), sessions=store().session_counts(),
                           config=_config())


def _account_or_404(name: str) -> User:
    from hotspots.errors import NotFoundError
    user = store().get_user(name) if len(name) <= 64 else None
    if user is None:
        raise NotFoundError("no such user", column="username")
    return user


def _account_page(user: User, message: str | None = None, error: str | None = None, status: int = 200):
    html = render_template("user.html", user=user, sessions=store().session_counts().get(user.username, 0),
                           message=message, error=error, config=_config())
    return Response(html, status=status, mimetype="text/html")


@bp.get("/admin/users/<name>")
@require("manage_users")
def account(name: str):
    return _account_page(_account_or_404(name))


@bp.post("/admin/users/<name>/password")
@require("manage_users")
def account_password(name: str):
    """Set a new password; every session of the account ends (as ``hotspots users passwd``)."""
    user = _account_or_404(name)
    new, again = request.form.get("new_password") or "", request.form.get("confirm") or ""
    try:
        if new != again:
            raise UserError("the two entries differ", column="new_password")
        ended = store().set_password(user.username, new)
    except UserError as exc:
        return _account_page(user, error=exc.reason, status=400)
    logger.info("%s set a new password for %s (%d sessions ended)", current_user().username, user.username, ended)
    if user.username == current_user().username:
        session.clear()
        return redirect(url_for("auth.login"), code=303)
    return _account_page(store().get_user(user.username), message=f"New password set; {ended} session(s) ended.")


@bp.post("/admin/users/<name>/sessions/end")
@require("manage_users")
def account_sign_out(name: str):
    user = _account_or_404(name)
    ended = store().end_sessions(user.username)
    logger.info("%s ended the %d session(s) of %s", current_user().username, ended, user.username)
    if user.username == current_user().username:
        session.clear()
        return redirect(url_for("auth.login"), code=303)
    return _account_page(user, message=f"{ended} session(s) ended.")


@bp.post("/admin/users/<name>/remove")
@require("manage_users")
def account_remove(name: str):
    """Remove the account and end its sessions (as ``hotspots users remove``); not one's own."""
    user = _account_or_404(name)
    if user.username == current_user().username:
        return _account_page(user, error="you cannot remove your own account (ask another admin)", status=400)
    ended = store().remove_user(user.username)
    logger.info("%s removed %s (%d sessions ended)", current_user().username, user.username, ended)
    return redirect(url_for("auth.users"), code=303)


def init_app(app) -> None:
    app.register_blueprint(bp)
    app.before_request(load_user)
    app.before_request(gate)

    @app.context_processor
    def inject_user():
        return {"current_user": current_user(), "can": can}
