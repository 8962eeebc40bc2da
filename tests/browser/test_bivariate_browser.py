"""The bivariate view and the briefing links in a real headless Chromium (Wolverhampton bundle)."""
from __future__ import annotations

import json

import pytest
from test_accessibility import _axe, _serious
from test_map_page import _clean, _open, _shot

pytestmark = pytest.mark.browser


def test_bivariate_map_draws_its_legend_square_accessibly(page):
    _open(page, "?layer=bivariate&show=bivariate,wards")
    cells = page.page.eval_on_selector_all(
        ".bivariate-square .bv-cell", "els => els.map(e => [getComputedStyle(e).backgroundColor, e.textContent])")
    assert len(cells) == 9 and len({c[0] for c in cells}) == 9  # nine painted colours
    assert sum(int(c[1]) for c in cells) == 161  # every LSOA has both classes
    _shot(page, "bivariate-1366")
    found = _axe(page)
    assert not _serious(found), json.dumps(_serious(found), indent=1)
    _clean(page)


def test_briefing_links_follow_the_view_and_the_marking(page):
    _open(page, "?category=violent-crime")
    page.page.select_option("#briefing-marking", "OFFICIAL-SENSITIVE")
    href = page.page.get_attribute("#briefing-link", "href")
    assert href.startswith(page.base + "/briefing.pdf?") and "category=violent-crime" in href
    assert "marking=OFFICIAL-SENSITIVE" in href
    r = page.page.request.get(href)
    assert r.status == 200 and r.headers["content-type"] == "application/pdf" and r.body()[:5] == b"%PDF-"
    _clean(page)
