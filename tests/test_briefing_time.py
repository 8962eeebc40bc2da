"""The briefing pack's emerging-hot-spot and trend pages, on a synthetic two-year Gridtown (issue 13).

The layers themselves are tested in tests/test_kinds_time.py; here: the pages are there when the period has
enough months (and their text can be read back), left out with one line saying why when it has not, and a
viewer's pack prints no small count."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import numpy as np
import pytest
from click.testing import CliRunner

from hotspots.request import Audience, month_range
from pdf_tables import SMALL, change_count_cells, pdf_text, top_count_cells
from synthetic_bundle import N, build, cell_centre, ingested, lsoa_code

pytest.importorskip("pypdf")

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
MONTHS = month_range("2022-01", "2023-12")
#: areas with one incident in the two years: small numbers a viewer's pack must never print
QUIET = {(3, 0), (3, 1)}


def planted() -> dict[tuple[int, int, str], int]:
    """(row, column, month) -> incidents: Poisson background, a south-west corner heating up through 2023, two quiet
    areas with a single incident."""
    rng = np.random.default_rng(11)
    plan = {}
    for t, month in enumerate(MONTHS):
        for i in range(N):
            for j in range(N):
                if (i, j) in QUIET:
                    k = int(t == 15)
                else:
                    k = int(rng.poisson(4)) + (3 * max(0, t - 12) if i < 2 and j < 2 else 0)
                plan[(i, j, month)] = k
    return plan


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    rows = []
    for (i, j, month), k in planted().items():
        x, y = cell_centre(i, j)
        rows += [(f"{i}{j}-{month}-{q}", month, x - 200 + (q * 37) % 400, y - 200 + (q * 53) % 400,
                  "Violence and sexual offences") for q in range(k)]
    return ingested(build(tmp_path_factory.mktemp("gridtown-briefing")), "two-years.csv", rows)


def _req(config, **args):
    from hotspots import pipeline
    return pipeline.parse(config, {"category": "violent-crime", "from": "2023-01", "to": "2023-12",
                                   "permutations": "99", **args}, "gistar", free=True)


def test_a_year_gets_emerging_and_trend_pages_readable_as_text(city):
    from hotspots import pipeline
    from hotspots.briefing import briefing_pdf, compose
    from dataclasses import replace
    req = _req(city)
    b = compose(city, req, Audience.ANALYST, now=NOW)
    assert b.time_notes == [] and [m.layer.name for m in b.time_maps] == ["emerging", "trend"]
    pages, text = pdf_text(briefing_pdf(b))
    assert pages == 5
    flat = " ".join(text.split())
    assert "Emerging hot spots: how each area's hot or cold spot changed over the period" in flat
    assert "Trend per area: rising, falling or steady over the period" in flat
    for kind in ("emerging", "trend"):  # every class some area has, with its plain words, as the layer says
        layer = pipeline.build_layer(city, replace(req, layer=kind), Audience.ANALYST)
        shown = [i for i in layer.legend["items"] if i["n"]]
        assert shown
        for item in shown:
            n = item["n"]
            assert f"{item['label']} ({n} {'area' if n == 1 else 'areas'})" in flat, item
            assert " ".join(item["plain"].split()[:5]) in flat, item
    # the planted south-west corner heats up through the year: its four areas rise significantly
    trend = pipeline.build_layer(city, replace(req, layer="trend"), Audience.ANALYST).frame.set_index("code")
    assert all(trend.loc[lsoa_code(i, j), "trend_class"] == "Significant increase" for i in (0, 1) for j in (0, 1))
    assert "Significant increase (" in flat


def test_viewer_pack_with_time_maps_prints_no_small_number(city):
    from hotspots import pipeline
    from hotspots.briefing import briefing_pdf, compose
    req = _req(city)
    b = compose(city, req, Audience.VIEWER, now=NOW)
    assert [m.layer.name for m in b.time_maps] == ["emerging", "trend"]
    for m in b.time_maps:  # the viewer's time layers publish classes and statistics, never a count
        assert m.layer.audience is Audience.VIEWER and "count" not in m.layer.frame.columns
    counts = pipeline.build_layer(city, req, Audience.VIEWER).frame.set_index("code")["count"]
    assert {counts[lsoa_code(i, j)] for i, j in QUIET} == {"<5"}  # the quiet areas are suppressed ...
    pages, text = pdf_text(briefing_pdf(b))
    assert pages == 5
    cells = top_count_cells(text) + change_count_cells(text)
    assert top_count_cells(text) == [r[3] for r in b.top_rows]
    assert cells and not set(cells) & SMALL  # ... and no table prints a count of 1-4
    assert not re.search(r"(?<![\w.,:<+−-])[1-4] incidents?\b", text)


def test_one_month_leaves_the_time_maps_out_and_says_why(city, tmp_path):
    from hotspots.briefing import briefing_pdf, compose
    from hotspots.cli import cli
    b = compose(city, _req(city, **{"from": "2023-12", "to": "2023-12"}), Audience.ANALYST, now=NOW)
    assert b.time_maps == []
    assert b.time_notes == ["Emerging hot spots need 10 or more months; this period has 1.",
                            "Trends need 3 or more months; this period has 1."]
    pages, text = pdf_text(briefing_pdf(b))
    assert pages == 3 and "Emerging hot spots need 10 or more months; this period has 1." in " ".join(text.split())
    out = tmp_path / "b.pdf"
    r = CliRunner().invoke(cli, ["report", "--out", str(out), "--category", "violent-crime", "--from", "2023-12",
                                 "--to", "2023-12", "--permutations", "99"], obj={"config": city})
    assert r.exit_code == 0, r.output
    assert "Emerging hot spots need 10 or more months; this period has 1.\n" in r.output
    assert out.read_bytes()[:5] == b"%PDF-"
