"""Regression tests for the web-layer review findings (disclosure leaks, proxy, paging, limits, cache)."""
from __future__ import annotations

import csv
import io
import threading
import time

import pytest

SMALL = ["category=burglary", "category=violent-crime&from=2024-01&to=2024-01"]


def _hospital_app(gridtown_app_config):
    from web import create_app
    config = gridtown_app_config.with_overrides(disclosure={"rule": "hospital"})
    return create_app(config, test_config={"TESTING": True, "WARM_UP": False})


# -- 1: summary lines ------------------------------------------------------------------------------
@pytest.mark.parametrize("q", SMALL)
def test_panel_summary_lines_leak_no_hidden_count(public_client, client, q):
    """Public visitors: no suppressed area's count (or z) appears anywhere in the side-panel JSON."""
    full = {r["code"]: r for r in client.get(f"/api/v1/layers/gistar?{q}").get_json()["rows"]}
    view = {r["code"]: r for r in public_client.get(f"/api/v1/layers/gistar?{q}").get_json()["rows"]}
    hidden = [c for c, r in view.items() if r["suppressed"]]
    assert hidden
    s = public_client.get(f"/api/v1/hotspots?{q}").get_json()
    assert s["summary_lines"]
    lines = [ln for ln in s["summary_lines"] if any(c in ln for c in hidden)]
    assert lines, "the fixture has a hidden 99% hot spot"
    for ln in lines:
        code = next(c for c in hidden if c in ln)
        assert "value" not in ln and "z =" not in ln, ln
        assert f"{full[code]['gi_z']:.2f}" not in ln
    for t in s["top"]:
        if t["code"] in hidden:
            assert t["value"] is None and t["z"] is None
    # the analyst still gets the engine's lines with values
    a = client.get(f"/api/v1/hotspots?{q}").get_json()
    assert any("value" in ln for ln in a["summary_lines"])


# -- 2: value under the hospital rule --------------------------------------------------------------
def test_hospital_rule_value_is_the_published_count(gridtown_app_config, users, sign_in):
    from web.layers import clear_cache
    app = _hospital_app(gridtown_app_config)
    c = sign_in(app.test_client(), users["vic"])
    q = "from=2024-01&to=2024-02&category=violent-crime"
    try:
        for layer in ("gistar", "lisa"):
            body = c.get(f"/api/v1/layers/{layer}?{q}").get_json()
            assert body["metadata"]["disclosure_rule"] == "hospital"
            for r in body["rows"]:
                if isinstance(r["count"], int):
                    assert r["value"] == r["count"], r
                else:
                    assert r["value"] is None, r
            text = c.get(f"/api/v1/downloads/{layer}.csv?{q}").get_data(as_text=True)
            rows = list(csv.DictReader(io.StringIO("\n".join(ln for ln in text.splitlines()
                                                             if not ln.startswith("#")))))
            for r in rows:
                if r["count"].isdigit():
                    assert float(r["value"]) == int(r["count"]), r
                else:
                    assert r["value"] == "", r
        s = c.get(f"/api/v1/hotspots?{q}").get_json()
        assert s["top"]
        for t in s["top"]:
            assert t["value"] is None if not isinstance(t["count"], int) else t["value"] == t["count"], t
        for ln in s["summary_lines"]:
            if "value" in ln:
                v = float(ln.split("value ")[1].split(",")[0])
                assert v % 5 == 0, ln
    finally:
        clear_cache()


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


# -- 4: incidents paging keeps repeated filters ----------------------------------------------------
def test_incidents_next_link_keeps_repeated_categories(client):
    from urllib.parse import parse_qs, urlsplit
    r = client.get("/api/v1/incidents?category=burglary&category=violent-crime&limit=5").get_json()
    assert r["total"] > 5 and set(r["parameters"]["category"]) == {"burglary", "violent-crime"}
    q = parse_qs(urlsplit(r["next"]).query)
    assert sorted(q["category"]) == ["burglary", "violent-crime"] and q["offset"] == ["5"] and q["limit"] == ["5"]
    nxt = client.get(r["next"]).get_json()
    assert nxt["total"] == r["total"] and nxt["offset"] == 5


# -- 5: limits on expensive parameters -------------------------------------------------------------
@pytest.mark.parametrize("q,column,limit", [
    ("weights=knn:31", "weights", "30"), ("weights=knn:100000", "weights", "30"),
    ("weights=distance:5001", "weights", "5,000"), ("weights=distance:1000000", "weights", "5,000"),
    ("permutations=10000", "permutations", "9999"), ("permutations=99999", "permutations", "9999")])
@pytest.mark.parametrize("who", ["public_client", "client"])
def test_expensive_parameters_are_capped(request, who, q, column, limit):
    c = request.getfixturevalue(who)
    r = c.get(f"/api/v1/hotspots?category=burglary&{q}")
    assert r.status_code == 400
    body = r.get_json()
    assert body["ok"] is False and body["column"] == column and limit in body["error"], body


def test_parameters_at_the_caps_are_accepted(config):
    from web.layers import parse_params
    p = parse_params(config, {"weights": "knn:30", "permutations": "9999"})
    assert p.weights == "knn:30" and p.permutations == 9999
    assert parse_params(config, {"weights": "distance:5000"}).weights == "distance:5000"


# -- 6: no cache stampede --------------------------------------------------------------------------
def test_concurrent_misses_compute_once(config):
    from web import layers as L
    calls = []
    gate = threading.Barrier(8)

    def build():
        calls.append(threading.get_ident())
        time.sleep(0.3)
        return object()

    out = [None] * 8

    def worker(i):
        gate.wait()
        out[i] = L.cached(config, key, build)

    key = ("test-stampede", time.time_ns())
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1, f"the build ran {len(calls)} times"
    assert all(o is out[0] for o in out)
    assert not any(k[-2:] == key for k in L._key_locks)  # no lock left behind


def test_failed_build_is_retried_by_the_next_caller(config):
    from web import layers as L
    key = ("test-stampede-error", time.time_ns())

    def boom():
        raise RuntimeError("no")
    with pytest.raises(RuntimeError):
        L.cached(config, key, boom)
    assert L.cached(config, key, lambda: 42) == 42


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


# -- 9: one set of Gi* labels ----------------------------------------------------------------------
def test_gi_class_label_matches_engine_label_in_downloads(client, viewer_client):
    from hotspots.maps import GI_CLASSES
    from hotspots.stats import GI_LABELS
    assert {b: lab for b, (lab, _) in GI_CLASSES.items()} == GI_LABELS
    for c in (client, viewer_client):
        text = c.get("/api/v1/downloads/gistar.csv?category=violent-crime").get_data(as_text=True)
        rows = list(csv.DictReader(io.StringIO("\n".join(ln for ln in text.splitlines() if not ln.startswith("#")))))
        sig = [r for r in rows if r["gi_label"] in GI_LABELS.values()]
        assert sig and any(r["gi_label"].startswith("Hot") for r in sig)
        for r in sig:
            assert r["class_label"] == r["gi_label"], r


# -- 8: layers that ignore the crime filters are cached once ---------------------------------------
def test_non_crime_layers_do_not_rebuild_when_filters_change(config):
    from web import layers as L
    L.clear_cache()
    a = L.layer_data(config, L.parse_params(config, {"category": "burglary", "from": "2024-01", "to": "2024-01"},
                                            layer="wards"))
    b = L.layer_data(config, L.parse_params(config, {"category": "violent-crime", "weights": "rook",
                                                     "from": "2024-02", "to": "2024-03"}, layer="wards"))
    assert a is b, "the ward boundaries were rebuilt for another category"
    assert a.metadata["parameters"] == {"layer": "wards"}


def test_layer_cache_key_holds_only_the_fields_a_layer_uses():
    from web.layers import LayerParams, layer_params_used
    p1 = LayerParams(layer="iod2025", categories=("burglary",), month_from="2024-01", month_to="2024-01",
                     weights="rook", domain="income", classes="fisherjenks")
    p2 = LayerParams(layer="iod2025", categories=("violent-crime",), month_from="2024-02", month_to="2024-03",
                     domain="income")
    assert layer_params_used(p1) == layer_params_used(p2)
    assert layer_params_used(p1) != layer_params_used(LayerParams(layer="iod2025", domain="imd"))
    o1 = LayerParams(layer="overlay-x", categories=("burglary",), classes="equalinterval", k=4)
    o2 = LayerParams(layer="overlay-x", categories=("violent-crime",), classes="equalinterval", k=4)
    assert layer_params_used(o1) == layer_params_used(o2) != layer_params_used(LayerParams(layer="overlay-x", k=4))
    g = LayerParams(layer="gistar", categories=("burglary",))
    assert layer_params_used(g) is g
