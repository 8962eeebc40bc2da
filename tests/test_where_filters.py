"""Issue 12: typed extras as filters (``--where``) through the one pipeline: CLI, every layer kind, the
protected table keyed by the filter, and the request's finite menu for viewers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from force_extract import ingested_extract
from hotspots import pipeline
from hotspots.errors import HotspotsError, NotFoundError
from hotspots.request import Audience


@pytest.fixture
def force(tmp_path):
    return ingested_extract(tmp_path)


def _cli(b, config, *args):
    from hotspots.cli import cli
    env = {**b.env(), "HOTSPOTS_CONFIG": str(config.source), "HOTSPOTS_DISCLOSURE_KEY": "t"}
    return CliRunner().invoke(cli, list(args), env=env)


def test_counts_where_equals_a_pandas_filter_of_the_extract(force, tmp_path):
    b, config, rows = force
    out = tmp_path / "young.csv"
    res = _cli(b, config, "counts", "--where", "victim_age_band=0-17,18-24", "--where", "weapon_flag=yes",
               "--out", str(out))
    assert res.exit_code == 0, res.output
    got = pd.read_csv(out).set_index("code")["count"]
    keep = rows[rows["victim_age_band"].isin(["0-17", "18-24"]) & rows["weapon"]]
    want = keep.groupby("lsoa21").size().reindex(got.index, fill_value=0)
    assert got.sum() == len(keep) > 0 and (got == want).all()
    assert "victim age band 0-17 or 18-24; weapon flag true" in res.output


def test_where_on_the_subcategory(force, tmp_path):
    b, config, rows = force
    out = tmp_path / "sub.csv"
    res = _cli(b, config, "counts", "--where", "subcategory=8N,Violence with injury", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert pd.read_csv(out)["count"].sum() == rows["offence"].isin(["8N", "Violence with injury"]).sum()


@pytest.mark.parametrize("where, message", [
    ("victim_age=0-17", "unknown filter 'victim_age' (filterable: victim_age_band, weapon_flag, beat, subcategory)"),
    ("weapon_flag=perhaps", "'perhaps' is not a value of weapon_flag (bool"),
    ("victim_age_band", "where must be NAME=VALUE"),
])
def test_bad_where_exits_1_naming_the_problem(force, tmp_path, where, message):
    b, config, _ = force
    res = _cli(b, config, "counts", "--where", where)
    assert res.exit_code == 1 and message in res.output, res.output


def test_analyse_emerging_and_trend_take_where(tmp_path):
    b, config, rows = ingested_extract(tmp_path, n=400, year=2023, months=tuple(range(1, 13)))
    keep = rows[rows["victim_age_band"].eq("0-17") & rows["category"].eq("violent-crime")]  # the default category
    out = tmp_path / "gi.csv"
    res = _cli(b, config, "analyse", "--level", "lsoa", "--where", "victim_age_band=0-17", "--permutations", "99",
               "--out", str(out))
    assert res.exit_code == 0, res.output
    got = pd.read_csv(out).set_index("code")["count"]
    assert (got == keep.groupby("lsoa21").size().reindex(got.index, fill_value=0)).all()
    for cmd in ("emerging", "trend"):
        res = _cli(b, config, cmd, "--where", "victim_age_band=0-17", "--out", str(tmp_path / f"{cmd}.csv"))
        assert res.exit_code == 0, res.output
    emerging = pd.read_csv(tmp_path / "emerging.csv")
    assert len(emerging) == 16 and emerging["category"].notna().all()


def test_every_crime_layer_kind_filters(force):
    """Every registered crime kind that counts incidents gives a different answer under a filter (the filter
    reaches its counts), for analysts and viewers alike."""
    _, config, rows = force
    from hotspots import layers
    kinds = [k for k in layers.kinds(config) if k.group == "crime" and "where" in k.uses]
    assert {"count", "rate", "gistar", "lisa", "change", "trend", "emerging", "grid_count", "kde", "points",
            "grid_gistar", "bivariate", "grid_emerging"} <= {k.name for k in kinds}
    assert [k.name for k in layers.kinds(config) if k.group == "crime" and "where" not in k.uses] == []
    base = {"category": "violent-crime"}
    for layer, col in (("count", "count"), ("grid_count", "count")):
        for aud in Audience:
            def total(args):  # suppressed viewer counts ("<5") count as 0 here
                frame = pipeline.build_layer(config, pipeline.parse(config, args, layer), aud).frame
                return pd.to_numeric(frame[col], errors="coerce").fillna(0).sum()
            whole, part = total(base), total({**base, "where": "weapon_flag=true"})
            assert part < whole, (layer, aud)
    pts = pipeline.build_layer(config, pipeline.parse(config, {**base, "where": "weapon_flag=true"}, "points"),
                               Audience.ANALYST)
    assert len(pts.frame) == (rows["weapon"] & rows["category"].eq("violent-crime")).sum()


def test_viewer_where_comes_from_the_menu(force):
    _, config, _ = force
    cat = pipeline.catalog(config)
    assert cat.filters["victim_age_band"] == ("text", ("0-17", "18-24", "25-34", "35+"))
    assert cat.filters["weapon_flag"] == ("bool", ("false", "true"))
    with pytest.raises(HotspotsError, match="'40-49' is not a value of victim_age_band"):
        pipeline.parse(config, {"where": "victim_age_band=40-49"})
    assert pipeline.parse(config, {"where": "victim_age_band=40-49"}, free=True).where == \
        (("victim_age_band", ("40-49",)),)
    with pytest.raises(NotFoundError, match="unknown filter"):
        pipeline.parse(config, {"where": "secret=1"})
    req = pipeline.parse(config, {"where": ["weapon_flag=Y", "victim_age_band=18-24,0-17"]})
    assert req.where == (("victim_age_band", ("0-17", "18-24")), ("weapon_flag", ("true",)))
    assert req.query()["where"] == "victim_age_band=0-17,18-24;weapon_flag=true"
    assert pipeline.parse(config, req.query()).where == req.where


def test_differencing_two_filters_gives_noise_not_counts(force):
    """Viewer tables of a filter and of its complement are protected apart: their sum is not the protected
    whole, and whole − filter is not the exact complement (it would be, were the noise shared)."""
    _, config, rows = force
    from hotspots.aggregate import base_table
    codes = sorted(rows["lsoa21"].unique())
    whole = base_table(config, "lsoa21", Audience.VIEWER)
    yes = base_table(config, "lsoa21", Audience.VIEWER, (("weapon_flag", ("true",)),))
    no = base_table(config, "lsoa21", Audience.VIEWER, (("weapon_flag", ("false",)),))
    exact_no = base_table(config, "lsoa21", Audience.ANALYST, (("weapon_flag", ("false",)),))
    t = {name: tab.totals(codes, [], None, None, protected=name != "exact_no")
         for name, tab in (("whole", whole), ("yes", yes), ("no", no), ("exact_no", exact_no))}
    assert not np.array_equal(t["whole"] - t["yes"], t["exact_no"])
    assert not np.array_equal(t["yes"] + t["no"], t["whole"])
    # the same filter gives the same noise again (repeating a query averages nothing away)
    again = base_table(config, "lsoa21", Audience.VIEWER, (("weapon_flag", ("true",)),))
    assert np.array_equal(again.protected, yes.protected)
    # and cell by cell the noise differs: filtered cells are cells of their own
    big = (no.exact > 4)
    assert big.any() and not np.array_equal(no.protected[big] - no.exact[big], np.zeros(big.sum()))


def test_unfiltered_protected_table_is_unchanged():
    """A table without a filter keeps the cell keys it had before filters existed (no published figure moves)."""
    from hotspots.disclosure import get_rule
    from hotspots.protect import build_base
    cells = pd.DataFrame({"code": ["A", "B"], "month": ["2024-01"] * 2, "category": ["x"] * 2, "n": [9, 12]})
    key = b"k" * 32
    plain = build_base(cells, "lsoa21", get_rule("default"), key)
    assert np.array_equal(build_base(cells, "lsoa21", get_rule("default"), key, "").protected, plain.protected)
    keyed = [build_base(cells, "lsoa21", get_rule("default"), key, f"weapon_flag={v}").protected
             for v in ("true", "false", "x", "y", "z")]
    assert any(not np.array_equal(k, plain.protected) for k in keyed)


def test_viewer_filter_of_several_values_is_the_sum_of_its_parts(force):
    """{a, b} for a viewer is {a} + {b} cell by cell, so {a, b} − {b} gives back {a}'s protected value, not a
    fresh noisy estimate that could be averaged with others."""
    _, config, _ = force
    from hotspots.aggregate import base_table
    codes = list(base_table(config, "lsoa21").codes)
    both = base_table(config, "lsoa21", Audience.VIEWER, (("victim_age_band", ("0-17", "18-24")),))
    a = base_table(config, "lsoa21", Audience.VIEWER, (("victim_age_band", ("0-17",)),))
    b = base_table(config, "lsoa21", Audience.VIEWER, (("victim_age_band", ("18-24",)),))
    for protected in (True, False):
        assert np.array_equal(both.totals(codes, [], None, None, protected=protected),
                              a.totals(codes, [], None, None, protected=protected)
                              + b.totals(codes, [], None, None, protected=protected))
    exact = base_table(config, "lsoa21", Audience.ANALYST, (("victim_age_band", ("0-17", "18-24")),))
    assert np.array_equal(exact.totals(codes, [], None, None, protected=False),
                          both.totals(codes, [], None, None, protected=False))
