"""analyse_areas: the table, labels, variables, metadata, exports and the plain-English summary."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cities import ISLAND_ID, grid_city, hot_codes
from hotspots import stats
from hotspots.analysis import TABLE_COLUMNS, analyse_areas, read_areas
from hotspots.errors import AnalysisError


@pytest.fixture(scope="module")
def result():
    stats.warm_up()
    g = grid_city(10, island=True)
    return analyse_areas(g, "code", "count", name_col="name", ward_cols=("ward_code", "ward_name"),
                         permutations=999, seed=5, metadata={"geography": "grid", "subject": "violence"})


def test_table_shape_and_columns(result):
    t = result.table
    assert list(t.columns) == TABLE_COLUMNS
    assert t.crs.to_epsg() == 27700 and len(t) == 101
    row = t.set_index("area_code").loc["G0404"]
    assert row["gi_label"] == "Hot spot 99% confidence" and row["gi_bin"] == 3
    assert row["lisa_label"] == "High-High" and row["ward_name"] == "West Ward"
    island = t.set_index("area_code").loc[ISLAND_ID]
    assert island["gi_label"] == "No neighbours" and island["lisa_label"] == "No neighbours"
    assert np.isnan(island["gi_p"]) and island["n_neighbours"] == 0
    ring = {f"G{r:02d}{c:02d}" for r in range(2, 7) for c in range(2, 7)}  # the block and its neighbours
    assert hot_codes() & set(t.loc[t["gi_bin"] == 3, "area_code"])
    assert set(t.loc[t["gi_bin"] == 3, "area_code"]) <= ring


def test_metadata(result):
    m = result.metadata
    for key in ("geography", "weights", "islands", "permutations", "seed", "fdr", "alpha", "cutoff_lisa",
                "n", "variable", "warnings", "versions", "generated_at"):
        assert key in m
    assert m["islands"] == [ISLAND_ID] and m["permutations"] == 999 and m["n"] == 101
    assert set(m["versions"]) == {"numpy", "scipy", "shapely", "geopandas", "hotspots"}
    assert any("no neighbours" in w for w in m["warnings"])
    assert result.moran["I"] > 0.3 and result.moran["p_sim"] == pytest.approx(2 / 1000)


def test_summary_lines(result):
    lines = result.summary_lines()
    assert lines[0].startswith("Global Moran's I: violence is clustered: similar values sit next to each other")
    # the planted cluster reaches the permutation floor, and the text says it is the floor
    assert "p ≤ 0.002, the smallest 999 permutations can give" in lines[0]
    text = "\n".join(lines)
    assert "hot spots at 99% confidence" in text
    assert "West Ward" in text or "East Ward" in text
    assert "Warning:" in text


def test_geojson_export(result, tmp_path):
    path = result.to_geojson(tmp_path / "out.geojson")
    fc = json.loads(path.read_text())
    assert fc["type"] == "FeatureCollection" and "crs" not in fc
    assert fc["metadata"]["weights"] == "queen" and fc["attribution"]
    f = fc["features"][0]
    lon, lat = f["geometry"]["coordinates"][0][0]
    assert -3 < lon < -1.5 and 52 < lat < 53  # WGS84 around Wolverhampton
    assert all(len(str(c).split(".")[-1]) <= 6 for c in (lon, lat))
    island = next(x for x in fc["features"] if x["properties"]["code"] == ISLAND_ID)
    assert island["properties"]["gi_p"] is None  # NaN → null, never invalid JSON


def test_csv_and_gpkg_exports(result, tmp_path):
    csv = result.to_csv(tmp_path / "out.csv")
    df = pd.read_csv(csv)
    assert "geometry" not in df.columns and len(df) == 101
    side = json.loads(result.sidecar_path(csv).read_text())
    assert side["seed"] == 5 and side["moran"]["I"] == pytest.approx(result.moran["I"])
    gpkg = result.write(tmp_path / "out.gpkg")
    import geopandas as gpd
    back = gpd.read_file(gpkg, layer="hotspots")
    assert len(back) == 101 and back.crs.to_epsg() == 27700
    with pytest.raises(AnalysisError, match="unknown output format"):
        result.write(tmp_path / "out.xlsx")


def test_rate_and_eb_rate():
    g = grid_city(10)
    r = analyse_areas(g, "code", "count", variable="rate", population_col="population", stats=("gistar",),
                      permutations=0)
    assert np.allclose(r.table["value"], g["count"] / g["population"] * 1000)
    eb = analyse_areas(g, "code", "count", variable="eb_rate", population_col="population", stats=("moran",),
                       permutations=99)
    expected = stats.empirical_bayes_rate(g["count"], g["population"]) * 1000
    assert np.allclose(eb.table["value"], expected)
    assert (eb.table["gi_label"] == "Not computed").all()
    with pytest.raises(AnalysisError, match="population"):
        analyse_areas(g, "code", "count", variable="rate")


def test_fdr_is_recorded_and_stricter():
    g = grid_city(10)
    raw = analyse_areas(g, "code", "count", permutations=999, seed=1)
    fdr = analyse_areas(g, "code", "count", permutations=999, seed=1, fdr=True)
    assert fdr.metadata["fdr"] is True
    assert fdr.metadata["cutoff_lisa"] <= raw.metadata["cutoff_lisa"] == 0.05
    assert (fdr.table["lisa_label"] != "Not significant").sum() <= (raw.table["lisa_label"] != "Not significant").sum()


def test_errors():
    g = grid_city(10)
    with pytest.raises(AnalysisError, match="unknown statistic"):
        analyse_areas(g, "code", "count", stats=("kde",))
    with pytest.raises(AnalysisError, match="weights spec"):
        analyse_areas(g, "code", "count", weights="hexagon")
    flat = g.assign(count=2)
    with pytest.raises(AnalysisError, match="same"):
        analyse_areas(flat, "code", "count")
    bad = g.copy()
    bad.loc[3, "count"] = np.nan
    with pytest.raises(AnalysisError, match="G0003"):
        analyse_areas(bad, "code", "count")


def test_small_city_warns():
    g = grid_city(5)
    r = analyse_areas(g, "code", "count", permutations=99)
    assert stats.WARN_FEW_AREAS in r.metadata["warnings"]


def test_read_areas(tmp_path):
    g = grid_city(4).to_crs(4326)
    path = tmp_path / "areas.gpkg"
    g.to_file(path, driver="GPKG")
    back = read_areas(path, "code", "count")
    assert back.crs.to_epsg() == 27700 and len(back) == 16
    with pytest.raises(AnalysisError, match="no column 'crimes'") as exc:
        read_areas(path, "code", "crimes")
    assert "areas.gpkg" in exc.value.message and "count" in exc.value.message
    with pytest.raises(AnalysisError, match="file not found"):
        read_areas(tmp_path / "missing.geojson", "code", "count")
    # A shapefile without .prj has no CRS (a GeoJSON without one is WGS84 by RFC 7946).
    shp = tmp_path / "nocrs.shp"
    with pytest.warns(UserWarning, match="crs"):
        grid_city(4).set_crs(None, allow_override=True).to_file(shp)
    with pytest.raises(AnalysisError, match="no CRS"):
        read_areas(shp, "code", "count")
