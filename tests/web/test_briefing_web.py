"""The briefing route on Gridtown: /briefing.pdf and /briefing.png with the user's audience."""
from __future__ import annotations

import pytest
from pdf_tables import SMALL, change_count_cells, pdf_text, top_count_cells

pytest.importorskip("pypdf")

Q = "?category=violent-crime&from=2024-01&to=2024-03&permutations=999"
#: March against January: both periods have incidents, so the change table has rows
QC = "?category=violent-crime&from=2024-03&to=2024-03&compare_from=2024-01&compare_to=2024-01&permutations=999"


def test_analyst_briefing_pdf(client):
    r = client.get("/briefing.pdf" + Q + "&marking=OFFICIAL-SENSITIVE&organisation=Gridtown+CSP")
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    assert "attachment" in r.headers["Content-Disposition"]
    pages, text = pdf_text(r.data)
    assert pages == 4  # three months: a trend map, but too few for emerging hot spots (which says so)
    flat = " ".join(text.split())
    assert "Trend per area: rising, falling or steady" in flat
    assert "Emerging hot spots need 10 or more months; this period has 3." in flat
    assert "Hot spots of count: Violence and sexual offences, 2024-01 to 2024-03" in flat
    assert text.count("OFFICIAL-SENSITIVE") == 2 * pages and "Gridtown CSP" in flat
    assert "analysts (exact figures: do not publish)" in flat


def test_viewer_briefing_carries_only_suppressed_small_numbers(viewer_client, client):
    """Gridtown's counts are mostly 1-9: the viewer's tables show "<5" and never a count of 1-4, where the
    analyst's pack of the same view does show such counts (so the check can fail)."""
    r = viewer_client.get("/briefing.pdf" + QC)
    assert r.status_code == 200
    _, text = pdf_text(r.data)
    cells = top_count_cells(text) + change_count_cells(text)
    assert change_count_cells(text) and "<5" in cells
    assert not set(cells) & SMALL
    assert "viewers (protected figures, small numbers suppressed)" in " ".join(text.split())
    assert "OFFICIAL" in text.splitlines()  # the configuration's marking when the form gives none
    _, exact = pdf_text(client.get("/briefing.pdf" + QC).data)
    assert set(top_count_cells(exact) + change_count_cells(exact)) & SMALL


def test_public_visitor_gets_the_viewer_pack(public_client):
    r = public_client.get("/briefing.pdf" + Q)
    assert r.status_code == 200
    assert "viewers (protected figures" in " ".join(pdf_text(r.data)[1].split())


def test_briefing_png_and_errors(client):
    r = client.get("/briefing.png" + Q)
    assert r.status_code == 200 and r.mimetype == "image/png" and r.data[:4] == b"\x89PNG"
    bad = client.get("/briefing.pdf" + Q + "&marking=TOP-SECRET")
    assert bad.status_code == 400 and b"marking must be one of" in bad.data
    assert client.get("/briefing.docx" + Q).status_code == 404
    assert client.get("/briefing.pdf?weights=knn:99").status_code == 400  # the finite menus apply


def test_map_links_to_the_briefing(client):
    html = client.get("/").get_data(as_text=True)
    assert 'id="briefing-link"' in html and "Download briefing (PDF)" in html and "/briefing.pdf" in html


def test_csv_content_type_has_one_charset(client):
    r = client.get("/api/v1/downloads/count.csv" + Q)
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/csv; charset=utf-8"
