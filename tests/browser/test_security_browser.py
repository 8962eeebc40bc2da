"""Trust in a real browser: the sign-in flow, roles, no CSP violations on any page, free text (area
names, overlay labels, police.uk Location strings) rendered as text with no script run, and uploads."""
from __future__ import annotations

import json
import re

import pytest


pytestmark = pytest.mark.browser

PATHS = "document.querySelectorAll('.leaflet-overlay-pane path').length"
READY = "document.body.dataset.state === 'ready'"
INJECTED = "document.querySelectorAll('img[src=\"x\"], img[src$=\"/x\"]').length"


def _no_script_ran(w):
    assert w.page.evaluate("window.__xss === undefined"), "the payload ran"
    assert w.page.evaluate(INJECTED) == 0, "an element was injected"
    assert not w.dialogs, w.dialogs


def _clean(w):
    assert not w.csp_violations(), w.csp_violations()
    assert not [e for e in w.console_errors if "Content Security Policy" in e or "Content-Security-Policy" in e]
    assert not w.console_errors, w.console_errors
    assert not w.external, w.external


def test_pages_have_csp_and_no_violations(page):
    resp = page.page.goto(page.base + "/")
    csp = resp.headers["content-security-policy"]
    assert "'nonce-" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
    page.page.wait_for_function(f"{PATHS} >= 161", timeout=30000)
    page.page.wait_for_function(READY, timeout=60000)
    # swatches painted through the CSSOM (no inline style attributes allowed)
    bg = page.page.eval_on_selector("#legends .swatch", "e => getComputedStyle(e).backgroundColor")
    assert bg and bg != "rgba(0, 0, 0, 0)"
    page.page.goto(page.base + "/print?layer=gistar")
    page.page.wait_for_function(READY, timeout=60000)
    page.page.goto(page.base + "/login")
    _clean(page)


def test_public_visitor_is_a_viewer_with_suppressed_counts(page):
    page.page.goto(page.base + "/?layer=count")
    page.page.wait_for_function(READY, timeout=60000)
    assert "Public view" in page.page.inner_text(".account")
    titles = page.page.eval_on_selector_all("#legends .legend li", "els => els.map(e => e.textContent)")
    assert any("Suppressed" in t for t in titles)
    # the risk-factor overlay is not offered; incident records are refused
    assert page.page.evaluate("window.hotspots.state.layers.every(l => l.kind !== 'overlay')")
    r = page.page.request.get(page.base + "/api/v1/incidents")
    assert r.status == 403 and r.json()["ok"] is False
    _clean(page)


def test_xss_in_area_name_renders_as_text(page):
    """Plant a hostile area name (and ward name) in the layer the page fetches; hover and open the popup."""
    def fulfil(route):
        resp = route.fetch()
        fc = resp.json()
        for f in fc["features"]:
            f["properties"]["name"] = page.xss_label
            f["properties"]["ward_name"] = page.xss_label
        route.fulfill(response=resp, body=json.dumps(fc))
    page.page.route("**/api/v1/layers/gistar.geojson*", fulfil)
    page.page.goto(page.base + "/")
    page.page.wait_for_function(f"{PATHS} >= 161", timeout=30000)
    page.page.wait_for_function(READY, timeout=60000)
    page.page.hover(".leaflet-overlay-pane path.leaflet-interactive >> nth=40")
    page.page.wait_for_selector(".area-tooltip")
    assert page.xss_label in page.page.inner_text(".area-tooltip")  # shown as text
    page.page.click(".leaflet-overlay-pane path.leaflet-interactive >> nth=40")
    page.page.wait_for_selector(".leaflet-popup-content")
    assert page.xss_label in page.page.inner_text(".leaflet-popup-content")
    page.page.wait_for_timeout(300)
    _no_script_ran(page)
    _clean(page)


def test_login_flow_analyst_sees_overlay_label_as_text(page):
    page.page.goto(page.base + "/upload")  # a public visitor is sent to sign in
    assert "/login?next=/upload" in page.page.url
    page.sign_in("nobody", "wrong-password-1")
    assert "wrong username or password" in page.page.inner_text(".error-banner")
    assert page.console_errors == ["Failed to load resource: the server responded with a status of 401 (UNAUTHORIZED)"]
    page.console_errors.clear()
    page.sign_in(*page.analyst)
    assert page.page.url.startswith(page.base + "/") and "/login" not in page.page.url
    assert "Signed in as" in page.page.inner_text(".account") and page.analyst[0] in page.page.inner_text(".account")
    page.page.wait_for_function(READY, timeout=60000)
    # the overlay with the hostile label: in the layer control, the layer <select> and its legend
    control = page.page.inner_text(".leaflet-control-layers")
    assert page.xss_label in control
    opts = page.page.eval_on_selector_all("#layer option", "els => els.map(e => e.textContent)")
    assert page.xss_label in opts
    page.page.check(".leaflet-control-layers-overlays label:has-text('onerror') input")
    page.page.wait_for_function("Array.from(document.querySelectorAll('#legends h3')).some(h => h.textContent.includes('onerror'))")
    page.page.wait_for_function(READY, timeout=60000)
    # hover an overlay polygon that nothing covers: its tooltip title is the hostile label
    i = page.page.evaluate("""() => Array.from(document.querySelectorAll('.leaflet-overlay-pane path.leaflet-interactive'))
        .findIndex(p => { const b = p.getBoundingClientRect(); const x = b.left + b.width / 2, y = b.top + b.height / 2;
                          return document.elementFromPoint(x, y) === p; })""")
    assert i >= 0
    page.page.hover(f".leaflet-overlay-pane path.leaflet-interactive >> nth={i}")
    page.page.wait_for_selector(".area-tooltip")
    assert "onerror" in page.page.inner_text(".area-tooltip")
    page.page.wait_for_timeout(300)
    _no_script_ran(page)
    r = page.page.request.get(page.base + "/api/v1/incidents?limit=2")
    assert r.status == 200 and r.json()["incidents"][0]["longitude"] is not None
    # sign out (a POST with the CSRF token from the page)
    with page.page.expect_navigation():
        page.page.click(".account button")
    assert "Public view" in page.page.inner_text(".account")
    _clean(page)


def test_upload_through_the_browser_report_shows_location_as_text(page, tmp_path):
    page.sign_in(*page.analyst, then="/upload")
    assert page.page.url.endswith("/upload")
    f = tmp_path / "street.csv"
    f.write_text("Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,"
                 "Crime type,Last outcome category,Context\n"
                 f'b1,2018-04,WMP,WMP,-2.1276,52.5866,"{page.xss_label.replace(chr(34), chr(39))}",,,Violence and sexual offences,,\n'
                 f'b2,2018-04,WMP,WMP,abc,52.5866,"{page.xss_label.replace(chr(34), chr(39))}",,,Violence and sexual offences,,\n')
    page.page.set_input_files("#file", str(f))
    with page.page.expect_navigation():
        page.page.click("#upload-form button[type=submit]")
    # 202: the job page, which reloads itself until the worker has ingested the file, then the report
    page.page.wait_for_url(re.compile(r"/uploads/\d+$"), timeout=60000)
    assert "/uploads/" in page.page.url
    assert page.page.inner_text("#r-accepted") == "1" and page.page.inner_text("#r-rejected") == "1"
    assert "onerror" in page.page.inner_text("#rejects")  # the rejected row, as text
    _no_script_ran(page)
    _clean(page)
