"""The briefing pack on the real Wolverhampton bundle (2018-06): content, PDF, PNG, CLI, place names."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from pdf_tables import SMALL, pdf_text, top_count_cells

pytest.importorskip("pypdf")

pytestmark = pytest.mark.bundle

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def wolves(real_bundle, tmp_path_factory):
    """Wolverhampton's own incidents only (the West Yorkshire files are another area's)."""
    from hotspots.bundle import install_bundle
    from hotspots.config import load_config
    from hotspots.ingest import ingest_paths
    root = tmp_path_factory.mktemp("wolves-briefing")
    config = load_config(env={}, data_dir=root / "data", instance_dir=root / "instance", bundle=real_bundle)
    install_bundle(config)
    ingest_paths(config, [real_bundle / "crime" / "wolverhampton-police-api-2018-06"])
    return config


def _req(config, **args):
    from hotspots import pipeline
    return pipeline.parse(config, {"category": "violent-crime", "permutations": "999", **args}, "gistar", free=True)


def test_analyst_pack_counts_are_the_exact_counts(wolves):
    """The top-10 incident counts equal an independent count of the store (area_counts, exact)."""
    from hotspots.aggregate import area_counts
    from hotspots.briefing import compose
    from hotspots.request import Audience
    b = compose(wolves, _req(wolves), Audience.ANALYST, now=NOW)
    exact = area_counts(wolves, "lsoa", ["violent-crime"], "2018-06", "2018-06").set_index("code")["count"]
    assert len(b.top_rows) == 10
    for row in b.top_rows:
        assert int(row[3].replace(",", "")) == int(exact[row[1]])
    assert float(b.top_rows[0][4]) >= float(b.top_rows[-1][4])  # strongest first
    # St Peters (MANIFEST: the ward with most violent crime) holds the strongest hot spot
    assert b.top_rows[0][2].startswith("St Peters ward")


def test_pdf_opens_with_title_marking_date_and_one_attribution(wolves):
    from hotspots.briefing import briefing_pdf, compose
    from hotspots.request import Audience
    b = compose(wolves, _req(wolves), Audience.ANALYST, marking="official-sensitive", organisation="Test Unit",
                now=NOW)
    pdf = briefing_pdf(b)
    assert pdf[:5] == b"%PDF-"
    pages, text = pdf_text(pdf)
    assert pages == 3
    flat = " ".join(text.split())
    assert "Hot spots of count: Violence and sexual offences, 2018-06" in flat
    assert text.count("OFFICIAL-SENSITIVE") == 2 * pages  # top and bottom of every page
    assert "30 November 2026" in flat and "Test Unit" in flat
    assert "Top 10 hot spots" in flat and "Parameters and method in plain words" in flat
    assert "no data in the baseline (2018-05)" in flat
    assert flat.count("data.police.uk, Home Office") == 1  # one attribution block, not one per dataset
    for row in b.top_rows[:3]:
        assert row[1] in flat


def test_viewer_pack_shows_no_small_count(wolves):
    """Viewer figures come from the published (protected, suppressed) layer: no table cell holds a count of
    1-4, suppressed ones read "<5", and no bare number 1-4 is printed anywhere in the PDF."""
    from hotspots.briefing import briefing_pdf, compose
    from hotspots.request import Audience
    from hotspots import pipeline
    req = _req(wolves)
    b = compose(wolves, req, Audience.VIEWER, now=NOW)
    gi = pipeline.build_layer(wolves, req, Audience.VIEWER)
    published = dict(zip(gi.frame["code"], gi.frame["count"]))
    assert any(v == "<5" for v in published.values())
    for row in b.top_rows:
        assert row[3] == (published[row[1]] if isinstance(published[row[1]], str) else f"{published[row[1]]:,}")
        assert row[3] not in {"1", "2", "3", "4"}
    _, text = pdf_text(briefing_pdf(b))
    cells = top_count_cells(text)
    assert cells == [row[3] for row in b.top_rows]  # what is printed is what was composed
    assert not set(cells) & SMALL
    assert not re.search(r"(?<![\w.,:<+−-])[1-4] incidents?\b", text)
    assert "viewers (protected figures, small numbers suppressed)" in " ".join(text.split())


def test_marking_is_checked(wolves):
    from hotspots.briefing import compose
    from hotspots.errors import HotspotsError
    from hotspots.request import Audience
    with pytest.raises(HotspotsError, match="marking must be one of OFFICIAL, OFFICIAL-SENSITIVE"):
        compose(wolves, _req(wolves), Audience.ANALYST, marking="SECRET")


def test_png_for_slides(wolves):
    from hotspots.briefing import briefing_png, compose
    from hotspots.request import Audience
    png = briefing_png(compose(wolves, _req(wolves), Audience.VIEWER, now=NOW), dpi=50)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (w, h) == (800, 450)


def test_cli_report_writes_pdf_and_png(wolves, tmp_path, monkeypatch):
    from hotspots.cli import cli
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    out = tmp_path / "briefing.pdf"
    r = runner.invoke(cli, ["report", "--out", str(out), "--png", "--audience", "viewer", "--category",
                            "violent-crime", "--permutations", "999", "--marking", "OFFICIAL-SENSITIVE"],
                      obj={"config": wolves})
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:5] == b"%PDF-" and (tmp_path / "briefing.png").read_bytes()[:4] == b"\x89PNG"
    assert "OFFICIAL-SENSITIVE, viewer figures" in r.output
    bad = runner.invoke(cli, ["report", "--out", str(tmp_path / "b.docx")], obj={"config": wolves})
    assert bad.exit_code == 1 and "use .pdf" in bad.output


def test_place_names_follow_the_ward_best_fit(wolves):
    """Every LSOA's place starts with its best-fit ward (the counts' ward_name); an area on a ward's edge
    names the neighbouring ward it borders, which really touches it."""
    from hotspots.aggregate import area_counts
    from hotspots.bundle import load_boundary
    from hotspots.places import place_names
    places = place_names(wolves, "lsoa21")
    counts = area_counts(wolves, "lsoa", ["violent-crime"], "2018-06", "2018-06")
    assert len(places) == len(counts) == 161
    wards = load_boundary(wolves, "ward").set_index("name")
    lsoas = load_boundary(wolves, "lsoa21").set_index("code")
    by = 0
    for code, ward in zip(counts["code"], counts["ward_name"]):
        assert places[code].startswith(f"{ward} ward, ")
        m = re.search(r", by (.+)$", places[code])
        if m:
            by += 1
            assert m.group(1) != ward and lsoas.geometry[code].distance(wards.geometry[m.group(1)]) < 1.0
    assert 0 < by < 161
    assert place_names(wolves, "ward") == {}


@pytest.mark.parametrize("dx,dy,word", [(1, 0, "east"), (1, 1, "north-east"), (0, 1, "north"), (-1, 0.1, "west"),
                                        (0, -1, "south"), (1, -1, "south-east"), (-1, -1, "south-west")])
def test_compass_word(dx, dy, word):
    from hotspots.places import compass_word
    assert compass_word(dx, dy) == word


def test_panel_words_have_plurals_and_no_doubled_ward(wolves):
    from hotspots import pipeline
    from hotspots.request import Audience
    p = pipeline.panel(wolves, _req(wolves, geography="ward"), Audience.ANALYST)
    text = " ".join(p["messages"])
    assert "area(s)" not in text and not re.search(r"\b1 areas\b", text)
    assert all(t["ward"] is None for t in p["top"])  # a ward is not "St Peters, St Peters ward"
    lsoa = pipeline.panel(wolves, _req(wolves), Audience.ANALYST)
    assert all(t["place"].startswith(t["ward"] + " ward") for t in lsoa["top"])


def test_default_configuration_ingests_only_this_area():
    """`make run` ingests every incidents dataset of config/hotspots.toml: none of them is West Yorkshire's."""
    from bundle_paths import REPO
    from hotspots.config import load_config
    config = load_config(REPO / "config" / "hotspots.toml", env={})
    paths = [ds.path for ds in config.datasets.values() if ds.kind == "incidents"]
    assert paths and not [p for p in paths if "yorkshire" in str(p)]


def test_attribution_lines_merge_their_years():
    from hotspots.briefing import merge_attributions
    ons = "Source: Office for National Statistics licensed under the Open Government Licence v3.0. Contains OS " \
          "data © Crown copyright and database right"
    got = merge_attributions([f"{ons} 2021.", "Census line.", f"{ons} 2011.", f"{ons} 2021.", f"{ons}."])
    assert got == [f"{ons} 2011, 2021.", "Census line.", f"{ons}."]
