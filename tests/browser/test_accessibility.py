"""Accessibility of the map and print pages in headless Chromium (issue 13, item 5).

axe-core (vendored in tests/browser/vendor/axe-core, MPL-2.0) is evaluated into the page from that local
file (never a CDN; the page's Content-Security-Policy stays on) and must find no serious or critical
violation on the map page as the public sees it and as an analyst sees it, on the hatched count map and on
the print page. The keyboard reaches every control and shows where the focus is."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
PATHS = "document.querySelectorAll('.leaflet-overlay-pane path').length"
READY = "document.body.dataset.state === 'ready'"
#: WCAG 2.0/2.1 A and AA rules (colour contrast included) and axe's best practices
RUN = """async () => {
  const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']},
                                     resultTypes: ['violations']});
  return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                 nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' :: ' + n.failureSummary)}));
}"""


def _axe(w) -> list[dict]:
    w.page.evaluate(AXE.read_text(encoding="utf-8"))  # the DevTools protocol, not a <script>: CSP stays strict
    return w.page.evaluate(RUN)


def _serious(violations: list[dict]) -> list[dict]:
    return [v for v in violations if v["impact"] in ("serious", "critical")]


def _open(w, path: str, n: int = 161) -> None:
    w.page.goto(w.base + path)
    w.page.wait_for_function(f"{PATHS} >= {n}", timeout=30000)
    w.page.wait_for_function(READY, timeout=60000)


@pytest.mark.parametrize("path", ["/", "/?layer=count&show=count,wards", "/?layer=lisa&show=lisa,wards"],
                         ids=["gistar", "count-hatched", "lisa"])
def test_map_page_has_no_serious_axe_violations_public(page, path):
    _open(page, path)
    found = _axe(page)
    assert not _serious(found), json.dumps(_serious(found), indent=1)
    assert not page.csp_violations()


def test_map_page_has_no_serious_axe_violations_analyst(page):
    page.sign_in(*page.analyst)
    _open(page, "/?layer=gistar")
    assert "Signed in as" in page.page.inner_text(".account")
    found = _axe(page)
    assert not _serious(found), json.dumps(_serious(found), indent=1)


def test_phone_drawer_open_has_no_serious_axe_violations(page):
    page.page.set_viewport_size({"width": 390, "height": 844})
    _open(page, "/")
    page.page.click("#drawer-toggle")
    page.page.wait_for_function("document.activeElement.id === 'drawer-close'")
    found = _axe(page)
    assert not _serious(found), json.dumps(_serious(found), indent=1)


def test_print_page_has_no_serious_axe_violations(page):
    page.page.set_viewport_size({"width": 1123, "height": 794})
    _open(page, "/print?layer=gistar&show=gistar,wards", n=181)
    found = _axe(page)
    assert not _serious(found), json.dumps(_serious(found), indent=1)


def test_keyboard_reaches_every_control_with_a_visible_focus(page):
    _open(page, "/")
    pg = page.page
    wanted = pg.evaluate("""() => Array.from(document.querySelectorAll(
        '#panel select, #panel input, #panel a[href], #panel button, .leaflet-control-layers input, #legend-toggle,' +
        '.leaflet-control-zoom a'))
      .filter(el => el.offsetParent !== null && !el.disabled).map(el => el.id || el.getAttribute('class') || el.textContent.trim())""")
    reached, rings = set(), []
    for _ in range(len(wanted) + 40):
        pg.keyboard.press("Tab")
        info = pg.evaluate("""() => { const el = document.activeElement; const s = getComputedStyle(el);
            return {key: el.id || el.getAttribute('class') || el.textContent.trim(), ring: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2};
        }""")
        reached.add(info["key"])
        rings.append(info)
    missing = [k for k in wanted if k not in reached]
    assert not missing, f"not reachable by Tab: {missing}"
    without = [r["key"] for r in rings if not r["ring"] and r["key"] not in ("", "map-page")]
    assert not without, f"no visible focus ring on: {without}"
