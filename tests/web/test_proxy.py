"""Behind a TLS-terminating proxy: forwarded headers trusted only when configured; the origin check."""
from __future__ import annotations

import csv
import io
import threading
import time

import pytest

# -- 3: behind a TLS-terminating proxy -------------------------------------------------------------
def _proxy_app(gridtown_app_config, on: bool):
    from flask import request
    from web import create_app
    app = create_app(gridtown_app_config.with_overrides(trusted_proxy=on, public_mode=True),
                     test_config={"TESTING": True, "WARM_UP": False})

    @app.get("/_test/whoami")
    def whoami():
        return {"remote_addr": request.remote_addr, "scheme": request.scheme, "host": request.host}
    return app


def _token(html: str) -> str:
    import re
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_trusted_proxy_post_with_https_origin_is_accepted(gridtown_app_config, users, PASSWORDS):
    app = _proxy_app(gridtown_app_config, True)
    c = app.test_client()
    h = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "maps.example", "X-Forwarded-For": "203.0.113.9",
         "Host": "maps.example"}
    who = c.get("/_test/whoami", headers=h).get_json()
    assert who == {"remote_addr": "203.0.113.9", "scheme": "https", "host": "maps.example"}
    tok = _token(c.get("/login", headers=h, base_url="http://maps.example").get_data(as_text=True))
    r = c.post("/login", base_url="http://maps.example", headers={**h, "Origin": "https://maps.example"},
               data={"username": "vic", "password": PASSWORDS["vic"], "csrf_token": tok})
    assert r.status_code == 302, r.get_data(as_text=True)
    # another site is still refused
    tok = _token(c.get("/login", headers=h, base_url="http://maps.example").get_data(as_text=True))
    r = c.post("/login", base_url="http://maps.example", headers={**h, "Origin": "https://evil.example"},
               data={"username": "vic", "password": "x", "csrf_token": tok})
    assert r.status_code == 400


def test_without_trusted_proxy_forwarded_headers_are_ignored(gridtown_app_config):
    app = _proxy_app(gridtown_app_config, False)
    who = app.test_client().get("/_test/whoami", headers={"X-Forwarded-For": "203.0.113.9",
                                                          "X-Forwarded-Proto": "https"}).get_json()
    assert who["remote_addr"] == "127.0.0.1" and who["scheme"] == "http"


def test_origin_check_compares_scheme_and_host(anon_client):
    from web.security import same_origin
    from flask import Flask
    app = Flask(__name__)
    with app.test_request_context("/", base_url="http://maps.example:8080"):
        assert same_origin("http://maps.example:8080")
        assert same_origin("HTTP://Maps.Example:8080/")
        assert not same_origin("https://maps.example:8080")
        assert not same_origin("http://maps.example")
        assert not same_origin("http://maps.example:8080.evil.example")
    with app.test_request_context("/", base_url="https://maps.example"):
        assert same_origin("https://maps.example:443")


def test_trusted_proxy_setting_from_file_and_environment(tmp_path):
    from hotspots.config import DEFAULT_CONFIG, load_config
    assert load_config(env={}).trusted_proxy is False
    assert load_config(env={"HOTSPOTS_TRUSTED_PROXY": "1"}).trusted_proxy is True
    p = tmp_path / "c.toml"
    p.write_text(DEFAULT_CONFIG.read_text().replace("trusted_proxy = false", "trusted_proxy = true"))
    assert load_config(p, env={}).trusted_proxy is True


