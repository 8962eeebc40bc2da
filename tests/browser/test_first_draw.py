"""The first draw (issue 13's speed): the layers shown first are fetched once, by the page head's preload,
drawn first layer first, and the point clusterer is fetched only when incident points are shown."""
from __future__ import annotations

import pytest

from test_map_page import PATHS, READY, _clean, _open

pytestmark = pytest.mark.browser


def test_first_layers_come_from_the_preload_once_and_gistar_is_drawn_before_wards(page):
    requests, warnings = [], []
    page.page.on("request", lambda r: requests.append(r.url) if "/layers/" in r.url else None)
    page.page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
    # the moment each layer's paths appear, in order
    page.page.add_init_script("""
      window.__order = [];
      new MutationObserver(() => {
        const e = window.hotspots && window.hotspots.entries;
        if (!e) return;
        ['gistar', 'wards'].forEach(n => {
          if (e[n] && e[n].count && window.__order.indexOf(n) < 0) window.__order.push(n);
        });
      }).observe(document, {subtree: true, childList: true});
    """)
    _open(page)
    heads = page.page.eval_on_selector_all('link[rel="preload"][data-layer]', "ls => ls.map(l => l.href)")
    assert [h.split("/layers/")[1].split(".geojson")[0] for h in heads] == ["gistar", "wards"]
    for name in ("gistar", "wards"):  # one request each: the script's fetch is served by the preload
        assert len([u for u in requests if f"/layers/{name}.geojson" in u]) == 1, requests
    assert requests[:2] == heads
    assert not [w for w in warnings if "preload" in w.lower()], warnings
    assert page.page.evaluate("window.__order") == ["gistar", "wards"]
    assert page.page.evaluate(PATHS) == 161 + 20
    assert "Top hot spots" in page.page.inner_text("#summary")  # the panel followed the first draw
    assert page.page.evaluate("typeof L.markerClusterGroup") == "undefined"
    # a change of filters fetches with the new parameters (the preload served only the first load)
    page.page.select_option("#from", "2018-06")
    page.page.wait_for_function(READY)
    assert any("from=2018-06" in u and "/layers/gistar.geojson" in u for u in requests[2:]), requests
    _clean(page)


def test_points_fetch_the_clusterer_when_first_shown(page):
    page.sign_in(*page.analyst)  # lands on the map: wait for that load (a second navigation would abort its requests)
    page.page.wait_for_function(f"{PATHS} >= 161", timeout=30000)
    page.page.wait_for_function(READY, timeout=60000)
    assert page.page.evaluate("typeof L.markerClusterGroup") == "undefined"
    page.page.check("label:has-text('Incident points') input")
    page.page.wait_for_selector(".marker-cluster", timeout=30000)
    assert page.page.evaluate("typeof L.markerClusterGroup") == "function"
    css = page.page.eval_on_selector_all("link[rel=stylesheet]", "ls => ls.map(l => l.href)")
    assert any(h.endswith("MarkerCluster.Default.css") for h in css)
    _clean(page)
