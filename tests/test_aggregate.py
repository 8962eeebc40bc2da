"""Counts and rates per area, independent of how they are computed: checked against hand counts."""
from __future__ import annotations

import pytest

from hotspots.aggregate import area_counts
from hotspots.errors import HotspotsError, NotFoundError
from hotspots.ingest import ingest_paths
from synthetic_bundle import cell_centre, lsoa_code, police_csv


@pytest.fixture
def city(gridtown, tmp_path):
    _, config = gridtown
    rows = [(f"v{k}", "2024-01", *cell_centre(0, 0), "Violence and sexual offences") for k in range(5)]
    rows += [(f"w{k}", "2024-02", *cell_centre(0, 1), "Violence and sexual offences") for k in range(3)]
    rows += [("r1", "2024-02", *cell_centre(3, 3), "Robbery")]
    f = tmp_path / "c.csv"
    f.write_text(police_csv(rows))
    ingest_paths(config, [f])
    return config


def test_lsoa_counts_and_rates(city):
    gdf = area_counts(city, "lsoa", ["violent-crime"], "2024-01", "2024-02")
    assert len(gdf) == 16 and gdf.crs.to_epsg() == 27700
    by = gdf.set_index("code")
    assert by.loc[lsoa_code(0, 0), "count"] == 5 and by.loc[lsoa_code(0, 1), "count"] == 3
    assert by["count"].sum() == 8
    assert by.loc[lsoa_code(0, 0), "population"] == 1000
    assert by.loc[lsoa_code(0, 1), "rate_per_1000"] == pytest.approx(3 / 1100 * 1000)
    assert by.loc[lsoa_code(0, 1), "ward_code"] == "E05990000"


def test_period_and_category_names(city):
    jan = area_counts(city, "lsoa", ["Violence and sexual offences"], "2024-01", "2024-01")
    assert jan["count"].sum() == 5
    everything = area_counts(city, "lsoa")
    assert everything["count"].sum() == 9


def test_ward_counts_and_population(city):
    gdf = area_counts(city, "ward", "violent-crime").set_index("code")
    assert gdf.loc["E05990000", "count"] == 8
    # ward 0 holds LSOAs (0,0),(0,1),(1,0),(1,1): populations 1000, 1100, 1400, 1500
    assert gdf.loc["E05990000", "population"] == 5000


@pytest.mark.parametrize("kw,err,msg", [
    (dict(categories=["no-such"]), NotFoundError, "unknown category no-such"),
    (dict(month_from="2024-13"), HotspotsError, "YYYY-MM"),
    (dict(month_from="2024-03", month_to="2024-01"), HotspotsError, "after"),
    (dict(level="county"), NotFoundError, "unknown geography"),
])
def test_bad_filters_are_clear(city, kw, err, msg):
    with pytest.raises(err, match=msg):
        area_counts(city, **kw)
