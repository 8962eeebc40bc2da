"""Ingest: every row accounted for, bad input refused clearly, nothing already stored lost."""
from __future__ import annotations

import gzip
import json
import sqlite3

import pytest

from hotspots import store
from hotspots.errors import IngestError
from hotspots.ingest import (R_BAD_MONTH, R_NO_LOCATION, R_OUTSIDE_GB, R_SWAPPED, detect_format, ingest_paths)
from synthetic_bundle import HEADER, bng_to_lonlat, cell_centre, lsoa_code, police_csv


def stored(config) -> int:
    con = sqlite3.connect(config.db_path)
    try:
        return con.execute("SELECT COUNT(*) FROM incidents").fetchone()[0]
    finally:
        con.close()


def rejects(config) -> list[tuple]:
    con = sqlite3.connect(config.db_path)
    try:
        return con.execute("SELECT row_no, column_name, reason, raw FROM rejects ORDER BY row_no").fetchall()
    finally:
        con.close()


def write(tmp_path, name, text: str | bytes):
    p = tmp_path / name
    p.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return p


@pytest.fixture
def seeded(gridtown, tmp_path):
    """Gridtown with three incidents already stored (so we can check that bad files lose nothing)."""
    b, config = gridtown
    good = write(tmp_path, "good.csv", police_csv([
        ("a1", "2024-01", *cell_centre(0, 0), "Violence and sexual offences"),
        ("a2", "2024-01", *cell_centre(1, 1), "Robbery"),
        ("a3", "2024-02", *cell_centre(3, 3), "Violence and sexual offences")]))
    (s,) = ingest_paths(config, [good])
    assert (s.accepted, s.rejected) == (3, 0)
    return config


def test_geocodes_each_incident_to_lsoa_and_ward(seeded):
    con = sqlite3.connect(seeded.db_path)
    rows = con.execute("SELECT crime_id, lsoa21, lsoa11, ward, category, in_area FROM incidents_geocoded "
                       "ORDER BY crime_id").fetchall()
    names = con.execute("SELECT lsoa21_name, ward_name FROM incidents_geocoded WHERE crime_id='a2'").fetchone()
    assert rows == [("a1", lsoa_code(0, 0), lsoa_code(0, 0, "E0108"), "E05990000", "violent-crime", 1),
                    ("a2", lsoa_code(1, 1), lsoa_code(1, 1, "E0108"), "E05990000", "robbery", 1),
                    ("a3", lsoa_code(3, 3), lsoa_code(3, 3, "E0108"), "E05990003", "violent-crime", 1)]
    assert names == ("Gridtown 11A", "Ward 0")


def test_reingest_changes_nothing(seeded, tmp_path):
    again = write(tmp_path, "again.csv", police_csv([
        ("a1", "2024-01", *cell_centre(0, 0), "Violence and sexual offences"),
        ("a2", "2024-01", *cell_centre(1, 1), "Robbery"),
        ("a3", "2024-02", *cell_centre(3, 3), "Violence and sexual offences")]))
    (s,) = ingest_paths(seeded, [again])
    assert (s.rows_read, s.accepted, s.duplicates) == (3, 0, 3)
    assert stored(seeded) == 3


def test_rows_without_id_are_deduplicated_by_content_and_occurrence(gridtown, tmp_path):
    _, config = gridtown
    x, y = cell_centre(2, 2)
    asb = [("", "2024-01", x, y, "Anti-social behaviour")] * 2 + [("", "2024-01", x, y, "Drugs")]
    f = write(tmp_path, "asb.csv", police_csv(asb))
    (s,) = ingest_paths(config, [f])
    assert s.accepted == 3  # two identical ASB rows are two incidents
    (s2,) = ingest_paths(config, [f])
    assert (s2.accepted, s2.duplicates) == (0, 3)
    assert stored(config) == 3


def test_duplicated_rows_with_same_crime_id_stored_once(gridtown, tmp_path):
    _, config = gridtown
    row = ("dup1", "2024-01", *cell_centre(0, 1), "Robbery")
    (s,) = ingest_paths(config, [write(tmp_path, "d.csv", police_csv([row, row, row]))])
    assert (s.rows_read, s.accepted, s.duplicates, s.rejected) == (3, 1, 2, 0)


@pytest.mark.parametrize("name,content,expect", [
    ("empty.csv", "", "file is empty"),
    ("wrong.csv", "Crime ID,Month,Crime type\n1,2024-01,Robbery\n",
     "missing required column(s) for police.uk CSV: Longitude, Latitude"),
    ("other.csv", "a,b,c\n1,2,3\n", "missing required column(s) for a local extract: incident_id, offence"),
    ("empty.json", "", "file is empty (0 bytes)"),
    ("truncated.json", '[{"category":"violent-crime","location":{"latitude":"52.5",', "invalid JSON"),
    ("object.json", '{"a": 1}', "expected a JSON array"),
])
def test_bad_files_are_refused_whole_and_lose_nothing(seeded, tmp_path, name, content, expect):
    f = write(tmp_path, name, content)
    with pytest.raises(IngestError) as err:
        ingest_paths(seeded, [f])
    assert expect in err.value.message
    assert str(f) in err.value.message
    assert stored(seeded) == 3


def test_non_utf8_names_line_and_byte(seeded, tmp_path):
    lon, lat = bng_to_lonlat(*cell_centre(0, 0))
    data = (HEADER + f"x1,2024-01,P,P,{lon},{lat},On or near Caf\xe9,,,Robbery,,\n").encode("latin-1")
    f = write(tmp_path, "latin1.csv", data)
    with pytest.raises(IngestError) as err:
        ingest_paths(seeded, [f])
    assert "not UTF-8: byte 0xe9" in err.value.message and "line 2" in err.value.message
    assert stored(seeded) == 3


def test_row_problems_go_to_rejects_with_row_column_reason(seeded, tmp_path):
    x, y = cell_centre(2, 1)
    lon, lat = bng_to_lonlat(x, y)
    text = HEADER + "".join([
        f"r1,2024-03,P,P,{lon:.6f},{lat:.6f},On or near A,,,Robbery,,\n",      # good
        "r2,2024-03,P,P,,,No Location,,,Robbery,,\n",                           # blank coordinates
        f"r3,2024-03,P,P,{lat:.6f},{lon:.6f},On or near B,,,Robbery,,\n",      # swapped
        "r4,2024-03,P,P,2.35,48.85,Paris,,,Robbery,,\n",                        # outside GB
        f"r5,March 2024,P,P,{lon:.6f},{lat:.6f},On or near C,,,Robbery,,\n",   # bad month
        f"r6,2024-03,P,P,abc,{lat:.6f},On or near D,,,Robbery,,\n",            # not a number
        f"r7,2024-03,P,P,{lon:.6f},{lat:.6f},On or near E,,,,,\n",             # no category
    ])
    (s,) = ingest_paths(seeded, [write(tmp_path, "mixed.csv", text)])
    assert s.rows_read == 7 and s.accepted == 1 and s.rejected == 6 and s.balanced
    got = {r[0]: (r[1], r[2]) for r in rejects(seeded)}
    assert got[2] == ("Longitude/Latitude", R_NO_LOCATION)
    assert got[3] == ("Longitude/Latitude", R_SWAPPED)
    assert got[4] == ("Longitude/Latitude", R_OUTSIDE_GB)
    assert got[5] == ("Month", R_BAD_MONTH)
    assert got[6][1] == "coordinates are not numbers"
    assert got[7][0] == "Crime type"
    raw = json.loads(next(r[3] for r in rejects(seeded) if r[0] == 3))
    assert raw["Crime ID"] == "r3"  # the whole row is kept
    # re-ingesting the same file does not repeat its rejects
    ingest_paths(seeded, [tmp_path / "mixed.csv"])
    assert len(rejects(seeded)) == 6


def test_points_outside_area_are_kept_and_flagged(gridtown, tmp_path):
    _, config = gridtown
    far = ("o1", "2024-01", 450_000.0, 350_000.0, "Robbery")  # in GB, outside Gridtown
    (s,) = ingest_paths(config, [write(tmp_path, "o.csv", police_csv([far]))])
    assert (s.accepted, s.outside_area) == (1, 1)
    con = sqlite3.connect(config.db_path)
    assert con.execute("SELECT in_area, lsoa21 FROM incidents_geocoded WHERE crime_id='o1'").fetchone() == (0, None)


def test_point_on_shared_boundary_goes_to_smallest_code(gridtown):
    import numpy as np
    import shapely
    from hotspots.bundle import load_boundary
    from hotspots.geocode import Geocoder
    _, config = gridtown
    lsoa = load_boundary(config, "lsoa21").set_index("code")
    # Vertices shared (exactly, after the GeoJSON round trip) by LSOA (0,0) and its neighbours.
    a = {tuple(c) for c in shapely.get_coordinates(lsoa.geometry[lsoa_code(0, 0)])}
    b = {tuple(c) for c in shapely.get_coordinates(lsoa.geometry[lsoa_code(0, 1)])}
    c = {tuple(c) for c in shapely.get_coordinates(lsoa.geometry[lsoa_code(1, 1)])}
    corner = next(iter(a & b & c))  # shared by four LSOAs
    edge = np.mean(sorted(a & b), axis=0)  # midpoint of the shared edge (0,0)|(0,1)
    geo = Geocoder.from_config(config)
    xs, ys = [corner[0], edge[0]], [corner[1], edge[1]]
    out = geo.assign(xs, ys)
    assert shapely.intersects(lsoa.geometry[lsoa_code(0, 1)], shapely.points(corner))  # really on the boundary
    assert list(out["lsoa21"]) == [lsoa_code(0, 0), lsoa_code(0, 0)]
    out2 = geo.assign(xs[::-1], ys[::-1])  # order does not matter
    assert list(out2["lsoa21"]) == [lsoa_code(0, 0)] * 2


def test_police_api_json_and_gzip_jsonl(gridtown, tmp_path):
    _, config = gridtown
    lon, lat = bng_to_lonlat(*cell_centre(1, 2))
    rec = {"category": "violent-crime", "location_type": "Force",
           "location": {"latitude": f"{lat:.6f}", "street": {"id": 1, "name": "On or near X"},
                        "longitude": f"{lon:.6f}"},
           "context": "", "outcome_status": None, "persistent_id": "", "id": 111, "location_subtype": "",
           "month": "2024-05"}
    bad = dict(rec, id=112, location={"latitude": "", "longitude": "", "street": {}})
    a = write(tmp_path, "a.json", json.dumps([rec, bad]))
    b = tmp_path / "b.jsonl.gz"
    b.write_bytes(gzip.compress((json.dumps(rec) + "\n").encode()))
    s1, s2 = ingest_paths(config, [a, b])
    assert (s1.accepted, s1.rejected, s2.duplicates) == (1, 1, 1)  # the same id in two files is one crime
    con = sqlite3.connect(config.db_path)
    assert con.execute("SELECT category, month FROM incidents_geocoded").fetchall() == [("violent-crime", "2024-05")]


def test_local_extract_with_bng_and_extras(gridtown, tmp_path):
    _, config = gridtown
    x, y = cell_centre(3, 0)
    text = ("incident_id,date,offence,easting,northing,victim_age_band,weapon_flag\n"
            f"L1,2024-02-14,Violence with injury,{x},{y},18-24,knife\n"
            f"L2,2024-02-31,Violence with injury,{x},{y},18-24,\n"
            f"L3,2024-02-15,Violence with injury,,,25-34,\n")
    (s,) = ingest_paths(config, [write(tmp_path, "extract.csv", text)], "extract")
    assert (s.accepted, s.rejected) == (1, 2)
    con = sqlite3.connect(config.db_path)
    row = con.execute("SELECT category, month, date, lsoa21, attrs FROM incidents_geocoded").fetchone()
    assert row[:4] == ("violence-with-injury", "2024-02", "2024-02-14", lsoa_code(3, 0))
    assert json.loads(row[4]) == {"victim_age_band": "18-24", "weapon_flag": "knife"}
    assert {r[2] for r in rejects(config)} == {"date is not YYYY-MM-DD", "no location (blank coordinates)"}


def test_extract_missing_columns_named(gridtown, tmp_path):
    _, config = gridtown
    f = write(tmp_path, "x.csv", "id,when,what\n1,2024-01-01,x\n")
    with pytest.raises(IngestError, match="missing required column.*incident_id.*offence"):
        ingest_paths(config, [f], "extract")


def test_detect_format(tmp_path):
    assert detect_format(write(tmp_path, "a.json", "[]")) == "police-api-json"
    assert detect_format(write(tmp_path, "b.csv", HEADER)) == "police-csv"
    assert detect_format(write(tmp_path, "c.csv", "incident_id,date\n")) == "extract"
    with pytest.raises(IngestError, match="cannot tell the format"):
        detect_format(write(tmp_path, "d.txt", "x"))


def test_store_schema_is_versioned(gridtown):
    _, config = gridtown
    con = store.connect(config.db_path)
    assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(store.SCHEMA_VERSION)
    idx = {r[1] for r in con.execute("PRAGMA index_list('incidents')")}
    assert {"ix_incidents_month_category", "ix_incidents_lsoa21", "ix_incidents_ward"} <= idx


def test_source_lsoa_agreement_is_reported(gridtown, tmp_path):
    _, config = gridtown
    right = police_csv([("s1", "2024-01", *cell_centre(2, 3), "Robbery")], lsoa=lsoa_code(2, 3))
    wrong = police_csv([("s2", "2024-01", *cell_centre(2, 3), "Robbery")], lsoa=lsoa_code(0, 0)).split("\n", 1)[1]
    (s,) = ingest_paths(config, [write(tmp_path, "l.csv", right + wrong)])
    assert (s.lsoa_checked, s.lsoa_agree) == (2, 1)


def test_api_records_sharing_a_persistent_id_are_distinct_crimes(gridtown, tmp_path):
    """police.uk gives several records of one crime the same persistent_id (consecutive ids, same place and
    month); each record is a crime and must be kept, while the same id seen again is one crime."""
    _, config = gridtown
    lon, lat = bng_to_lonlat(*cell_centre(1, 1))
    base = {"category": "violent-crime", "location_type": "Force", "context": "", "outcome_status": None,
            "location": {"latitude": f"{lat:.6f}", "longitude": f"{lon:.6f}", "street": {"id": 1, "name": "X"}},
            "persistent_id": "ab" * 32, "location_subtype": "", "month": "2024-05"}
    recs = [dict(base, id=501), dict(base, id=502), dict(base, id=503), dict(base, id=501)]
    (s,) = ingest_paths(config, [write(tmp_path, "p.json", json.dumps(recs))])
    assert (s.accepted, s.duplicates) == (3, 1)
    con = sqlite3.connect(config.db_path)
    attrs = [json.loads(a) for (a,) in con.execute("SELECT attrs FROM incidents_geocoded ORDER BY crime_id")]
    assert [a["api_id"] for a in attrs] == ["501", "502", "503"] and attrs[0]["persistent_id"] == "ab" * 32


def test_ragged_row_is_named(gridtown, tmp_path):
    _, config = gridtown
    lon, lat = bng_to_lonlat(*cell_centre(0, 0))
    text = HEADER + f"r1,2024-01,P,P,{lon},{lat},A,,,Robbery,,\n" + f"r2,2024-01,P,P,{lon},{lat},A,,,Robbery,,,extra\n"
    with pytest.raises(IngestError) as err:
        ingest_paths(config, [write(tmp_path, "ragged.csv", text)])
    assert err.value.row == 2 and "ragged.csv:2: malformed CSV" in err.value.message


def test_month_is_stored_trimmed(gridtown, tmp_path):
    _, config = gridtown
    lon, lat = bng_to_lonlat(*cell_centre(0, 0))
    (s,) = ingest_paths(config, [write(tmp_path, "m.csv", HEADER + f"t1, 2024-01 ,P,P,{lon},{lat},A,,,Robbery,,\n")])
    assert s.accepted == 1
    con = sqlite3.connect(config.db_path)
    assert con.execute("SELECT month FROM incidents").fetchone() == ("2024-01",)


def test_stored_keys_are_the_v2_scheme(gridtown, tmp_path):
    """Existing stores are keyed by the v2 scheme: a re-ingest must find every stored row again. The keys
    written for hex Crime IDs, other ids and id-less rows (twice the same content: two incidents) are
    recomputed here with the original numpy/pandas implementation, from the raw CSV text."""
    import csv
    import io

    import numpy as np
    from test_keys import reference_keys

    _, config = gridtown
    hexid = "ab" * 32
    text = police_csv([(hexid, "2024-01", *cell_centre(0, 0), "Burglary"),
                       ("XY-1", "2024-01", *cell_centre(1, 0), "Robbery"),
                       ("", "2024-01", *cell_centre(2, 0), "Anti-social behaviour"),
                       ("", "2024-01", *cell_centre(2, 0), "Anti-social behaviour"),
                       ("", "2024-02", *cell_centre(3, 1), "Anti-social behaviour")])
    path = write(tmp_path, "keys.csv", text)
    (s,) = ingest_paths(config, [path])
    assert s.accepted == 5
    rows = list(csv.DictReader(io.StringIO(text)))
    crime_id = np.array([r["Crime ID"] or None for r in rows], dtype=object)
    identity = np.array(["\x1f".join(r[c] for c in ("Month", "Longitude", "Latitude", "Location", "LSOA code",
                                                    "Crime type", "Last outcome category", "Context",
                                                    "Reported by")) for r in rows], dtype=object)
    want = reference_keys(crime_id, identity)
    con = sqlite3.connect(config.db_path)
    got = [k for (k,) in con.execute("SELECT key FROM incidents ORDER BY row_no")]
    con.close()
    assert got == want.tolist()
