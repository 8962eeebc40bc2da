"""Sign-in, roles, public mode, session cookies, CSRF, throttling and the incidents endpoint."""
from __future__ import annotations

import re

import pytest



def _csrf(client, url="/login"):
    html = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_sign_in_required_when_public_mode_off(anon_client):
    r = anon_client.get("/?layer=count")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login?next=")
    r = anon_client.get("/api/v1/layers/count")
    assert r.status_code == 401 and r.get_json() == {"ok": False, "error": "sign in required", "status": 401}
    assert anon_client.get("/api/v1/downloads/count.csv").status_code == 401
    assert anon_client.get("/api/v1/health").status_code == 200
    assert anon_client.get("/static/hotspots.js").status_code == 200


def test_login_flow_sets_hardened_cookie_and_redirects(anon_client, users, PASSWORDS):
    tok = _csrf(anon_client, "/login?next=/%3Flayer%3Dcount")
    r = anon_client.post("/login", data={"username": "ana", "password": PASSWORDS["ana"], "csrf_token": tok,
                                         "next": "/?layer=count"})
    assert r.status_code == 302 and r.headers["Location"] == "/?layer=count"
    cookie = r.headers["Set-Cookie"]
    assert "hotspots_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http, secure_cookies = auto
    me = anon_client.get("/api/v1/me").get_json()
    assert me["username"] == "ana" and me["role"] == "analyst" and "view_incidents" in me["permissions"]
    page = anon_client.get("/").get_data(as_text=True)
    assert "Signed in as" in page and "Upload incidents" in page
    tok = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert anon_client.post("/logout", data={"csrf_token": tok}).status_code == 302
    assert anon_client.get("/api/v1/me").status_code == 401


def test_secure_cookie_over_https_and_when_forced(app, users, gridtown_app_config, PASSWORDS):
    c = app.test_client()
    tok = _csrf(c)
    r = c.post("/login", data={"username": "vic", "password": PASSWORDS["vic"], "csrf_token": tok},
               base_url="https://localhost")
    assert r.status_code == 302 and "Secure" in r.headers["Set-Cookie"]
    assert "Strict-Transport-Security" in r.headers
    from web import create_app
    forced = create_app(gridtown_app_config.with_overrides(secure_cookies="true"),
                        test_config={"TESTING": True, "WARM_UP": False}).test_client()
    r = forced.get("/login")
    assert "Secure" in r.headers["Set-Cookie"]


@pytest.mark.parametrize("nxt", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"])
def test_login_never_redirects_off_site(anon_client, users, nxt, PASSWORDS):
    tok = _csrf(anon_client)
    r = anon_client.post("/login", data={"username": "vic", "password": PASSWORDS["vic"], "csrf_token": tok,
                                         "next": nxt})
    assert r.status_code == 302 and r.headers["Location"] == "/"


def test_wrong_password_is_401_and_throttled_after_five(app, users, PASSWORDS):
    c = app.test_client()
    tok = _csrf(c)
    for i in range(5):
        r = c.post("/login", data={"username": "root", "password": f"wrong-password-{i}", "csrf_token": tok},
                   environ_base={"REMOTE_ADDR": "10.9.9.9"})
        assert r.status_code == 401 and "wrong username or password" in r.get_data(as_text=True)
    r = c.post("/login", data={"username": "root", "password": PASSWORDS["root"], "csrf_token": tok},
               environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert "too many failed sign-in attempts" in r.get_data(as_text=True)
    # another address is not locked out
    r = c.post("/login", data={"username": "root", "password": PASSWORDS["root"], "csrf_token": tok},
               environ_base={"REMOTE_ADDR": "10.9.9.10"})
    assert r.status_code == 302


def test_unknown_user_same_answer_as_wrong_password(anon_client, users):
    tok = _csrf(anon_client)
    a = anon_client.post("/login", data={"username": "nobody", "password": "x" * 12, "csrf_token": tok},
                         environ_base={"REMOTE_ADDR": "10.7.7.7"})
    b = anon_client.post("/login", data={"username": "vic", "password": "x" * 12, "csrf_token": tok},
                         environ_base={"REMOTE_ADDR": "10.7.7.8"})
    assert a.status_code == b.status_code == 401
    assert "wrong username or password" in a.get_data(as_text=True)


@pytest.mark.parametrize("data,headers", [({}, {}), ({"csrf_token": "forged"}, {}),
                                          ({}, {"X-CSRF-Token": "forged"})])
def test_post_without_valid_csrf_token_is_refused(anon_client, users, data, headers, PASSWORDS):
    _csrf(anon_client)
    r = anon_client.post("/login", data={"username": "vic", "password": PASSWORDS["vic"], **data}, headers=headers)
    assert r.status_code == 400 and "CSRF" in r.get_data(as_text=True)


def test_cross_origin_post_refused_even_with_token(anon_client, users, PASSWORDS):
    tok = _csrf(anon_client)
    r = anon_client.post("/login", data={"username": "vic", "password": PASSWORDS["vic"], "csrf_token": tok},
                         headers={"Origin": "https://evil.example"})
    assert r.status_code == 400


def test_csrf_on_every_form(client):
    """Every POST form the app renders carries the token."""
    for url in ("/", "/upload", "/login"):
        html = client.get(url).get_data(as_text=True)
        for form in re.findall(r"<form[^>]*method=\"post\".*?</form>", html, re.S | re.I):
            assert 'name="csrf_token"' in form, (url, form[:200])


def test_session_void_after_password_change_or_removal(app, gridtown_app_config, sign_in):
    from argon2 import PasswordHasher
    from hotspots.users import UserStore
    st = UserStore.from_config(gridtown_app_config, PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    u = st.add_user("temp", "temporary-password", "analyst")
    c = sign_in(app.test_client(), u)
    assert c.get("/api/v1/me").status_code == 200
    st.set_password("temp", "another-password-1")
    assert c.get("/api/v1/me").status_code == 401
    u = st.get_user("temp")
    c = sign_in(app.test_client(), u)
    assert c.get("/api/v1/me").status_code == 200
    st.remove_user("temp")
    assert c.get("/api/v1/me").status_code == 401


def test_public_mode_gives_anonymous_viewer_rights(public_client):
    assert public_client.get("/").status_code == 200
    me = public_client.get("/api/v1/me").get_json()
    assert me["public"] is True and me["role"] == "viewer"
    rows = public_client.get("/api/v1/layers/count?from=2024-01&to=2024-01").get_json()["rows"]
    assert any(r["count"] == "<5" for r in rows)
    assert public_client.get("/api/v1/incidents").status_code == 403
    r = public_client.get("/upload")  # a page that needs more than viewer rights: sign in first
    assert r.status_code == 302 and r.headers["Location"] == "/login?next=/upload"
    assert public_client.get("/upload", headers={"Accept": "application/json"}).status_code == 403
    assert "Sign in" in public_client.get("/").get_data(as_text=True)


def test_incidents_only_for_analysts(viewer_client, client, admin_client):
    r = viewer_client.get("/api/v1/incidents")
    assert r.status_code == 403 and r.is_json and r.get_json()["ok"] is False
    assert "view incidents" in r.get_json()["error"]
    body = client.get("/api/v1/incidents?from=2024-01&to=2024-01&category=violent-crime&limit=5").get_json()
    assert body["ok"] and body["count"] == 5 and body["total"] > 5 and body["next"]
    inc = body["incidents"][0]
    assert {"longitude", "latitude", "category", "month", "lsoa21", "ward", "location"} <= set(inc)
    assert inc["month"] == "2024-01" and inc["category"] == "violent-crime"
    assert -180 <= inc["longitude"] <= 180 and "source_file" not in inc
    code = inc["lsoa21"]
    by_area = client.get(f"/api/v1/incidents?area={code}&limit=10000").get_json()
    assert by_area["total"] >= 1 and all(i["lsoa21"] == code or i["ward"] == code for i in by_area["incidents"])
    assert admin_client.get("/api/v1/incidents?limit=1").status_code == 200
    assert client.get("/api/v1/incidents?area=E01999999").status_code == 404
    assert client.get("/api/v1/incidents?area=../../x").status_code == 400
    assert client.get("/api/v1/incidents?limit=100000").status_code == 400
    csv = client.get("/api/v1/incidents?format=csv&limit=3")
    assert csv.mimetype == "text/csv" and "attachment" in csv.headers["Content-Disposition"]


def test_overlays_are_for_analysts(viewer_client):
    assert viewer_client.get("/api/v1/layers/overlay-anything").status_code in (403, 404)
    assert viewer_client.get("/api/v1/overlays").get_json()["risk_factors"] == []


def test_admin_sees_users_page_others_do_not(admin_client, client, users):
    html = admin_client.get("/admin/users").get_data(as_text=True)
    assert "ana" in html and "analyst" in html and "password" not in html.lower().replace("passwd", "")
    assert client.get("/admin/users").status_code == 403


def test_secret_key_from_instance_folder(app, gridtown_app_config):
    import stat
    p = gridtown_app_config.instance_dir / "secret_key"
    assert p.exists() and stat.S_IMODE(p.stat().st_mode) == 0o600
    assert app.secret_key == p.read_text().strip()
