"""Issue 12: the hour of day × day of week table equals an independent pandas groupby of the extract, for
the whole area, one LSOA, a ward and a set of areas, under categories and filters; viewers get protected
counts under the display rule; no times says so."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from force_extract import ingested_extract
from hotspots import pipeline
from hotspots.errors import HotspotsError, NotFoundError
from hotspots.hours import WEEKDAYS, hour_weekday
from hotspots.request import Audience
from synthetic_bundle import ward_code


@pytest.fixture
def force(tmp_path):
    return ingested_extract(tmp_path)


def expected(rows: pd.DataFrame) -> np.ndarray:
    grid = rows.groupby(["weekday", "hour"]).size().unstack(fill_value=0)
    return grid.reindex(index=range(7), columns=range(24), fill_value=0).to_numpy()


def _ward(lsoa: str) -> str:
    k = int(lsoa[-4:])
    return ward_code(k // 4, k % 4)


def test_table_equals_a_pandas_groupby(force):
    _, config, rows = force
    rows = rows.assign(ward=[_ward(c) for c in rows["lsoa21"]])
    violent = rows[rows["category"].eq("violent-crime")]
    req = pipeline.parse(config, {"category": "violent-crime"}, "count")
    whole = hour_weekday(config, req, Audience.ANALYST)
    assert np.array_equal(whole.counts, expected(violent)) and whole.total == len(violent)
    lsoa = violent["lsoa21"].value_counts().index[0]
    one = hour_weekday(config, req, Audience.ANALYST, "lsoa", [lsoa])
    assert np.array_equal(one.counts, expected(violent[violent["lsoa21"].eq(lsoa)]))
    ward = rows["ward"].iloc[0]
    assert np.array_equal(hour_weekday(config, req, Audience.ANALYST, "ward", [ward]).counts,
                          expected(violent[violent["ward"].eq(ward)]))
    spot = sorted(violent["lsoa21"].unique())[:3]
    assert np.array_equal(hour_weekday(config, req, Audience.ANALYST, "lsoa", spot).counts,
                          expected(violent[violent["lsoa21"].isin(spot)]))
    filtered = pipeline.parse(config, {"category": ["violent-crime", "burglary"], "where": "weapon_flag=true"}, "count")
    keep = rows[rows["category"].isin(["violent-crime", "burglary"]) & rows["weapon"]]
    assert np.array_equal(hour_weekday(config, filtered, Audience.ANALYST).counts, expected(keep))


def test_viewer_table_is_protected_and_suppressed_per_cell(force):
    _, config, rows = force
    req = pipeline.parse(config, {"category": "violent-crime"}, "count")
    exact = hour_weekday(config, req, Audience.ANALYST)
    view = hour_weekday(config, req, Audience.VIEWER)
    assert view.computed_from == "protected table" and view.rule == "default"
    flat = [v for row in view.shown for v in row]
    assert "<5" in flat and all(v == "<5" or (isinstance(v, int) and (v == 0 or v >= 5)) for v in flat)
    # zeros stay zero; non-zero cells never show their exact small count
    assert all((v == 0) == (e == 0) for v, e in zip(flat, exact.counts.ravel()))
    assert any("display rule" in n for n in view.notes)
    assert hour_weekday(config, req, Audience.VIEWER).shown == view.shown  # the same noise again
    two = pipeline.parse(config, {"category": "violent-crime", "where": "victim_age_band=0-17,18-24"}, "count")
    parts = [hour_weekday(config, pipeline.parse(config, {"category": "violent-crime", "where": f"victim_age_band={v}"},
                                                 "count"), Audience.VIEWER) for v in ("0-17", "18-24")]
    assert np.array_equal(hour_weekday(config, two, Audience.VIEWER).counts, parts[0].counts + parts[1].counts)
    from hotspots.errors import ForbiddenError
    with pytest.raises(ForbiddenError, match="set of areas is for analysts"):
        hour_weekday(config, req, Audience.VIEWER, "lsoa", sorted(set(rows["lsoa21"]))[:2])


def test_cli_hours_writes_the_table(force, tmp_path):
    b, config, rows = force
    from hotspots.cli import cli
    lsoa = rows["lsoa21"].value_counts().index[0]
    out = tmp_path / "hours.csv"
    env = {**b.env(), "HOTSPOTS_CONFIG": str(config.source)}
    res = CliRunner().invoke(cli, ["hours", "--lsoa", lsoa, "--category", "burglary", "--where",
                                   "victim_age_band=18-24,25-34", "--out", str(out)], env=env)
    assert res.exit_code == 0, res.output
    got = pd.read_csv(out)
    assert got["weekday"].tolist() == list(WEEKDAYS) and list(got.columns[1:25]) == [f"h{h:02d}" for h in range(24)]
    keep = rows[rows["lsoa21"].eq(lsoa) & rows["category"].eq("burglary")
                & rows["victim_age_band"].isin(["18-24", "25-34"])]
    assert np.array_equal(got.iloc[:, 1:25].to_numpy(), expected(keep))
    assert got["total"].sum() == len(keep)
    bad = CliRunner().invoke(cli, ["hours", "--lsoa", "E01999999", "--out", str(out)], env=env)
    assert bad.exit_code == 1 and "unknown lsoa code E01999999" in bad.output


def test_no_times_is_said(gridtown, tmp_path):
    """police.uk data has months only: the table is empty and says so (the CLI exits 1)."""
    from hotspots.ingest import ingest_paths
    from synthetic_bundle import cell_centre, police_csv
    b, config = gridtown
    (tmp_path / "p.csv").write_text(police_csv([("a1", "2024-01", *cell_centre(0, 0), "Burglary")]))
    ingest_paths(config, [tmp_path / "p.csv"])
    req = pipeline.parse(config, {"category": "burglary"}, "count")
    t = hour_weekday(config, req, Audience.ANALYST)
    assert not t.has_times and t.without_time == 1 and "no times in this data" in t.notes[0]
    from hotspots.cli import cli
    res = CliRunner().invoke(cli, ["hours", "--category", "burglary", "--out", str(tmp_path / "h.csv")], env=b.env())
    assert res.exit_code == 1 and "no times in this data" in res.output


def test_bad_scope_refused(force):
    _, config, _ = force
    req = pipeline.parse(config, {}, "count")
    with pytest.raises(NotFoundError, match="unknown geography"):
        hour_weekday(config, req, Audience.ANALYST, "msoa", ["E02000001"])
    with pytest.raises(HotspotsError, match="give the lsoa code"):
        hour_weekday(config, req, Audience.ANALYST, "lsoa", [])
