"""The incident store: one embedded SQLite file in the instance folder, schema-versioned.

Why SQLite: one file, transactional (each ingested file is one transaction, so a crash or kill -9 leaves
either all of a file or none of it), safe for two concurrent writers (WAL + busy timeout), and fast
enough to filter a million incidents by month, category, LSOA and ward through its indexes.

Incidents are keyed by a 64-bit hash of their identity (police.uk Crime ID, API id, extract id, or for
rows without an id the row's content plus its occurrence number in the file) as the INTEGER PRIMARY KEY,
so a crime seen again is stored once and ``INSERT OR IGNORE`` makes re-running an ingest a no-op.
"""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SCHEMA_VERSION = 1

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
CREATE TABLE IF NOT EXISTS incidents (
    key INTEGER PRIMARY KEY,          -- 64-bit hash of the incident's identity (dedup key)
    crime_id TEXT,                    -- identifier in the source (Crime ID, API id, extract id), if any
    source TEXT NOT NULL,             -- police-csv | police-api-json | extract
    ingest_id INTEGER NOT NULL REFERENCES ingests(id),
    row_no INTEGER NOT NULL,          -- 1-based data row (CSV) or array index (JSON) in the source file
    month TEXT NOT NULL,              -- YYYY-MM
    date TEXT,                        -- YYYY-MM-DD where the source has it
    category TEXT NOT NULL,           -- normalised slug, e.g. violent-crime
    category_raw TEXT,
    longitude REAL, latitude REAL,    -- EPSG:4326 as given (or derived from BNG)
    easting REAL, northing REAL,      -- EPSG:27700, used for every computation
    location TEXT, outcome TEXT, context TEXT,
    source_lsoa TEXT,                 -- LSOA code the source carried (police.uk CSV)
    lsoa21 TEXT, lsoa11 TEXT, ward TEXT, ward_pre2023 TEXT,
    in_area INTEGER NOT NULL,         -- 1 if inside the configured area's LSOA 2021 coverage
    attrs TEXT                        -- JSON of extra attributes (victim age band, weapon flag, ...)
);
CREATE INDEX IF NOT EXISTS ix_incidents_month_category ON incidents(month, category);
CREATE INDEX IF NOT EXISTS ix_incidents_lsoa21 ON incidents(lsoa21);
CREATE INDEX IF NOT EXISTS ix_incidents_ward ON incidents(ward);
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
CREATE TABLE IF NOT EXISTS areas (
    role TEXT NOT NULL, code TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (role, code)
);
CREATE VIEW IF NOT EXISTS incidents_geocoded AS
SELECT i.*, l.name AS lsoa21_name, w.name AS ward_name
FROM incidents i
LEFT JOIN areas l ON l.role = 'lsoa21' AND l.code = i.lsoa21
LEFT JOIN areas w ON w.role = 'ward' AND w.code = i.ward;
"""

INCIDENT_COLUMNS = ("key", "crime_id", "source", "ingest_id", "row_no", "month", "date", "category",
                    "category_raw", "longitude", "latitude", "easting", "northing", "location", "outcome",
                    "context", "source_lsoa", "lsoa21", "lsoa11", "ward", "ward_pre2023", "in_area", "attrs")


def connect(db_path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open (and create or migrate) the store. WAL lets readers run during an ingest."""
    db_path = Path(db_path)
    if readonly:
        if not db_path.exists():
            from .errors import NotFoundError
            raise NotFoundError("no incident store yet: run `hotspots ingest FILE...` first", path=db_path)
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=60, check_same_thread=False)
        con.execute("PRAGMA busy_timeout = 60000")
        return con
    db_path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(db_path, timeout=60, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA busy_timeout = 60000")
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    con.execute("PRAGMA temp_store = MEMORY")
    con.execute("PRAGMA cache_size = -200000")
    _migrate(con)
    return con


def _migrate(con: sqlite3.Connection) -> None:
    # CREATE ... IF NOT EXISTS is idempotent, so two processes opening a new store at once are safe.
    con.executescript(SCHEMA)
    with transaction(con):
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            con.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            con.execute("INSERT OR REPLACE INTO meta VALUES ('key_scheme', 'pandas-siphash64-v1')")
        elif int(row[0]) > SCHEMA_VERSION:
            from .errors import HotspotsError
            raise HotspotsError(f"store schema version {row[0]} is newer than this hotspots ({SCHEMA_VERSION})")


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
