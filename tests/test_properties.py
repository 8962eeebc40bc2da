"""Property tests (hypothesis).

Ingest parsers: arbitrary bytes never crash them (only IngestError naming the file), and every row of a
file with junk in its cells is accounted for (rows_read == accepted + duplicates + rejected). Each test
also counts what happened to its examples and asserts that some were accepted, not only refused: a
property that holds only because every input is refused would prove nothing. Files mix junk rows with
valid rows drawn from their own strategy, and valid rows must never be rejected.

Statistics: the Gi* z-score does not change when the variable is multiplied by a positive constant;
permutation results are reproducible by seed; permuting the order of the areas permutes the results.
"""
from __future__ import annotations

import atexit
import csv
import io
import json
import shutil
import tempfile
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hotspots import store
from hotspots.config import ExtractMapping
from hotspots.errors import IngestError
from hotspots.ingest import (POLICE_CSV_COLUMNS, ingest_file, parse_extract, parse_police_csv,
                             parse_police_json)

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
TMP = Path(tempfile.mkdtemp(prefix="hotspots-props-"))
atexit.register(shutil.rmtree, TMP, ignore_errors=True)


def _write(name: str, data: bytes) -> Path:
    p = TMP / name
    p.write_bytes(data)
    return p


def _assert_balanced(con, geocoder, path: Path, fmt: str, rows: int, valid: int = 0) -> str:
    """Ingest ``path``: either a clear error naming the file (e.g. a cell whose newline breaks the CSV)
    or a summary that accounts for every row, in which none of the ``valid`` rows was rejected. Returns
    what happened: "refused", "stored" (some rows accepted or already stored) or "all rejected"."""
    try:
        s = ingest_file(con, geocoder, path, fmt)
    except IngestError as exc:
        assert exc.path == str(path)
        return "refused"
    assert s.rows_read == rows
    assert s.rows_read == s.accepted + s.duplicates + s.rejected
    assert s.rejected <= rows - valid, f"a valid row was rejected: {s.rejected_by_reason}"
    return "stored" if s.accepted + s.duplicates > s.already_rejected else "all rejected"


def _only_ingest_errors(fn, path: Path) -> str:
    """Parse ``path``: "parsed", or "refused" with an IngestError naming the file."""
    try:
        fn(path)
    except IngestError as exc:
        assert exc.path == str(path), f"error does not name the file: {exc.message}"
        assert exc.reason
        return "refused"
    # Anything else propagates and fails the test with its traceback.
    return "parsed"


# Bytes that look a little like the real thing, so the parsers get past their first checks often.
CSV_HEAD = ",".join(POLICE_CSV_COLUMNS).encode() + b"\n"
EXTRACT_HEAD = b"incident_id,date,offence,longitude,latitude\n"
csv_like = st.one_of(
    st.binary(max_size=400),
    st.builds(lambda b: CSV_HEAD + b, st.binary(max_size=300)),
    st.builds(lambda b: EXTRACT_HEAD + b, st.binary(max_size=300)),
    st.builds(lambda t: t.encode("utf-8", "surrogatepass") if False else t.encode("utf-8", "replace"),
              st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)),
)
json_like = st.one_of(
    st.binary(max_size=400),
    st.builds(lambda b: b"[" + b, st.binary(max_size=300)),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                 lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                 max_leaves=20).map(lambda o: json.dumps(o).encode()),
)


def test_police_csv_arbitrary_bytes():
    seen: Counter = Counter()

    @settings(max_examples=300, **SETTINGS)
    @given(data=csv_like)
    def prop(data):
        seen[_only_ingest_errors(parse_police_csv, _write("x.csv", data))] += 1

    prop()
    assert seen["parsed"] > 0 and seen["refused"] > 0, seen


def test_extract_arbitrary_bytes():
    seen: Counter = Counter()

    @settings(max_examples=300, **SETTINGS)
    @given(data=csv_like)
    def prop(data):
        seen[_only_ingest_errors(lambda p: parse_extract(p, ExtractMapping()), _write("x.csv", data))] += 1

    prop()
    assert seen["parsed"] > 0 and seen["refused"] > 0, seen


def test_police_json_arbitrary_bytes():
    seen: Counter = Counter()

    @settings(max_examples=300, **SETTINGS)
    @given(data=json_like, name=st.sampled_from(["x.json", "x.jsonl", "x.json.gz"]))
    def prop(data, name):
        seen[_only_ingest_errors(parse_police_json, _write(name, data))] += 1

    prop()
    assert seen["parsed"] > 0 and seen["refused"] > 0, seen


def test_json_deeply_nested_is_a_clear_error():
    deep = b"[" * 100_000 + b"]" * 100_000
    _only_ingest_errors(parse_police_json, _write("deep.json", deep))


# ----------------------------------------------------------------------- every row is accounted for
@pytest.fixture(scope="module")
def geocoder():
    import geopandas as gpd
    from shapely.geometry import box

    from hotspots.geocode import Geocoder
    e0, n0 = 390_000, 298_000
    lsoa = gpd.GeoDataFrame({"code": ["E01000001", "E01000002"], "name": ["A", "B"]},
                            geometry=[box(e0, n0, e0 + 1000, n0 + 1000), box(e0 + 1000, n0, e0 + 2000, n0 + 1000)],
                            crs="EPSG:27700")
    return Geocoder.from_frames({"lsoa21": lsoa})


@pytest.fixture(scope="module")
def con():
    c = store.connect(TMP / "props.db")
    yield c
    c.close()


junk = st.one_of(st.sampled_from(["", " ", "nan", "NaN", "inf", "-inf", "1e999", "52.58", "-2.12", "-2.1276",
                                  "52.5866", "0", "2018-06", "2018-13", "2018-6", "18-06", "2018-06-31",
                                  "2018-06-15", "2018-02-30", "abc", "=1+1", "\u00e9", "1,5", "0x10", "  52.6 "]),
                 st.text(max_size=12))
ids = st.one_of(st.sampled_from(["", "a", "b", "dup"]), st.text(max_size=6))


def _csv_bytes(header, rows) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8", "surrogatepass")


def _no_surrogates(s: str) -> bool:
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


# Valid values, drawn on their own: rows made of them must be stored (accepted or duplicates).
good_lon = st.floats(-2.16, -2.08).map(lambda v: f"{v:.6f}")
good_lat = st.floats(52.55, 52.62).map(lambda v: f"{v:.6f}")
good_category = st.sampled_from(["Violence and sexual offences", "Anti-social behaviour", "Burglary", "robbery"])
good_month = st.dates(min_value=date(2010, 1, 1), max_value=date(2025, 12, 31))
#: (is valid, row) pairs: junk rows, or valid rows (id, month, lon, lat, category)
police_rows = st.lists(st.one_of(
    st.tuples(st.just(False), st.tuples(ids, junk, junk, junk, junk)),
    st.tuples(st.just(True), st.tuples(ids, good_month.map(lambda d: d.strftime("%Y-%m")), good_lon, good_lat,
                                       good_category))), min_size=1, max_size=25)
extract_rows = st.lists(st.one_of(
    st.tuples(st.just(False), st.tuples(ids, junk, junk, junk, junk)),
    st.tuples(st.just(True), st.tuples(st.text("abcdef0123", min_size=1, max_size=6),
                                       good_month.map(lambda d: d.isoformat()), good_category, good_lon, good_lat))),
    min_size=1, max_size=25)


def _csv_rows_stored(geocoder, con, rows_strategy, name: str, header, fmt: str, to_row) -> Counter:
    """Property: a CSV of generated rows (junk and valid, ``to_row`` making each one CSV row) is
    accounted for and loses no valid row; returns the outcomes seen."""
    seen: Counter = Counter()

    @settings(max_examples=150, **SETTINGS)
    @given(rows=rows_strategy)
    def prop(rows):
        assume(all(_no_surrogates(c) for _, r in rows for c in r))
        path = _write(name, _csv_bytes(header, [to_row(r) for _, r in rows]))
        seen[_assert_balanced(con, geocoder, path, fmt, len(rows), sum(ok for ok, _ in rows))] += 1

    prop()
    return seen


def test_police_csv_rows_balanced(geocoder, con):
    seen = _csv_rows_stored(geocoder, con, police_rows, "rows.csv", POLICE_CSV_COLUMNS, "police-csv",
                            lambda r: [r[0], r[1], "Force", "Force", r[2], r[3], "On or near X", "", "", r[4], "", ""])
    assert seen["stored"] > 0, seen


def test_extract_rows_balanced(geocoder, con):
    seen = _csv_rows_stored(geocoder, con, extract_rows, "extract.csv",
                            ["incident_id", "date", "offence", "longitude", "latitude"], "extract", list)
    assert seen["stored"] > 0, seen


json_scalar = st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats() | junk
json_nested = st.recursive(json_scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(
    ["latitude", "longitude", "street", "name", "category", "id"]), c, max_size=3), max_leaves=8)
#: Lists/objects where police.uk has a scalar are treated as missing values (the row is rejected).
json_value = json_nested
crime = st.fixed_dictionaries({}, optional={
    "id": json_value, "persistent_id": json_value, "month": json_value, "category": json_value,
    "location": st.one_of(json_value, st.fixed_dictionaries({}, optional={"latitude": json_value,
                                                                          "longitude": json_value,
                                                                          "street": json_value})),
    "outcome_status": json_value, "context": json_value, "location_type": json_value})


good_crime = st.fixed_dictionaries({
    "id": st.integers(1, 10**9), "month": good_month.map(lambda d: d.strftime("%Y-%m")),
    "category": st.sampled_from(["violent-crime", "anti-social-behaviour", "burglary"]),
    "location": st.fixed_dictionaries({"latitude": good_lat, "longitude": good_lon,
                                       "street": st.fixed_dictionaries({"name": st.text(max_size=10)})})})


def test_police_json_records_balanced(geocoder, con):
    seen: Counter = Counter()

    @settings(max_examples=150, **SETTINGS)
    @given(records=st.lists(st.one_of(st.tuples(st.just(False), st.one_of(crime, json_value)),
                                      st.tuples(st.just(True), good_crime)), min_size=1, max_size=12))
    def prop(records):
        path = _write("crimes.json", json.dumps([r for _, r in records]).encode())
        seen[_assert_balanced(con, geocoder, path, "police-api-json", len(records),
                              sum(ok for ok, _ in records))] += 1

    prop()
    assert seen["stored"] > 0, seen


@pytest.mark.parametrize("records", [[{"persistent_id": [None]}], [{}, {"persistent_id": [None]}],
                                     [{"month": []}]])
def test_police_json_non_scalar_fields(records, geocoder, con):
    path = _write("nonscalar.json", json.dumps(records).encode())
    try:
        s = ingest_file(con, geocoder, path, "police-api-json")
    except IngestError:
        return
    assert s.balanced


# ------------------------------------------------------------------------------------ statistics
stats = pytest.importorskip("hotspots.stats")


def _graph(n: int, extra: list[tuple[int, int]]):
    import scipy.sparse as sp
    rows, cols = [], []
    for i in range(n):  # a ring: no islands
        j = (i + 1) % n
        rows += [i, j]
        cols += [j, i]
    for a, b in extra:
        a, b = a % n, b % n
        if a != b:
            rows += [a, b]
            cols += [b, a]
    m = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    m.data[:] = 1.0
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


areas = st.integers(8, 40).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 200), min_size=n, max_size=n),
    st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=2 * n)))


@settings(max_examples=60, **SETTINGS)
@given(case=areas, c=st.floats(0.001, 1000.0))
def test_gi_star_z_scale_invariant(case, c):
    y, extra = case
    assume(len(set(y)) > 1)
    w = _graph(len(y), extra)
    y = np.asarray(y, float)
    z1 = stats.gi_star(y, w, permutations=0).z
    z2 = stats.gi_star(y * c, w, permutations=0).z
    np.testing.assert_allclose(z1, z2, rtol=1e-7, atol=1e-9)


@settings(max_examples=15, **SETTINGS)
@given(case=areas, seed=st.integers(0, 2**31 - 1))
def test_permutations_reproducible_by_seed(case, seed):
    y, extra = case
    assume(len(set(y)) > 1)
    w = _graph(len(y), extra)
    y = np.asarray(y, float)
    a = stats.gi_star(y, w, permutations=99, seed=seed)
    b = stats.gi_star(y, w, permutations=99, seed=seed)
    np.testing.assert_array_equal(a.p_sim, b.p_sim)
    la = stats.local_moran(y, w, permutations=99, seed=seed)
    lb = stats.local_moran(y, w, permutations=99, seed=seed)
    np.testing.assert_array_equal(la.p_sim, lb.p_sim)
    assert la.labels == lb.labels


@settings(max_examples=40, **SETTINGS)
@given(case=areas, data=st.data())
def test_permuting_areas_permutes_results(case, data):
    y, extra = case
    assume(len(set(y)) > 1)
    n = len(y)
    perm = np.array(data.draw(st.permutations(range(n))))
    w = _graph(n, extra)
    y = np.asarray(y, float)
    wp = w[perm][:, perm]
    g, gp = stats.gi_star(y, w, permutations=0), stats.gi_star(y[perm], wp, permutations=0)
    np.testing.assert_allclose(gp.z, g.z[perm], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(gp.bin, g.bin[perm])
    lm = stats.local_moran(y, w, permutations=99, seed=1)
    lmp = stats.local_moran(y[perm], wp, permutations=99, seed=1)
    np.testing.assert_allclose(lmp.I, lm.I[perm], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(lmp.q, lm.q[perm])
