"""End to end on the real Wolverhampton bundle: ingested violence → counts → analysis → GeoJSON.

Uses the session fixture ``wolverhampton`` (the real bundle installed and all its crime ingested),
so the numbers are the real June 2018 violent-crime counts of Wolverhampton's 161 LSOAs.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import shapely
from click.testing import CliRunner
from shapely.geometry import shape

from hotspots import stats
from hotspots.analysis import analyse_areas
from hotspots.cli import cli

pytestmark = pytest.mark.bundle

N_LSOA = 161
#: Wolverhampton's extent in EPSG:4326, with a small margin.
LON = (-2.21, -2.04)
LAT = (52.54, 52.64)
CITY_CENTRE_WARD = "St Peters"
PERIOD = ("2018-06", "2018-06")
CATEGORY = "violent-crime"


@pytest.fixture(scope="module")
def counts(wolverhampton):
    from hotspots.aggregate import area_counts
    config, _ = wolverhampton
    return area_counts(config, "lsoa", [CATEGORY], *PERIOD)


@pytest.fixture(scope="module")
def result(counts):
    stats.warm_up()
    return analyse_areas(counts, "code", "count", name_col="name", ward_cols=("ward_code", "ward_name"),
                         permutations=999, seed=12345)


@pytest.fixture
def cli_env(wolverhampton, monkeypatch):
    config, _ = wolverhampton
    monkeypatch.delenv("HOTSPOTS_CONFIG", raising=False)
    monkeypatch.setenv("HOTSPOTS_DATA_DIR", str(config.data_dir))
    monkeypatch.setenv("HOTSPOTS_INSTANCE_DIR", str(config.instance_dir))
    return config


def _run(args):
    return CliRunner().invoke(cli, ["analyse", "--category", CATEGORY, "--from", PERIOD[0], "--to", PERIOD[1],
                                    *args], catch_exceptions=False)


def _lonlats(geometry: dict) -> np.ndarray:
    return shapely.get_coordinates(shape(geometry))


def test_counts_are_real_violence(counts):
    assert len(counts) == N_LSOA and counts.crs.to_epsg() == 27700
    assert counts["count"].sum() > 100 and counts["count"].nunique() > 5


def test_analyse_areas_on_real_counts(result):
    t = result.table
    assert len(t) == N_LSOA
    assert result.moran["I"] > 0 and result.metadata["islands"] == []
    hot = t[t["gi_bin"] == 3]
    assert len(hot) > 0
    assert (hot["ward_name"] == CITY_CENTRE_WARD).any(), sorted(set(hot["ward_name"]))


def test_cli_level_lsoa_writes_rfc7946_geojson(cli_env, tmp_path):
    out = tmp_path / "hot.geojson"
    r = _run(["--level", "lsoa", "--out", str(out)])
    assert r.exit_code == 0, r.output
    m = re.search(r"Global Moran's I: .*\(I = (-?[0-9.]+),", r.output)
    assert m, r.output
    assert float(m.group(1)) > 0
    assert "Gi* hot spots at 99% confidence" in r.output

    fc = json.loads(out.read_text())
    assert fc["type"] == "FeatureCollection" and "crs" not in fc  # RFC 7946: WGS 84 implied, no crs member
    assert len(fc["features"]) == N_LSOA
    for f in fc["features"]:
        assert f["type"] == "Feature" and f["geometry"]["type"] in ("Polygon", "MultiPolygon")
        xy = _lonlats(f["geometry"])
        assert (LON[0] <= xy[:, 0]).all() and (xy[:, 0] <= LON[1]).all(), f["properties"]["area_code"]
        assert (LAT[0] <= xy[:, 1]).all() and (xy[:, 1] <= LAT[1]).all(), f["properties"]["area_code"]
        assert shape(f["geometry"]).is_valid, f["properties"]["area_code"]
    props = [f["properties"] for f in fc["features"]]
    hot_wards = {p["ward_name"] for p in props if p["gi_bin"] == 3}
    assert CITY_CENTRE_WARD in hot_wards, hot_wards
    assert fc["metadata"]["geography"] == "lsoa" and fc["metadata"]["categories"] == [CATEGORY]


def test_cli_level_ward_warns_about_few_areas(cli_env, tmp_path):
    r = _run(["--level", "ward", "--permutations", "999", "--out", str(tmp_path / "wards.csv")])
    assert r.exit_code == 0, r.output
    assert "fewer than 30 areas" in r.output


def test_equals_pygeoda_on_real_counts(counts, result):
    pygeoda = pytest.importorskip("pygeoda")
    from hotspots.weights import build_weights
    y = counts["count"].to_numpy(dtype=float)
    w = build_weights(counts, "queen", id_col="code")
    gw = pygeoda.queen_weights(pygeoda.open(counts[["code", "count", "geometry"]]))
    for i in range(w.n):
        assert sorted(gw.get_neighbors(i)) == w.neighbours(i).tolist()
    gi = stats.gi_star(y, w, permutations=0)
    lm = stats.local_moran(y, w, permutations=99)
    pg = pygeoda.local_gstar(gw, y.tolist(), permutations=99, seed=1)
    pl = pygeoda.local_moran(gw, y.tolist(), permutations=99, seed=1)
    assert np.abs(gi.g_star_geoda - np.array(pg.lisa_values())).max() < 1e-9
    assert np.abs(lm.I - np.array(pl.lisa_values())).max() < 1e-9
    # and the analysis table carries the same local Moran values
    assert np.abs(result.table["lisa_i"].to_numpy() - np.array(pl.lisa_values())).max() < 1e-9
