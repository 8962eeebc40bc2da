"""Layouts at a phone, a tablet, a council laptop and a desktop size in headless Chromium (issue 13, item 1).

Each size is screenshotted to test-artifacts/layout-WxH.png (look at them) and its geometry asserted: on
tablet and laptop sizes no control (legend, layer list, zoom buttons) covers the drawn polygons; on a phone
the map takes most of the screen and the controls live in a drawer that works from the keyboard."""
from __future__ import annotations

from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = pytest.mark.browser

PATHS = "document.querySelectorAll('.leaflet-overlay-pane path').length"
READY = "document.body.dataset.state === 'ready' && document.body.dataset.fitted === '1'"
SIZES = [(390, 844), (768, 1024), (1366, 768), (1920, 1080)]

#: the union of the drawn polygons' boxes, and the boxes of every visible map control, in page pixels
GEOMETRY = """() => {
  const box = r => ({l: r.left, t: r.top, r: r.right, b: r.bottom, w: r.width, h: r.height});
  const paths = Array.from(document.querySelectorAll('.leaflet-overlay-pane path')).map(p => p.getBoundingClientRect())
    .filter(r => r.width > 0 && r.height > 0);
  const u = {l: Math.min(...paths.map(r => r.left)), t: Math.min(...paths.map(r => r.top)),
             r: Math.max(...paths.map(r => r.right)), b: Math.max(...paths.map(r => r.bottom))};
  const controls = Array.from(document.querySelectorAll('.leaflet-control')).filter(el => {
      const s = getComputedStyle(el); const r = el.getBoundingClientRect();
      return s.display !== 'none' && s.visibility !== 'hidden' && r.width > 0 && r.height > 0;
    }).map(el => ({cls: el.className, ...box(el.getBoundingClientRect())}));
  const map = box(document.querySelector('.leaflet-container').getBoundingClientRect());
  return {polygons: u, controls, map, vw: innerWidth, vh: innerHeight};
}"""


def _open(w, size, query=""):
    w.page.set_viewport_size({"width": size[0], "height": size[1]})
    w.page.goto(w.base + "/" + query)
    w.page.wait_for_function(f"{PATHS} >= 181", timeout=30000)
    w.page.wait_for_function(READY, timeout=60000)


def _overlap(a: dict, b: dict) -> float:
    """Area of the intersection of two boxes ({l, t, r, b})."""
    return max(0.0, min(a["r"], b["r"]) - max(a["l"], b["l"])) * max(0.0, min(a["b"], b["b"]) - max(a["t"], b["t"]))


def _clean(w):
    assert not w.console_errors, w.console_errors
    assert not w.csp_violations(), w.csp_violations()
    assert not w.external, f"requests left the server: {w.external}"


@pytest.mark.parametrize("size", SIZES[1:], ids=lambda s: f"{s[0]}x{s[1]}")
def test_controls_never_cover_the_analysed_area(page, size):
    _open(page, size)
    ARTIFACTS.mkdir(exist_ok=True)
    page.page.screenshot(path=str(ARTIFACTS / f"layout-{size[0]}x{size[1]}.png"))
    g = page.page.evaluate(GEOMETRY)
    poly = g["polygons"]
    # the whole area is drawn inside the map ...
    assert poly["l"] >= g["map"]["l"] - 1 and poly["r"] <= g["map"]["r"] + 1, (poly, g["map"])
    assert poly["t"] >= g["map"]["t"] - 1 and poly["b"] <= g["map"]["b"] + 1, (poly, g["map"])
    # ... and no control box covers any of it (legend, layer list, zoom, scale, attribution)
    names = [c["cls"] for c in g["controls"]]
    assert any("legend-box" in n for n in names) and any("leaflet-control-layers" in n for n in names), names
    for c in g["controls"]:
        assert _overlap(poly, c) == 0, f"{c['cls']} covers the analysed area: {c} over {poly}"
    # ... and the area still uses a fair part of the map (the padding is not the whole map)
    assert (poly["r"] - poly["l"]) * (poly["b"] - poly["t"]) > 0.25 * g["map"]["w"] * g["map"]["h"]
    # Share, print and downloads sit at the top of the side panel, visible without scrolling
    links = page.page.evaluate("""() => ['#print-link', '#share-link', 'a.dl-geojson', '#summary', '#controls']
        .map(s => document.querySelector(s).getBoundingClientRect().top)""")
    print_top, share_top, dl_top, summary_top, controls_top = links
    assert max(print_top, share_top, dl_top) < min(summary_top, controls_top)
    assert max(print_top, share_top, dl_top) < size[1]
    # area tooltips are drawn above every control (same stacking context, higher z-index)
    z = page.page.evaluate("""() => {
        const pane = document.querySelector('.tooltip-top-pane');
        const corner = document.querySelector('.leaflet-bottom.leaflet-right');
        return {parent: pane.parentElement === corner.parentElement.parentElement,
                pane: +getComputedStyle(pane).zIndex, corner: +getComputedStyle(corner).zIndex};
    }""")
    assert z["parent"] and z["pane"] > z["corner"], z
    page.page.hover(".leaflet-overlay-pane path.leaflet-interactive >> nth=30")
    page.page.wait_for_selector(".tooltip-top-pane .area-tooltip")
    _clean(page)


def test_phone_map_first_drawer_and_legend_by_keyboard(page):
    size = SIZES[0]
    _open(page, size)
    ARTIFACTS.mkdir(exist_ok=True)
    pg = page.page
    pg.screenshot(path=str(ARTIFACTS / "layout-390x844.png"))
    g = pg.evaluate(GEOMETRY)
    assert g["map"]["h"] >= 0.6 * size[1] and g["map"]["w"] >= size[0] - 1, g["map"]
    assert g["polygons"]["r"] - g["polygons"]["l"] > 0.5 * size[0]
    # the drawer starts closed: the panel is off screen and out of the tab order
    assert pg.evaluate("getComputedStyle(document.getElementById('panel')).visibility") == "hidden"
    assert pg.get_attribute("#drawer-toggle", "aria-expanded") == "false"
    # the legend starts collapsed behind its button
    assert pg.get_attribute("#legend-toggle", "aria-expanded") == "false"
    assert pg.evaluate("document.getElementById('legends').hidden") is True
    # keyboard only: Tab to the drawer button (first control after the skip link), Enter opens it
    pg.keyboard.press("Tab")
    pg.keyboard.press("Tab")
    assert pg.evaluate("document.activeElement.id") == "drawer-toggle"
    pg.keyboard.press("Enter")
    pg.wait_for_function("getComputedStyle(document.getElementById('panel')).visibility === 'visible'")
    assert pg.get_attribute("#drawer-toggle", "aria-expanded") == "true"
    pg.wait_for_function("document.activeElement.id === 'drawer-close'", timeout=2000)
    pg.wait_for_function("document.getElementById('panel').getBoundingClientRect().left >= 0")
    pg.screenshot(path=str(ARTIFACTS / "layout-390x844-drawer.png"))
    # the first things in the drawer are share, print and download
    order = pg.evaluate("""() => ['#print-link', '#controls', '#summary']
        .map(s => document.querySelector(s).getBoundingClientRect().top)""")
    assert order[0] < order[1] < order[2] and order[0] < size[1]
    pg.keyboard.press("Escape")
    pg.wait_for_function("getComputedStyle(document.getElementById('panel')).visibility === 'hidden'")
    assert pg.evaluate("document.activeElement.id") == "drawer-toggle"
    # the legend opens from the keyboard too
    pg.focus("#legend-toggle")
    pg.keyboard.press("Enter")
    assert pg.evaluate("document.getElementById('legends').hidden") is False
    assert "Hot spot, 99 %" in pg.inner_text("#legends")
    pg.screenshot(path=str(ARTIFACTS / "layout-390x844-legend.png"))
    _clean(page)
