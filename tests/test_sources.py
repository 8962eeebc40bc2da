"""Partner sources (issue 12 part B): `hotspots source add` on a hospital-style file, and every analysis
on a source as on police data, under the source's own disclosure rule for viewers."""
from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from hotspots import pipeline, render
from hotspots.aggregate import area_counts
from hotspots.errors import AnalysisError, IngestError
from hotspots.request import Audience
from hotspots.sources import add_source, list_sources

VIEWER, ANALYST = Audience.VIEWER, Audience.ANALYST


@pytest.fixture(scope="module")
def town(tmp_path_factory):
    """Gridtown with a few police incidents and the hospital source (hospital rule)."""
    from hotspots.bundle import install_bundle
    from hotspots.config import load_config
    from hotspots.ingest import ingest_paths
    from source_fixture import gridtown_hospital
    from synthetic_bundle import build, cell_centre, police_csv
    tmp = tmp_path_factory.mktemp("sources")
    b = build(tmp)
    rows = [(f"p{m}-{i}{j}-{q}", m, *cell_centre(i, j), "Violence and sexual offences")
            for m in ("2024-01", "2024-02", "2024-03") for (i, j) in ((0, 0), (0, 1), (1, 0), (1, 1), (2, 2))
            for q in range(6 if i + j < 2 else 2)]
    (b.root / "bundle" / "crime" / "planted.csv").write_text(police_csv(rows))
    config = load_config(b.config_path, env={}, data_dir=b.data_dir, instance_dir=b.instance_dir,
                         bundle=b.root / "bundle")
    install_bundle(config)
    ingest_paths(config, [b.root / "bundle" / "crime"])
    path, hosp = gridtown_hospital(tmp)
    report = add_source(config, "hospital", path, "lsoa21", "period", "admissions", category_col="age_band",
                        disclosure="hospital", title="A&E assault admissions, under 25", place="residence",
                        provenance="Gridtown NHS Trust ISTV extract (synthetic)")
    return config, b, tmp, pd.DataFrame(hosp), report


def test_add_report_adds_up_and_counts_are_stored(town):
    config, _, _, hosp, report = town
    assert (report.read, report.accepted, report.duplicates, report.rejected) == (len(hosp), len(hosp), 0, 0)
    assert report.adds_up and len(report.months) == 12 and report.months[-1] == "2024-03"
    (s,) = list_sources(config)
    assert s["title"] == "A&E assault admissions, under 25" and s["disclosure"] == "hospital"
    assert s["categories"] == {"src:hospital/0-17": int(hosp[hosp.age_band == "0-17"].admissions.sum()),
                               "src:hospital/18-24": int(hosp[hosp.age_band == "18-24"].admissions.sum())}


def test_counts_on_a_source_equal_the_file(town):
    config, _, _, hosp, _ = town
    g = area_counts(config, "lsoa", ["src:hospital"], "2024-02", "2024-03", ANALYST).set_index("code")
    want = hosp[hosp.period >= "2024-02"].groupby("LSOA21CD").admissions.sum()
    assert (g["count"] == want.reindex(g.index).fillna(0)).all()
    g1 = area_counts(config, "lsoa", ["src:hospital/18-24"], None, "2024-03", ANALYST).set_index("code")
    want1 = hosp[hosp.age_band == "18-24"].groupby("LSOA21CD").admissions.sum()
    assert (g1["count"] == want1.reindex(g1.index).fillna(0)).all()
    # police categories are untouched: no category still means every police category, no source
    police = area_counts(config, "lsoa", None, None, None, ANALYST)
    assert int(police["count"].sum()) == 3 * (6 + 6 + 6 + 2 + 2) + 1  # + the bundle's sample incident
    wards = area_counts(config, "ward", ["src:hospital"], None, None, ANALYST)
    assert int(wards["count"].sum()) == int(hosp.admissions.sum())


def test_bad_rows_are_refused_with_row_and_column(town, tmp_path):
    config = town[0]
    f = tmp_path / "bad.csv"
    f.write_text("lsoa21cd,month,n\n"
                 "E01090000,2024-01,3\n"      # 1 ok
                 "E01090000,2024-01,3\n"      # 2 duplicate of 1
                 "E01090000,2024-01,4\n"      # 3 conflicts with 1
                 "E01099999,2024-01,2\n"      # 4 unknown code
                 "E01090001,2024-13,2\n"      # 5 bad period
                 "E01090001,2024-02-17,-1\n"  # 6 negative
                 "E01090001,2024-02,2.5\n"    # 7 not whole
                 "E01090001,2024-02,*\n"      # 8 suppressed
                 "E01090002,2024-03-31T10:00,5\n", encoding="utf-8")  # 9 ok (a date: its month)
    r = add_source(config, "bad", f, "lsoa21", "month", "n")
    assert (r.read, r.accepted, r.duplicates, r.rejected) == (9, 2, 1, 6) and r.adds_up
    got = {x["row"]: (x["column"], x["kind"]) for x in r.rejects}
    assert got == {2: (None, "duplicate"), 3: ("n", "rejected"), 4: ("lsoa21cd", "rejected"),
                   5: ("month", "rejected"), 6: ("n", "rejected"), 7: ("n", "rejected"), 8: ("n", "rejected")}
    reasons = {x["row"]: x["reason"] for x in r.rejects}
    assert "negative" in reasons[6] and "whole" in reasons[7] and "suppressed" in reasons[8]
    assert "E01099999" in reasons[4] and "row 1" in reasons[3]
    g = area_counts(config, "lsoa", ["src:bad"], None, None, ANALYST).set_index("code")
    assert g.loc["E01090000", "count"] == 3 and g.loc["E01090002", "count"] == 5 and g["count"].sum() == 8
    from hotspots import store
    assert [x["row"] for x in store.source_rejects(config.db_path, "bad")] == [2, 3, 4, 5, 6, 7, 8]
    store.remove_source(config.db_path, "bad")


def test_all_rejected_stores_nothing_and_the_cli_exits_1(town, tmp_path):
    config, b, *_ = town
    f = tmp_path / "none.csv"
    f.write_text("lsoa21cd,month,n\nE01099999,2024-01,3\nE01090000,2024-01,x\n", encoding="utf-8")
    with pytest.raises(IngestError, match="nothing stored: all 2 rows refused"):
        add_source(config, "nothing", f, "lsoa21", "month", "n")
    assert [s["name"] for s in list_sources(config)] == ["hospital"]
    from hotspots.cli import cli
    res = CliRunner().invoke(cli, ["source", "add", "nothing", str(f), "--geography", "lsoa21", "--period", "month",
                                   "--count", "n"], env=b.env() | {"HOTSPOTS_INSTANCE_DIR": str(config.instance_dir)})
    assert res.exit_code == 1 and "nothing stored" in res.output
    res = CliRunner().invoke(cli, ["source", "list"], env=b.env() | {"HOTSPOTS_INSTANCE_DIR": str(config.instance_dir)})
    assert res.exit_code == 0 and "hospital: A&E assault admissions, under 25 (lsoa21, hospital rule for viewers)" in res.output


def test_lsoa11_is_converted_by_best_fit_and_said_so(town, tmp_path):
    config = town[0]
    from synthetic_bundle import lsoa_code
    f = tmp_path / "l11.csv"
    f.write_text(f"LSOA11CD,month,n\n{lsoa_code(1, 2, 'E0108')},2024-01,4\n{lsoa_code(3, 3, 'E0108')},2024-02,9\n"
                 f"{lsoa_code(1, 2)},2024-02,9\n", encoding="utf-8")
    r = add_source(config, "old", f, "lsoa11", "month", "n")
    assert (r.accepted, r.rejected) == (2, 1) and "best fit" in r.conversion
    g = area_counts(config, "lsoa", ["src:old"], None, None, ANALYST).set_index("code")
    assert g.loc[lsoa_code(1, 2), "count"] == 4 and g.loc[lsoa_code(3, 3), "count"] == 9 and g["count"].sum() == 13
    from hotspots import store
    store.remove_source(config.db_path, "old")


def test_ward_source_only_by_ward(town, tmp_path):
    config = town[0]
    from synthetic_bundle import ward_code
    f = tmp_path / "yot.csv"
    f.write_text("ward_code,month,n\n" + "".join(f"{ward_code(i, j)},2024-0{m},{k}\n" for m in (1, 2)
                                                  for k, (i, j) in enumerate(((0, 0), (0, 2), (2, 0), (2, 2)), 3)),
                 encoding="utf-8")
    add_source(config, "yot", f, "ward", "month", "n", title="Youth offending cohort")
    try:
        g = area_counts(config, "ward", ["src:yot"], None, None, ANALYST).set_index("code")
        assert g.loc[ward_code(2, 2), "count"] == 12 and g["count"].sum() == 36
        v = area_counts(config, "ward", ["src:yot"], None, None, VIEWER)  # its own (protected) ward cells
        assert len(v) == 4 and int(v["count"].sum()) > 0
        chg = pipeline.parse(config, {"category": "src:yot", "geography": "ward", "from": "2024-02", "to": "2024-02"},
                             "change")
        rows = render.rows(pipeline.build_layer(config, chg, VIEWER))
        assert len(rows) == 4 and {r["count_after"] for r in rows} <= {0, "<5", "*"} | set(range(5, 50))
        series = pipeline.series(config, pipeline.parse(config, {"category": "src:yot", "geography": "ward",
                                                                 "from": "2024-01", "to": "2024-02"}, "emerging"),
                                 ward_code(2, 2), VIEWER)
        assert len(series["counts"]) == 2 and series["rule"] == "default"
        with pytest.raises(AnalysisError, match="geography=ward"):
            area_counts(config, "lsoa", ["src:yot"], None, None, ANALYST)
        req = pipeline.parse(config, {"category": "src:yot"}, "count")
        with pytest.raises(AnalysisError, match="geography=ward"):
            pipeline.build_layer(config, req, VIEWER)
    finally:
        from hotspots import store
        store.remove_source(config.db_path, "yot")


def test_viewer_layers_on_a_source_follow_the_hospital_rule(town):
    config = town[0]
    req = pipeline.parse(config, {"category": "src:hospital"}, "count")
    rows = render.rows(pipeline.build_layer(config, req, VIEWER))
    shown = [r["count"] for r in rows]
    assert "*" in shown
    assert all(c == 0 or c == "*" or (isinstance(c, int) and c >= 10 and c % 5 == 0) for c in shown), shown
    meta = pipeline.build_layer(config, req, VIEWER).metadata
    assert meta["disclosure_rule"] == "hospital" and meta["disclosure"]["round_to"] == 5
    exact = {r["code"]: r["count"] for r in render.rows(pipeline.build_layer(config, req, ANALYST))}
    assert any(isinstance(c, int) and 1 <= c <= 7 for c in exact.values())


@pytest.mark.parametrize("layer", ["count", "rate", "gistar", "lisa", "change", "emerging", "trend"])
def test_every_kind_runs_on_a_source(town, layer):
    config = town[0]
    args = {"category": "src:hospital", "from": "2023-04", "to": "2024-03"}
    if layer == "change":
        args.update({"from": "2024-03", "to": "2024-03"})
    req = pipeline.parse(config, args, layer, free=True)
    for aud in (ANALYST, VIEWER):
        pub = pipeline.build_layer(config, req, aud)
        assert len(render.rows(pub)) == 16
    if layer == "gistar":
        rows = {r["code"]: r for r in render.rows(pipeline.build_layer(config, req, ANALYST))}
        from synthetic_bundle import lsoa_code
        assert rows[lsoa_code(3, 3)]["gi_z"] > 1.96  # the planted hospital hot spot


def test_sources_in_the_category_list_grouped_under_their_title(town):
    config = town[0]
    cats = {c["slug"]: c for c in pipeline.categories(config, ANALYST)}
    hosp = town[3]
    assert cats["src:hospital"]["count"] == int(hosp.admissions.sum())
    assert cats["src:hospital"]["group"] == cats["src:hospital/0-17"]["group"] == "A&E assault admissions, under 25"
    assert "group" not in cats["violent-crime"]
    viewer = {c["slug"]: c for c in pipeline.categories(config, VIEWER)}
    assert set(viewer) == set(cats)
    for slug in ("src:hospital", "src:hospital/0-17", "src:hospital/18-24"):  # hospital rule: rounded to 5
        assert isinstance(viewer[slug]["count"], int) and viewer[slug]["count"] % 5 == 0


def test_a_store_from_before_sources_gains_the_source_tables(tmp_path):
    from hotspots import store
    before = next(v for v, ddl in store.MIGRATIONS.items() if ddl is store.SOURCE_TABLES) - 1
    db = tmp_path / "old.db"
    con = store.connect(db)
    for t in ("source_rejects", "source_counts", "sources"):
        con.execute(f"DROP TABLE {t}")
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(before),))
    con.close()
    con = store.connect(db)
    try:
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"sources", "source_counts", "source_rejects"} <= names
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(store.SCHEMA_VERSION),)
    finally:
        con.close()
    assert store.sources(db) == []


def test_an_analysts_only_source_is_refused_to_viewers(town, tmp_path):
    config = town[0]
    from hotspots.errors import ForbiddenError
    f = tmp_path / "missing.csv"
    f.write_text("lsoa21cd,month,n\nE01090000,2024-01,3\nE01090005,2024-02,12\n", encoding="utf-8")
    add_source(config, "missing", f, "lsoa21", "month", "n", title="Missing episodes", analysts_only=True)
    try:
        assert "src:missing" in {c["slug"] for c in pipeline.categories(config, ANALYST)}
        assert "src:missing" not in {c["slug"] for c in pipeline.categories(config, VIEWER)}
        req = pipeline.parse(config, {"category": "src:missing"}, "count")
        assert sum(r["count"] for r in render.rows(pipeline.build_layer(config, req, ANALYST))) == 15
        with pytest.raises(ForbiddenError, match="for analysts"):
            pipeline.build_layer(config, req, VIEWER)
        cmp = pipeline.parse(config, {"category": "violent-crime", "versus": "src:missing"}, "comparison")
        with pytest.raises(ForbiddenError):
            pipeline.build_layer(config, cmp, VIEWER)
    finally:
        from hotspots import store
        store.remove_source(config.db_path, "missing")
