"""Output safety: security headers and CSP, escaping of free text, formula-safe CSV, no path traversal,
no debug mode, upload size limit."""
from __future__ import annotations

import re

import pytest


PAYLOAD = '<img src=x onerror="alert(1)">'


@pytest.mark.parametrize("url", ["/", "/print", "/login", "/api/v1/layers", "/api/v1/layers/count.geojson",
                                 "/api/v1/downloads/count.csv", "/no-such-page"])
def test_security_headers_everywhere(client, url):
    r = client.get(url)
    h = r.headers
    csp = h["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["Referrer-Policy"] == "same-origin"
    assert h["X-Frame-Options"] == "DENY"
    assert "Cookie" in h.get("Vary", "")
    assert "no-store" in h["Cache-Control"] or "private" in h["Cache-Control"]


def test_every_inline_script_and_style_carries_the_request_nonce(client):
    r = client.get("/")
    nonce = re.search(r"'nonce-([^']+)'", r.headers["Content-Security-Policy"]).group(1)
    html = r.get_data(as_text=True)
    tags = re.findall(r"<(?:script|style)\b[^>]*>", html)
    assert len(tags) >= 4
    for tag in tags:
        assert f'nonce="{nonce}"' in tag, tag
    assert " on" not in " ".join(re.findall(r"<[a-z]+\b[^>]*\son[a-z]+=", html))  # no inline handlers
    assert not re.search(r"<[a-z]+\b[^>]*\sstyle=", html)  # no inline style attributes either
    other = re.search(r"'nonce-([^']+)'", client.get("/").headers["Content-Security-Policy"]).group(1)
    assert other != nonce


def test_tile_host_allowed_for_images_only(gridtown_app_config, users, sign_in):
    from web import create_app
    app = create_app(gridtown_app_config.with_overrides(tiles="https://{s}.tile.example.org/{z}/{x}/{y}.png"),
                     test_config={"TESTING": True, "WARM_UP": False})
    csp = sign_in(app.test_client(), users["vic"]).get("/").headers["Content-Security-Policy"]
    assert "img-src 'self' data: https://*.tile.example.org" in csp
    assert "tile.example.org" not in csp.split("img-src")[0]


def test_no_inline_style_attributes_in_scripts():
    """The CSP allows no inline style attributes: the map's script paints colours via the CSSOM."""
    from pathlib import Path
    js = (Path(__file__).resolve().parents[2] / "web" / "static" / "hotspots.js").read_text()
    assert 'style="' not in js and "style='" not in js
    assert "innerHTML" in js and "esc(" in js


def test_free_text_is_escaped_server_side(client, config, tmp_path, codes_for_xss):
    """An overlay label and an error message carrying markup are rendered as text in the HTML pages."""
    from hotspots.overlays import add_overlay, remove_overlay
    f = tmp_path / "x.csv"
    f.write_text("code,value\n" + "".join(f"{c},{i}\n" for i, c in enumerate(codes_for_xss)))
    ov = add_overlay(config, f, "code", "value", PAYLOAD)
    try:
        html = client.get("/").get_data(as_text=True)
        assert PAYLOAD not in html
        assert "&lt;img src=x onerror=" in html or "\\u003cimg" in html
        r = client.get("/?category=" + "%3Cscript%3Ealert(1)%3C/script%3E")
        assert r.status_code == 404 and "<script>alert(1)" not in r.get_data(as_text=True)
    finally:
        remove_overlay(config, ov.id)


@pytest.fixture
def codes_for_xss(config):
    from hotspots.bundle import load_boundary
    return list(load_boundary(config, "lsoa21")["code"])


def test_json_is_never_sniffed_as_html(client):
    r = client.get("/api/v1/layers/nosuch<script>")
    assert r.mimetype == "application/json" and r.headers["X-Content-Type-Options"] == "nosniff"


def test_csv_downloads_neutralise_formulas(client, config, tmp_path, codes_for_xss):
    from hotspots.overlays import add_overlay, remove_overlay
    f = tmp_path / "f.csv"
    f.write_text("code,value\n" + "".join(f"{c},{i}\n" for i, c in enumerate(codes_for_xss)))
    ov = add_overlay(config, f, "code", "value", "=HYPERLINK(\"http://evil\",\"x\")")
    try:
        text = client.get(f"/api/v1/downloads/overlay-{ov.id}.csv").get_data(as_text=True)
        for line in text.splitlines():
            if not line.startswith("#"):
                assert not re.search(r'(^|,)"?[=+@]', line), line
    finally:
        remove_overlay(config, ov.id)


def test_every_csv_route_uses_safe_csv_frame():
    """Static check: every place that writes CSV for a response goes through safe_csv_frame."""
    from pathlib import Path
    web = Path(__file__).resolve().parents[2] / "web"
    for py in web.glob("*.py"):
        src = py.read_text()
        for m in re.finditer(r"\.to_csv\(", src):
            before = src[max(0, m.start() - 900):m.start()]
            assert "safe_csv_frame" in before, f"{py.name}: to_csv without safe_csv_frame"


TRAVERSAL = ["/api/v1/layers/..%2f..%2fetc%2fpasswd", "/api/v1/layers/../../etc/passwd",
             "/api/v1/layers/%2e%2e%2f%2e%2e%2fconfig", "/api/v1/downloads/..%2fsecret_key.csv",
             "/api/v1/downloads/count.csv%2f..%2f..%2fsecret_key", "/api/v1/layers/..%252f..%252fusers.db",
             "/static/../instance/secret_key", "/static/..%2f..%2finstance%2fsecret_key",
             "/static/%2e%2e/%2e%2e/instance/users.db", "/uploads/..%2f..%2fusers.db",
             "/api/v1/layers/count.geojson%00.csv", "/api/v1/downloads/....//....//secret_key.csv",
             "/?layer=..%2f..%2fsecret_key", "/api/v1/layers/overlay-..%2f..%2fsecret_key"]


@pytest.mark.parametrize("url", TRAVERSAL)
def test_no_path_traversal(client, config, url):
    r = client.get(url)
    assert r.status_code in (400, 403, 404), (url, r.status_code)
    body = r.get_data()
    key = (config.instance_dir / "secret_key").read_bytes().strip()
    assert key not in body and b"SQLite format" not in body


def test_debug_never_on(gridtown_app_config, users, monkeypatch, sign_in):
    monkeypatch.setenv("FLASK_DEBUG", "1")
    from web import create_app
    app = create_app(gridtown_app_config, test_config={"TESTING": True, "WARM_UP": False, "DEBUG": True})
    assert app.debug is False and app.config["DEBUG"] is False
    r = sign_in(app.test_client(), users["ana"]).get("/api/v1/layers/count?from=2024-13")
    assert "Traceback" not in r.get_data(as_text=True)


def test_makefile_run_is_not_debug():
    from pathlib import Path
    mk = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    run = mk.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "hotspots serve" in run and "debug" not in run.lower() and "flask run" not in run


def test_unexpected_errors_do_not_leak(client, monkeypatch):
    import web.api
    monkeypatch.setattr(web.api.pipeline, "categories",
                        lambda c, a: (_ for _ in ()).throw(RuntimeError("/secret/path")))
    r = client.get("/api/v1/categories")
    assert r.status_code == 500 and "/secret/path" not in r.get_data(as_text=True)


def test_signed_in_data_is_never_stored_public_data_may_be(client, public_client):
    assert client.get("/api/v1/layers/count.geojson").headers["Cache-Control"] == "no-store"
    cc = public_client.get("/api/v1/layers/count.geojson").headers["Cache-Control"]
    assert cc.startswith("private") and "Cookie" in public_client.get("/api/v1/layers/count.geojson").headers["Vary"]


def _tokens(html: str) -> list[str]:
    return re.findall(r'name="csrf_token" value="([^"]+)"', html) + re.findall(
        r'name="csrf-token" content="([^"]+)"', html)


def test_csrf_token_masked_per_response_and_every_copy_verifies(app):
    """BREACH: the token's bytes differ in every response (secret XOR a fresh pad), the secret itself is
    never in a page, and each masked copy verifies."""
    import base64
    c = app.test_client()
    pages = [c.get("/login", headers={"Accept-Encoding": "gzip"}) for _ in range(3)]
    assert all(p.headers.get("Content-Encoding") == "gzip" for p in pages)  # compressed, so it matters
    import gzip
    htmls = [gzip.decompress(p.get_data()).decode() for p in pages]
    tokens = [t for h in htmls for t in _tokens(h)]
    assert len(tokens) == 6 and len(set(tokens)) == 6  # form field and meta, three responses: all different
    with c.session_transaction() as s:
        secret = s["csrf"]
    raw = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    assert len(raw) == 32
    for h in htmls:
        assert secret not in h and raw.hex() not in h
    for k, tok in enumerate(tokens):  # each verifies: the form is judged on its password, not refused 400
        r = c.post("/login", data={"username": "nobody", "password": "x" * 12, "csrf_token": tok},
                   environ_base={"REMOTE_ADDR": f"10.44.0.{k}"})
        assert r.status_code == 401, r.get_data(as_text=True)
    r = c.post("/login", data={"username": "nobody", "password": "x" * 12}, headers={"X-CSRF-Token": tokens[0]},
               environ_base={"REMOTE_ADDR": "10.44.1.1"})
    assert r.status_code == 401


def test_csrf_refuses_unmasked_foreign_and_malformed_tokens(app):
    from web.security import mask_token
    import base64
    c = app.test_client()
    good = _tokens(c.get("/login").get_data(as_text=True))[0]
    with c.session_transaction() as s:
        secret = s["csrf"]
    other = _tokens(app.test_client().get("/login").get_data(as_text=True))[0]  # another session's token
    wrong = mask_token(b"\x01" * 32)
    raw = base64.urlsafe_b64decode(good + "=" * (-len(good) % 4))
    flipped = base64.urlsafe_b64encode(raw[:-1] + bytes([raw[-1] ^ 1])).decode().rstrip("=")
    for bad in (secret, other, wrong, flipped, good[:-4], good + "AAAA", "%%%", "é" * 86, "A" * 10_000):
        r = c.post("/login", data={"username": "nobody", "password": "x" * 12, "csrf_token": bad},
                   environ_base={"REMOTE_ADDR": "10.45.0.1"})
        assert r.status_code == 400 and "CSRF" in r.get_data(as_text=True), bad[:20]
    r = c.post("/login", data={"username": "nobody", "password": "x" * 12, "csrf_token": good},
               environ_base={"REMOTE_ADDR": "10.45.0.2"})
    assert r.status_code == 401


def test_login_form_echoes_only_a_same_site_next(anon_client):
    """A reflected value beside the CSRF token in a compressed page is the BREACH pattern: ``next`` is
    echoed only when it is a same-site path the sign-in would honour."""
    html = anon_client.get("/login?next=https://evil.example/csrf_token%3Dabc").get_data(as_text=True)
    assert "evil.example" not in html and 'name="next"' not in html
    html = anon_client.get("/login?next=/%3Flayer%3Dcount").get_data(as_text=True)
    assert 'name="next" value="/?layer=count"' in html
