"""Map and print pages: offline assets only, state in the URL, attribution and police.uk note, HTML errors."""
from __future__ import annotations

import html as html_lib
import json
import re

import pytest

EXTERNAL = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.I)


def _state(html: str) -> dict:
    m = re.search(r'<script id="hotspots-state" type="application/json"[^>]*>(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


@pytest.mark.parametrize("url", ["/", "/print", "/?layer=lisa&geography=ward", "/?layer=count&classes=fisherjenks",
                                 "/?layer=change&from=2024-03&to=2024-03", "/?layer=wards"])
def test_pages_reference_no_external_asset(client, url):
    r = client.get(url)
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    html = r.get_data(as_text=True)
    assert not EXTERNAL.search(html), EXTERNAL.search(html).group(0)
    assert "cdn." not in html and "jsdelivr" not in html and "cloudflare" not in html
    for src in re.findall(r'<script[^>]*src="([^"]+)"', html) + re.findall(r'<link[^>]*href="([^"]+)"', html):
        if src.startswith("data:"):
            continue
        if src.startswith("/api/v1/layers/"):  # the layers shown first, preloaded from this server
            src = html_lib.unescape(src)
        else:
            assert src.startswith("/static/"), src
        asset = client.get(src)
        assert asset.status_code == 200, src
        asset.close()


def test_map_page_has_attribution_note_and_state(client):
    html = client.get("/?layer=lisa&significance=fdr&from=2024-02&to=2024-03").get_data(as_text=True)
    assert "Open Government Licence v3.0" in html and "Crown copyright" in html
    assert "snapped to anonymous map points" in html
    st = _state(html)
    assert st["params"]["layer"] == "lisa" and st["params"]["significance"] == "fdr"
    assert st["params"]["from"] == "2024-02" and st["show"] == ["lisa", "wards"]
    assert any("Open Government Licence" in a for a in st["attribution"])
    assert {l["name"] for l in st["layers"]} >= {"count", "rate", "eb_rate", "gistar", "lisa", "change", "wards"}
    assert 'selected>2024-02</option>' in html  # the controls show the URL state


def test_folium_map_uses_local_leaflet(client):
    html = client.get("/").get_data(as_text=True)
    assert re.search(r'<script nonce="[^"]+" src="/static/vendor/leaflet/leaflet.js">', html)
    assert "L.map(" in html and "jquery" not in html.lower() and "bootstrap" not in html.lower()
    lic = client.get("/static/vendor/leaflet/LICENSE")
    assert b"BSD" in lic.data
    lic.close()


@pytest.mark.parametrize("url,status,text", [
    ("/?from=2024-99", 400, "YYYY-MM"), ("/?layer=nope", 404, "unknown layer"),
    ("/?category=unicorns", 404, "unknown category"), ("/?from=2024-03&to=2024-01", 400, "after"),
    ("/print?geography=county", 404, "unknown geography"), ("/?show=gistar,nope", 404, "unknown layer"),
])
def test_page_errors_are_html_4xx(client, url, status, text):
    r = client.get(url)
    assert r.status_code == status and r.mimetype == "text/html"
    assert text in r.get_data(as_text=True)


def test_html_page_is_gzipped(client):
    r = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert r.headers["Content-Encoding"] == "gzip"


def test_never_debug(app):
    assert app.debug is False
