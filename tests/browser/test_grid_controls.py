"""The grid and kernel density controls of the map form (issue 11) in a real headless Chromium: shown for grid
layers only, labelled, keyboard operable, round-tripped in the URL, drawn on a canvas, usable at 390 px."""
from __future__ import annotations

from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = pytest.mark.browser

READY = "document.body.dataset.state === 'ready'"


def drawn(layer: str, *parts: str) -> str:
    """The layer is on screen, loaded with every query part in ``parts``."""
    cond = " && ".join(f"e.loadedKey.includes('{p}')" for p in parts) or "true"
    return (f"() => {{ const e = window.hotspots && window.hotspots.entries['{layer}']; "
            f"return !!(e && e.drawnAt && e.loadedKey && {cond}); }}")


def visible_grid_controls(pg) -> list[str]:
    return pg.evaluate("""() => Array.from(document.querySelectorAll('#grid-controls select'))
        .filter(s => s.offsetParent !== null && !s.disabled).map(s => s.id)""")


def clean(w):
    assert not w.console_errors, w.console_errors
    assert not w.csp_violations(), w.csp_violations()
    assert not w.external, f"requests left the server: {w.external}"


def test_grid_controls_follow_the_layer_and_round_trip_in_the_url(page):
    pg = page.page
    pg.goto(page.base + "/?category=violent-crime")
    pg.wait_for_function(READY, timeout=60000)
    assert pg.evaluate("document.getElementById('grid-controls').hidden") is True  # an area layer: no grid controls
    pg.select_option("#layer", "grid_gistar")
    pg.wait_for_function(drawn("grid_gistar", "cell=250"), timeout=60000)
    assert visible_grid_controls(pg) == ["grid-cell", "grid-shape", "grid-optimized", "grid-weights"]
    for sel in visible_grid_controls(pg):  # every control has a visible label naming it
        assert pg.inner_text(f"label[for={sel}]").strip()
    assert pg.evaluate("document.getElementById('weights').disabled")  # the area statistics' weights are off
    assert "layer=grid_gistar" in pg.url and "cell=250" in pg.url
    # keyboard: focus the cell size and step to the next size with the arrow key
    pg.focus("#grid-cell")
    pg.keyboard.press("ArrowDown")
    pg.wait_for_function(drawn("grid_gistar", "cell=500"), timeout=60000)
    assert "cell=500" in pg.url
    pg.select_option("#grid-optimized", "1")
    pg.wait_for_function(drawn("grid_gistar", "optimized=1"), timeout=120000)
    assert "The distance band chosen is" in pg.inner_text("#legends")
    assert " cells" in pg.inner_text("#legends") and " areas" not in pg.inner_text("#legends")  # counts of cells
    # cold spots on the canvas are filled with a canvas pattern of dots: an SVG pattern ("url(#...)") cannot fill a
    # canvas, and the cells were drawn grey (seen in a screenshot of the optimized map)
    fills = pg.evaluate("""() => { const out = {canvas: 0, svgUrl: 0, pattern: 0, cold: 0};
        window.hotspots.entries['grid_gistar'].group.eachLayer(gj => gj.eachLayer(l => {
          if (l.options.renderer instanceof L.Canvas) out.canvas++;
          if (/^Cold spot/.test(l.feature.properties.class_label)) {
            out.cold++;
            if (typeof l.options.fillColor === 'string' && l.options.fillColor.startsWith('url(')) out.svgUrl++;
            if (l.options.fillColor instanceof CanvasPattern) out.pattern++;
          } }));
        return out; }""")
    n_cells = pg.evaluate("window.hotspots.entries['grid_gistar'].count")
    assert fills["canvas"] == n_cells > 300 and fills["cold"] > 0 and fills["svgUrl"] == 0 and fills["pattern"] == fills["cold"], fills
    pg.select_option("#grid-cell", "250")  # a KDE's bandwidth (400 m by default) may not be below the cell size
    pg.wait_for_function(drawn("grid_gistar", "cell=250", "optimized=1"), timeout=120000)
    # KDE: bandwidth and kernel instead of the neighbours
    pg.select_option("#layer", "kde")
    pg.wait_for_function(drawn("kde", "cell=250"), timeout=60000)
    assert visible_grid_controls(pg) == ["grid-cell", "grid-shape", "grid-bandwidth", "grid-kernel", "grid-variable"]
    pg.select_option("#grid-bandwidth", "500")
    pg.select_option("#grid-kernel", "gaussian")
    pg.wait_for_function(drawn("kde", "cell=250", "bandwidth=500", "kernel=gaussian"), timeout=60000)
    assert pg.locator(".leaflet-overlay-pane canvas").count() >= 1  # grid cells on one canvas, not as SVG paths
    # a cell under the pointer shows its tooltip (bound once to the layer, found by the canvas's hit test)
    box = pg.locator(".leaflet-overlay-pane canvas").first.bounding_box()
    pg.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    pg.mouse.move(box["x"] + box["width"] / 2 + 3, box["y"] + box["height"] / 2 + 3)
    pg.wait_for_selector(".area-tooltip", timeout=10000)
    assert "Incidents per km²" in pg.inner_text(".area-tooltip") and "Cell" in pg.inner_text(".area-tooltip")
    shared = pg.url
    assert all(p in shared for p in ("layer=kde", "cell=250", "bandwidth=500", "kernel=gaussian"))
    # the URL is the state: opening it again restores every grid control
    pg.goto(shared)
    pg.wait_for_function(drawn("kde", "bandwidth=500"), timeout=60000)
    assert [pg.input_value(s) for s in ("#layer", "#grid-cell", "#grid-bandwidth", "#grid-kernel")] == \
        ["kde", "250", "500", "gaussian"]
    # a dual KDE: incidents per 1,000 residents (the test city has a population table)
    pg.select_option("#grid-variable", "rate")
    pg.wait_for_function(drawn("kde", "variable=rate"), timeout=60000)
    assert "Incidents per 1,000 residents" in pg.inner_text("#legends") and "dual KDE" in pg.inner_text("#legends")
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / "grid-kde-controls.png"))
    pg.goto(shared)  # back to the density per km² of the shared link
    pg.wait_for_function(drawn("kde", "bandwidth=500"), timeout=60000)
    # back to an area layer: the grid controls hide and leave the request alone
    pg.select_option("#layer", "gistar")
    pg.wait_for_function("document.getElementById('grid-controls').hidden === true")
    assert not pg.evaluate("document.getElementById('weights').disabled")
    clean(page)


def test_grid_controls_fit_a_phone(page):
    pg = page.page
    pg.set_viewport_size({"width": 390, "height": 844})
    pg.goto(page.base + "/?layer=kde&cell=250&bandwidth=400&category=violent-crime")
    pg.wait_for_function(drawn("kde", "cell=250"), timeout=60000)
    pg.click("#drawer-toggle")
    pg.wait_for_function("getComputedStyle(document.getElementById('panel')).visibility === 'visible'")
    pg.locator("#grid-bandwidth").scroll_into_view_if_needed()
    boxes = pg.evaluate("""() => Array.from(document.querySelectorAll('#grid-controls select'))
        .filter(s => s.offsetParent !== null).map(s => { const r = s.getBoundingClientRect();
        return {id: s.id, l: r.left, r: r.right, h: r.height}; })""")
    assert [b["id"] for b in boxes] == ["grid-cell", "grid-shape", "grid-bandwidth", "grid-kernel", "grid-variable"]
    assert all(b["l"] >= 0 and b["r"] <= 390 and b["h"] >= 20 for b in boxes), boxes
    pg.focus("#grid-kernel")
    pg.keyboard.press("ArrowDown")  # quartic → gaussian, by keyboard on a phone too
    pg.wait_for_function(drawn("kde", "kernel=gaussian"), timeout=60000)
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / "grid-controls-390.png"))
    clean(page)
