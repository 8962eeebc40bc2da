"""Read incident files, validate every row, geocode, and store them: nothing is dropped silently.

Three formats:

* ``police-csv``: the police.uk street-level archive CSV (Crime ID, Month, Reported by, Falls within,
  Longitude, Latitude, Location, LSOA code, LSOA name, Crime type, Last outcome category, Context);
* ``police-api-json``: police.uk API ``crimes-street`` responses (a JSON array per file; ``.gz`` and
  JSON Lines are accepted too);
* ``extract``: a force's or partner's own CSV, with its column names mapped in ``[extract]`` of the config.

Rules (each file is one transaction):

* a file missing required columns, that is empty, not UTF-8 or not valid JSON raises ``IngestError``
  naming the file (and the row, column or byte) and nothing of it is written;
* a row with no usable location, coordinates outside Great Britain, swapped latitude/longitude, an
  unparseable month or date, or no category goes to the ``rejects`` table with its row number, column
  and reason, and the raw row;
* a crime seen again (same archive Crime ID, API record ``id`` or extract id; or, for rows without an id
  such as anti-social behaviour, the same content at the same occurrence number) is stored once;
* rows outside the configured area are kept and flagged ``in_area = 0``.
"""
from __future__ import annotations

import gzip
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from . import store
from .bundle import sha256_file
from .categories import normalise_category
from .config import Config, ExtractMapping
from .errors import IngestError
from .geocode import (GB_EASTING, GB_LAT, GB_LON, GB_NORTHING, Geocoder, bng_to_lonlat, lonlat_to_bng)

logger = logging.getLogger(__name__)

FORMATS = ("police-csv", "police-api-json", "extract")

POLICE_CSV_COLUMNS = ("Crime ID", "Month", "Reported by", "Falls within", "Longitude", "Latitude", "Location",
                      "LSOA code", "LSOA name", "Crime type", "Last outcome category", "Context")
#: Columns without which a police.uk CSV row cannot be placed or classified.
POLICE_CSV_REQUIRED = ("Crime ID", "Month", "Longitude", "Latitude", "Crime type")

MONTH_RE = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
DATE_RE = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
STORE_CHUNK = 100_000

# Reasons, written once so summaries group them.
R_NO_LOCATION = "no location (blank coordinates)"
R_BAD_COORDS = "coordinates are not numbers"
R_SWAPPED = "latitude and longitude appear swapped"
R_OUTSIDE_GB = "coordinates outside Great Britain"
R_BAD_MONTH = "month is not YYYY-MM"
R_BAD_DATE = "date is not YYYY-MM-DD"
R_NO_CATEGORY = "no crime type / category"
R_NO_ID = "no incident id"
R_BAD_RECORD = "record is not a police.uk crime object"


@dataclass
class Parsed:
    """One file's rows in a normalised shape; ``reason`` is None for valid rows."""

    n: int
    crime_id: np.ndarray
    month: np.ndarray
    date: np.ndarray
    category_raw: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    easting: np.ndarray
    northing: np.ndarray
    location: np.ndarray
    outcome: np.ndarray
    context: np.ndarray
    source_lsoa: np.ndarray
    attrs: np.ndarray
    identity: np.ndarray  # key material for rows without an id
    reason: np.ndarray
    column: np.ndarray
    raw: Callable[[int], dict]  # raw row by 0-based index (only called for rejects)


@dataclass
class IngestSummary:
    """Accounts for every row: rows_read == accepted + duplicates + rejected."""

    path: str
    format: str
    rows_read: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    outside_area: int = 0
    lsoa_checked: int = 0
    lsoa_agree: int = 0
    ingest_id: int | None = None
    timings: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.accepted + self.duplicates + self.rejected

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d.pop("timings", None)
        d["rejected"] = self.rejected
        return d


# --------------------------------------------------------------------------------------------- reading
def detect_format(path: Path) -> str:
    """Guess the format from the name and the first bytes (header row for CSVs)."""
    name = path.name.lower()
    if name.endswith((".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson")):
        return "police-api-json"
    if name.endswith(".csv") or name.endswith(".csv.gz"):
        head = _read_bytes(path)[:4096]
        first = head.split(b"\n", 1)[0].decode("utf-8", "replace").lstrip("\ufeff")
        if any(col in first for col in ("Crime ID", "Falls within", "Crime type", "Reported by")):
            return "police-csv"
        return "extract"
    raise IngestError("cannot tell the format from the file name; pass --format "
                      f"({' | '.join(FORMATS)})", path=path)


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IngestError(f"cannot read file: {exc.strerror}", path=path) from None
    if path.name.lower().endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise IngestError(f"not a valid gzip file: {exc}", path=path) from None
    return data


def _decode_check(path: Path, data: bytes) -> bytes:
    """UTF-8 (with or without BOM) or a clear error naming the row and byte."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise IngestError(f"not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line}); "
                          "save the file as UTF-8 and ingest it again", path=path, row=max(line - 1, 0)) from None
    return data


def _read_csv_table(path: Path, data: bytes) -> pa.Table:
    """Every column as text: validation decides what a value means, not the CSV reader."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data[:65536].strip():
        raise IngestError("file is empty (no header row)", path=path)
    import csv
    import io
    end = data.find(b"\n")
    first_line = data if end < 0 else data[:end]
    _decode_check(path, first_line)
    try:
        header = next(csv.reader(io.StringIO(first_line.decode("utf-8").rstrip("\r"))), [])
    except csv.Error as exc:  # e.g. a bare CR in the header line, b"\r\x00" (found by tests/test_properties.py)
        raise IngestError(f"malformed CSV header: {exc}", path=path, row=0) from None
    if len(set(header)) != len(header):
        dup = next(h for h in header if header.count(h) > 1)
        raise IngestError(f"header names column {dup!r} twice", path=path, row=0, column=dup)
    try:
        return pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(block_size=1 << 22),
            convert_options=pacsv.ConvertOptions(column_types={h: pa.string() for h in header},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid as exc:
        msg = str(exc).splitlines()[0]
        if "UTF8" in msg or "UTF-8" in msg:
            _decode_check(path, data)  # arrow validated UTF-8 for us; now find the line and byte
        m = re.search(r"[Rr]ow #?(\d+)", msg)
        row = int(m.group(1)) if m else _first_ragged_row(data, len(header))
        raise IngestError(f"malformed CSV: {msg}", path=path, row=row) from None


def _first_ragged_row(data: bytes, width: int) -> int | None:
    """1-based data row whose field count differs from the header's (Arrow's message has no row)."""
    import csv
    import io
    try:
        reader = csv.reader(io.StringIO(data.decode("utf-8", "replace")))
        next(reader, None)
        for i, fields in enumerate(reader, 1):
            if fields and len(fields) != width:
                return i
    except csv.Error:
        return None
    return None


def _strings(table: pa.Table, name: str | None) -> pa.Array:
    if not name or name not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    col = table.column(name).combine_chunks()
    return col if col.type == pa.string() else pc.cast(col, pa.string())


def _nullify(arr: pa.Array) -> pa.Array:
    """Blank (or whitespace-only) strings become nulls."""
    return pc.if_else(pc.equal(pc.utf8_trim_whitespace(arr), ""), pa.scalar(None, pa.string()), arr)


def _np(arr: pa.Array) -> np.ndarray:
    """Arrow strings to a numpy object array, with '' as None."""
    return np.asarray(_nullify(arr).to_numpy(zero_copy_only=False), dtype=object)


def _to_float(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(values, is_blank); non-numbers become NaN with is_blank False."""
    trimmed = pc.utf8_trim_whitespace(arr.fill_null(""))
    blank = np.asarray(pc.equal(trimmed, "").to_numpy(zero_copy_only=False), dtype=bool)
    try:
        vals = pc.cast(pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed),
                       pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        vals = pd.to_numeric(pd.Series(trimmed.to_numpy(zero_copy_only=False), dtype=object),
                             errors="coerce").to_numpy(dtype=float)
    return np.asarray(vals, dtype=float), blank


def _validate_lonlat(lon_s: pa.Array, lat_s: pa.Array, reason: np.ndarray, column: np.ndarray,
                     lon_name: str, lat_name: str) -> tuple[np.ndarray, np.ndarray]:
    lon, lon_blank = _to_float(lon_s)
    lat, lat_blank = _to_float(lat_s)
    blank = lon_blank | lat_blank
    bad = ~blank & (np.isnan(lon) | np.isnan(lat))
    in_gb = (lon >= GB_LON[0]) & (lon <= GB_LON[1]) & (lat >= GB_LAT[0]) & (lat <= GB_LAT[1])
    swapped = ~in_gb & (lat >= GB_LON[0]) & (lat <= GB_LON[1]) & (lon >= GB_LAT[0]) & (lon <= GB_LAT[1])
    outside = ~blank & ~bad & ~in_gb & ~swapped
    _mark(reason, column, blank, R_NO_LOCATION, f"{lon_name}/{lat_name}")
    _mark(reason, column, bad, R_BAD_COORDS, f"{lon_name}/{lat_name}")
    _mark(reason, column, swapped, R_SWAPPED, f"{lon_name}/{lat_name}")
    _mark(reason, column, outside, R_OUTSIDE_GB, f"{lon_name}/{lat_name}")
    return lon, lat


def _mark(reason: np.ndarray, column: np.ndarray, mask: np.ndarray, why: str, col: str) -> None:
    """Record the first reason a row fails (earlier checks win)."""
    m = mask & pd.isna(reason)
    reason[m] = why
    column[m] = col


def _check_columns(path: Path, have: Iterable[str], need: Iterable[str], fmt: str) -> None:
    have = list(have)
    missing = [c for c in need if c not in have]
    if missing:
        raise IngestError(f"missing required column(s) for {fmt}: {', '.join(missing)} "
                          f"(file has: {', '.join(have) or 'no columns'})", path=path)


def parse_police_csv(path: Path, data: bytes | None = None) -> Parsed:
    data = _read_bytes(path) if data is None else data
    table = _read_csv_table(path, data)
    _check_columns(path, table.column_names, POLICE_CSV_REQUIRED, "police.uk CSV")
    n = table.num_rows
    reason = np.full(n, None, dtype=object)
    column = np.full(n, None, dtype=object)
    month = _np(pc.utf8_trim_whitespace(_strings(table, "Month")))
    month_ok = np.asarray(pc.match_substring_regex(pc.utf8_trim_whitespace(_strings(table, "Month")), MONTH_RE)
                          .to_numpy(zero_copy_only=False), dtype=bool)
    # Repeated text stays in Arrow (dictionary-encoded at store time, never converted row by row).
    cat = _nullify(_strings(table, "Crime type"))
    lon, lat = _validate_lonlat(_strings(table, "Longitude"), _strings(table, "Latitude"), reason, column,
                                "Longitude", "Latitude")
    _mark(reason, column, ~month_ok, R_BAD_MONTH, "Month")
    _mark(reason, column, np.asarray(cat.is_null().to_numpy(zero_copy_only=False), dtype=bool), R_NO_CATEGORY,
          "Crime type")
    crime_id = _np(_strings(table, "Crime ID"))
    # Rows without a Crime ID (anti-social behaviour) are identified by their content.
    parts = [pc.fill_null(_strings(table, c), "") for c in ("Month", "Longitude", "Latitude", "Location",
                                                             "LSOA code", "Crime type", "Last outcome category",
                                                             "Context", "Reported by")]
    identity = np.asarray(pc.binary_join_element_wise(*parts, "\x1f").to_numpy(zero_copy_only=False), dtype=object)
    e, nn = lonlat_to_bng(lon, lat)
    cols = table.column_names

    def raw(i: int) -> dict:
        return {c: table.column(c)[i].as_py() for c in cols}

    return Parsed(n, crime_id, month, np.full(n, None, dtype=object), cat, lon, lat, e, nn,
                  _nullify(_strings(table, "Location")), _nullify(_strings(table, "Last outcome category")),
                  _np(_strings(table, "Context")), _np(_strings(table, "LSOA code")),
                  np.full(n, None, dtype=object), identity, reason, column, raw)


def _load_json_records(path: Path) -> list:
    data = _read_bytes(path)
    if not data.strip():
        raise IngestError("file is empty (0 bytes): expected a JSON array of police.uk crimes", path=path)
    data = _decode_check(path, data)
    text = data.decode("utf-8")
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")) or (not text.lstrip().startswith("[")
                                                               and "\n{" in text):
        out = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except RecursionError:
                raise IngestError(f"invalid JSON on line {lineno}: nested too deeply", path=path,
                                  row=lineno) from None
            except json.JSONDecodeError as exc:
                raise IngestError(f"invalid JSON on line {lineno}: {exc.msg} (column {exc.colno}); "
                                  "the file may be truncated", path=path, row=lineno) from None
        return out
    try:
        obj = json.loads(text)
    except RecursionError:
        raise IngestError("invalid JSON: nested too deeply", path=path) from None
    except json.JSONDecodeError as exc:
        raise IngestError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} "
                          f"(offset {exc.pos} of {len(text)}); the file may be truncated", path=path) from None
    if isinstance(obj, dict) and isinstance(obj.get("crimes"), list):
        obj = obj["crimes"]
    if not isinstance(obj, list):
        raise IngestError(f"expected a JSON array of police.uk crimes, found a {type(obj).__name__}", path=path)
    return obj


def parse_police_json(path: Path) -> Parsed:
    records = _load_json_records(path)
    n = len(records)
    reason = np.full(n, None, dtype=object)
    column = np.full(n, None, dtype=object)
    fields = {k: [None] * n for k in ("id", "pid", "month", "category", "lon", "lat", "street", "outcome",
                                      "context", "location_type")}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            reason[i], column[i] = R_BAD_RECORD, None
            continue
        loc = rec.get("location") if isinstance(rec.get("location"), dict) else {}
        street = loc.get("street") if isinstance(loc.get("street"), dict) else {}
        outcome = rec.get("outcome_status")
        fields["id"][i] = None if rec.get("id") in (None, "") else str(rec.get("id"))
        pid = rec.get("persistent_id")
        fields["pid"][i] = str(pid) if isinstance(pid, (str, int, float)) and pid != "" else None
        fields["month"][i] = rec.get("month")
        fields["category"][i] = rec.get("category")
        fields["lon"][i] = loc.get("longitude")
        fields["lat"][i] = loc.get("latitude")
        fields["street"][i] = street.get("name")
        fields["outcome"][i] = outcome.get("category") if isinstance(outcome, dict) else None
        fields["context"][i] = rec.get("context") or None
        fields["location_type"][i] = rec.get("location_type")
    # A list or object where police.uk has a scalar is no value: treat it as missing (the row is rejected).
    for key, vals in fields.items():
        fields[key] = [v if v is None or isinstance(v, (str, int, float, bool)) else None for v in vals]

    def s(key: str) -> pa.Array:
        return pa.array([None if v is None else str(v) for v in fields[key]], pa.string())

    lon, lat = _validate_lonlat(s("lon").fill_null(""), s("lat").fill_null(""), reason, column,
                                "location.longitude", "location.latitude")
    month_ok = np.asarray(pc.match_substring_regex(s("month").fill_null(""), MONTH_RE)
                          .to_numpy(zero_copy_only=False), dtype=bool)
    _mark(reason, column, ~month_ok, R_BAD_MONTH, "month")
    cat = np.array(fields["category"], dtype=object)
    _mark(reason, column, np.array([not c for c in cat], dtype=bool), R_NO_CATEGORY, "category")
    ids = np.array(fields["id"], dtype=object)
    _mark(reason, column, pd.isna(ids), R_NO_ID, "id")
    # The record's own ``id`` identifies it. ``persistent_id`` (the archive's Crime ID) does not: in the
    # bundle's London year 30,234 of 774,312 records share theirs with another record of the same month
    # and place (consecutive ids, several offences of one crime), so keying on it would lose real crimes.
    # It is kept as an attribute.
    crime_id = np.array([None if x is None else "api:" + str(x) for x in ids], dtype=object)
    e, nn = lonlat_to_bng(lon, lat)
    attrs = np.array([json.dumps({"api_id": i, "persistent_id": p, "location_type": t}) if i else None
                      for i, p, t in zip(fields["id"], fields["pid"], fields["location_type"])], dtype=object)
    return Parsed(n, crime_id, np.array(fields["month"], dtype=object), np.full(n, None, dtype=object), cat,
                  lon, lat, e, nn, np.array(fields["street"], dtype=object),
                  np.array(fields["outcome"], dtype=object), np.array(fields["context"], dtype=object),
                  np.full(n, None, dtype=object), attrs, np.full(n, "", dtype=object), reason, column,
                  lambda i: records[i] if isinstance(records[i], dict) else {"value": repr(records[i])[:500]})


def parse_extract(path: Path, mapping: ExtractMapping, namespace: str = "extract") -> Parsed:
    table = _read_csv_table(path, _read_bytes(path))
    cols = table.column_names
    has_ll = mapping.longitude in cols and mapping.latitude in cols
    has_en = mapping.easting in cols and mapping.northing in cols
    when = mapping.date if mapping.date in cols else (mapping.month if mapping.month in cols else None)
    need = [mapping.id, mapping.category]
    if when is None:
        need.append(mapping.date or mapping.month)
    if not (has_ll or has_en):
        need += [c for c in (mapping.longitude, mapping.latitude) if c not in cols] + \
                [c for c in (mapping.easting, mapping.northing) if c not in cols]
    missing = [c for c in need if c not in cols]
    if missing:
        raise IngestError(f"missing required column(s) for a local extract: {', '.join(missing)} "
                          f"(need {mapping.id}, {mapping.category}, {mapping.date} or month, and "
                          f"{mapping.longitude}/{mapping.latitude} or {mapping.easting}/{mapping.northing}; "
                          f"file has: {', '.join(cols) or 'no columns'}; set the mapping in [extract] of "
                          "the config)", path=path)
    n = table.num_rows
    reason = np.full(n, None, dtype=object)
    column = np.full(n, None, dtype=object)
    ids = _np(_strings(table, mapping.id))
    _mark(reason, column, pd.isna(ids), R_NO_ID, mapping.id)
    when_s = pc.utf8_trim_whitespace(_strings(table, when).fill_null(""))
    if when == mapping.date:
        ok = np.asarray(pc.match_substring_regex(when_s, DATE_RE).to_numpy(zero_copy_only=False), dtype=bool)
        date = np.asarray(pc.utf8_slice_codeunits(when_s, 0, 10).to_numpy(zero_copy_only=False), dtype=object)
        ok &= pd.to_datetime(pd.Series(date), format="%Y-%m-%d", errors="coerce").notna().to_numpy()
        month = np.array([d[:7] for d in date], dtype=object)
        _mark(reason, column, ~ok, R_BAD_DATE, when)
    else:
        ok = np.asarray(pc.match_substring_regex(when_s, MONTH_RE).to_numpy(zero_copy_only=False), dtype=bool)
        date = np.full(n, None, dtype=object)
        month = np.asarray(when_s.to_numpy(zero_copy_only=False), dtype=object)
        _mark(reason, column, ~ok, R_BAD_MONTH, when)
    if has_ll:
        lon, lat = _validate_lonlat(_strings(table, mapping.longitude), _strings(table, mapping.latitude),
                                    reason, column, mapping.longitude, mapping.latitude)
        e, nn = lonlat_to_bng(lon, lat)
    else:
        e, e_blank = _to_float(_strings(table, mapping.easting))
        nn, n_blank = _to_float(_strings(table, mapping.northing))
        label = f"{mapping.easting}/{mapping.northing}"
        blank = e_blank | n_blank
        bad = ~blank & (np.isnan(e) | np.isnan(nn))
        inside = (e >= GB_EASTING[0]) & (e <= GB_EASTING[1]) & (nn >= GB_NORTHING[0]) & (nn <= GB_NORTHING[1])
        _mark(reason, column, blank, R_NO_LOCATION, label)
        _mark(reason, column, bad, R_BAD_COORDS, label)
        _mark(reason, column, ~blank & ~bad & ~inside, R_OUTSIDE_GB, label)
        lon, lat = bng_to_lonlat(e, nn)
    cat = _np(_strings(table, mapping.category))
    _mark(reason, column, pd.isna(cat), R_NO_CATEGORY, mapping.category)
    mapped = {mapping.id, mapping.date, mapping.month, mapping.category, mapping.longitude, mapping.latitude,
              mapping.easting, mapping.northing}
    # Named extras, or else every unmapped column: an extract's attributes are kept, not lost.
    extras = [c for c in mapping.extras if c in cols] or [c for c in cols if c not in mapped]
    if extras:
        ex = {c: _np(_strings(table, c)) for c in extras}
        attrs = np.array([json.dumps({c: ex[c][i] for c in extras}) for i in range(n)], dtype=object)
    else:
        attrs = np.full(n, None, dtype=object)
    crime_id = np.array([f"{namespace}:{x}" if x is not None else None for x in ids], dtype=object)

    def raw(i: int) -> dict:
        return {c: table.column(c)[i].as_py() for c in cols}

    return Parsed(n, crime_id, month, date, cat, lon, lat, e, nn, np.full(n, None, dtype=object),
                  np.full(n, None, dtype=object), np.full(n, None, dtype=object), np.full(n, None, dtype=object),
                  attrs, np.full(n, "", dtype=object), reason, column, raw)


# ------------------------------------------------------------------------------------------ identities
_NIBBLE = np.zeros(256, dtype=np.uint8)
_NIBBLE[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10, dtype=np.uint8)
_NIBBLE[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16, dtype=np.uint8)
_NIBBLE[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16, dtype=np.uint8)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_WORD_MULT = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93],
                      dtype=np.uint64)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: every input bit affects every output bit."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def incident_keys(crime_id: np.ndarray, identity: np.ndarray) -> np.ndarray:
    """Signed 64-bit identity keys (the store's primary key and the duplicate check).

    * a police.uk archive Crime ID (64 hex digits, a SHA-256) keys by a vectorised mix of its four 64-bit
      words (case-insensitive);
    * any other id (``api:<id>``, ``extract:<id>``) keys by a SipHash of the id;
    * a row without an id (anti-social behaviour) keys by a SipHash of its content plus its occurrence
      number in the file: two identical rows are two incidents, and re-ingesting the file finds both again.
    """
    n = len(crime_id)
    keys = np.zeros(n, dtype=np.uint64)
    ids = pa.array(crime_id, type=pa.string(), from_pandas=True)
    has_id = ~np.asarray(ids.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    is_hex = has_id & np.asarray(pc.match_substring_regex(ids, r"^[0-9a-fA-F]{64}$").fill_null(False)
                                 .to_numpy(zero_copy_only=False), dtype=bool)
    if is_hex.any():
        hexes = ids.filter(pa.array(is_hex))
        offsets = np.frombuffer(hexes.buffers()[1], dtype=np.int32)[hexes.offset:hexes.offset + len(hexes) + 1]
        chars = np.frombuffer(hexes.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]].reshape(-1, 64)
        nibbles = _NIBBLE[chars]
        digest = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]  # (n, 32) bytes of the SHA-256
        words = np.ascontiguousarray(digest).view(">u8").astype(np.uint64)  # (n, 4)
        with np.errstate(over="ignore"):
            keys[is_hex] = _mix64(np.bitwise_xor.reduce(words * _WORD_MULT, axis=1))
    other = has_id & ~is_hex
    if other.any():
        keys[other] = pd.util.hash_array(crime_id[other].astype(object), hash_key="hotspots-id-v2!!",
                                         categorize=False)
    no_id = ~has_id
    if no_id.any():
        h = pd.util.hash_array(identity[no_id].astype(object), hash_key="hotspots-row-v2!",
                               categorize=False)
        occ = pd.Series(h).groupby(h, sort=False).cumcount().to_numpy().astype(np.uint64)
        with np.errstate(over="ignore"):
            keys[no_id] = h + occ * _GOLDEN
    return keys.view(np.int64)


# ------------------------------------------------------------------------------------------- ingesting
def parse_file(path: Path, fmt: str, config: Config | None = None) -> Parsed:
    if fmt == "police-csv":
        return parse_police_csv(path)
    if fmt == "police-api-json":
        return parse_police_json(path)
    if fmt == "extract":
        return parse_extract(path, config.extract if config else ExtractMapping())
    raise IngestError(f"unknown format {fmt!r} (use one of: {', '.join(FORMATS)})", path=path)


def ingest_file(con, geocoder: Geocoder, path: Path, fmt: str | None = None, config: Config | None = None,
                progress: Callable[[int], None] | None = None) -> IngestSummary:
    """Parse, validate, geocode and store one file in one transaction; return its summary."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    clock = _Clock()
    parsed = parse_file(path, fmt, config)  # raises before anything is written
    clock("parse")
    digest = sha256_file(path)
    summary = IngestSummary(str(path), fmt, rows_read=parsed.n)
    valid = pd.isna(parsed.reason)
    keys = incident_keys(parsed.crime_id, parsed.identity)
    # Within-file repeats of the same identity count as duplicates; keep the first.
    vidx = np.flatnonzero(valid)
    _, first_pos = np.unique(keys[vidx], return_index=True)
    take = np.sort(vidx[first_pos])
    clock("keys")
    area_idx = geocoder.assign_indices(parsed.easting[take], parsed.northing[take])
    clock("geocode")
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with store.transaction(con):
        ingest_id = con.execute("INSERT INTO ingests (path, sha256, format, started_at) VALUES (?, ?, ?, ?)",
                                (str(path), digest, fmt, now)).lastrowid
        existing = _existing_keys(con, keys[take])
        clock("dedup")
        new = ~np.isin(keys[take], existing)
        order = np.argsort(keys[take][new], kind="stable")  # insert in key order: B-tree friendly
        pos = np.flatnonzero(new)[order]  # positions within `take`
        sel = take[pos]
        n = len(sel)
        area_ids = {role: _area_ids(con, geocoder.layers[role])[area_idx[role][pos]] for role in area_idx}
        in_area = area_idx[geocoder.area_role][pos] >= 0
        cat_ids = _category_ids(con, _take(parsed.category_raw, sel))
        loc_ids = _text_ids(con, _take(parsed.location, sel))
        out_ids = _text_ids(con, _take(parsed.outcome, sel))
        clock("dictionaries")
        table = np.empty((n, len(store.INCIDENT_COLUMNS)), dtype=object)
        table[:, 0] = keys[sel]
        table[:, 1] = parsed.crime_id[sel]
        table[:, 2] = ingest_id
        table[:, 3] = sel + 1
        table[:, 4] = parsed.month[sel]
        table[:, 5] = parsed.date[sel]
        table[:, 6] = cat_ids
        table[:, 7] = _ints(parsed.lon[sel], 1e6)
        table[:, 8] = _ints(parsed.lat[sel], 1e6)
        table[:, 9] = _ints(parsed.easting[sel], 10.0)
        table[:, 10] = _ints(parsed.northing[sel], 10.0)
        table[:, 11] = loc_ids
        table[:, 12] = out_ids
        table[:, 13] = parsed.context[sel]
        table[:, 14] = parsed.source_lsoa[sel]
        for j, role in enumerate(store.AREA_ROLES, start=15):
            table[:, j] = _nullable(area_ids[role]) if role in area_ids else None
        table[:, 19] = in_area.astype(np.int64)
        table[:, 20] = parsed.attrs[sel]
        clock("rows")
        stored_before = con.execute("SELECT COUNT(*) FROM incidents").fetchone()[0]
        bulk = n > max(stored_before, 50_000)
        if bulk:  # rebuilding the indexes once is cheaper than updating them row by row
            for name in store.INDEXES:
                con.execute(f"DROP INDEX IF EXISTS {name}")
        before = con.total_changes
        _insert_rows(con, table, progress)
        summary.accepted = con.total_changes - before
        clock("insert")
        if bulk:
            for ddl in store.INDEXES.values():
                con.execute(ddl)
        clock("index")
        summary.duplicates = int(valid.sum()) - summary.accepted
        rejected = np.flatnonzero(~valid)
        summary.rejected_by_reason = dict(Counter(parsed.reason[rejected].tolist()))
        if len(rejected):
            con.executemany(
                "INSERT OR IGNORE INTO rejects (sha256, path, row_no, column_name, reason, raw, ingest_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(digest, str(path), int(i) + 1, parsed.column[i], parsed.reason[i],
                  json.dumps(parsed.raw(int(i)), default=str), ingest_id) for i in rejected])
        summary.outside_area = int((~in_area).sum())
        if fmt == "police-csv" and n:
            src = parsed.source_lsoa[sel]
            check = in_area & ~pd.isna(src)
            agree = np.zeros(n, dtype=bool)
            for role in ("lsoa21", "lsoa11"):
                if role in area_idx:
                    i = area_idx[role][pos]
                    codes = geocoder.layers[role].codes
                    ours = np.where(i >= 0, codes[np.clip(i, 0, None)], None)
                    agree |= check & (ours == src)
            summary.lsoa_checked, summary.lsoa_agree = int(check.sum()), int(agree.sum())
        summary.ingest_id = ingest_id
        con.execute("UPDATE ingests SET finished_at = ?, rows_read = ?, accepted = ?, duplicates = ?, "
                    "rejected = ?, outside_area = ?, lsoa_checked = ?, lsoa_agree = ? WHERE id = ?",
                    (datetime.now(timezone.utc).isoformat(timespec="seconds"), summary.rows_read,
                     summary.accepted, summary.duplicates, summary.rejected, summary.outside_area,
                     summary.lsoa_checked, summary.lsoa_agree, ingest_id))
    clock("commit")
    summary.timings = clock.laps
    if not summary.balanced:  # pragma: no cover - a bug, never bad input
        raise AssertionError(f"ingest summary does not balance: {summary}")
    logger.info("ingested %s: %s", path, summary.to_dict())
    return summary


class _Clock:
    """Lap timer: where an ingest spends its time (logged at DEBUG, printed by the benchmark)."""

    def __init__(self) -> None:
        import time
        self._now = time.perf_counter
        self._t = self._now()
        self.laps: dict[str, float] = {}

    def __call__(self, label: str) -> None:
        t = self._now()
        self.laps[label] = self.laps.get(label, 0.0) + t - self._t
        self._t = t


def _ints(values: np.ndarray, scale: float) -> np.ndarray:
    return np.round(np.asarray(values, float) * scale).astype(np.int64)


def _nullable(ids: np.ndarray) -> np.ndarray:
    out = ids.astype(object)
    out[ids < 0] = None
    return out


#: Rows per INSERT statement: multi-row VALUES halves the per-row cost of Python's sqlite3 binding.
ROWS_PER_STATEMENT = 100


def _insert_rows(con, table: np.ndarray, progress: Callable[[int], None] | None = None) -> None:
    """INSERT OR IGNORE an (n, columns) object array, ROWS_PER_STATEMENT rows per statement.

    Binding each value costs more than anything SQLite does with it, so columns that are empty for the
    whole file (a police.uk CSV has no dates or attributes) are left to their NULL default and a column
    with one value for the whole file (the ingest id) is written into the statement, not bound per row."""
    n, width = table.shape
    if n == 0:
        return
    bound, literals = [], {}
    for j, name in enumerate(store.INCIDENT_COLUMNS):
        col = table[:, j]
        first = col[0]
        if first is None and not any(v is not None for v in col):
            continue  # all NULL: the column default
        if name == "ingest_id":
            literals[name] = int(first)  # one integer per file, generated by us
            continue
        bound.append(j)
    names = [store.INCIDENT_COLUMNS[j] for j in bound] + list(literals)
    row = "(" + ", ".join(["?"] * len(bound) + [str(v) for v in literals.values()]) + ")"
    head = f"INSERT OR IGNORE INTO incidents ({', '.join(names)}) VALUES "
    data = table[:, bound]
    r = ROWS_PER_STATEMENT
    full = n // r * r
    for start in range(0, full, STORE_CHUNK):
        stop = min(start + STORE_CHUNK, full)
        con.executemany(head + ", ".join([row] * r),
                        (data[i:i + r].ravel().tolist() for i in range(start, stop, r)))
        if progress:
            progress(stop - start)
    if full < n:
        con.execute(head + ", ".join([row] * (n - full)), data[full:].ravel().tolist())
        if progress:
            progress(n - full)


def _existing_keys(con, keys: np.ndarray) -> np.ndarray:
    """Which of ``keys`` are already stored (one indexed join through a temp table)."""
    if not len(keys) or con.execute("SELECT NOT EXISTS (SELECT 1 FROM incidents)").fetchone()[0]:
        return np.empty(0, dtype=np.int64)
    con.execute("CREATE TEMP TABLE IF NOT EXISTS _keys (key INTEGER PRIMARY KEY)")
    con.execute("DELETE FROM _keys")
    con.executemany("INSERT OR IGNORE INTO _keys VALUES (?)", ((k,) for k in np.sort(keys).tolist()))
    found = [r[0] for r in con.execute("SELECT k.key FROM _keys k JOIN incidents i ON i.key = k.key")]
    con.execute("DELETE FROM _keys")
    return np.asarray(found, dtype=np.int64)


def _area_ids(con, layer) -> np.ndarray:
    """Store ids of a layer's areas, aligned with ``layer.codes``, with -1 appended for 'outside' (-1)."""
    con.executemany("INSERT INTO areas (role, code, name) VALUES (?, ?, ?) "
                    "ON CONFLICT (role, code) DO UPDATE SET name = excluded.name WHERE name != excluded.name",
                    [(layer.role, str(c), str(nm)) for c, nm in zip(layer.codes, layer.names)])
    ids = dict(con.execute("SELECT code, id FROM areas WHERE role = ?", (layer.role,)).fetchall())
    return np.array([ids[str(c)] for c in layer.codes] + [-1], dtype=np.int64)


def _take(values, sel: np.ndarray):
    return values.take(pa.array(sel)) if isinstance(values, (pa.Array, pa.ChunkedArray)) else values[sel]


def _factorize(values) -> tuple[np.ndarray, list]:
    """(codes with -1 for missing, distinct values) for Arrow or numpy object arrays."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        enc = pc.dictionary_encode(values)
        if isinstance(enc, pa.ChunkedArray):
            enc = enc.combine_chunks()
        codes = np.asarray(enc.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
        return codes, enc.dictionary.to_pylist()
    codes, uniques = pd.factorize(pd.Series(values, dtype=object))
    return codes, list(uniques)


def _category_ids(con, raw) -> np.ndarray:
    codes, uniques = _factorize(raw)
    ids = []
    for value in uniques:
        slug = normalise_category(value)
        con.execute("INSERT OR IGNORE INTO categories (slug, raw) VALUES (?, ?)", (slug, value))
        ids.append(con.execute("SELECT id FROM categories WHERE slug = ? AND raw = ?", (slug, value)).fetchone()[0])
    return np.asarray(ids, dtype=np.int64)[codes] if len(codes) else np.empty(0, dtype=np.int64)


def _text_ids(con, values) -> np.ndarray:
    """Dictionary-encode repeated text (street names, outcomes) into the ``texts`` table."""
    codes, uniques = _factorize(values)
    if not len(uniques):
        return np.full(len(values), None, dtype=object)
    con.execute("CREATE TEMP TABLE IF NOT EXISTS _texts (pos INTEGER PRIMARY KEY, text TEXT)")
    con.execute("DELETE FROM _texts")
    con.executemany("INSERT INTO _texts VALUES (?, ?)", enumerate(map(str, uniques)))
    con.execute("INSERT OR IGNORE INTO texts (text) SELECT text FROM _texts")
    ids = np.empty(len(uniques), dtype=np.int64)
    for pos, tid in con.execute("SELECT x.pos, t.id FROM _texts x JOIN texts t ON t.text = x.text"):
        ids[pos] = tid
    con.execute("DELETE FROM _texts")
    out = ids[np.clip(codes, 0, None)].astype(object)
    out[codes < 0] = None
    return out


def record_areas(con, geocoder: Geocoder) -> None:
    """Keep the names of the areas incidents are coded to, so the store explains its own codes."""
    with store.transaction(con):
        for layer in geocoder.layers.values():
            _area_ids(con, layer)


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files named directly, and the incident files inside any folder named (sorted, recursive)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.name.lower().endswith(
                (".csv", ".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".csv.gz")))
        elif p.exists():
            out.append(p)
        else:
            raise IngestError("file not found", path=p)
    return out


def ingest_paths(config: Config, paths: Iterable[str | Path], fmt: str | None = None, *,
                 show_progress: bool = False, geocoder: Geocoder | None = None,
                 on_error: Callable[[Exception], None] | None = None) -> list[IngestSummary]:
    """Ingest each file in its own transaction. A file that fails entirely raises IngestError, unless
    ``on_error`` is given, in which case it is reported there and the next file goes on."""
    files = expand_paths(paths)
    geocoder = geocoder or Geocoder.from_config(config)
    con = store.connect(config.db_path)
    try:
        record_areas(con, geocoder)
        summaries = []
        prog = None
        if show_progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
            prog = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), transient=False)
            prog.start()
            task = prog.add_task("Ingesting", total=len(files))
            rows_task = prog.add_task("  rows stored", total=None)
        try:
            for f in files:
                if prog:
                    prog.update(task, description=f"Ingesting {f.name}")
                try:
                    step = (lambda k: prog.advance(rows_task, k)) if prog else None
                    summaries.append(ingest_file(con, geocoder, f, fmt, config, progress=step))
                except IngestError as exc:
                    if on_error is None:
                        raise
                    on_error(exc)
                if prog:
                    prog.advance(task)
        finally:
            if prog:
                prog.stop()
        return summaries
    finally:
        con.close()
