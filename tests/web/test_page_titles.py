"""Every page carries the configured area name (the app's Config reaches every template)."""
from __future__ import annotations

import csv
import io
import threading
import time

import pytest

# -- 7: every page gets the app's Config ------------------------------------------------------------
def _title(html: str) -> str:
    import re
    return re.search(r"<title>(.*?)</title>", html, re.S).group(1)


def test_login_page_has_area_name_and_public_link(public_client, anon_client, config):
    html = public_client.get("/login").get_data(as_text=True)
    assert config.area_name in _title(html) and config.area_name in html
    assert "Continue without signing in" in html
    html = anon_client.get("/login").get_data(as_text=True)  # sign-in required: no public link
    assert config.area_name in _title(html) and "Continue without signing in" not in html
    r = public_client.post("/login", data={"username": "nobody", "password": "wrong-password-1",
                                           "csrf_token": "x"})
    assert r.status_code == 400 and config.area_name in _title(r.get_data(as_text=True))  # error page


def test_failed_sign_in_and_error_pages_have_area_name(app, public_client, config):
    c = app.test_client()
    import re
    tok = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").get_data(as_text=True)).group(1)
    r = c.post("/login", data={"username": "nobody", "password": "wrong-password-1", "csrf_token": tok})
    assert r.status_code == 401 and config.area_name in _title(r.get_data(as_text=True))
    r = public_client.get("/no-such-page", headers={"Accept": "text/html"})
    assert r.status_code == 404 and config.area_name in _title(r.get_data(as_text=True))


def test_users_and_upload_pages_have_area_name(admin_client, client, config):
    assert config.area_name in _title(admin_client.get("/admin/users").get_data(as_text=True))
    assert config.area_name in _title(client.get("/upload").get_data(as_text=True))


