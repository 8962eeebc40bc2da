"""Bulk insert through the standard sqlite3 module: same rows as plain executemany, same transaction,
clear errors, and no read of interpreter internals."""
from __future__ import annotations

import inspect
import sqlite3

import numpy as np
import pyarrow as pa
import pytest

from hotspots import sqlite_bulk


def test_uses_supported_interfaces_only():
    """No ctypes, no C API, no address arithmetic on Python objects (issue 9): nothing that can crash."""
    source = inspect.getsource(sqlite_bulk)
    for forbidden in ("ctypes", "__basicsize__", "id(con)", "from_address", "numba", "HOTSPOTS_NATIVE_SQLITE"):
        assert forbidden not in source, forbidden


@pytest.fixture
def con(tmp_path):
    c = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    c.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b INTEGER, c TEXT, d TEXT)")
    yield c
    c.close()


def test_round_trip_ints_nulls_and_text(con):
    texts_c = pa.array(["x", None, "", "é😀\x00z", "last"])
    texts_d = pa.chunked_array([pa.array(["p", "q"]), pa.array(["r", None, "t"])])
    con.execute("BEGIN")
    sqlite_bulk.insert(con, "INSERT INTO t (a, b, c, d) VALUES", "(?, ?, ?, ?)", 5,
                       [(np.array([5, 1, 3, 2, -9]), None),
                        (np.array([10, 20, 30, 40, 50]), np.array([0, 1, 0, 1, 0], bool))],
                       [texts_c, texts_d])
    con.execute("COMMIT")
    assert con.execute("SELECT a, b, c, d FROM t ORDER BY a").fetchall() == [
        (-9, 50, "last", "t"), (1, None, None, "q"), (2, None, "é😀\x00z", None), (3, 30, "", "r"),
        (5, 10, "x", "p")]


def test_sliced_and_large_string_arrays(con):
    base = pa.array(["skip", "a", None, "ccc", "skip"], pa.large_string()).slice(1, 3)
    con.execute("BEGIN")
    sqlite_bulk.insert(con, "INSERT INTO t (a, c) VALUES", "(?, ?)", 3, [(np.arange(3), None)], [base])
    con.execute("COMMIT")
    assert con.execute("SELECT a, c FROM t ORDER BY a").fetchall() == [(0, "a"), (1, None), (2, "ccc")]


def test_rollback_undoes_a_bulk_insert(con):
    con.execute("INSERT INTO t (a) VALUES (100)")
    con.execute("BEGIN")
    sqlite_bulk.insert(con, "INSERT INTO t (a) VALUES", "(?)", 250_000, [(np.arange(1000, 251_000), None)], [])
    assert con.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 250_001
    con.execute("ROLLBACK")
    assert con.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 1


def test_constraint_failure_names_the_row_and_rolls_back(con):
    con.execute("INSERT INTO t (a) VALUES (7)")
    con.execute("BEGIN")
    with pytest.raises(sqlite3.IntegrityError, match=r"UNIQUE constraint failed: t\.a.*rows 1-10 of 10"):
        sqlite_bulk.insert(con, "INSERT INTO t (a) VALUES", "(?)", 10, [(np.arange(10), None)], [])
    con.execute("ROLLBACK")
    assert con.execute("SELECT a FROM t").fetchall() == [(7,)]


def test_progress_is_reported_per_chunk(con, monkeypatch):
    monkeypatch.setattr(sqlite_bulk, "CHUNK_ROWS", 4)
    monkeypatch.setattr(sqlite_bulk, "ROWS_PER_STATEMENT", 2)
    seen = []
    con.execute("BEGIN")
    sqlite_bulk.insert(con, "INSERT INTO t (a) VALUES", "(?)", 11, [(np.arange(11), None)], [], seen.append)
    con.execute("COMMIT")
    assert seen == [4, 4, 3]
    assert con.execute("SELECT COUNT(*), SUM(a) FROM t").fetchone() == (11, 55)


def test_refuses_outside_a_transaction_and_bad_sql(con):
    with pytest.raises(RuntimeError, match="inside a transaction"):
        sqlite_bulk.insert(con, "INSERT INTO t (a) VALUES", "(?)", 1, [(np.arange(1), None)], [])
    con.execute("BEGIN")
    with pytest.raises(sqlite3.OperationalError, match="no such table: nope"):
        sqlite_bulk.insert(con, "INSERT INTO nope (a) VALUES", "(?)", 1, [(np.arange(1), None)], [])
    con.execute("ROLLBACK")


def test_same_rows_as_executemany_across_statement_boundaries(con):
    """1,000 rows = 15 statements of 64 rows and one of 40: every value where executemany puts it."""
    rng = np.random.default_rng(3)
    n = 1000
    a = rng.permutation(n).astype(np.int64) * 7 - 3000
    b = rng.integers(-2 ** 63, 2 ** 63 - 1, n, dtype=np.int64)
    b_null = rng.random(n) < 0.2
    words = ["", "x", "é", "😀", "a,b", "'q'", "NULL", "\x00", "longer text " * 20]
    c = [None if rng.random() < 0.3 else words[rng.integers(len(words))] for _ in range(n)]
    d = [f"row {i}" if i % 5 else None for i in range(n)]
    con.execute("CREATE TABLE ref (a INTEGER PRIMARY KEY, b INTEGER, c TEXT, d TEXT)")
    con.execute("BEGIN")
    sqlite_bulk.insert(con, "INSERT INTO t (a, b, c, d) VALUES", "(?, ?, ?, ?)", n, [(a, None), (b, b_null)],
                       [pa.array(c, pa.string()), pa.array(d, pa.string())])
    con.executemany("INSERT INTO ref VALUES (?, ?, ?, ?)",
                    [(int(a[i]), None if b_null[i] else int(b[i]), c[i], d[i]) for i in range(n)])
    con.execute("COMMIT")
    got = con.execute("SELECT a, b, c, d, typeof(b), typeof(c) FROM t ORDER BY a").fetchall()
    want = con.execute("SELECT a, b, c, d, typeof(b), typeof(c) FROM ref ORDER BY a").fetchall()
    assert len(got) == n and got == want


def test_parameter_count_must_match_the_columns(con):
    con.execute("BEGIN")
    with pytest.raises((ValueError, RuntimeError)):
        sqlite_bulk.insert(con, "INSERT INTO t (a, b) VALUES", "(?, ?)", 1, [(np.arange(1), None)], [])
    con.execute("ROLLBACK")


def test_text_columns_read_at_rows_and_from_dictionaries(con):
    """A selection of rows and dictionary-encoded text are bound without materialising the strings."""
    names = pa.array(["zero", None, "two", "", "four"])
    months = pa.array(["2024-01", "2024-02", None, "2024-01", "2024-02"]).dictionary_encode()
    rows = np.array([4, 0, 1, 3, 2])
    con.execute("BEGIN")
    sqlite_bulk.insert(con, "INSERT INTO t (a, c, d) VALUES", "(?, ?, ?)", 5, [(np.arange(5), None)],
                       [sqlite_bulk.Text(names, rows), sqlite_bulk.Text(months, rows)])
    con.execute("COMMIT")
    assert con.execute("SELECT a, c, d FROM t ORDER BY a").fetchall() == [
        (0, "four", "2024-02"), (1, "zero", "2024-01"), (2, None, "2024-02"), (3, "", "2024-01"),
        (4, "two", None)]
    assert sqlite_bulk.Text(months, rows).resolved().to_pylist() == ["2024-02", "2024-01", "2024-02",
                                                                      "2024-01", None]


def test_text_column_length_must_match(con):
    con.execute("BEGIN")
    with pytest.raises((ValueError, RuntimeError)):
        sqlite_bulk.insert(con, "INSERT INTO t (a, c) VALUES", "(?, ?)", 2, [(np.arange(2), None)],
                           [sqlite_bulk.Text(pa.array(["x"]))])
    con.execute("ROLLBACK")


@pytest.mark.bundle
def test_bundle_ingest_identical_one_row_per_statement(wolverhampton, tmp_path, monkeypatch):
    """All the bundle's crime (89,858 rows: police.uk CSV and API JSON) stored one row per statement
    and in small chunks gives the same store, row for row and column for column, as the multi-row
    statements (statement and chunk boundaries lose or move nothing)."""
    from dataclasses import replace

    from hotspots.ingest import ingest_paths

    config, bulk_summaries = wolverhampton
    monkeypatch.setattr(sqlite_bulk, "ROWS_PER_STATEMENT", 1)
    monkeypatch.setattr(sqlite_bulk, "CHUNK_ROWS", 7_777)
    slow = replace(config, instance_dir=tmp_path / "instance")
    slow_summaries = ingest_paths(slow, [config.bundle / "crime"])
    assert [s.to_dict() | {"ingest_id": None} for s in slow_summaries] == \
        [s.to_dict() | {"ingest_id": None} for s in bulk_summaries]
    query = ("SELECT i.*, c.slug, c.raw, lt.text, ot.text, l21.code, w.code FROM incidents i "
             "JOIN categories c ON c.id = i.category_id LEFT JOIN texts lt ON lt.id = i.location_id "
             "LEFT JOIN texts ot ON ot.id = i.outcome_id LEFT JOIN areas l21 ON l21.id = i.lsoa21_id "
             "LEFT JOIN areas w ON w.id = i.ward_id ORDER BY i.key")
    stores = []
    for c in (config, slow):
        con = sqlite3.connect(c.db_path)
        rows = con.execute(query).fetchall()
        types = con.execute("SELECT typeof(crime_id), typeof(month), typeof(lon_e6), typeof(attrs), COUNT(*) "
                            "FROM incidents GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4").fetchall()
        con.close()
        # ingest ids and the ids of dictionary rows may differ; the values they stand for may not
        stores.append(([r[:2] + r[3:6] + r[7:11] + r[13:] for r in rows], types))
    assert len(stores[0][0]) == 86_040
    assert stores[0] == stores[1]
