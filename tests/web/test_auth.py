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
    with anon_client.get("/static/hotspots.js") as r:  # a file response: closed, or a ResourceWarning
        assert r.status_code == 200


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


@pytest.fixture
def temp_user(gridtown_app_config):
    """A throwaway analyst (cheap hash) with a unique name, signed in through the real form by ``_sign_in``."""
    import uuid
    from argon2 import PasswordHasher
    from hotspots.users import UserStore
    st = UserStore.from_config(gridtown_app_config, PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    name = f"temp-{uuid.uuid4().hex[:8]}"
    st.add_user(name, "temporary-password", "analyst")
    yield name
    if st.get_user(name):
        st.remove_user(name)


def _sign_in(app, name, password="temporary-password"):
    c = app.test_client()
    r = c.post("/login", data={"username": name, "password": password, "csrf_token": _csrf(c)})
    assert r.status_code == 302, r.get_data(as_text=True)
    return c


def _replay(app, c):
    """A second client carrying a copy of ``c``'s session cookie (as stolen from a shared computer)."""
    other = app.test_client()
    other.set_cookie("hotspots_session", c.get_cookie("hotspots_session").value)
    return other


def _refused(c):
    r = c.get("/api/v1/me")
    page = c.get("/upload")
    return r.status_code == 401 and page.status_code == 302 and page.headers["Location"].startswith("/login")


def test_cookie_holds_only_a_session_id(app, temp_user):
    c = _sign_in(app, temp_user)
    with c.session_transaction() as s:
        assert set(s) <= {"sid", "csrf", "_permanent"} and len(s["sid"]) >= 40
        assert "user" not in s and "stamp" not in s
    assert c.get("/api/v1/me").get_json()["username"] == temp_user


def test_copied_cookie_dies_at_logout(app, temp_user):
    c = _sign_in(app, temp_user)
    copy = _replay(app, c)
    assert copy.get("/api/v1/me").status_code == 200  # the copy works while the session lives
    tok = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/").get_data(as_text=True)).group(1)
    assert c.post("/logout", data={"csrf_token": tok}).status_code == 302
    assert _refused(copy) and _refused(c)


@pytest.mark.parametrize("action", ["passwd", "remove"])
def test_copied_cookie_dies_after_cli_passwd_or_remove(app, temp_user, gridtown_app_config, action):
    from click.testing import CliRunner
    from hotspots.cli import cli
    c = _sign_in(app, temp_user)
    copy = _replay(app, c)
    assert copy.get("/api/v1/me").status_code == 200
    env = {"HOTSPOTS_INSTANCE_DIR": str(gridtown_app_config.instance_dir),
           "HOTSPOTS_DATA_DIR": str(gridtown_app_config.data_dir)}
    args = ["users", action, temp_user] + (["--password-stdin"] if action == "passwd" else [])
    r = CliRunner().invoke(cli, args, env=env, input="a-new-password-1\n", obj={})
    assert r.exit_code == 0 and "1 session signed out" in r.output, r.output
    assert _refused(copy) and _refused(c)


@pytest.mark.parametrize("action", ["password", "sessions/end", "remove"])
def test_copied_cookie_dies_after_admin_page_action(app, admin_client, temp_user, action):
    c = _sign_in(app, temp_user)
    copy = _replay(app, c)
    assert copy.get("/api/v1/me").status_code == 200
    page = admin_client.get(f"/admin/users/{temp_user}")
    assert page.status_code == 200 and 'id="account-sessions">1<' in page.get_data(as_text=True)
    tok = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    r = admin_client.post(f"/admin/users/{temp_user}/{action}",
                          data={"csrf_token": tok, "new_password": "a-new-password-2", "confirm": "a-new-password-2"})
    assert r.status_code in (200, 303), r.get_data(as_text=True)
    assert _refused(copy) and _refused(c)
    if action == "password":
        assert "1 session(s) ended" in r.get_data(as_text=True)
        assert _sign_in(app, temp_user, "a-new-password-2").get("/api/v1/me").status_code == 200
    if action == "remove":
        assert admin_client.get(f"/admin/users/{temp_user}").status_code == 404
    assert admin_client.get("/api/v1/me").status_code == 200  # the admin's own session is untouched


def test_admin_page_refusals(app, admin_client, client, temp_user):
    page = admin_client.get(f"/admin/users/{temp_user}").get_data(as_text=True)
    tok = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = admin_client.post(f"/admin/users/{temp_user}/password",
                          data={"csrf_token": tok, "new_password": "a-new-password-3", "confirm": "different-one-3"})
    assert r.status_code == 400 and "differ" in r.get_data(as_text=True)
    r = admin_client.post(f"/admin/users/{temp_user}/password",
                          data={"csrf_token": tok, "new_password": "short", "confirm": "short"})
    assert r.status_code == 400 and "at least 10 characters" in r.get_data(as_text=True)
    r = admin_client.post("/admin/users/root/remove", data={"csrf_token": tok})
    assert r.status_code == 400 and "your own account" in r.get_data(as_text=True)
    for url in ("/admin/users/nobody", "/admin/users/" + "x" * 300, "/admin/users/%00"):
        assert admin_client.get(url).status_code == 404
    # an analyst may do none of it
    atok = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/upload").get_data(as_text=True)).group(1)
    assert client.get(f"/admin/users/{temp_user}").status_code == 403
    assert client.post(f"/admin/users/{temp_user}/remove", data={"csrf_token": atok}).status_code == 403
    assert _sign_in(app, temp_user).get("/api/v1/me").status_code == 200


def test_cookie_of_the_stateless_kind_is_refused(app, users):
    """A signed cookie naming a user and stamp (the format before server-side sessions) signs nobody in."""
    c = app.test_client()
    with c.session_transaction() as s:
        s["user"], s["stamp"] = users["ana"].username, users["ana"].auth_stamp
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
