"""Every area tooltip leads with where the area is, in names people know (issue 13)."""
from __future__ import annotations

import re

import pytest

from test_map_page import _clean, _open, _shot

pytestmark = pytest.mark.browser

LSOA_PLACE = re.compile(r"^Wolverhampton \d{3}[A-Z] — .+ ward, (central|[a-z-]+) part(, by .+)?$")


def _hover_place(w, nth: int) -> str:
    """The place line of the tooltip over the middle of the ``nth`` drawn area (whichever path is on top there)."""
    box = w.page.locator(".leaflet-overlay-pane path.leaflet-interactive").nth(nth).bounding_box()
    w.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    w.page.wait_for_selector(".area-tooltip .tt-place")
    return w.page.inner_text(".area-tooltip .tt-place")


def test_gistar_and_grid_tooltips_lead_with_the_place(page):
    _open(page)
    place = _hover_place(page, 40)
    assert LSOA_PLACE.match(place), place
    # the tooltip's place is the hovered area's own label from the server
    labels = page.page.evaluate("""() => { const out = [];
        window.hotspots.entries['gistar'].group.eachLayer(g => g.eachLayer(l => out.push(l.feature.properties.place_label)));
        return out; }""")
    assert place in labels and all(LSOA_PLACE.match(x) for x in labels), labels[:3]
    _shot(page, "place-tooltip-gistar")
    page.page.goto(page.base + "/?show=grid_count&cell=500")
    page.page.wait_for_function("window.hotspots.entries['grid_count'] && window.hotspots.entries['grid_count'].count > 0",
                                timeout=60000)
    cell = _hover_place(page, 10)
    assert re.match(r"^Grid cell (mostly )?in .+ ward$", cell), cell
    _clean(page)
