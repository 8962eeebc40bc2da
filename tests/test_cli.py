"""The CLI's wiring: exit codes, messages, summaries (the engine's work is tested elsewhere)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hotspots.cli import cli
from synthetic_bundle import build, cell_centre, police_csv


@pytest.fixture
def env(tmp_path, monkeypatch):
    b = build(tmp_path)
    for k, v in b.env().items():
        monkeypatch.setenv(k, v)
    return b


def run(*args):
    return CliRunner().invoke(cli, list(args), obj={}, catch_exceptions=False)


def test_install_status_ingest_counts(env, tmp_path):
    r = run("data", "install")
    assert r.exit_code == 0, r.output
    r = run("data", "status")
    assert r.exit_code == 0 and "lsoa21" in r.output and "ok" in r.output
    f = tmp_path / "in.csv"
    f.write_text(police_csv([("c1", "2024-01", *cell_centre(1, 1), "Robbery"),
                             ("c2", "2024-01", *cell_centre(1, 1), "Robbery")]))
    r = run("ingest", str(f))
    assert r.exit_code == 0, r.output
    assert "TOTAL" in r.output and "2 new incidents inside the area" in r.output
    r = run("ingest", "--bundle")
    assert r.exit_code == 0, r.output
    out = tmp_path / "counts.geojson"
    r = run("counts", "--level", "lsoa", "--category", "robbery", "--out", str(out))
    assert r.exit_code == 0, r.output
    fc = json.loads(out.read_text())
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 16
    assert sum(f["properties"]["count"] for f in fc["features"]) == 2
    assert "crs" not in fc and any("Crown copyright" in a or "Synthetic" in a for a in fc["metadata"]["attribution"])
    lon, lat = fc["features"][0]["geometry"]["coordinates"][0][0]
    assert -3 < lon < 0 and 52 < lat < 53  # WGS84 lon/lat order
    import shapely
    for f in fc["features"]:  # RFC 7946 right-hand rule: exterior rings anticlockwise
        ring = shapely.LinearRing(f["geometry"]["coordinates"][0])
        assert ring.is_ccw


def test_errors_exit_1_with_one_line(env, tmp_path):
    run("data", "install")
    bad = tmp_path / "bad.csv"
    bad.write_text("Crime ID,Month\n1,2024-01\n")
    r = CliRunner().invoke(cli, ["ingest", str(bad)], obj={})
    assert r.exit_code == 1
    assert "bad.csv: missing required column(s)" in r.output
    assert "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["counts", "--from", "2024-5"], obj={})
    assert r.exit_code == 1 and "YYYY-MM" in r.output


def test_corrupt_bundle_status_exits_1(env):
    run("data", "install")
    (env.data_dir / "population/pop.csv").write_text("total,name,mnemonic\n")
    r = CliRunner().invoke(cli, ["data", "status"], obj={})
    assert r.exit_code == 1 and "pop.csv: corrupt" in r.output


def test_usage_error_exits_2(env):
    r = CliRunner().invoke(cli, ["ingest"], obj={})
    assert r.exit_code == 2


def test_cli_choices_match_engine():
    """The CLI spells its choices out (so `--help` imports nothing heavy); they must match the engine."""
    from hotspots.aggregate import LEVELS
    from hotspots.cli import cli as group
    from hotspots.ingest import FORMATS
    counts_level = next(p for p in group.commands["counts"].params if p.name == "level")
    ingest_fmt = next(p for p in group.commands["ingest"].params if p.name == "fmt")
    assert list(counts_level.type.choices) == list(LEVELS)
    assert list(ingest_fmt.type.choices) == list(FORMATS)
