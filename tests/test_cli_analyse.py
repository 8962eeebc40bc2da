"""``hotspots analyse`` through click's CliRunner, on a synthetic polygon file (``--areas``)."""
from __future__ import annotations

import json
from pathlib import Path

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
    assert list(df.columns[:4]) == ["code", "name", "ward_code", "ward_name"]  # the download field names
    assert (df.loc[df.code == "G0404", "gi_label"] == "Hot spot 99% confidence").all()
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


def _plant(config, tmp_path, rows_per_cell: dict) -> int:
    """Ingest police.uk rows into Gridtown: ``rows_per_cell`` maps (row, col) to a number of violent crimes."""
    from hotspots.ingest import ingest_paths
    from synthetic_bundle import cell_centre, police_csv
    rows = []
    for (i, j), k in rows_per_cell.items():
        x, y = cell_centre(i, j)
        rows += [(f"cli{i}{j}-{q}", "2024-01", x + 9 * q, y + 4 * q, "Violence and sexual offences") for q in range(k)]
    f = tmp_path / "planted.csv"
    f.write_text(police_csv(rows))
    ingest_paths(config, [f])
    return len(rows)


def test_analyse_level_goes_through_the_pipeline(gridtown, tmp_path):
    """``--level`` is the web's pipeline (parse → counts → analysis) on the ingested store, written with the
    web's field names."""
    bundle, config = gridtown
    n = _plant(config, tmp_path, {(0, 0): 30, (0, 1): 25, (1, 0): 28, (1, 1): 22, (0, 2): 12, (2, 0): 11,
                                  (3, 3): 1, (2, 3): 1, (3, 2): 1})
    out = tmp_path / "lsoa.csv"
    r = CliRunner().invoke(cli, ["--config", str(config.source), "analyse", "--level", "lsoa", "--category",
                                 "violent-crime", "--from", "2024-01", "--to", "2024-01", "--permutations", "99",
                                 "--significance", "bonferroni", "--out", str(out)], catch_exceptions=False,
                           env={"HOTSPOTS_DATA_DIR": str(config.data_dir),
                                "HOTSPOTS_INSTANCE_DIR": str(config.instance_dir)})
    assert r.exit_code == 0, r.output
    assert "violence and sexual offences is clustered" in r.output
    meta = json.loads(out.with_suffix(".metadata.json").read_text())
    assert meta["geography"] == "lsoa" and meta["categories"] == ["violent-crime"]
    assert (meta["from"], meta["to"], meta["significance"]) == ("2024-01", "2024-01", "bonferroni")
    assert meta["cutoffs"]["gi"]["95%"] == pytest.approx(0.05 / 16)
    df = pd.read_csv(out)  # the web's field names, with the count column
    assert list(df.columns[:7]) == ["code", "name", "ward_code", "ward_name", "count", "population", "rate_per_1000"]
    assert df["count"].sum() == n and pd.api.types.is_integer_dtype(df["count"])


# -- issue 12 item 4: any file, its own attributions, exit codes -------------------------------------------


@pytest.fixture(scope="module")
def columbus(tmp_path_factory):
    """Anselin's Columbus shapefile as libpysal ships it: no .prj, so no CRS."""
    import shutil

    import libpysal.examples
    src = Path(libpysal.examples.get_path("columbus.shp"))
    d = tmp_path_factory.mktemp("columbus")
    for ext in (".shp", ".shx", ".dbf"):
        shutil.copy(src.with_suffix(ext), d / f"columbus{ext}")
    assert not (d / "columbus.prj").exists()
    return d / "columbus.shp"


def columbus_args(path, out, *extra):
    return ["analyse", "--areas", str(path), "--id", "POLYID", "--value", "CRIME", "--permutations", "99",
            "--out", str(out), *extra]


def test_areas_without_crs_queen_warns_and_matches_esda(columbus, tmp_path):
    import esda
    import geopandas as gpd
    import libpysal
    import libpysal.examples
    out = tmp_path / "columbus.csv"
    r = run(columbus_args(columbus, out, "--weights", "queen"), tmp_path)
    assert r.exit_code == 0, r.output
    assert "Warning:" in r.output and "has no CRS" in r.output and "--crs" in r.output
    df = pd.read_csv(out)
    assert df.columns[0] == "POLYID" and len(df) == 49  # keyed by the user's id column
    meta = json.loads(out.with_suffix(".metadata.json").read_text())
    g = gpd.read_file(columbus)
    f = libpysal.io.open(libpysal.examples.get_path("columbus.gal"))  # PySAL's queen weights file
    try:
        gal = f.read()
    finally:
        f.close()
    mi = esda.Moran(g["CRIME"].to_numpy(float), gal, permutations=0)
    assert meta["moran"]["I"] == pytest.approx(mi.I, abs=1e-12)
    assert meta["moran"]["z_norm"] == pytest.approx(mi.z_norm, abs=1e-9)
    assert meta["moran"]["p_rand"] == pytest.approx(mi.p_rand, abs=1e-12)
    assert meta["crs"] is None
    # only the file's own attribution: not the ONS/OS lines of a city
    assert meta["attribution"] == ["Areas and values: columbus.shp, supplied by the user (its own licence and "
                                   "attribution apply)."]
    gpkg = tmp_path / "columbus.gpkg"
    assert run(columbus_args(columbus, gpkg, "--weights", "rook"), tmp_path).exit_code == 0
    import pyogrio
    info = pyogrio.read_info(gpkg, layer="hotspots")
    assert info["crs"] is None and dict(zip(info["fields"], info["dtypes"]))["gi_z"] == "float64"
    rook = json.loads(gpkg.with_suffix(".metadata.json").read_text())["moran"]
    w_rook = libpysal.weights.Rook.from_dataframe(g, use_index=False)
    assert rook["I"] == pytest.approx(esda.Moran(g["CRIME"].to_numpy(float), w_rook, permutations=0).I, abs=1e-12)


@pytest.mark.parametrize("weights", ["knn:4", "distance:1"])
def test_areas_without_crs_refuse_distance_weights(columbus, tmp_path, weights):
    out = tmp_path / "c.csv"
    r = run(columbus_args(columbus, out, "--weights", weights), tmp_path)
    assert r.exit_code == 1 and "projected CRS" in r.output and "--crs" in r.output
    assert not out.exists()


def test_areas_without_crs_refuse_geojson(columbus, tmp_path):
    r = run(columbus_args(columbus, tmp_path / "c.geojson"), tmp_path)
    assert r.exit_code == 1 and "--crs" in r.output and "GeoJSON" in r.output


def test_declared_crs_allows_knn_and_geojson(columbus, tmp_path):
    out = tmp_path / "c.geojson"
    r = run(columbus_args(columbus, out, "--weights", "knn:4", "--crs", "EPSG:27700"), tmp_path)
    assert r.exit_code == 0, r.output
    assert "has no CRS" not in r.output
    fc = json.loads(out.read_text())
    assert fc["metadata"]["crs"] == "EPSG:27700" and fc["metadata"]["weights"] == "knn:4"
    assert fc["features"][0]["properties"]["POLYID"] == 1
    r = run(columbus_args(columbus, out, "--crs", "EPSG:nonsense"), tmp_path)
    assert r.exit_code == 1 and "not a CRS" in r.output


def test_areas_with_a_city_config_carry_no_city_attribution(columbus, gridtown, tmp_path):
    bundle, config = gridtown
    out = tmp_path / "c.csv"
    r = CliRunner().invoke(cli, ["--config", str(config.source), *columbus_args(columbus, out)],
                           catch_exceptions=False, env={"HOTSPOTS_DATA_DIR": str(config.data_dir),
                                                        "HOTSPOTS_INSTANCE_DIR": str(config.instance_dir)})
    assert r.exit_code == 0, r.output
    meta = json.loads(out.with_suffix(".metadata.json").read_text())
    assert not set(config.attributions()) & set(meta["attribution"]) and "area" not in meta


def test_level_with_nothing_to_analyse_exits_1(gridtown, tmp_path):
    bundle, config = gridtown
    _plant(config, tmp_path, {(0, 0): 3})
    out = tmp_path / "x.csv"
    r = CliRunner().invoke(cli, ["--config", str(config.source), "analyse", "--level", "lsoa", "--from", "2018-01",
                                 "--to", "2018-01", "--out", str(out)], catch_exceptions=False,
                           env={"HOTSPOTS_DATA_DIR": str(config.data_dir),
                                "HOTSPOTS_INSTANCE_DIR": str(config.instance_dir)})
    assert r.exit_code == 1 and "nothing to analyse" in r.output and "2018-01" in r.output
    assert not out.exists()

def test_counts_with_nothing_to_count_exits_1(gridtown, tmp_path, monkeypatch):
    import hotspots.aggregate as aggregate
    bundle, config = gridtown
    monkeypatch.setattr(aggregate, "area_counts", lambda *a, **k: grid_city(4).assign(count=0))
    out = tmp_path / "x.csv"
    r = CliRunner().invoke(cli, ["--config", str(config.source), "counts", "--out", str(out)],
                           env={"HOTSPOTS_DATA_DIR": str(config.data_dir),
                                "HOTSPOTS_INSTANCE_DIR": str(config.instance_dir)})
    assert r.exit_code == 1 and "nothing to count" in r.output
    assert not out.exists()


def test_counts_out_uses_download_field_names(gridtown, tmp_path, monkeypatch):
    import sqlite3

    import hotspots.aggregate as aggregate
    bundle, config = gridtown
    g = grid_city(4).astype({"count": "int64"})
    g["rate_per_1000"] = g["count"] / g["population"] * 1000
    monkeypatch.setattr(aggregate, "area_counts", lambda *a, **k: g)
    out = tmp_path / "x.gpkg"
    r = CliRunner().invoke(cli, ["--config", str(config.source), "counts", "--out", str(out)],
                           env={"HOTSPOTS_DATA_DIR": str(config.data_dir),
                                "HOTSPOTS_INSTANCE_DIR": str(config.instance_dir)})
    assert r.exit_code == 0, r.output
    with sqlite3.connect(out) as db:
        types = {row[1]: row[2] for row in db.execute('PRAGMA table_info("x")')}
        keys = {k for (k,) in db.execute("SELECT key FROM metadata")}
    assert list(types)[2:6] == ["code", "name", "ward_code", "ward_name"]  # after fid and geom
    assert types["count"] in ("INTEGER", "MEDIUMINT", "BIGINT") and types["rate_per_1000"] in ("REAL", "DOUBLE")
    assert {"attribution", "generated_at"} <= keys
