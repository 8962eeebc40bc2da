"""Integration on the real bundle: Wolverhampton 2018-06 and West Yorkshire CSVs."""
from __future__ import annotations

import sqlite3

import pytest

from hotspots.aggregate import area_counts
from hotspots.ingest import ingest_paths

pytestmark = pytest.mark.bundle


def test_every_row_accounted_for(wolverhampton):
    config, summaries = wolverhampton
    assert all(s.balanced for s in summaries)
    read = sum(s.rows_read for s in summaries)
    assert read == 2510 + 27176 + 28537 + 31635
    wy = [s for s in summaries if "west-yorkshire" in s.path]
    # Every West Yorkshire row with coordinates is stored, outside the area; the rest are rejects.
    assert sum(s.accepted for s in wy) == sum(s.outside_area for s in wy) == 87348 - (1347 + 1541 + 883)
    assert sum(s.rejected for s in wy) == 1347 + 1541 + 883
    api = [s for s in summaries if s.format == "police-api-json"]
    assert sum(s.accepted for s in api) == 2463 and sum(s.duplicates for s in api) == 47


def test_reingest_adds_nothing(wolverhampton, real_bundle):
    config, _ = wolverhampton
    again = ingest_paths(config, [real_bundle / "crime"])
    assert sum(s.accepted for s in again) == 0
    con = sqlite3.connect(config.db_path)
    assert con.execute("SELECT COUNT(*) FROM incidents").fetchone()[0] == 2463 + 87348 - 3771


def test_violence_by_ward_matches_independent_check(wolverhampton):
    """MANIFEST.md's independent point-in-polygon check: St Peters 109, Heath Town 64, Bushbury South &
    Low Hill 62, Park 50, Blakenhall 47 violent crimes in 2018-06."""
    config, _ = wolverhampton
    gdf = area_counts(config, "ward", ["violent-crime"], "2018-06", "2018-06").set_index("name")
    assert gdf.loc["St Peters", "count"] == 109
    assert gdf.loc["Heath Town", "count"] == 64
    assert gdf.loc["Bushbury South & Low Hill", "count"] == 62
    assert gdf.loc["Park", "count"] == 50
    assert gdf.loc["Blakenhall", "count"] == 47
    assert gdf["population"].sum() == 263_730


def test_lsoa_layer_complete(wolverhampton):
    config, _ = wolverhampton
    gdf = area_counts(config, "lsoa", ["violent-crime"], "2018-06", "2018-06")
    assert len(gdf) == 161 and gdf["count"].sum() == 728 and gdf["population"].notna().all()
