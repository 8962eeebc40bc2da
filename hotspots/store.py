"""The incident store: one embedded SQLite file in the instance folder, schema-versioned.

Why SQLite: one file, transactional (each ingested file is one transaction, so a crash or kill -9 leaves
either all of a file or none of it), safe for two concurrent writers (WAL + busy timeout), and fast
enough to filter a million incidents by month, category, LSOA and ward through its indexes.

Incidents are keyed by a 64-bit hash of their identity (police.uk Crime ID, API id, extract id, or for
rows without an id the row's content plus its occurrence number in the file) as the INTEGER PRIMARY KEY,
so a crime seen again is stored once and ``INSERT OR IGNORE`` makes re-running an ingest a no-op.
"""
from __future__ import annotations

import json
import os
import sqlite3
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SCHEMA_VERSION = 5
#: Partner sources (``hotspots source add``): counts per area and month, NOT incidents, so they live in
#: their own tables (a source, its counts, and the rows it refused with their reasons).
SOURCE_TABLES = (
    """CREATE TABLE IF NOT EXISTS sources (
    name TEXT PRIMARY KEY, title TEXT NOT NULL, geography TEXT NOT NULL,  -- as given: lsoa21 | lsoa11 | ward
    stored_geography TEXT NOT NULL,   -- what the counts are stored on (lsoa11 is converted to lsoa21)
    disclosure TEXT NOT NULL, provenance TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL,
    added_at TEXT NOT NULL, has_categories INTEGER NOT NULL, conversion TEXT,
    place TEXT NOT NULL,              -- where a count is placed: incident | residence | unknown
    viewers INTEGER NOT NULL,         -- 1: viewers see it (protected, under its rule); 0: analysts only
    rows_read INTEGER NOT NULL, accepted INTEGER NOT NULL, duplicates INTEGER NOT NULL, rejected INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS source_counts (
    source TEXT NOT NULL REFERENCES sources(name), code TEXT NOT NULL, month TEXT NOT NULL,
    category TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (source, code, month, category))""",
    """CREATE TABLE IF NOT EXISTS source_rejects (
    source TEXT NOT NULL, row_no INTEGER NOT NULL, column_name TEXT, kind TEXT NOT NULL,  -- rejected | duplicate
    reason TEXT NOT NULL, raw TEXT NOT NULL, PRIMARY KEY (source, row_no))""",
)
#: What each version added, applied in order to an older store by ``_migrate`` (v2 stores stay usable:
#: the new column is NULL for their incidents).
MIGRATIONS = {
    3: ("ALTER TABLE incidents ADD COLUMN time TEXT",),  # time of day, where the source has it
    4: ("ALTER TABLE incidents ADD COLUMN subcategory TEXT",),  # the local offence a mapped category came from
    5: SOURCE_TABLES,  # partner sources by area (new tables only)
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ingests (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    format TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    rows_read INTEGER, accepted INTEGER, duplicates INTEGER, rejected INTEGER,
    outside_area INTEGER, lsoa_checked INTEGER, lsoa_agree INTEGER
);
-- Repeated strings are stored once and referenced by id: a million incidents share a few thousand
-- categories, outcomes, street names and area codes, and narrow rows are what make ingest fast.
CREATE TABLE IF NOT EXISTS categories (
    id INTEGER PRIMARY KEY, slug TEXT NOT NULL, raw TEXT NOT NULL, UNIQUE (slug, raw)
);
CREATE TABLE IF NOT EXISTS texts (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS areas (
    id INTEGER PRIMARY KEY, role TEXT NOT NULL, code TEXT NOT NULL, name TEXT NOT NULL, UNIQUE (role, code)
);
CREATE TABLE IF NOT EXISTS incidents (
    key INTEGER PRIMARY KEY,          -- 64-bit hash of the incident's identity (dedup key)
    crime_id TEXT,                    -- identifier in the source (Crime ID, api:<id>, extract:<id>), if any
    ingest_id INTEGER NOT NULL REFERENCES ingests(id),
    row_no INTEGER NOT NULL,          -- 1-based data row (CSV) or array index (JSON) in the source file
    month TEXT NOT NULL,              -- YYYY-MM
    date TEXT,                        -- YYYY-MM-DD where the source has it
    category_id INTEGER NOT NULL REFERENCES categories(id),
    lon_e6 INTEGER, lat_e6 INTEGER,   -- EPSG:4326 in microdegrees (as given, or derived from BNG)
    easting_dm INTEGER, northing_dm INTEGER,  -- EPSG:27700 in decimetres, used for every computation
    location_id INTEGER REFERENCES texts(id),
    outcome_id INTEGER REFERENCES texts(id),
    context TEXT,
    source_lsoa TEXT,                 -- LSOA code the source carried (police.uk CSV)
    lsoa21_id INTEGER REFERENCES areas(id), lsoa11_id INTEGER REFERENCES areas(id),
    ward_id INTEGER REFERENCES areas(id), ward_pre2023_id INTEGER REFERENCES areas(id),
    in_area INTEGER NOT NULL,         -- 1 if inside the configured area's LSOA 2021 coverage
    attrs TEXT,                       -- JSON of extra attributes (victim age band, weapon flag, ...)
    time TEXT,                        -- HH:MM or HH:MM:SS (as the source gives it) where it has a time
    subcategory TEXT                  -- the local offence name or code an [extract.categories] mapping read
);
CREATE TABLE IF NOT EXISTS rejects (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL,             -- of the source file: re-ingesting it does not repeat its rejects
    path TEXT NOT NULL,
    row_no INTEGER NOT NULL,
    column_name TEXT,
    reason TEXT NOT NULL,
    raw TEXT,                         -- the rejected row as JSON, so nothing is lost
    ingest_id INTEGER NOT NULL,
    UNIQUE (sha256, row_no)
);
"""

#: Created after the tables are migrated (it names columns that older stores gain in ``_migrate``).
VIEW = """
CREATE VIEW IF NOT EXISTS incidents_geocoded AS
SELECT i.key, i.crime_id, g.format AS source, g.path AS source_file, i.row_no, i.month, i.date,
       c.slug AS category, c.raw AS category_raw,
       i.lon_e6 / 1e6 AS longitude, i.lat_e6 / 1e6 AS latitude,
       i.easting_dm / 10.0 AS easting, i.northing_dm / 10.0 AS northing,
       lt.text AS location, ot.text AS outcome, i.context, i.source_lsoa,
       l21.code AS lsoa21, l21.name AS lsoa21_name, l11.code AS lsoa11,
       w.code AS ward, w.name AS ward_name, wo.code AS ward_pre2023, i.in_area, i.attrs, i.time,
       i.subcategory
FROM incidents i
JOIN categories c ON c.id = i.category_id
LEFT JOIN ingests g ON g.id = i.ingest_id
LEFT JOIN texts lt ON lt.id = i.location_id
LEFT JOIN texts ot ON ot.id = i.outcome_id
LEFT JOIN areas l21 ON l21.id = i.lsoa21_id
LEFT JOIN areas l11 ON l11.id = i.lsoa11_id
LEFT JOIN areas w ON w.id = i.ward_id
LEFT JOIN areas wo ON wo.id = i.ward_pre2023_id;
"""

#: Indexes for the filters (month, category, LSOA, ward). Dropped and rebuilt around a bulk load that
#: is larger than what is already stored (inside the same transaction), which is faster than updating them.
INDEXES = {
    "ix_incidents_month_category": "CREATE INDEX IF NOT EXISTS ix_incidents_month_category "
                                   "ON incidents(month, category_id)",
    # covering the base-cell query (count_cells): an index-only scan in area order, no table rows read and no
    # sort. On London's 774,312 incidents 1.4 s instead of 15.5 s through a one-column index (loaded machine)
    "ix_incidents_lsoa21_cells": "CREATE INDEX IF NOT EXISTS ix_incidents_lsoa21_cells "
                                 "ON incidents(lsoa21_id, month, category_id, in_area)",
    "ix_incidents_ward_cells": "CREATE INDEX IF NOT EXISTS ix_incidents_ward_cells "
                               "ON incidents(ward_id, month, category_id, in_area)",
}
#: indexes of older stores that the ones above replace (dropped when a store is opened for writing)
RETIRED_INDEXES = ("ix_incidents_lsoa21", "ix_incidents_ward")

#: Page cache for normal work, and the smaller one used while rebuilding indexes: the sorter writes a
#: sorted run each time it fills the cache, and worker threads sort runs in parallel, so small runs keep
#: both cores busy (measured on 1,000,000 incidents: 1.3-1.7 s for the three indexes instead of 2.4-3.6 s).
CACHE_KIB = -200_000
INDEX_BUILD_CACHE_KIB = -4_000

INCIDENT_COLUMNS = ("key", "crime_id", "ingest_id", "row_no", "month", "date", "category_id", "lon_e6",
                    "lat_e6", "easting_dm", "northing_dm", "location_id", "outcome_id", "context",
                    "source_lsoa", "lsoa21_id", "lsoa11_id", "ward_id", "ward_pre2023_id", "in_area", "attrs",
                    "time", "subcategory")
AREA_ROLES = ("lsoa21", "lsoa11", "ward", "ward_pre2023")


def drop_indexes(con: sqlite3.Connection) -> None:
    """Drop the filter indexes before a bulk load (inside its transaction); ``rebuild_indexes`` after."""
    for name in INDEXES:
        con.execute(f"DROP INDEX IF EXISTS {name}")


def rebuild_indexes(con: sqlite3.Connection) -> None:
    """Create the filter indexes after a bulk load, with a small sort cache so the sort runs in parallel."""
    con.execute(f"PRAGMA cache_size = {INDEX_BUILD_CACHE_KIB}")
    try:
        for ddl in INDEXES.values():
            con.execute(ddl)
    finally:
        con.execute(f"PRAGMA cache_size = {CACHE_KIB}")


#: The store holds incident-level data: only its owner may read it (issue 14). SQLite creates the -wal and
#: -shm files with the database file's permissions, so creating that file 0600 covers all three.
PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700


def _create_private(db_path: Path) -> bool:
    """Create the instance folder (0700) and an empty database file (0600) if missing, without touching
    the process umask (other threads may be creating files); tighten an existing store of ours that is
    readable by others. Returns True when the database file is new."""
    folder = db_path.parent
    folder.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)  # mkdir's mode is masked by the umask
    _tighten(folder, PRIVATE_DIR)
    try:
        os.close(os.open(db_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE))
        new = True
    except FileExistsError:
        new = os.path.getsize(db_path) == 0
    for path in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
        _tighten(path, PRIVATE_FILE)
    return new


def _tighten(path: Path, mode: int) -> None:
    """Remove group and other permissions from a file or folder this user owns (others are left alone)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, stat.S_IMODE(st.st_mode) & mode)


def connect(db_path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open (and create or migrate) the store. WAL lets readers run during an ingest."""
    db_path = Path(db_path)
    if readonly:
        if not db_path.exists():
            from .errors import NotFoundError
            raise NotFoundError("no incident store yet: run `hotspots ingest FILE...` first", path=db_path)
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=60, check_same_thread=False)
        con.execute("PRAGMA busy_timeout = 60000")
        if _older(con):  # a store of an earlier schema (a server started before any ingest): migrate it once
            con.close()
            connect(db_path).close()
            return connect(db_path, readonly=True)
        return con
    new = _create_private(db_path)
    con = sqlite3.connect(db_path, timeout=60, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA busy_timeout = 60000")
    if new:  # larger pages: fewer B-tree splits for bulk loads (only settable before the first table)
        con.execute("PRAGMA page_size = 16384")
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    # Sorts spill to temporary files (the OS keeps them in its page cache): with temp_store = MEMORY
    # SQLite sorts a CREATE INDEX in one single-threaded pass, with files it can use its worker threads.
    con.execute("PRAGMA temp_store = FILE")
    con.execute("PRAGMA threads = 2")  # worker threads for the sorts of CREATE INDEX
    con.execute(f"PRAGMA cache_size = {CACHE_KIB}")
    try:
        _migrate(con)
    except BaseException:
        con.close()
        raise
    return con


def _older(con: sqlite3.Connection) -> bool:
    """True when the store's schema is older than this hotspots' (its queries name newer columns)."""
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:  # no meta table yet: an empty file, nothing to migrate
        return False
    return row is not None and int(row[0]) < SCHEMA_VERSION


def _migrate(con: sqlite3.Connection) -> None:
    """Create a new store, or bring an older one (v2 onwards) up to SCHEMA_VERSION in one transaction;
    the version is read inside it, so two processes opening an old store at once migrate it once."""
    # CREATE ... IF NOT EXISTS is idempotent, so two processes opening a new store at once are safe.
    con.executescript(SCHEMA + ";".join([*INDEXES.values(), *SOURCE_TABLES]) + ";"
                      + "".join(f"DROP INDEX IF EXISTS {name};" for name in RETIRED_INDEXES))
    with transaction(con):
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            con.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            con.execute("INSERT OR REPLACE INTO meta VALUES ('key_scheme', 'hex64-or-siphash64-v2')")
        elif int(row[0]) != SCHEMA_VERSION:
            version = int(row[0])
            if not (min(MIGRATIONS) - 1 <= version < SCHEMA_VERSION):
                from .errors import HotspotsError
                raise HotspotsError(f"store schema version {row[0]} cannot be used by this hotspots (schema "
                                    f"{SCHEMA_VERSION}); move the old store aside and re-ingest (ingest is "
                                    "idempotent)", path=None)
            con.execute("DROP VIEW IF EXISTS incidents_geocoded")  # recreated below with the new columns
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for ddl in MIGRATIONS[target]:
                    con.execute(ddl)
            con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
        con.execute(VIEW)


@contextmanager
def transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (BEGIN IMMEDIATE so concurrent writers queue instead of failing)."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    else:
        con.execute("COMMIT")


@contextmanager
def data_transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction on the incident store: this process's cached layers see it at once
    (``hotspots.cache.note_write``; other processes' writes within ``VERSION_TTL_S``)."""
    from .cache import note_write
    try:
        with transaction(con):
            yield con
    finally:
        note_write()


# -- queries (the only SQL outside ingest and users) ------------------------------------------------------
#: geography role -> the incidents column holding its area id
AREA_COLUMNS = {"lsoa21": "lsoa21_id", "lsoa11": "lsoa11_id", "ward": "ward_id", "ward_pre2023": "ward_pre2023_id"}


def _read(db_path: Path):
    return connect(db_path, readonly=True)


#: a filter for the store: ((name, (typed value, ...)), ...) from :func:`hotspots.filters.terms`
WhereTerms = "tuple[tuple[str, tuple], ...]"


def where_sql(where: WhereTerms, table: str = "") -> "tuple[str, list]":
    """`` AND ...`` conditions (and their parameters) keeping the incidents that match every filter: the
    sub-category column, or an extra's typed value in the ``attrs`` JSON (bool as 1/0). Names and values
    are bound parameters, never SQL text."""
    sql, args = "", []
    for name, values in where:
        marks = ", ".join("?" * len(values))
        if name == "subcategory":
            sql += f" AND {table}subcategory IN ({marks})"
        else:
            sql += f" AND json_extract({table}attrs, ?) IN ({marks})"
            args.append('$."' + name.replace('"', '""') + '"')
        args += list(values)
    return sql, args


def count_cells(db_path: Path, role: str, where: WhereTerms = ()) -> "list[tuple[str, str, str, int]]":
    """Non-zero counts of in-area incidents per (area code, month, category slug) of geography ``role``:
    the base cells every count, rate, statistic and protected figure is summed from (of the incidents
    matching ``where``, when given)."""
    col = AREA_COLUMNS[role]
    cond, args = where_sql(where)
    con = _read(db_path)
    try:  # one cell per category SLUG: several raw names (API "violent-crime", CSV "Violence and ...") share it
        return con.execute(
            f"SELECT a.code, t.month, c.slug, SUM(t.n) FROM (SELECT {col} AS area_id, month, category_id, COUNT(*) AS n "
            f"FROM incidents WHERE in_area = 1 AND {col} IS NOT NULL{cond} GROUP BY {col}, month, category_id) t "
            "JOIN areas a ON a.id = t.area_id JOIN categories c ON c.id = t.category_id "
            "GROUP BY a.code, t.month, c.slug", args).fetchall()
    finally:
        con.close()


def distinct_values(db_path: Path, names: "list[str]", cache_dir: Path | None = None) -> "dict[str, list]":
    """Distinct non-null values of each filterable name among in-area incidents (the viewers' menus): a scan of
    every incident's JSON, so the answer is kept in ``cache_dir`` per store version, as the snapshot is."""
    from . import filecache

    def pack(out: dict) -> dict:
        blob, off = filecache.pack_strings([json.dumps(out)])
        return {"json_blob": blob, "json_off": off}
    return _kept_per_version(db_path, cache_dir, "values", (names,), lambda: _distinct_values(db_path, names), pack,
                             lambda z: json.loads(filecache.unpack_strings(z["json_blob"], z["json_off"])[0]))[0]


def _distinct_values(db_path: Path, names: "list[str]") -> "dict[str, list]":
    con = _read(db_path)
    try:
        out = {}
        for name in names:
            if name == "subcategory":
                cur = con.execute("SELECT DISTINCT subcategory FROM incidents WHERE in_area = 1 "
                                  "AND subcategory IS NOT NULL")
            else:
                cur = con.execute("SELECT DISTINCT v FROM (SELECT json_extract(attrs, ?) AS v FROM incidents "
                                  "WHERE in_area = 1 AND attrs IS NOT NULL) WHERE v IS NOT NULL",
                                  ('$."' + name.replace('"', '""') + '"',))
            out[name] = [r[0] for r in cur.fetchall()]
        return out
    finally:
        con.close()


def category_counts(db_path: Path) -> "list[tuple[str, int]]":
    """(slug, incidents inside the area) for every category in the store."""
    con = _read(db_path)
    try:
        return con.execute("SELECT c.slug, COUNT(*) FROM incidents i JOIN categories c ON c.id = i.category_id "
                           "WHERE i.in_area = 1 GROUP BY c.slug ORDER BY c.slug").fetchall()
    finally:
        con.close()


def months(db_path: Path) -> "list[str]":
    """Months that hold incidents inside the area, in order."""
    con = _read(db_path)
    try:
        return [r[0] for r in con.execute("SELECT DISTINCT month FROM incidents WHERE in_area = 1 ORDER BY month")]
    finally:
        con.close()


INCIDENT_FIELDS = ("crime_id", "month", "date", "category", "category_raw", "longitude", "latitude", "easting",
                   "northing", "location", "outcome", "context", "lsoa21", "lsoa21_name", "ward", "ward_name",
                   "source", "time", "subcategory")


def incidents(db_path: Path, categories: "list[str]", month_from: str | None, month_to: str | None,
              area: str | None, limit: int, offset: int, filters: WhereTerms = ()) -> "tuple[int, list[dict]]":
    """Incident-level records inside the area (analysts only): the total matching and one page of rows, each
    with its ``extras`` (the extract's extra columns, typed as stored; {} when none)."""
    where, args = ["in_area = 1"], []
    if categories:
        where.append(f"category IN ({', '.join('?' * len(categories))})")
        args += list(categories)
    if month_from:
        where.append("month >= ?")
        args.append(month_from)
    if month_to:
        where.append("month <= ?")
        args.append(month_to)
    if area:
        where.append("(lsoa21 = ? OR ward = ?)")
        args += [area, area]
    cond, more = where_sql(filters)
    sql_where = " AND ".join(where) + cond
    args += more
    con = _read(db_path)
    try:
        total = con.execute(f"SELECT COUNT(*) FROM incidents_geocoded WHERE {sql_where}", args).fetchone()[0]
        cur = con.execute(f"SELECT {', '.join(INCIDENT_FIELDS)}, attrs FROM incidents_geocoded WHERE {sql_where} "
                          "ORDER BY month, key LIMIT ? OFFSET ?", args + [limit, offset])
        rows = [dict(zip(INCIDENT_FIELDS, r), extras=json.loads(r[-1]) if r[-1] else {}) for r in cur.fetchall()]
    finally:
        con.close()
    return total, rows


def hour_weekday(db_path: Path, role: str | None, codes: "list[str]", categories: "list[str]",
                 month_from: str | None, month_to: str | None,
                 where: WhereTerms = ()) -> "tuple[list[tuple[int, int, int]], int]":
    """In-area incidents per (weekday, hour) — weekday 0 = Monday — of the areas ``codes`` of geography
    ``role`` (all areas when ``role`` is None), the categories (all when empty), the period and the filter;
    with the number of matching incidents that have no time of day (or no date)."""
    cond, args = where_sql(where, "i.")
    sql = " FROM incidents i JOIN categories c ON c.id = i.category_id"
    if role is not None:
        sql += f" JOIN areas a ON a.id = i.{AREA_COLUMNS[role]}"
    sql += " WHERE i.in_area = 1"
    pre: list = []
    if role is not None:
        sql += f" AND a.code IN ({', '.join('?' * len(codes))})"
        pre += list(codes)
    if categories:
        sql += f" AND c.slug IN ({', '.join('?' * len(categories))})"
        pre += list(categories)
    if month_from:
        sql += " AND i.month >= ?"
        pre.append(month_from)
    if month_to:
        sql += " AND i.month <= ?"
        pre.append(month_to)
    sql += cond
    timed = " AND i.time IS NOT NULL AND i.date IS NOT NULL"
    con = _read(db_path)
    try:  # strftime('%w'): 0 = Sunday, so +6 mod 7 makes Monday 0 (ISO order)
        cells = con.execute("SELECT (CAST(strftime('%w', i.date) AS INTEGER) + 6) % 7, "
                            "CAST(substr(i.time, 1, 2) AS INTEGER), COUNT(*)" + sql + timed + " GROUP BY 1, 2",
                            pre + args).fetchall()
        untimed = con.execute("SELECT COUNT(*)" + sql + " AND (i.time IS NULL OR i.date IS NULL)",
                              pre + args).fetchone()[0]
    finally:
        con.close()
    return cells, untimed


# -- upload reports ------------------------------------------------------------------------------------
def upload_report(db_path: Path, ingest_id: int, max_rejects: int) -> dict | None:
    """What one ingest stored and refused, for the upload report page: the ingest's own counts, the
    incidents stored under it, and the first ``max_rejects`` rejected rows (with the total). None when
    there is no such ingest (the web answers 404)."""
    con = connect(db_path, readonly=True)
    try:
        g = con.execute("SELECT id, format, started_at, sha256, rows_read, accepted, duplicates, outside_area "
                        "FROM ingests WHERE id = ?", (ingest_id,)).fetchone()
        if g is None:
            return None
        n_rej = con.execute("SELECT COUNT(*) FROM rejects WHERE ingest_id = ?", (ingest_id,)).fetchone()[0]
        rej = con.execute("SELECT row_no, column_name, reason, raw FROM rejects WHERE ingest_id = ? ORDER BY row_no "
                          "LIMIT ?", (ingest_id, max_rejects)).fetchall()
        stored = con.execute("SELECT COUNT(*) FROM incidents WHERE ingest_id = ?", (ingest_id,)).fetchone()[0]
    finally:
        con.close()
    return {"ingest_id": g[0], "format": g[1], "started_at": g[2], "sha256": g[3], "rows_read": g[4],
            "accepted": g[5] if g[5] is not None else stored, "duplicates": g[6], "outside_area": g[7],
            "stored": stored, "rejected": n_rej,
            "rejects": [{"row": r[0], "column": r[1], "reason": r[2], "raw": r[3]} for r in rej]}


# -- the columnar snapshot ----------------------------------------------------------------------------
#: bump when the snapshot's columns change
SNAPSHOT_FORMAT = 1


def _file_version(db_path: Path) -> tuple:
    """(mtime, size) of the store and of its write-ahead log: any commit changes one of them. An empty log is
    no log (a reader opening the store may create one and its close remove it; neither changes the data)."""
    out = []
    for p in (db_path, db_path.with_name(db_path.name + "-wal")):
        try:
            st = p.stat()
            out.append((st.st_mtime_ns, st.st_size) if st.st_size or p == db_path else None)
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


def incident_columns(db_path: Path, cache_dir: Path | None) -> "dict":
    """Every in-area incident as numpy columns: ``easting_dm``/``northing_dm`` (int32, −1 without coordinates),
    ``month_idx`` into ``months``, ``cat_idx`` into ``categories`` (slugs), and ``<role>_idx`` into
    ``<role>_codes`` (−1 outside) for each geography of :data:`AREA_COLUMNS`; ``version`` names this version
    of the store (None when it changed while being read).

    Why: counting a million incidents by cell, month and category is a few numpy passes, but fetching them row
    by row through SQLite takes seconds. The columns are kept in ``cache_dir`` (one file per store version,
    named by the store's and its log's size and time), so each process after the first that reads this
    version of the store loads them in milliseconds; a snapshot is never kept when the store changed while it
    was read."""
    out, version = _kept_per_version(db_path, cache_dir, "incidents", (), lambda: _read_columns(db_path),
                                     _pack_columns, _unpack_columns)
    # ``version`` names what was read; a read overtaken by a write has no version, so nothing is kept from it
    return dict(out, version=version)


def _read_columns(db_path: Path) -> dict:
    """The columns of :func:`incident_columns` from one SQL scan (without ``version``)."""
    import numpy as np
    roles = list(AREA_COLUMNS)
    con = _read(db_path)
    try:
        import itertools
        cur = con.execute(
            "SELECT COALESCE(easting_dm, -1), COALESCE(northing_dm, -1), "
            "CAST(substr(month, 1, 4) AS INTEGER) * 12 + CAST(substr(month, 6, 2) AS INTEGER) - 1, category_id, "
            + ", ".join(f"COALESCE({AREA_COLUMNS[r]}, -1)" for r in roles) + " FROM incidents WHERE in_area = 1")
        width = 4 + len(roles)
        raw = np.fromiter(itertools.chain.from_iterable(cur), dtype=np.int64).reshape(-1, width)
        slugs = dict(con.execute("SELECT id, slug FROM categories").fetchall())
        area_codes = dict(con.execute("SELECT id, code FROM areas").fetchall())
    finally:
        con.close()
    out: dict = {"easting_dm": raw[:, 0].astype(np.int32), "northing_dm": raw[:, 1].astype(np.int32)}
    month_num, out["month_idx"] = np.unique(raw[:, 2], return_inverse=True)
    out["months"] = [f"{m // 12:04d}-{m % 12 + 1:02d}" for m in month_num.tolist()]
    cat_ids, cat_inv = np.unique(raw[:, 3], return_inverse=True)
    names = [slugs[i] for i in cat_ids.tolist()]
    out["categories"], slug_inv = np.unique(np.asarray(names, dtype=object).astype(str), return_inverse=True)
    out["categories"] = out["categories"].tolist()  # several raw names share one slug
    out["cat_idx"] = slug_inv[cat_inv] if len(cat_ids) else cat_inv
    for j, role in enumerate(roles):
        ids = raw[:, 4 + j]
        used, inv = np.unique(ids[ids >= 0], return_inverse=True)
        idx = np.full(len(ids), -1, dtype=np.int64)
        idx[ids >= 0] = inv
        out[f"{role}_idx"], out[f"{role}_codes"] = idx, [area_codes[i] for i in used.tolist()]
    out["month_idx"] = out["month_idx"].astype(np.int32)
    out["cat_idx"] = np.asarray(out["cat_idx"], dtype=np.int32)
    for role in roles:
        out[f"{role}_idx"] = out[f"{role}_idx"].astype(np.int32)
    return out


def _pack_columns(out: dict) -> dict:
    import numpy as np
    from . import filecache
    packed = {k: v for k, v in out.items() if isinstance(v, np.ndarray)}
    for name in ["months", "categories"] + [f"{r}_codes" for r in AREA_COLUMNS]:
        packed[name + "_blob"], packed[name + "_off"] = filecache.pack_strings(out[name])
    return packed


def _kept_per_version(db_path: Path, cache_dir: Path | None, prefix: str, parts: tuple, read, pack, unpack):
    """(``read()``, or what was kept of it for this version of the store; the version's name or None). The file
    ``<prefix>-<version>.npz`` in ``cache_dir`` is named by the store's and its log's size and time (and
    ``parts``); it is written only when the store did not change during ``read`` (then the version is None),
    and older versions' files are removed. A file ``unpack`` cannot read is a miss."""
    from . import filecache
    before = _file_version(db_path)
    version = filecache.key_of(SNAPSHOT_FORMAT, str(db_path), before, *parts)
    path = None if cache_dir is None else Path(cache_dir) / f"{prefix}-{version}.npz"
    z = filecache.load(path) if path is not None else None
    if z is not None:
        try:
            return unpack(z), version
        except (KeyError, ValueError, IndexError, UnicodeDecodeError):
            pass
    value = read()
    if _file_version(db_path) != before:
        return value, None
    if path is not None:
        filecache.save(path, **pack(value))
        filecache.remove_others(path, f"{prefix}-*.npz")
    return value, version


def _unpack_columns(z: dict) -> dict:
    from . import filecache
    if "cat_idx" not in z or "months_blob" not in z:
        raise KeyError("not a snapshot")
    out = {k: v for k, v in z.items() if not k.endswith(("_blob", "_off"))}
    for k in z:
        if k.endswith("_blob"):
            name = k[:-5]
            out[name] = filecache.unpack_strings(z[k], z[name + "_off"])
    return out


# -- points --------------------------------------------------------------------------------------------
def points(db_path: Path, where: WhereTerms = ()) -> "tuple[list[float], list[float], list[str], list[str]]":
    """Eastings, northings (EPSG:27700, metres), months and category slugs of every in-area incident with
    coordinates (matching ``where``): what grid cells are counted from (a grid is not an area stored with
    the incidents)."""
    cond, args = where_sql(where, "i.")
    con = _read(db_path)
    try:
        rows = con.execute("SELECT i.easting_dm, i.northing_dm, i.month, c.slug FROM incidents i "
                           "JOIN categories c ON c.id = i.category_id WHERE i.in_area = 1 AND "
                           f"i.easting_dm IS NOT NULL AND i.northing_dm IS NOT NULL{cond}", args).fetchall()
    finally:
        con.close()
    if not rows:
        return [], [], [], []
    e, n, m, c = zip(*rows)
    return [v / 10.0 for v in e], [v / 10.0 for v in n], list(m), list(c)


# -- partner sources (counts per area and month; hotspots.sources) ------------------------------------------
SOURCE_FIELDS = ("name", "title", "geography", "stored_geography", "disclosure", "provenance", "path", "sha256",
                 "added_at", "has_categories", "conversion", "place", "viewers", "rows_read", "accepted", "duplicates", "rejected")


def save_source(db_path: Path, meta: dict, counts: "list[tuple[str, str, str, int]]",
                rejects: "list[tuple[int, str | None, str, str, str]]", *, replace: bool) -> None:
    """Store one source in one transaction: its description, its counts (code, month, category, n) and its
    refused rows (row, column, kind, reason, raw JSON). With ``replace`` an older source of that name goes."""
    con = connect(db_path)
    try:
        with data_transaction(con):
            if replace:
                _delete_source(con, meta["name"])
            con.execute(f"INSERT INTO sources ({', '.join(SOURCE_FIELDS)}) VALUES ({', '.join('?' * len(SOURCE_FIELDS))})",
                        [meta[f] for f in SOURCE_FIELDS])
            con.executemany("INSERT INTO source_counts VALUES (?, ?, ?, ?, ?)",
                            [(meta["name"], *row) for row in counts])
            con.executemany("INSERT INTO source_rejects VALUES (?, ?, ?, ?, ?, ?)",
                            [(meta["name"], *row) for row in rejects])
    finally:
        con.close()


def _delete_source(con: sqlite3.Connection, name: str) -> int:
    for table in ("source_counts", "source_rejects"):
        con.execute(f"DELETE FROM {table} WHERE source = ?", (name,))
    return con.execute("DELETE FROM sources WHERE name = ?", (name,)).rowcount


def remove_source(db_path: Path, name: str) -> bool:
    """Delete a source with its counts and rejects; False when there is none of that name."""
    con = connect(db_path)
    try:
        with data_transaction(con):
            return _delete_source(con, name) > 0
    finally:
        con.close()


def sources(db_path: Path) -> "list[dict]":
    """Every stored source's description (no store yet: none)."""
    if not Path(db_path).exists():
        return []
    con = _read(db_path)
    try:
        if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'sources'").fetchone() is None:
            return []  # a store not yet migrated by a writer
        rows = con.execute(f"SELECT {', '.join(SOURCE_FIELDS)} FROM sources ORDER BY name").fetchall()
        cats = con.execute("SELECT source, category, SUM(n) FROM source_counts GROUP BY source, category "
                           "ORDER BY source, category").fetchall()
    finally:
        con.close()
    out = [dict(zip(SOURCE_FIELDS, r)) for r in rows]
    for s in out:
        s["categories"] = {c: int(n) for src, c, n in cats if src == s["name"]}
    return out


def source_cells(db_path: Path, geography: str) -> "list[tuple[str, str, str, str, int]]":
    """Non-zero counts (source, code, month, category, n) of every source stored on ``geography``."""
    if not Path(db_path).exists():
        return []
    con = _read(db_path)
    try:
        if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'sources'").fetchone() is None:
            return []
        return con.execute("SELECT c.source, c.code, c.month, c.category, c.n FROM source_counts c "
                           "JOIN sources s ON s.name = c.source WHERE s.stored_geography = ? AND c.n > 0",
                           (geography,)).fetchall()
    finally:
        con.close()


def source_rejects(db_path: Path, name: str, limit: int = 1000) -> "list[dict]":
    con = _read(db_path)
    try:
        rows = con.execute("SELECT row_no, column_name, kind, reason, raw FROM source_rejects WHERE source = ? "
                           "ORDER BY row_no LIMIT ?", (name, limit)).fetchall()
    finally:
        con.close()
    return [{"row": r[0], "column": r[1], "kind": r[2], "reason": r[3], "raw": r[4]} for r in rows]
