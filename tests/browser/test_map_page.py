"""The map in a real headless Chromium against a real `hotspots serve` (Wolverhampton bundle).

Screenshots go to <repo>/test-artifacts/ (look at them)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = pytest.mark.browser

PATHS = "document.querySelectorAll('.leaflet-overlay-pane path').length"
READY = "document.body.dataset.state === 'ready'"


def _open(w, query=""):
    w.page.goto(w.base + "/" + query)
    w.page.wait_for_function(f"{PATHS} >= 161", timeout=30000)
    w.page.wait_for_function(READY, timeout=60000)


def _shot(w, name):
    ARTIFACTS.mkdir(exist_ok=True)
    w.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def _clean(w):
    assert not w.console_errors, w.console_errors
    assert not w.csp_violations(), w.csp_violations()
    assert not w.dialogs, w.dialogs
    assert not w.external, f"requests left the server: {w.external}"
    assert not w.failed, w.failed


def _legend_titles(w):
    return w.page.eval_on_selector_all("#legends .legend h3", "els => els.map(e => e.textContent)")


def test_map_draws_all_lsoas_offline_with_legend_and_wards(page):
    _open(page)
    n = page.page.evaluate(PATHS)
    assert n == 161 + 20  # LSOA Gi* polygons + ward outlines
    assert _legend_titles(page) == ["Getis-Ord Gi* hot and cold spots", "Ward boundaries"]
    labels = page.page.eval_on_selector_all(".ward-label", "els => els.map(e => e.textContent)")
    assert len(labels) == 20 and "St Peters" in labels
    attribution = page.page.inner_text(".leaflet-control-attribution")
    assert "Open Government Licence v3.0" in attribution and "Crown copyright" in attribution
    top = page.page.inner_text("#summary")
    assert "Top hot spots" in top and "Moran's I" in top and "ward" in top
    # counts in the panel text the page writes have the right plural ("1 incident", never "1 incidents" or
    # "spot(s)"); the server's "Parameters and why" messages are its own
    top = page.page.evaluate("""() => Array.from(document.querySelectorAll('#summary > :not(ul.messages)'))
        .map(e => e.innerText).join('\\n')""")
    assert "(s)" not in top and not re.search(r"\b1 (incidents|areas|hot spots|cold spots)\b", top), top
    assert re.search(r"\d+ hot spots? and \d+ cold spots? at 90 % confidence", top), top
    # the legend speaks plain words first, the statistic second, and says how Gi* ranks areas
    legend = page.page.inner_text("#legends")
    assert ("Hot spot, 99 %: this area and its neighbours together have far more incidents than chance would give"
            in legend), legend
    assert "Gi* scores the neighbourhood: an area with few incidents ranks high when its neighbours have many" in legend
    assert "Hot spot 99% confidence" in legend and "Not significant" in legend
    assert not re.search(r"\b1 areas\b", legend)
    # pattern as well as colour: cold spots are dotted on the map and in the legend, hot spots are not
    items = page.page.evaluate("window.hotspots.entries['gistar'].legend.items")
    cold = sum(i["n"] for i in items if i["label"].startswith("Cold spot"))
    dotted = page.page.evaluate("document.querySelectorAll('.leaflet-overlay-pane path[fill^=\"url(#hs-dots-\"]').length")
    assert cold > 0 and dotted == cold, (cold, dotted)
    assert page.page.evaluate("document.querySelectorAll('#legends .swatch.dots').length") == 3
    # a tooltip on hover shows area, ward, count and class
    page.page.hover(".leaflet-overlay-pane path.leaflet-interactive >> nth=40")
    page.page.wait_for_selector(".area-tooltip")
    tip = page.page.inner_text(".area-tooltip")
    assert "Ward" in tip and "Incidents" in tip and "Gi* z-score" in tip and "IMD 2025 decile" in tip
    assert "Gi* scores the neighbourhood" in tip  # the one-line "why is this area ranked here"
    _shot(page, "01-gistar-default")
    _clean(page)


def test_toggle_layers_lazy_loads_and_updates_legends(page):
    _open(page)
    requests = []
    page.page.on("request", lambda r: requests.append(r.url) if "/layers/" in r.url else None)
    page.page.check("label:has-text('LISA clusters') input")
    page.page.wait_for_function("document.querySelectorAll('#legends .legend').length === 3")
    assert any("/layers/lisa.geojson" in u for u in requests)
    page.page.uncheck("label:has-text('Gi* hot and cold spots') input")
    page.page.uncheck("label:has-text('Ward boundaries') input")
    page.page.check("label:has-text('IoD2025') input")
    page.page.wait_for_function("Array.from(document.querySelectorAll('#legends h3')).some(h => h.textContent.includes('decile'))")
    page.page.wait_for_function(READY)
    titles = _legend_titles(page)
    assert "Local Moran's I (LISA) clusters" in titles and not any("Gi*" in t for t in titles)
    assert any("Index of Multiple Deprivation" in t for t in titles)
    # ward names fade out (Leaflet removes them 200 ms after their layer)
    page.page.wait_for_function("document.querySelectorAll('.ward-label').length === 0", timeout=5000)
    assert "show=" in page.page.url and "iod2025" in page.page.url
    page.page.uncheck("label:has-text('LISA clusters') input")
    _shot(page, "02-imd2025-layer")
    page.page.check("label:has-text('LISA clusters') input")
    page.page.uncheck("label:has-text('IoD2025') input")
    _shot(page, "03-lisa-layer")
    _clean(page)


def test_changing_a_filter_updates_map_and_url(page):
    _open(page)
    page.page.select_option("#layer", "count")
    page.page.wait_for_function("Array.from(document.querySelectorAll('#legends h3')).some(h => h.textContent === 'Incident count')")
    page.page.select_option("#geography", "ward")
    page.page.wait_for_function(f"{PATHS} === 40", timeout=30000)  # 20 ward choropleth + 20 ward outlines
    page.page.wait_for_function(READY)
    assert "geography=ward" in page.page.url and "layer=count" in page.page.url
    fills = page.page.eval_on_selector_all(".leaflet-overlay-pane path[fill]:not([fill='none'])",
                                           "els => new Set(els.map(e => e.getAttribute('fill'))).size")
    assert fills >= 3
    shared = page.page.url
    _shot(page, "04-count-by-ward")
    # the URL is the state: opening it again gives the same view
    page.page.goto(shared)
    page.page.wait_for_function(f"{PATHS} === 40", timeout=30000)
    assert page.page.input_value("#geography") == "ward" and page.page.input_value("#layer") == "count"
    # significance control shows its cut-off
    page.page.goto(page.base + "/?significance=fdr")
    page.page.wait_for_function(READY, timeout=30000)
    page.page.wait_for_function("document.getElementById('cutoff').textContent.includes('Cut-off')")
    assert "tests" in page.page.inner_text("#cutoff")
    _clean(page)


def test_compare_two_periods(page):
    _open(page, "?layer=change&from=2018-06&to=2018-06")
    page.page.wait_for_selector("#compare-sentence")
    sentence = page.page.inner_text("#compare-sentence")
    assert "2018-05" in sentence and "2018-06" in sentence and "%" in sentence
    assert "Change between periods" in _legend_titles(page)  # classed by the test of change (issue 10)
    assert "95 % CI" in sentence and ("p =" in sentence or "p <" in sentence)
    rows = page.page.evaluate("document.querySelectorAll('table.cmp tbody tr').length")
    assert rows >= 5
    _shot(page, "05-period-comparison")
    _clean(page)


def test_compare_against_an_empty_baseline_says_so(page):
    """A baseline with no incidents: the table does not call every area "+N" (an increase from nothing)."""
    _open(page, "?layer=change&from=2018-06&to=2018-06&compare_from=2018-01&compare_to=2018-01")
    page.page.wait_for_selector("#compare-sentence")
    assert "no data in the baseline (2018-01)" in page.page.inner_text("#compare-sentence")
    cells = page.page.eval_on_selector_all("table.cmp tbody tr td:nth-child(5)", "els => els.map(e => e.textContent)")
    assert cells and not any(c.startswith("+") for c in cells), cells
    _clean(page)


def test_download_geojson_and_validate(page):
    _open(page, "?layer=gistar&significance=fdr")
    with page.page.expect_download() as dl:
        page.page.click("a.dl-geojson")
    d = dl.value
    name = d.suggested_filename
    assert name.endswith(".geojson") and "gistar" in name and "violent-crime" in name and "2018-06" in name and "fdr" in name
    fc = json.loads(Path(d.path()).read_text(encoding="utf-8"))
    assert fc["type"] == "FeatureCollection" and "crs" not in fc
    assert len(fc["features"]) == 161
    assert any("Open Government Licence" in a for a in fc["attribution"])
    assert fc["metadata"]["method"]["weights"] == "queen" and fc["metadata"]["parameters"]["significance"] == "fdr"
    for f in fc["features"]:
        assert f["geometry"]["type"] in ("Polygon", "MultiPolygon")
        assert {"code", "name", "ward_name", "count", "gi_z", "gi_p", "gi_label", "imd_decile"} <= set(f["properties"])
    xs = [c[0] for f in fc["features"] if f["geometry"]["type"] == "Polygon" for c in f["geometry"]["coordinates"][0]]
    assert min(xs) > -2.4 and max(xs) < -1.9  # longitudes first (RFC 7946)
    _clean(page)


def test_suppressed_areas_are_hatched_and_labelled(page):
    """Public viewers' count map: suppressed areas carry the SVG hatch pattern (defined once in the page), not
    a flat grey, and the legend and tooltip say in words that they are hidden, not "not significant"."""
    _open(page, "?layer=count&show=count,wards")
    pg = page.page
    assert pg.evaluate("document.querySelectorAll('pattern#hs-hatch-suppressed').length") == 1
    hatched = pg.evaluate("document.querySelectorAll('.leaflet-overlay-pane path[fill=\"url(#hs-hatch-suppressed)\"]').length")
    items = pg.evaluate("window.hotspots.entries['count'].legend.items")
    sup = [i for i in items if i["label"].startswith("Suppressed")]
    assert len(sup) == 1 and sup[0]["n"] > 0, items
    assert hatched == sup[0]["n"]
    li = pg.inner_text("#legends li.suppressed-item")
    assert "Hidden to protect privacy" in li and "not the same as" in li and "Suppressed (small number)" in li
    assert pg.evaluate("document.querySelectorAll('#legends li.suppressed-item .swatch.hatch').length") == 1
    # the hatch is dark stripes on white, far from the light "not significant" grey
    stripe = pg.get_attribute("#hs-hatch-suppressed line", "stroke")
    assert stripe.lower() == "#4d4d4d"
    pg.hover('.leaflet-overlay-pane path[fill="url(#hs-hatch-suppressed)"] >> nth=0')
    pg.wait_for_selector(".area-tooltip")
    assert "Hidden to protect privacy" in pg.inner_text(".area-tooltip")
    _shot(page, "07-count-suppressed-hatched")
    _clean(page)


def test_printable_view(page):
    page.page.set_viewport_size({"width": 1123, "height": 794})  # A4 landscape at 96 dpi
    page.page.goto(page.base + "/print?layer=gistar&show=gistar,wards&from=2018-06&to=2018-06")
    page.page.wait_for_function(f"{PATHS} >= 181", timeout=30000)
    page.page.wait_for_function(READY, timeout=30000)
    assert page.page.evaluate("document.querySelectorAll('#legends .legend').length") == 2
    assert "Open Government Licence" in page.page.inner_text("footer.attribution")
    # title, a subtitle in words (not a raw query string), the date, north arrow and scale bar
    sub = page.page.inner_text("#print-subtitle")
    assert "June 2018" in sub and "Gi*" in sub and "=" not in sub and "&" not in sub, sub
    params = page.page.inner_text("#print-params")
    assert "=" not in params.replace("α =", "") and "&" not in params and "queen" in params, params
    assert re.fullmatch(r"Produced \d{1,2} \w+ \d{4}", page.page.inner_text(".print-date")), page.page.inner_text(".print-date")
    assert page.page.evaluate("document.querySelector('img.north-arrow').naturalWidth") > 0
    assert page.page.is_visible(".leaflet-control-scale")
    marks = page.page.eval_on_selector_all(".marking", "els => els.filter(e => !e.hidden).map(e => e.textContent)")
    assert marks and all(m.strip() == "OFFICIAL" for m in marks), marks  # the configured [report] marking
    # one attribution block: the Open Government Licence line is printed once, not per dataset or control
    body = page.page.inner_text("body")
    assert body.count("Open Government Licence") == 1, body
    _shot(page, "06-print-view")
    pdf = ARTIFACTS / "06-print-view.pdf"
    page.page.pdf(path=str(pdf), landscape=True, format="A4", print_background=True)
    assert pdf.stat().st_size > 10_000
    _clean(page)


def test_print_view_shows_the_protective_marking_from_the_state(page):
    """The server puts the marking in the page state (``state.marking``); it is printed at the top and the
    bottom of the sheet. Here the state is given one on its way to the browser."""
    def add_marking(route):
        resp = route.fetch()
        html = resp.text()
        head, rest = html.split('<script id="hotspots-state" type="application/json"', 1)
        attrs, rest = rest.split(">", 1)
        data, tail = rest.split("</script>", 1)
        st = json.loads(data)
        st["marking"] = "OFFICIAL-SENSITIVE"
        route.fulfill(response=resp, body=head + '<script id="hotspots-state" type="application/json"' + attrs + ">" +
                      json.dumps(st) + "</script>" + tail)
    page.page.route("**/print?*", add_marking)
    page.page.goto(page.base + "/print?layer=gistar&show=gistar,wards")
    page.page.wait_for_function(f"{PATHS} >= 181", timeout=30000)
    page.page.wait_for_function(READY, timeout=30000)
    marks = page.page.eval_on_selector_all(".marking", "els => els.filter(e => !e.hidden).map(e => e.textContent)")
    assert marks == ["OFFICIAL-SENSITIVE", "OFFICIAL-SENSITIVE"]
    _shot(page, "08-print-marking")
    _clean(page)
