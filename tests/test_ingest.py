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


def stored(config, table: str = "incidents") -> int:
    con = sqlite3.connect(config.db_path)
    try:
        return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
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


def test_a_quoted_header_name_spanning_lines_is_checked_for_utf8_too(seeded, tmp_path):
    """Found by tests/test_properties.py in a fresh CI run: the header's first line was checked, but a quoted
    name may run onto the next line, and Arrow then raised UnicodeDecodeError on reading the column names."""
    f = write(tmp_path, "quoted.csv", b'"Crime ID\n\x80",Month\nx,2024-01\n')
    with pytest.raises(IngestError) as err:
        ingest_paths(seeded, [f])
    assert "not UTF-8: byte 0x80" in err.value.message and "line 2" in err.value.message
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
    assert set(store.INDEXES) <= idx and not idx & set(store.RETIRED_INDEXES)


def test_the_base_cells_are_read_from_the_covering_index_alone(gridtown):
    """count_cells reads no table rows (an index-only scan): 15.5 s against 1.4 s on London's store."""
    _, config = gridtown
    con = store.connect(config.db_path)
    try:
        for col in ("lsoa21_id", "ward_id"):
            plan = " ".join(str(r[-1]) for r in con.execute(
                f"EXPLAIN QUERY PLAN SELECT {col}, month, category_id, COUNT(*) FROM incidents "
                f"WHERE in_area = 1 AND {col} IS NOT NULL GROUP BY {col}, month, category_id"))
            assert "COVERING INDEX" in plan and "TEMP B-TREE" not in plan, plan
        # an older store's one-column indexes are replaced when it is opened for writing
        con.execute("CREATE INDEX ix_incidents_lsoa21 ON incidents(lsoa21_id)")
    finally:
        con.close()
    con = store.connect(config.db_path)
    try:
        assert "ix_incidents_lsoa21" not in {r[1] for r in con.execute("PRAGMA index_list('incidents')")}
    finally:
        con.close()


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


# ------------------------------------------------------------------ input limits (issue 14 items 5 and 6)
def limited(config, **limits):
    from dataclasses import replace

    from hotspots.config import IngestLimits
    return replace(config, ingest=IngestLimits(**limits))


def ingests(config) -> int:
    return stored(config, "ingests")


@pytest.mark.parametrize("name", ["bomb.csv.gz", "bomb.json.gz", "bomb.jsonl.gz"])
def test_gzip_bomb_is_refused_with_a_clear_error(seeded, tmp_path, name):
    """50 MB of zeros compress to about 50 kB; with the cap at 10 MiB the file is refused while it is
    being decompressed (never fully expanded), naming the file and the setting."""
    f = write(tmp_path, name, gzip.compress(b"0" * 50_000_000, compresslevel=9))
    assert f.stat().st_size < 200_000
    with pytest.raises(IngestError) as err:
        ingest_paths(limited(seeded, max_expanded_mb=10), [f])
    assert str(f) in err.value.message and "max_expanded_mb" in err.value.message
    assert "expands to more than 10 MiB" in err.value.message
    assert stored(seeded) == 3 and ingests(seeded) == 1


def test_plain_file_over_the_cap_is_refused_before_reading(seeded, tmp_path):
    rows = [(f"p{i}", "2024-01", *cell_centre(0, 0), "Robbery") for i in range(2_000)]
    f = write(tmp_path, "big.csv", police_csv(rows))
    with pytest.raises(IngestError, match="max_expanded_mb"):
        ingest_paths(limited(seeded, max_expanded_mb=0.05), [f])
    (s,) = ingest_paths(limited(seeded, max_expanded_mb=1), [f])  # the same file under a higher cap
    assert s.accepted == 2_000


def test_file_that_is_mostly_rejects_is_refused_whole(seeded, tmp_path):
    """1,200 rows of which 700 have no coordinates (58 %): refused, first rejected rows named, nothing
    written (no incidents, no rejects, no ingest record)."""
    good = [f"m{i},2024-01,P,P,{{lon}},{{lat}},On or near A,,,Robbery,,\n" for i in range(500)]
    lon, lat = bng_to_lonlat(*cell_centre(0, 0))
    text = HEADER + "".join(g.format(lon=lon, lat=lat) for g in good) + \
        "".join(f"n{i},2024-01,P,P,,,No location,,,Robbery,,\n" for i in range(700))
    f = write(tmp_path, "mostly-bad.csv", text)
    with pytest.raises(IngestError) as err:
        ingest_paths(seeded, [f])
    msg = err.value.message
    assert "700 of 1,200 rows (58%)" in msg and "nothing was written" in msg
    assert "row 501 (Longitude/Latitude: no location (blank coordinates))" in msg and "row 505" in msg
    assert err.value.row == 501
    assert stored(seeded) == 3 and rejects(seeded) == [] and ingests(seeded) == 1
    # the same file under a share limit it meets is ingested, every row accounted for
    (s,) = ingest_paths(limited(seeded, max_reject_share=0.6), [f])
    assert (s.rows_read, s.accepted, s.rejected) == (1_200, 500, 700) and s.balanced


def test_too_many_rejects_refused_whatever_the_share(seeded, tmp_path):
    """[0, 0, ...] (the 10 MB upload of issue 14, scaled down): every record rejected, file refused."""
    f = write(tmp_path, "zeros.json", "[" + ",".join(["0"] * 300) + "]")
    with pytest.raises(IngestError, match=r"300 of 300 rows .*max_rejects 200"):
        ingest_paths(limited(seeded, max_rejects=200), [f])
    assert rejects(seeded) == [] and ingests(seeded) == 1
    small = write(tmp_path, "few.json", "[0, 0]")  # under every limit: stored as rejects, nothing lost
    (s,) = ingest_paths(limited(seeded, max_rejects=200), [small])
    assert (s.rows_read, s.rejected) == (2, 2) and s.all_rejected and len(rejects(seeded)) == 2


SECRET = "daemon:x:1:1:daemon,,,:/usr/sbin:/usr/sbin/nologin\nroot:x:0:0:root:/root:/bin/bash\n"


def test_symlinks_are_resolved_and_refused_outside_allowed_roots(seeded, tmp_path):
    uploads, elsewhere = tmp_path / "uploads", tmp_path / "elsewhere"
    uploads.mkdir()
    elsewhere.mkdir()
    real = write(elsewhere, "real.csv", police_csv([("s1", "2024-01", *cell_centre(0, 0), "Robbery")]))
    link = uploads / "link.csv"
    link.symlink_to(real)
    with pytest.raises(IngestError, match="outside the folders"):
        ingest_paths(seeded, [link], allowed_roots=[uploads])
    assert stored(seeded) == 3 and ingests(seeded) == 1
    inside = write(uploads, "inside.csv", police_csv([("s2", "2024-01", *cell_centre(0, 0), "Robbery")]))
    (s,) = ingest_paths(seeded, [inside], allowed_roots=[uploads])
    assert s.accepted == 1
    (s,) = ingest_paths(seeded, [link])  # no roots (the CLI): followed, and the real file is named
    assert s.accepted == 1 and s.path == str(real.resolve())


@pytest.mark.parametrize("target", ["fake", "/etc/passwd"])
def test_symlink_to_a_system_file_echoes_none_of_it(seeded, tmp_path, target):
    """`hotspots ingest` of a symlink to a non-incident file: refused, exit 1, not a line of it printed."""
    import os
    from pathlib import Path

    from click.testing import CliRunner

    from hotspots.cli import cli
    if target == "fake":
        secret = write(tmp_path, "passwd", SECRET)
    else:
        secret = Path(target)
        if not secret.is_file() or not os.access(secret, os.R_OK):
            pytest.skip("no readable /etc/passwd here")
    lines = [ln for ln in secret.read_text(errors="replace").splitlines() if len(ln.strip()) > 3]
    for name in ("x.csv", "x.json", "x.jsonl"):
        link = tmp_path / name
        link.symlink_to(secret)
        r = CliRunner().invoke(cli, ["--config", str(seeded.source), "ingest", str(link)], obj={},
                               env={"HOTSPOTS_INSTANCE_DIR": str(seeded.instance_dir),
                                    "HOTSPOTS_DATA_DIR": str(seeded.data_dir), "HOTSPOTS_BUNDLE": str(seeded.bundle)})
        assert r.exit_code == 1, r.output
        assert "Traceback" not in r.output and f"{secret.resolve()}: " in r.output  # the real file is named
        for line in lines:
            for field in {line, *line.split(":")[:1], *line.split(",")}:
                assert len(field) < 4 or field not in r.output.replace(str(tmp_path), ""), (name, field, r.output)
    assert stored(seeded) == 3


def test_store_files_are_private(tmp_path):
    """The store and its WAL/SHM are 0600 in a 0700 folder, whatever the umask; an existing store that
    others could read is tightened on open."""
    import os
    import stat
    old = os.umask(0o022)
    try:
        db = tmp_path / "instance" / "hotspots.db"
        con = store.connect(db)
        with store.transaction(con):
            con.execute("INSERT INTO meta VALUES ('probe', 'x')")
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (db, db.with_name("hotspots.db-wal"),
                                                                 db.with_name("hotspots.db-shm"), db.parent)}
        con.close()
        assert modes == {"hotspots.db": 0o600, "hotspots.db-wal": 0o600, "hotspots.db-shm": 0o600,
                         "instance": 0o700}
        os.chmod(db, 0o644)
        os.chmod(db.parent, 0o755)
        store.connect(db).close()
        assert stat.S_IMODE(db.stat().st_mode) == 0o600 and stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    finally:
        os.umask(old)


# ------------------------------------------------------------- reports that add up (issue 12 item 5)
def test_all_rejected_file_exits_1_and_repeat_adds_up(seeded, tmp_path):
    """A 3-row file whose every row is rejected: `hotspots ingest` says so and exits 1; ingesting the
    identical file again reports read 3 = 0 accepted + 3 duplicates (rejected before) + 0 rejected, and
    still exits 1."""
    from click.testing import CliRunner

    from hotspots.cli import cli
    f = write(tmp_path, "uk-dates.csv", HEADER + "".join(
        f"u{i},25/06/2018 18:15,P,P,-2.1,52.58,On or near A,,,Robbery,,\n" for i in range(3)))
    env = {"HOTSPOTS_INSTANCE_DIR": str(seeded.instance_dir), "HOTSPOTS_DATA_DIR": str(seeded.data_dir),
           "HOTSPOTS_BUNDLE": str(seeded.bundle)}
    for attempt in (1, 2):
        r = CliRunner().invoke(cli, ["--config", str(seeded.source), "ingest", str(f)], obj={}, env=env)
        assert r.exit_code == 1, r.output
        assert "every row (3) was rejected" in r.output
        assert ("first ingested" in r.output) == (attempt == 2)
    (s,) = ingest_paths(seeded, [f])
    assert (s.rows_read, s.accepted, s.duplicates, s.already_rejected, s.rejected) == (3, 0, 3, 3, 0)
    assert s.balanced and s.all_rejected
    assert len(rejects(seeded)) == 3  # stored once


def test_repeated_mixed_file_counts_every_row(seeded, tmp_path):
    lon, lat = bng_to_lonlat(*cell_centre(0, 0))
    f = write(tmp_path, "mixed.csv", HEADER + f"k1,2024-01,P,P,{lon},{lat},A,,,Robbery,,\n"
                                              "k2,2024-01,P,P,,,B,,,Robbery,,\n")
    (first,) = ingest_paths(seeded, [f])
    (again,) = ingest_paths(seeded, [f])
    assert (first.rows_read, first.accepted, first.duplicates, first.rejected) == (2, 1, 0, 1)
    assert (again.rows_read, again.accepted, again.duplicates, again.rejected) == (2, 0, 2, 0)
    assert first.balanced and again.balanced and not again.all_rejected


# ------------------------------------------------- extract dates with a format and a time (issue 12 item 1)
def test_extract_with_uk_dates_and_times(gridtown, tmp_path):
    """`[extract] date_format = "%d/%m/%Y %H:%M"`: UK dates with times ingest with the date and the time
    of day stored; a US-order date, an ISO date and a date without its time are rejected with the row and
    the expected format (never guessed)."""
    from dataclasses import replace

    from hotspots.config import ExtractMapping
    _, config = gridtown
    config = replace(config, extract=ExtractMapping(date_format="%d/%m/%Y %H:%M"))
    x, y = cell_centre(1, 2)
    text = ("incident_id,date,offence,easting,northing\n"
            f"U1,25/06/2018 18:15,Violence with injury,{x},{y}\n"
            f"U2,01/07/2018 00:05,Robbery,{x},{y}\n"
            f"U3,06/25/2018 18:15,Robbery,{x},{y}\n"
            f"U4,2018-06-25 18:15,Robbery,{x},{y}\n"
            f"U5,25/06/2018,Robbery,{x},{y}\n")
    (s,) = ingest_paths(config, [write(tmp_path, "uk.csv", text)], "extract")
    assert (s.rows_read, s.accepted, s.rejected) == (5, 2, 3)
    con = sqlite3.connect(config.db_path)
    assert con.execute("SELECT crime_id, month, date, time FROM incidents_geocoded ORDER BY crime_id").fetchall() == [
        ("extract:U1", "2018-06", "2018-06-25", "18:15"), ("extract:U2", "2018-07", "2018-07-01", "00:05")]
    con.close()
    assert [(r[0], r[1], r[2]) for r in rejects(config)] == [
        (n, "date", "date does not match the format '%d/%m/%Y %H:%M' ([extract] date_format)") for n in (3, 4, 5)]


def test_extract_iso_dates_keep_their_time(gridtown, tmp_path):
    _, config = gridtown
    x, y = cell_centre(0, 1)
    text = ("incident_id,date,offence,easting,northing\n"
            f"I1,2024-03-01T21:40,Robbery,{x},{y}\n"
            f"I2,2024-03-02 07:05:09,Robbery,{x},{y}\n"
            f"I3,2024-03-03,Robbery,{x},{y}\n")
    (s,) = ingest_paths(config, [write(tmp_path, "iso.csv", text)], "extract")
    assert s.accepted == 3
    con = sqlite3.connect(config.db_path)
    assert con.execute("SELECT date, time FROM incidents_geocoded ORDER BY date").fetchall() == [
        ("2024-03-01", "21:40"), ("2024-03-02", "07:05:09"), ("2024-03-03", None)]
    con.close()


def test_date_format_must_name_day_month_and_year():
    from hotspots.config import ExtractMapping
    from hotspots.errors import ConfigError
    for bad in ("%m/%Y", "%d/%m/%y", "%H:%M"):
        with pytest.raises(ConfigError, match="date_format"):
            ExtractMapping(date_format=bad)
    assert ExtractMapping(date_format="%d %b %Y").date_format == "%d %b %Y"


V2_INCIDENTS = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE ingests (id INTEGER PRIMARY KEY, path TEXT NOT NULL, sha256 TEXT NOT NULL, format TEXT NOT NULL,
    started_at TEXT NOT NULL, finished_at TEXT, rows_read INTEGER, accepted INTEGER, duplicates INTEGER,
    rejected INTEGER, outside_area INTEGER, lsoa_checked INTEGER, lsoa_agree INTEGER);
CREATE TABLE categories (id INTEGER PRIMARY KEY, slug TEXT NOT NULL, raw TEXT NOT NULL, UNIQUE (slug, raw));
CREATE TABLE texts (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
CREATE TABLE areas (id INTEGER PRIMARY KEY, role TEXT NOT NULL, code TEXT NOT NULL, name TEXT NOT NULL,
    UNIQUE (role, code));
CREATE TABLE incidents (key INTEGER PRIMARY KEY, crime_id TEXT, ingest_id INTEGER NOT NULL, row_no INTEGER NOT NULL,
    month TEXT NOT NULL, date TEXT, category_id INTEGER NOT NULL, lon_e6 INTEGER, lat_e6 INTEGER,
    easting_dm INTEGER, northing_dm INTEGER, location_id INTEGER, outcome_id INTEGER, context TEXT,
    source_lsoa TEXT, lsoa21_id INTEGER, lsoa11_id INTEGER, ward_id INTEGER, ward_pre2023_id INTEGER,
    in_area INTEGER NOT NULL, attrs TEXT);
CREATE TABLE rejects (id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL, path TEXT NOT NULL, row_no INTEGER NOT NULL,
    column_name TEXT, reason TEXT NOT NULL, raw TEXT, ingest_id INTEGER NOT NULL, UNIQUE (sha256, row_no));
CREATE VIEW incidents_geocoded AS SELECT i.key, i.crime_id, i.month, i.date, c.slug AS category
    FROM incidents i JOIN categories c ON c.id = i.category_id;
INSERT INTO meta VALUES ('schema_version', '2'), ('key_scheme', 'hex64-or-siphash64-v2');
INSERT INTO ingests (id, path, sha256, format, started_at) VALUES (1, 'old.csv', 'abc', 'police-csv', '2026-01-01');
INSERT INTO categories VALUES (1, 'robbery', 'Robbery');
INSERT INTO incidents (key, crime_id, ingest_id, row_no, month, date, category_id, in_area)
    VALUES (42, 'old1', 1, 1, '2024-01', NULL, 1, 1);
"""


def test_v2_store_is_migrated_and_keeps_its_incidents(gridtown, tmp_path):
    """A store written by schema v2 opens: it gains the time column (NULL for its incidents), the view
    is rebuilt with it, its incidents are still there, and new ingests add to it."""
    _, config = gridtown
    config.db_path.parent.mkdir(parents=True, exist_ok=True)
    old = sqlite3.connect(config.db_path)
    old.executescript(V2_INCIDENTS)
    old.close()
    con = store.connect(config.db_path)
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(store.SCHEMA_VERSION),)
    assert con.execute("SELECT crime_id, month, category, time FROM incidents_geocoded").fetchall() == [
        ("old1", "2024-01", "robbery", None)]
    con.close()
    store.connect(config.db_path).close()  # opening again is a no-op
    x, y = cell_centre(0, 0)
    (s,) = ingest_paths(config, [write(tmp_path, "new.csv", "incident_id,date,offence,easting,northing\n"
                                                            f"N1,2024-02-01 10:30,Robbery,{x},{y}\n")], "extract")
    assert s.accepted == 1
    con = sqlite3.connect(config.db_path)
    assert con.execute("SELECT crime_id, time FROM incidents_geocoded ORDER BY crime_id").fetchall() == [
        ("extract:N1", "10:30"), ("old1", None)]
    con.close()


def test_store_from_a_newer_hotspots_is_refused_untouched(tmp_path):
    from hotspots.errors import HotspotsError
    db = tmp_path / "instance" / "hotspots.db"
    store.connect(db).close()
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(HotspotsError, match="schema version 99 cannot be used"):
        store.connect(db)
    con = sqlite3.connect(db)
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("99",)
    con.close()


def test_json_over_its_own_limit_and_memory_errors_are_clear(seeded, tmp_path, monkeypatch):
    """JSON has a lower limit than CSV (its Python objects are about ten times its text); and a
    MemoryError while parsing anything becomes an IngestError naming the file, nothing written."""
    import hotspots.ingest as ingest_module
    lon, lat = bng_to_lonlat(*cell_centre(0, 0))
    records = [{"id": i, "month": "2024-01", "category": "robbery",
                "location": {"latitude": str(lat), "longitude": str(lon), "street": {"name": "X"}}}
               for i in range(2_000)]
    f = write(tmp_path, "big.json", json.dumps(records))
    with pytest.raises(IngestError, match=r"\[ingest\] max_json_mb"):
        ingest_paths(limited(seeded, max_json_mb=0.1), [f])
    assert stored(seeded) == 3 and ingests(seeded) == 1

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(ingest_module, "parse_file", exhausted)
    with pytest.raises(IngestError, match="out of memory while parsing") as err:
        ingest_paths(seeded, [f])
    assert str(f) in err.value.message
    assert stored(seeded) == 3 and ingests(seeded) == 1
    monkeypatch.undo()
    (s,) = ingest_paths(seeded, [f])  # within the default limits
    assert s.accepted == 2_000


def test_ingest_limits_are_read_and_checked_from_the_config(gridtown, tmp_path):
    from hotspots.config import load_config
    from hotspots.errors import ConfigError
    _, config = gridtown
    base = config.source.read_text(encoding="utf-8")

    def load(table: str):
        p = tmp_path / "limits.toml"
        p.write_text(base + "\n[ingest]\n" + table, encoding="utf-8")
        return load_config(p, env={}, data_dir=config.data_dir, instance_dir=config.instance_dir,
                           bundle=config.bundle)

    got = load("max_rejects = 5\nmax_reject_share = 0.25\nmax_expanded_mb = 64\n").ingest
    assert (got.max_rejects, got.max_reject_share, got.max_expanded_mb, got.max_json_mb) == (5, 0.25, 64.0, 512.0)
    for bad, why in [("max_reject_share = 2", "at most 1"), ("max_rejects = 0", "positive integer"),
                     ("max_rejects = 1.5", "positive integer"), ("max_expanded_mb = true", "positive number"),
                     ("max_rows = 3", "unknown keys: max_rows")]:
        with pytest.raises(ConfigError, match=why):
            load(bad + "\n")
