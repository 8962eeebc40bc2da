"""Response hardening and request integrity: the Content-Security-Policy with a per-request nonce, the
other security headers, CSRF tokens, and the session cookie's Secure flag.

* **CSP**: ``default-src 'self'``; scripts and ``<style>`` elements only from this server or carrying the
  request's nonce (Folium renders its map set-up as an inline ``<script>`` and ``<style>``: ``nonced``
  adds the nonce to each); no inline event handlers, no ``eval``, no plugins, no framing
  (``frame-ancestors 'none'``), forms post only here. Images may also come from the configured basemap
  tile host (its origin is added to ``img-src``) and ``data:`` (the empty favicon).
* **CSRF**: one random 32-byte secret per session, never written into a page as such: each
  ``csrf_token()`` (templates, ``<meta name="csrf-token">`` for scripts) is the secret XOR a fresh random
  pad, sent as base64url(pad + masked), as Django does. The bytes differ in every response, so a
  compression side channel (BREACH: a reflected guess compressing better when it matches the page's
  secret) has nothing fixed to converge on. Every POST, PUT, PATCH and DELETE must send a token back as
  the ``csrf_token`` form field or the ``X-CSRF-Token`` header; it is unmasked and compared with the
  secret in constant time, else 400. A request whose ``Origin`` header names another site is refused too.
* **Session cookie**: HttpOnly, SameSite=Lax, Secure per ``[server] secure_cookies`` (``auto``: when the
  request came over HTTPS).
"""
from __future__ import annotations

import base64
import binascii
import re
import secrets
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, request, session
from flask.sessions import SecureCookieSessionInterface
from markupsafe import Markup

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_TAG = re.compile(r"<(script|style)\b(?![^>]*\bnonce=)", re.I)


# -- nonce and CSP -----------------------------------------------------------------------------------
def csp_nonce() -> str:
    """This request's nonce (created on first use)."""
    n = getattr(g, "csp_nonce", None)
    if n is None:
        n = g.csp_nonce = secrets.token_urlsafe(18)
    return n


def nonced(html: str) -> Markup:
    """``html`` (trusted markup rendered by Folium) with this request's nonce on every <script>/<style>."""
    n = csp_nonce()
    return Markup(_TAG.sub(lambda m: f'<{m.group(1)} nonce="{n}"', html))


def tile_origin(template: str) -> str | None:
    """The origin of a basemap tile URL template for ``img-src`` (``{s}`` subdomains become ``*.``)."""
    if not template or template.lower() == "none":
        return None
    parts = urlsplit(template)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    host = parts.netloc
    if "{s}" in host:
        host = "*." + host.split("{s}.", 1)[-1]
    if "{" in host or "}" in host:
        return None
    return f"{parts.scheme}://{host}"


def content_security_policy(nonce: str | None, tiles: str = "none") -> str:
    img = ["'self'", "data:"]
    origin = tile_origin(tiles)
    if origin:
        img.append(origin)
    script = ["'self'"] + ([f"'nonce-{nonce}'"] if nonce else [])
    style = ["'self'"] + ([f"'nonce-{nonce}'"] if nonce else [])
    return "; ".join([
        "default-src 'self'", f"script-src {' '.join(script)}", f"style-src {' '.join(style)}",
        f"img-src {' '.join(img)}", "connect-src 'self'", "font-src 'self'", "object-src 'none'",
        "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
    ])


#: on every response (``web.front`` sends them on the refusals it answers itself)
BASE_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY",
                "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Resource-Policy": "same-origin",
                "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()"}


def security_headers(resp: Response) -> Response:
    config = current_app.config["HOTSPOTS"]
    h = resp.headers
    h["Content-Security-Policy"] = content_security_policy(getattr(g, "csp_nonce", None), config.tiles)
    for name, value in BASE_HEADERS.items():
        h.setdefault(name, value)
    if request.is_secure:
        h.setdefault("Strict-Transport-Security", "max-age=31536000")
    if not request.path.startswith("/static/"):
        # pages and data depend on who is signed in: never in a shared cache
        resp.vary.add("Cookie")
        cc = h.get("Cache-Control", "")
        user = getattr(g, "user", None)
        signed_in = user is not None and user.username != "(public)"
        if resp.mimetype == "text/html" or not cc or signed_in:
            # pages, and anything a signed-in user gets (it may be unsuppressed), are never stored: a
            # shared computer must not show an analyst's data to the next visitor after sign-out
            h["Cache-Control"] = "no-store"
        elif "private" not in cc and "no-store" not in cc:
            h["Cache-Control"] = "private, " + cc
    return resp


# -- CSRF ----------------------------------------------------------------------------------------------
CSRF_SECRET_BYTES = 32


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _stored_secret() -> bytes | None:
    stored = session.get("csrf")
    if not stored:
        return None
    try:
        secret = _b64decode(str(stored))
    except (binascii.Error, ValueError):
        return None
    return secret if len(secret) == CSRF_SECRET_BYTES else None


def _csrf_secret() -> bytes:
    """The session's secret (made on first use; kept in the signed session cookie, never in a page)."""
    secret = _stored_secret()
    if secret is not None:
        return secret
    secret = secrets.token_bytes(CSRF_SECRET_BYTES)
    session["csrf"] = base64.urlsafe_b64encode(secret).rstrip(b"=").decode()
    return secret


def mask_token(secret: bytes) -> str:
    """base64url(pad + secret XOR pad) with a fresh random pad: different bytes on every call."""
    pad = secrets.token_bytes(len(secret))
    masked = bytes(a ^ b for a, b in zip(secret, pad))
    return base64.urlsafe_b64encode(pad + masked).rstrip(b"=").decode()


def unmask_token(token: str, size: int = CSRF_SECRET_BYTES) -> bytes | None:
    """The secret a masked token carries, or None if it is not a well-formed masked token."""
    if not isinstance(token, str) or len(token) > 4 * size:
        return None
    try:
        raw = _b64decode(token)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 2 * size:
        return None
    return bytes(a ^ b for a, b in zip(raw[:size], raw[size:]))


def csrf_token() -> str:
    """A masked CSRF token for this response (each call gives new bytes; every one verifies)."""
    return mask_token(_csrf_secret())


def csrf_field() -> Markup:
    return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{csrf_token()}">')


class CSRFError(Exception):
    pass


def _origin_tuple(scheme: str, netloc: str) -> tuple[str, str]:
    """(scheme, host[:port]) in lower case, the scheme's default port dropped."""
    scheme, netloc = scheme.lower(), netloc.lower()
    default = {"http": ":80", "https": ":443"}.get(scheme)
    if default and netloc.endswith(default):
        netloc = netloc[: -len(default)]
    return scheme, netloc


def same_origin(origin: str) -> bool:
    """Whether an ``Origin`` header names this server: scheme and host (with port) of the request as the
    app sees it (behind a trusted proxy, ``ProxyFix`` has applied X-Forwarded-Proto and -Host)."""
    try:
        parts = urlsplit(origin.strip())
        netloc = parts.netloc
    except ValueError:
        return False
    if not parts.scheme or not netloc or parts.path not in ("", "/"):
        return False
    return _origin_tuple(parts.scheme, netloc) == _origin_tuple(request.scheme, request.host)


def check_csrf() -> None:
    """Before every request: unsafe methods need the session's token (form field or header) and, when the
    browser sends an Origin, the same origin as this server."""
    if request.method not in UNSAFE_METHODS or current_app.config.get("CSRF_DISABLED"):
        return
    if request.routing_exception is not None:  # 404/405: no view runs, let the routing error answer
        return
    origin = request.headers.get("Origin")
    if origin and origin != "null" and not same_origin(origin):
        raise CSRFError("cross-site request refused (Origin does not match this server)")
    expected = _stored_secret()
    sent = unmask_token(request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or "")
    if not expected or sent is None or not secrets.compare_digest(expected, sent):
        raise CSRFError("the form has expired or did not come from this site (CSRF token missing or wrong): "
                        "reload the page and try again")


# -- session cookie -----------------------------------------------------------------------------------
class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session with the Secure flag decided per request when set to ``auto``."""

    def get_cookie_secure(self, app: Flask) -> bool:
        mode = app.config["HOTSPOTS"].secure_cookies
        if mode == "true":
            return True
        if mode == "false":
            return False
        try:
            return bool(request.is_secure)
        except RuntimeError:  # outside a request
            return False


def init_app(app: Flask) -> None:
    config = app.config["HOTSPOTS"]
    app.session_interface = SessionInterface()
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_NAME="hotspots_session")
    from datetime import timedelta
    app.permanent_session_lifetime = timedelta(hours=config.session_hours)
    app.jinja_env.globals.update(csrf_token=csrf_token, csrf_field=csrf_field, csp_nonce=csp_nonce)
    app.before_request(check_csrf)
    app.after_request(security_headers)
