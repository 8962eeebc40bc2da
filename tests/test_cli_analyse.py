"""``hotspots analyse`` through click's CliRunner, on a synthetic polygon file (``--areas``)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from cities import grid_city
from hotspots.cli import cli


@pytest.fixture(scope="module")
def areas_file(tmp_path_factory):
    from hotspots import stats
    stats.warm_up()
    path = tmp_path_factory.mktemp("cli") / "grid.geojson"
    grid_city(10).to_crs(4326).to_file(path, driver="GeoJSON")
    return path


def run(args, tmp_path):
    env = {"HOTSPOTS_CONFIG": str(tmp_path / "no-such-config.toml")}
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def test_analyse_areas_to_csv(areas_file, tmp_path):
    out = tmp_path / "res.csv"
    r = run(["analyse", "--areas", str(areas_file), "--id", "code", "--value", "count", "--name", "name",
             "--permutations", "999", "--seed", "7", "--out", str(out)], tmp_path)
    assert r.exit_code == 0, r.output
    assert "Global Moran's I: count is clustered" in r.output
    assert "hot spots at 99% confidence" in r.output and "Wrote" in r.output
    df = pd.read_csv(out)
    assert (df.loc[df.area_code == "G0404", "gi_label"] == "Hot spot 99% confidence").all()
    meta = json.loads(out.with_suffix(".metadata.json").read_text())
    assert meta["seed"] == 7 and meta["permutations"] == 999


def test_analyse_geojson_with_options(areas_file, tmp_path):
    out = tmp_path / "res.geojson"
    r = run(["analyse", "--areas", str(areas_file), "--id", "code", "--value", "count", "--stat", "gistar,moran",
             "--weights", "knn:6", "--fdr", "--variable", "rate", "--population", "population",
             "--permutations", "199", "--out", str(out)], tmp_path)
    assert r.exit_code == 0, r.output
    fc = json.loads(out.read_text())
    assert fc["metadata"]["weights"] == "knn:6" and fc["metadata"]["fdr"] is True
    assert fc["metadata"]["variable"] == "rate"
    assert fc["features"][0]["properties"]["lisa_label"] == "Not computed"


@pytest.mark.parametrize("args, message", [
    (["--weights", "hex"], "weights spec"),
    (["--value", "crimes"], "no column 'crimes'"),
    (["--stat", "kde"], "unknown statistic"),
])
def test_engine_errors_exit_1(areas_file, tmp_path, args, message):
    base = ["analyse", "--areas", str(areas_file), "--id", "code", "--value", "count", "--out",
            str(tmp_path / "x.csv")]
    r = run(base + args, tmp_path)
    assert r.exit_code == 1
    assert message in r.output and "error:" in r.output
    assert "Traceback" not in r.output


def test_bad_output_and_usage(areas_file, tmp_path):
    r = run(["analyse", "--areas", str(areas_file), "--id", "code", "--value", "count", "--out",
             str(tmp_path / "x.xlsx")], tmp_path)
    assert r.exit_code == 1 and "unknown output format" in r.output
    r = run(["analyse", "--id", "code", "--out", str(tmp_path / "x.csv")], tmp_path)
    assert r.exit_code == 2 and "--level or --areas" in r.output


def test_analyse_level_uses_area_counts(gridtown, tmp_path, monkeypatch):
    """``--level`` reads hotspots.aggregate.area_counts; here a synthetic city stands in for it."""
    import hotspots.aggregate as aggregate
    bundle, config = gridtown
    calls = {}

    def fake_area_counts(cfg, level, categories, month_from, month_to):
        calls.update(level=level, categories=categories, month_from=month_from, month_to=month_to)
        g = grid_city(10).rename(columns={"code": "code"})
        g["rate_per_1000"] = g["count"] / g["population"] * 1000
        return g[["code", "name", "ward_code", "ward_name", "count", "population", "rate_per_1000", "geometry"]]

    monkeypatch.setattr(aggregate, "area_counts", fake_area_counts)
    out = tmp_path / "lsoa.csv"
    r = CliRunner().invoke(cli, ["--config", str(config.source), "analyse", "--level", "lsoa", "--category",
                                 "violent-crime", "--from", "2018-01", "--to", "2018-06", "--permutations", "99",
                                 "--out", str(out)], catch_exceptions=False,
                           env={"HOTSPOTS_DATA_DIR": str(config.data_dir),
                                "HOTSPOTS_INSTANCE_DIR": str(config.instance_dir)})
    assert r.exit_code == 0, r.output
    assert calls == {"level": "lsoa", "categories": ["violent-crime"], "month_from": "2018-01",
                     "month_to": "2018-06"}
    assert "the count of violence and sexual offences is clustered" in r.output
    meta = json.loads(out.with_suffix(".metadata.json").read_text())
    assert meta["geography"] == "lsoa" and meta["categories"] == ["violent-crime"]
