"""Findings of issue 14 about parameters: each was reproduced against the previous release and fails now."""
from __future__ import annotations

import gzip

import pytest


def test_domain_is_a_finite_set_and_never_reaches_a_download(client, viewer_client):
    """?domain=x%0A%3DHYPERLINK(...) put a live formula line into an analyst's CSV download."""
    for c in (client, viewer_client):
        r = c.get("/api/v1/downloads/count.csv?domain=x%0A%3DHYPERLINK(%22http://evil%22)")
        assert r.status_code == 404 and r.get_json()["column"] == "domain"
        assert "HYPERLINK" not in r.get_data(as_text=True).split("(have:")[-1]
        ok = c.get("/api/v1/downloads/count.csv?domain=imd").get_data(as_text=True)
        assert "HYPERLINK" not in ok and "=" not in ok.split("\n", 1)[0]


def test_domain_does_not_vary_the_cache_of_a_crime_layer(config):
    from hotspots import pipeline
    from hotspots.request import Audience
    a = pipeline.build_layer(config, pipeline.parse(config, {"layer": "count", "domain": "imd"}), Audience.VIEWER)
    domains = pipeline.catalog(config).domains
    other = next((d for d in domains if d != "imd"), "imd")
    b = pipeline.build_layer(config, pipeline.parse(config, {"layer": "count", "domain": other}), Audience.VIEWER)
    assert a is b


def test_a_user_controlled_value_is_not_echoed_beside_a_secret_in_a_compressed_response(public_client):
    """The domain value was echoed into the gzip-compressed map page beside the CSRF token (BREACH-shaped)."""
    r = public_client.get("/?domain=zzzEVILzzz", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 404
    compressed = r.headers.get("Content-Encoding") == "gzip"
    body = gzip.decompress(r.data).decode() if compressed else r.get_data(as_text=True)
    assert not (compressed and "zzzEVILzzz" in body and "csrf" in body.lower())
    ok = public_client.get("/?domain=imd&layer=count", headers={"Accept-Encoding": "gzip"})
    page = gzip.decompress(ok.data).decode() if ok.headers.get("Content-Encoding") == "gzip" else ok.get_data(True)
    assert ok.status_code == 200 and "zzzEVILzzz" not in page


@pytest.mark.parametrize("q,column", [("from=0000-01", "from"), ("to=9999-12", "to"),
                                      ("from=2000-12", "from"), ("compare_from=0001-01&compare_to=0001-02",
                                                                 "compare_from")])
def test_months_outside_the_plausible_range_are_refused(viewer_client, q, column):
    """Months 0000-01 and 9999-12 were accepted and made the default period unusable for everyone."""
    r = viewer_client.get(f"/api/v1/compare?{q}")
    assert r.status_code == 400 and r.get_json()["column"] == column, r.get_json()
    assert viewer_client.get("/api/v1/compare").status_code == 200


def test_a_viewers_404_names_no_analyst_only_layer(gridtown_app_config, users, sign_in, tmp_path):
    """A viewer asking for an unknown layer was told the ids of the analysts' risk-factor overlays."""
    from hotspots import cache
    from hotspots.overlays import add_overlay
    from web import create_app
    csv = tmp_path / "missing.csv"
    csv.write_text("code,value\nE01090000,3\nE01090001,5\n")
    ov = add_overlay(gridtown_app_config, csv, "code", "value", "Missing episodes (secret)", geography="lsoa21")
    cache.clear()
    try:
        app = create_app(gridtown_app_config, test_config={"TESTING": True, "WARM_UP": False})
        viewer = sign_in(app.test_client(), users["vic"])
        analyst = sign_in(app.test_client(), users["ana"])
        for url in ("/api/v1/layers/nosuch", "/?layer=nosuch", "/api/v1/downloads/nosuch.csv"):
            text = viewer.get(url).get_data(as_text=True)
            assert "overlay-" not in text and ov.id not in text, url
        assert viewer.get(f"/api/v1/layers/overlay-{ov.id}").status_code == 403
        assert analyst.get(f"/api/v1/layers/overlay-{ov.id}").status_code == 200
    finally:
        from hotspots.overlays import remove_overlay
        remove_overlay(gridtown_app_config, ov.id)
        cache.clear()
