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
* rows outside the configured area are kept and flagged ``in_area = 0``;
* limits (``[ingest]``, ``IngestLimits``): a file that expands past ``max_expanded_mb`` (gzip is read as a
  stream) or that is mostly rejects is refused whole, naming the first rejected rows; symlinks are
  resolved, and refused outside ``allowed_roots`` when given; no error message quotes file content;
* the summary balances, also on a repeat: rows rejected when the same content was ingested before are
  duplicates now (``already_rejected``), their rejects being stored once.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import re
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from . import sqlite_bulk, store
from .categories import POLICE_CATEGORIES, normalise_category
from .config import Config, ExtractMapping, IngestLimits, offence_key
from .errors import IngestError
from .keys import incident_keys
from .bundle import BNG, WGS84
from .geocode import GB_EASTING, GB_LAT, GB_LON, GB_NORTHING, Geocoder, bng_to_lonlat

logger = logging.getLogger(__name__)

FORMATS = ("police-csv", "police-api-json", "extract")

POLICE_CSV_COLUMNS = ("Crime ID", "Month", "Reported by", "Falls within", "Longitude", "Latitude", "Location",
                      "LSOA code", "LSOA name", "Crime type", "Last outcome category", "Context")
#: Columns without which a police.uk CSV row cannot be placed or classified.
POLICE_CSV_REQUIRED = ("Crime ID", "Month", "Longitude", "Latitude", "Crime type")

MONTH_RE = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
DATE_RE = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"

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
    """One file's rows in a normalised, columnar shape; ``reason`` is None for valid rows.

    Text stays in Arrow arrays (null = missing) from the CSV reader to the store: converting a million
    values to Python objects costs more than parsing them. Coordinates are ``x``/``y`` in ``crs``
    (longitude/latitude in EPSG:4326, or easting/northing in EPSG:27700 for extracts in BNG)."""

    n: int
    crime_id: pa.Array
    month: pa.Array
    date: pa.Array | None
    category_raw: pa.Array
    x: np.ndarray
    y: np.ndarray
    crs: str
    lon: np.ndarray
    lat: np.ndarray
    location: pa.Array | None
    outcome: pa.Array | None
    context: pa.Array | None
    source_lsoa: pa.Array | None
    attrs: pa.Array | None
    identity: pa.Array | None  # content of each row without an id, in row order (police.uk CSV only)
    reason: np.ndarray
    column: np.ndarray
    raw: Callable[[int], dict]  # raw row by 0-based index (only called for rejects)
    time: pa.Array | None = None  # time of day (HH:MM or HH:MM:SS) where the source has it (extracts)
    #: the category slug of a raw name (extracts with an [extract.categories] mapping); None = normalise_category
    slug_of: Callable[[str], str] | None = None
    subcategory: pa.Array | None = None  # the local offence a mapped category came from (extracts)


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
    #: of ``duplicates``: rows rejected when the same file content was ingested before (their rejects
    #: are stored once, so they are duplicates now, not new rejects)
    already_rejected: int = 0
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

    @property
    def all_rejected(self) -> bool:
        """Every row was rejected, now or when the same content was ingested before: nothing usable."""
        return self.rows_read > 0 and self.accepted == 0 and self.duplicates == self.already_rejected

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
        head = _read_head(path)
        first = head.split(b"\n", 1)[0].decode("utf-8", "replace").lstrip("\ufeff")
        if any(col in first for col in ("Crime ID", "Falls within", "Crime type", "Reported by")):
            return "police-csv"
        return "extract"
    raise IngestError("cannot tell the format from the file name; pass --format "
                      f"({' | '.join(FORMATS)})", path=path)


#: Bytes decompressed per step: the expanded size is checked between steps, so a compression bomb is
#: stopped within one step of the limit instead of after it has filled memory.
DECOMPRESS_STEP = 1 << 20


def _too_large(path: Path, limits: IngestLimits, what: str, key: str = "max_expanded_mb") -> IngestError:
    return IngestError(f"{what} more than {getattr(limits, key):g} MiB, the limit for one file "
                       f"([ingest] {key}); refused so it cannot exhaust memory: split it, or raise "
                       "the limit if this file is genuine", path=path)


def _parse_within_limits(path: Path, fmt: str, config: Config | None, data: bytes, limits: IngestLimits) -> Parsed:
    """``parse_file`` for data already within ``max_expanded_mb``. JSON becomes Python objects (about ten
    times its text), so it has its own, lower limit; and should memory still run out, the answer is an
    IngestError naming the file, never a MemoryError traceback."""
    if fmt == "police-api-json" and len(data) > limits.max_json_mb * 2 ** 20:
        raise _too_large(path, limits, f"JSON text of {len(data) / 2 ** 20:,.0f} MiB,", "max_json_mb")
    try:
        return parse_file(path, fmt, config, data)
    except MemoryError:
        raise IngestError(f"out of memory while parsing {len(data) / 2 ** 20:,.0f} MiB; nothing was written: "
                          "split the file, or lower [ingest] max_expanded_mb / max_json_mb so such files are "
                          "refused up front", path=path) from None


def _read_file(path: Path, limits: IngestLimits = IngestLimits()) -> bytes:
    """The file's bytes as stored (compressed or not): what its SHA-256 is taken of."""
    try:
        size = path.stat().st_size
        if size > limits.max_expanded_mb * 2 ** 20:
            raise _too_large(path, limits, f"file is {size / 2 ** 20:,.0f} MiB,")
        return path.read_bytes()
    except OSError as exc:
        raise IngestError(f"cannot read file: {exc.strerror}", path=path) from None


def _decompress(path: Path, raw: bytes, limits: IngestLimits = IngestLimits()) -> bytes:
    """Decompress a ``.gz`` file as a stream, refusing it as soon as it expands past the limit."""
    if not path.name.lower().endswith(".gz"):
        return raw
    cap = int(limits.max_expanded_mb * 2 ** 20)
    parts, total = [], 0
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            while chunk := stream.read(DECOMPRESS_STEP):
                total += len(chunk)
                if total > cap:
                    raise _too_large(path, limits, "decompressed, the file expands to")
                parts.append(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise IngestError(f"not a valid gzip file: {exc}", path=path) from None
    return b"".join(parts)


def _read_bytes(path: Path, limits: IngestLimits = IngestLimits()) -> bytes:
    return _decompress(path, _read_file(path, limits), limits)


def _read_head(path: Path, size: int = 4096) -> bytes:
    """The first bytes of the (decompressed) file, without reading all of it."""
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as fh:
            return fh.read(size)
    except OSError as exc:
        raise IngestError(f"cannot read file: {getattr(exc, 'strerror', None) or exc}", path=path) from None
    except EOFError as exc:
        raise IngestError(f"not a valid gzip file: {exc}", path=path) from None


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
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(block_size=1 << 22),
            convert_options=pacsv.ConvertOptions(column_types={h: pa.string() for h in header},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
        try:  # a quoted header name may span lines past the first, which was checked above; Arrow keeps its bytes
            table.column_names
        except UnicodeDecodeError:  # found by tests/test_properties.py: b'"a\n\x80",b'
            _decode_check(path, data)
            raise IngestError("the header row is not UTF-8 text", path=path, row=0) from None
        return table
    except pa.ArrowInvalid as exc:
        # Arrow quotes the offending row ("Expected 12 columns, got 3: <row>"): never echo file content
        msg = re.sub(r"(columns, got \d+):.*", r"\1", str(exc).splitlines()[0])
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


def _blank(arr: pa.Array) -> np.ndarray:
    """Empty or whitespace-only (or null) values, as a numpy mask."""
    blank = pc.or_(pc.equal(pc.binary_length(arr), 0), pc.utf8_is_space(arr))
    return np.asarray(blank.fill_null(True).to_numpy(zero_copy_only=False), dtype=bool)


def _nullify(arr: pa.Array, blank: np.ndarray | None = None) -> pa.Array:
    """Blank (or whitespace-only) strings become nulls (``blank``: ``_blank(arr)`` if already known). Only
    the validity bitmap is rebuilt: the text is not copied (a million 64-character Crime IDs would be)."""
    blank = _blank(arr) if blank is None else blank
    if not blank.any():
        return arr
    if blank.all():
        return pa.nulls(len(arr), pa.string())
    if arr.offset:
        return pc.if_else(pa.array(blank), pa.scalar(None, arr.type), arr)
    validity = pa.array(~blank).buffers()[1]
    _, offsets, data = arr.buffers()
    return pa.Array.from_buffers(arr.type, len(arr), [validity, offsets, data])


def _np(arr: pa.Array) -> np.ndarray:
    """Arrow strings to a numpy object array, with '' as None."""
    return np.asarray(_nullify(arr).to_numpy(zero_copy_only=False), dtype=object)


def _to_float(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(values, is_blank); non-numbers become NaN with is_blank False."""
    blank = _blank(arr)
    present = _nullify(arr, blank)
    try:  # values without surrounding spaces (almost always) convert directly
        vals = pc.cast(present, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        trimmed = pc.utf8_trim_whitespace(present)
        try:
            vals = pc.cast(trimmed, pa.float64()).to_numpy(zero_copy_only=False)
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


def _header_shown(have: list[str]) -> str:
    """The header's column names for an error message, only when the first line looks like a CSV header
    (several short, non-empty names). Otherwise it may be any file's content (a symlink to a system
    file; "daemon:x:1:1:daemon,,,:/usr/sbin" splits into empty names): only the number of fields is said."""
    if len(have) >= 2 and all(0 < len(h) <= 64 and h.isprintable() for h in have):
        return f"file has: {', '.join(have)}"
    return (f"the first line is not a CSV header ({len(have)} field{'s' if len(have) != 1 else ''}, "
            "not shown): is this an incident file?")


def _check_columns(path: Path, have: Iterable[str], need: Iterable[str], fmt: str) -> None:
    have = list(have)
    missing = [c for c in need if c not in have]
    if missing:
        raise IngestError(f"missing required column(s) for {fmt}: {', '.join(missing)} "
                          f"({_header_shown(have)})", path=path)


def parse_police_csv(path: Path, data: bytes | None = None) -> Parsed:
    data = _read_bytes(path) if data is None else data
    table = _read_csv_table(path, data)
    _check_columns(path, table.column_names, POLICE_CSV_REQUIRED, "police.uk CSV")
    n = table.num_rows
    combined: dict[str, pa.Array] = {}

    def col(name: str) -> pa.Array:  # each column made contiguous once
        if name not in combined:
            combined[name] = _strings(table, name)
        return combined[name]

    reason = np.full(n, None, dtype=object)
    column = np.full(n, None, dtype=object)
    month = pc.utf8_trim_whitespace(col("Month"))
    month_ok = np.asarray(pc.match_substring_regex(month, MONTH_RE).to_numpy(zero_copy_only=False), dtype=bool)
    cat = _nullify(col("Crime type"))
    lon, lat = _validate_lonlat(col("Longitude"), col("Latitude"), reason, column, "Longitude", "Latitude")
    _mark(reason, column, ~month_ok, R_BAD_MONTH, "Month")
    _mark(reason, column, np.asarray(cat.is_null().to_numpy(zero_copy_only=False), dtype=bool), R_NO_CATEGORY,
          "Crime type")
    crime_id = _nullify(col("Crime ID"))
    identity = None
    if crime_id.null_count:
        # Rows without a Crime ID (anti-social behaviour) are identified by their content: built for
        # those rows only, in row order (``incident_keys(..., compact=True)``).
        no_id = crime_id.is_null()
        parts = [pc.fill_null(col(c).filter(no_id), "")
                 for c in ("Month", "Longitude", "Latitude", "Location", "LSOA code", "Crime type",
                           "Last outcome category", "Context", "Reported by")]
        identity = pc.binary_join_element_wise(*parts, "\x1f")
    names = table.column_names

    def raw(i: int) -> dict:
        return {c: table.column(c)[i].as_py() for c in names}

    return Parsed(n, crime_id, month, None, cat, lon, lat, WGS84, lon, lat,
                  _nullify(col("Location")), _nullify(col("Last outcome category")),
                  _nullify(col("Context")), _nullify(col("LSOA code")),
                  None, identity, reason, column, raw)


def _load_json_records(path: Path, data: bytes | None = None) -> list:
    data = _read_bytes(path) if data is None else data
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


def parse_police_json(path: Path, data: bytes | None = None) -> Parsed:
    records = _load_json_records(path, data)
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
    crime_id = _text([None if x is None else "api:" + str(x) for x in ids])
    attrs = _text([json.dumps({"api_id": i, "persistent_id": p, "location_type": t}) if i else None
                   for i, p, t in zip(fields["id"], fields["pid"], fields["location_type"])])
    return Parsed(n, crime_id, _text(fields["month"]), None, _text(cat), lon, lat, WGS84, lon, lat,
                  _text(fields["street"]), _text(fields["outcome"]), _text(fields["context"]), None, attrs,
                  None, reason, column,
                  lambda i: records[i] if isinstance(records[i], dict) else {"value": repr(records[i])[:500]})


def _text(values) -> pa.Array:
    """Python values (None = missing) to an Arrow string array; non-strings by their ``str``."""
    return pa.array([None if v is None else v if isinstance(v, str) else str(v) for v in values], pa.string())


def parse_extract(path: Path, mapping: ExtractMapping, namespace: str = "extract",
                  data: bytes | None = None) -> Parsed:
    table = _read_csv_table(path, _read_bytes(path) if data is None else data)
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
                          f"{_header_shown(cols)}; set the mapping in [extract] of "
                          "the config)", path=path)
    n = table.num_rows
    reason = np.full(n, None, dtype=object)
    column = np.full(n, None, dtype=object)
    ids = _np(_strings(table, mapping.id))
    _mark(reason, column, pd.isna(ids), R_NO_ID, mapping.id)
    when_s = pc.utf8_trim_whitespace(_strings(table, when).fill_null(""))
    time = None
    if when == mapping.date:
        ok, date, time = _parse_dates(when_s, mapping.date_format)
        month = np.array([d[:7] if d else None for d in date], dtype=object)
        why = R_BAD_DATE if not mapping.date_format else \
            f"date does not match the format {mapping.date_format!r} ([extract] date_format)"
        _mark(reason, column, ~ok, why, when)
    else:
        ok = np.asarray(pc.match_substring_regex(when_s, MONTH_RE).to_numpy(zero_copy_only=False), dtype=bool)
        date = np.full(n, None, dtype=object)
        month = np.asarray(when_s.to_numpy(zero_copy_only=False), dtype=object)
        _mark(reason, column, ~ok, R_BAD_MONTH, when)
    if has_ll:
        lon, lat = _validate_lonlat(_strings(table, mapping.longitude), _strings(table, mapping.latitude),
                                    reason, column, mapping.longitude, mapping.latitude)
        x, y, crs = lon, lat, WGS84
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
        x, y, crs = e, nn, BNG
    cat = _nullify(_strings(table, mapping.category))
    _mark(reason, column, np.asarray(cat.is_null().to_numpy(zero_copy_only=False), dtype=bool), R_NO_CATEGORY,
          mapping.category)
    slug_of, subcategory = _map_categories(cat, mapping, reason, column)
    mapped = {mapping.id, mapping.date, mapping.month, mapping.category, mapping.longitude, mapping.latitude,
              mapping.easting, mapping.northing}
    # Named extras, or else every unmapped column: an extract's attributes are kept, not lost.
    extras = [c for c in mapping.extras if c in cols] or [c for c in cols if c not in mapped]
    if extras:
        types = mapping.declared_extras
        ex = {c: _typed_extra(_np(_strings(table, c)), types.get(c, "text"), c, reason, column) for c in extras}
        attrs = _text([json.dumps({c: ex[c][i] for c in extras}) for i in range(n)])
    else:
        attrs = None
    crime_id = _text([f"{namespace}:{x}" if x is not None else None for x in ids])

    def raw(i: int) -> dict:
        return {c: table.column(c)[i].as_py() for c in cols}

    return Parsed(n, crime_id, _text(month), _text(date), cat, x, y, crs, lon, lat, None, None, None, None,
                  attrs, None, reason, column, raw, time=time, slug_of=slug_of, subcategory=subcategory)


def _map_categories(cat: pa.Array, mapping: ExtractMapping, reason: np.ndarray,
                    column: np.ndarray) -> tuple[Callable[[str], str] | None, pa.Array | None]:
    """Apply ``[extract.categories]``: (slug of a raw offence, the original offence of each mapped row).

    A police.uk category name or slug stands for itself; any other offence the mapping does not name is
    rejected with the known names unless ``unmapped = "keep"`` (then it is its own slugified category)."""
    table = mapping.category_map
    if not table:
        return None, None
    codes, uniques = _factorize(cat)
    slugs: dict[str, str] = {}
    unknown = np.zeros(len(uniques), dtype=bool)
    mapped = np.zeros(len(uniques), dtype=bool)
    for i, value in enumerate(uniques):
        key = offence_key(value)
        if key in table:
            slugs[value], mapped[i] = table[key], True
        elif normalise_category(value) in POLICE_CATEGORIES:
            slugs[value] = normalise_category(value)
        elif mapping.keep_unmapped:
            slugs[value] = normalise_category(value)
        else:
            unknown[i] = True
    if unknown.any():
        known = sorted({k for k, _ in mapping.categories}) + sorted(v.casefold() for v in POLICE_CATEGORIES.values())
        why = (f"offence not in [extract.categories] (known, ignoring case and spacing: {', '.join(known)}; or set "
               "[extract] unmapped = \"keep\")")
        _mark(reason, column, (codes >= 0) & unknown[np.clip(codes, 0, None)], why, mapping.category)
    is_mapped = (codes >= 0) & mapped[np.clip(codes, 0, None)]
    sub = pc.if_else(pa.array(is_mapped), pc.utf8_trim_whitespace(cat), pa.scalar(None, pa.string()))
    return (lambda value: slugs.get(value) or normalise_category(value)), sub


_TRUE, _FALSE = {"true", "t", "yes", "y", "1"}, {"false", "f", "no", "n", "0"}


def _typed_extra(values: np.ndarray, kind: str, name: str, reason: np.ndarray, column: np.ndarray) -> list:
    """An extra column's values as ``kind`` (None for blank); a value that is not of the type rejects its row."""
    out: list = [None] * len(values)
    bad = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and np.isnan(v)) or not str(v).strip():
            continue
        text = str(v).strip()
        if kind == "text":
            out[i] = text
        elif kind == "bool":
            low = text.casefold()
            out[i] = True if low in _TRUE else False if low in _FALSE else None
            bad[i] = out[i] is None
        else:
            try:
                num = int(text) if kind == "int" else float(text)
                bad[i] = kind == "number" and not np.isfinite(num)
                out[i] = None if bad[i] else num
            except ValueError:
                bad[i] = True
    if bad.any():
        what = {"bool": "true/false (also yes/no, y/n, 1/0)", "int": "a whole number",
                "number": "a finite number"}[kind]
        _mark(reason, column, bad, f"{name} must be {what} ([extract.extras] declares it {kind})", name)
    return out


#: ISO time of day after the date: "T" or a space, then HH:MM, or HH:MM:SS (anything after is ignored).
ISO_HHMM_RE = r"^.{10}[T ]([01][0-9]|2[0-3]):[0-5][0-9]"
ISO_HHMMSS_RE = ISO_HHMM_RE + r":[0-5][0-9]"


def _parse_dates(values: pa.Array, fmt: str) -> tuple[np.ndarray, np.ndarray, pa.Array | None]:
    """(valid mask, YYYY-MM-DD or None, time of day or None) of date strings. ``fmt`` "" is ISO 8601
    (YYYY-MM-DD, then optionally T/space and HH:MM[:SS]); otherwise a strptime pattern that must match
    the whole value, so "25/06/2018" under "%m/%d/%Y" or "2018-06-25" under "%d/%m/%Y" is rejected,
    never guessed."""
    if not fmt:
        ok = np.asarray(pc.match_substring_regex(values, DATE_RE).to_numpy(zero_copy_only=False), dtype=bool)
        date = np.asarray(pc.utf8_slice_codeunits(values, 0, 10).to_numpy(zero_copy_only=False), dtype=object)
        ok &= pd.to_datetime(pd.Series(date), format="%Y-%m-%d", errors="coerce").notna().to_numpy()
        valid = pa.array(ok)
        none = pa.scalar(None, pa.string())
        hhmm = pc.and_(valid, pc.match_substring_regex(values, ISO_HHMM_RE))
        hhmmss = pc.and_(valid, pc.match_substring_regex(values, ISO_HHMMSS_RE))
        time = pc.if_else(hhmmss, pc.utf8_slice_codeunits(values, 11, 19),
                          pc.if_else(hhmm, pc.utf8_slice_codeunits(values, 11, 16), none))
        return ok, np.where(ok, date, None), None if time.null_count == len(time) else time
    parsed = pd.to_datetime(pd.Series(values.to_numpy(zero_copy_only=False), dtype=object), format=fmt,
                            errors="coerce", exact=True)
    ok = parsed.notna().to_numpy()
    date = np.where(ok, parsed.dt.strftime("%Y-%m-%d").to_numpy(dtype=object), None)
    time = None
    if any(code in fmt for code in ("%H", "%I", "%M")):
        clock = "%H:%M:%S" if "%S" in fmt else "%H:%M"
        time = pa.array(np.where(ok, parsed.dt.strftime(clock).to_numpy(dtype=object), None), pa.string())
    return ok, date, time


# ------------------------------------------------------------------------------------------- ingesting
def parse_file(path: Path, fmt: str, config: Config | None = None, data: bytes | None = None) -> Parsed:
    """Parse one file (``data``: its decompressed bytes, if already read)."""
    if fmt == "police-csv":
        return parse_police_csv(path, data)
    if fmt == "police-api-json":
        return parse_police_json(path, data)
    if fmt == "extract":
        return parse_extract(path, config.extract if config else ExtractMapping(), data=data)
    raise IngestError(f"unknown format {fmt!r} (use one of: {', '.join(FORMATS)})", path=path)


def resolve_input(path: str | Path, allowed_roots: Iterable[str | Path] | None = None) -> Path:
    """The real file behind ``path`` (symlinks resolved). With ``allowed_roots`` (the web's upload
    folder), a file that is not inside one of them is refused before a byte of it is read."""
    try:
        real = Path(path).resolve(strict=True)
    except (OSError, RuntimeError):
        raise IngestError("file not found (or a broken or looping symlink)", path=path) from None
    if allowed_roots is not None:
        roots = [Path(r).resolve() for r in allowed_roots]
        if not any(real == r or r in real.parents for r in roots):
            raise IngestError("file is outside the folders incident files may be read from; refused", path=path)
    if not real.is_file():
        raise IngestError("not a regular file", path=path)
    return real


def _refuse_mostly_rejects(path: Path, parsed: Parsed, limits: IngestLimits) -> None:
    """A file that is mostly rejects is refused whole, naming its first rejected rows: it is almost
    certainly the wrong file or the wrong format, and storing millions of rejects helps nobody."""
    bad = np.flatnonzero(~pd.isna(parsed.reason))
    share = len(bad) / parsed.n if parsed.n else 0.0
    if len(bad) <= limits.max_rejects and \
            (parsed.n < limits.reject_share_min_rows or share <= limits.max_reject_share):
        return
    first = "; ".join(f"row {i + 1}" + (f" ({parsed.column[i]}: {parsed.reason[i]})" if parsed.column[i]
                                        else f" ({parsed.reason[i]})") for i in bad[:5])
    raise IngestError(f"{len(bad):,} of {parsed.n:,} rows ({share:.0%}) would be rejected, more than the "
                      f"limits ([ingest] max_rejects {limits.max_rejects:,}, or max_reject_share "
                      f"{limits.max_reject_share:.0%} of files of {limits.reject_share_min_rows:,} rows or "
                      f"more); nothing was written. First rejected: {first}", path=path,
                      row=int(bad[0]) + 1, column=parsed.column[bad[0]])


def ingest_file(con, geocoder: Geocoder, path: Path, fmt: str | None = None, config: Config | None = None,
                progress: Callable[[int], None] | None = None,
                allowed_roots: Iterable[str | Path] | None = None) -> IngestSummary:
    """Parse, validate, geocode and store one file in one transaction; return its summary.

    Symlinks are resolved (the summary names the real file); ``allowed_roots`` restricts where that
    real file may be. Limits come from ``config.ingest`` (defaults without a config)."""
    path = resolve_input(path, allowed_roots)
    limits = config.ingest if config is not None else IngestLimits()
    fmt = fmt or detect_format(path)
    clock = _Clock()
    raw = _read_file(path, limits)
    with ThreadPoolExecutor(1) as pool:  # hashlib releases the GIL: the file is hashed while it is parsed
        digest_job = pool.submit(_sha256, raw)
        parsed = _parse_within_limits(path, fmt, config, _decompress(path, raw, limits), limits)  # before any write
        digest = digest_job.result()
    del raw
    _refuse_mostly_rejects(path, parsed, limits)
    clock("parse")
    summary = IngestSummary(str(path), fmt, rows_read=parsed.n)
    valid = pd.isna(parsed.reason)
    identity = parsed.identity
    if identity is None and parsed.crime_id.null_count:  # rows without an id are rejected in these formats
        identity = pa.array(np.full(parsed.crime_id.null_count, "", dtype=object), pa.string())
    keys = incident_keys(parsed.crime_id, identity, compact=True)
    # Within-file repeats of the same identity count as duplicates; the first is kept. np.unique's stable
    # sort gives each key's first row, already in key order: the order that appends to the store's B-tree.
    vidx = np.flatnonzero(valid)
    ukeys, first = np.unique(keys[vidx], return_index=True)
    sel = vidx[first]
    clock("keys")
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    # Geocoding (compiled, GIL-free) runs on the second core while this thread fills the dictionaries.
    with ThreadPoolExecutor(1) as pool, store.data_transaction(con):
        placing = pool.submit(geocoder.place, parsed.x[sel], parsed.y[sel], parsed.crs)
        ingest_id = con.execute("INSERT INTO ingests (path, sha256, format, started_at) VALUES (?, ?, ?, ?)",
                                (str(path), digest, fmt, now)).lastrowid
        existing = _existing_keys(con, ukeys)
        new = ~np.isin(ukeys, existing, assume_unique=True) if len(existing) else None
        if new is not None:
            ukeys, sel = ukeys[new], sel[new]
        clock("dedup")
        n = len(sel)
        columns: dict[str, object] = {
            "key": ukeys,
            "crime_id": _rows(parsed.crime_id, sel),
            "ingest_id": _Literal(int(ingest_id)),
            "row_no": sel + 1,
            "month": _rows(pc.dictionary_encode(parsed.month), sel),  # a few distinct months
            "date": _rows(parsed.date, sel),
            "time": _rows(parsed.time, sel),
            "category_id": _category_ids(con, parsed.category_raw, sel, parsed.slug_of),
            "subcategory": _rows(parsed.subcategory, sel),
            "lon_e6": _ints(parsed.lon[sel], 1e6),
            "lat_e6": _ints(parsed.lat[sel], 1e6),
            "location_id": _text_ids(con, parsed.location, sel),
            "outcome_id": _text_ids(con, parsed.outcome, sel),
            "context": _rows(parsed.context, sel),
            "source_lsoa": _rows(parsed.source_lsoa, sel),
            "attrs": _rows(parsed.attrs, sel),
        }
        area_ids = {role: _area_ids(con, layer) for role, layer in geocoder.layers.items()}
        clock("dictionaries")
        placed = placing.result()
        if new is not None:
            placed = placed.subset(new)
        clock("geocode (rest)")
        indices = placed.indices
        in_area = indices[geocoder.area_role] >= 0
        columns.update(easting_dm=_ints(placed.easting, 10.0), northing_dm=_ints(placed.northing, 10.0),
                       in_area=in_area.astype(np.int64))
        for role in store.AREA_ROLES:
            if role in indices:  # -1 (outside every area of the layer) maps to the appended -1: NULL
                columns[f"{role}_id"] = area_ids[role][indices[role]]
        stored_before = con.execute("SELECT COUNT(*) FROM incidents").fetchone()[0]
        # Updating the three indexes row by row costs about 4.4 s per million new rows; rebuilding them
        # about 1.4 s per million rows stored in all (measured 1M into 1M: 9.5 s live, 6.6 s rebuilt).
        bulk = n > max(stored_before // 2, 50_000)
        if bulk:
            store.drop_indexes(con)
        before = con.total_changes
        _insert_incidents(con, columns, n, progress)
        summary.accepted = con.total_changes - before
        clock("insert")
        if bulk:
            store.rebuild_indexes(con)
        clock("index")
        rejected = np.flatnonzero(~valid)
        if len(rejected):  # rejects of this same content stored by an earlier ingest: duplicates now
            seen = np.fromiter((r for r, in con.execute("SELECT row_no FROM rejects WHERE sha256 = ?", (digest,))),
                               dtype=np.int64)
            before_rejected = np.isin(rejected + 1, seen)
            summary.already_rejected = int(before_rejected.sum())
            rejected = rejected[~before_rejected]
        summary.duplicates = int(valid.sum()) - summary.accepted + summary.already_rejected
        summary.rejected_by_reason = dict(Counter(parsed.reason[rejected].tolist()))
        if len(rejected):
            con.executemany(
                "INSERT OR IGNORE INTO rejects (sha256, path, row_no, column_name, reason, raw, ingest_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(digest, str(path), int(i) + 1, parsed.column[i], parsed.reason[i],
                  json.dumps(parsed.raw(int(i)), default=str), ingest_id) for i in rejected])
        summary.outside_area = int((~in_area).sum())
        if fmt == "police-csv" and n and parsed.source_lsoa is not None:
            summary.lsoa_checked, summary.lsoa_agree = _lsoa_agreement(
                geocoder, indices, in_area, parsed.source_lsoa, sel)
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


def _lsoa_agreement(geocoder: Geocoder, indices: dict[str, np.ndarray], in_area: np.ndarray,
                    source: pa.Array, sel: np.ndarray) -> tuple[int, int]:
    """(rows inside the area that carry an LSOA code, rows whose code is the LSOA we placed them in),
    comparing against LSOA 2021 or 2011, whichever the source used."""
    codes, distinct = _factorize(source)
    codes = codes[sel]
    check = in_area & (codes >= 0)
    agree = np.zeros(len(codes), dtype=bool)
    for role in ("lsoa21", "lsoa11"):
        if role in indices and distinct:
            position = {str(c): i for i, c in enumerate(geocoder.layers[role].codes)}
            source_idx = np.array([position.get(c, -2) for c in distinct], dtype=np.int64)[np.clip(codes, 0, None)]
            agree |= check & (source_idx == indices[role])
    return int(check.sum()), int(agree.sum())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


@dataclass(frozen=True)
class _Literal:
    """A value that is the same for every row of a file (the ingest id): written into the statement."""

    value: int


def _ints(values: np.ndarray, scale: float) -> np.ndarray:
    return np.round(np.asarray(values, float) * scale).astype(np.int64)


def _insert_incidents(con, columns: dict[str, object], n: int,
                      progress: Callable[[int], None] | None = None) -> None:
    """INSERT OR IGNORE ``n`` incidents given column by column: int64 arrays (negative ids of the
    ``*_id`` reference columns mean NULL), ``sqlite_bulk.Text`` columns (null = NULL), a ``_Literal``, or
    None. Columns that are NULL for the whole file (a police.uk CSV has no dates or attributes) are left to
    their default and are not bound at all."""
    if n == 0:
        return
    int_cols: list[tuple[str, np.ndarray, np.ndarray | None]] = []
    text_cols: list[tuple[str, sqlite_bulk.Text]] = []
    literals: dict[str, int] = {}
    for name in store.INCIDENT_COLUMNS:
        value = columns.get(name)
        if value is None:
            continue
        if isinstance(value, _Literal):
            literals[name] = int(value.value)
        elif isinstance(value, sqlite_bulk.Text):
            if not value.all_null():
                text_cols.append((name, value))
        else:
            values = np.asarray(value, dtype=np.int64)
            null = (values < 0) if name.endswith("_id") and name != "key" else None
            if null is not None and null.all():
                continue
            int_cols.append((name, values, null if null is not None and null.any() else None))
    names = [c[0] for c in int_cols] + [c[0] for c in text_cols] + list(literals)
    row = "(" + ", ".join(["?"] * (len(int_cols) + len(text_cols)) + [str(v) for v in literals.values()]) + ")"
    sqlite_bulk.insert(con, f"INSERT OR IGNORE INTO incidents ({', '.join(names)}) VALUES", row, n,
                       [(v, m) for _, v, m in int_cols], [t for _, t in text_cols], progress)


def _existing_keys(con, keys: np.ndarray) -> np.ndarray:
    """Which of ``keys`` are already stored (one indexed join through a temp table)."""
    if not len(keys) or con.execute("SELECT NOT EXISTS (SELECT 1 FROM incidents)").fetchone()[0]:
        return np.empty(0, dtype=np.int64)
    con.execute("CREATE TEMP TABLE IF NOT EXISTS _keys (key INTEGER PRIMARY KEY)")
    con.execute("DELETE FROM _keys")
    ordered = np.sort(keys)
    sqlite_bulk.insert(con, "INSERT OR IGNORE INTO temp._keys (key) VALUES", "(?)", len(ordered),
                       [(ordered, None)], [])
    found = [r[0] for r in con.execute("SELECT k.key FROM _keys k JOIN incidents i ON i.key = k.key")]
    con.execute("DELETE FROM _keys")
    return np.asarray(found, dtype=np.int64)


def _area_ids(con, layer) -> np.ndarray:
    """Store ids of a layer's areas, aligned with ``layer.codes``, with -1 appended for 'outside' (-1).
    Only areas that are new (or renamed) are written: the layer is usually already recorded."""
    stored = {code: (aid, name) for aid, code, name in
              con.execute("SELECT id, code, name FROM areas WHERE role = ?", (layer.role,))}
    codes, names = [str(c) for c in layer.codes], [str(nm) for nm in layer.names]
    changed = [(layer.role, c, nm) for c, nm in zip(codes, names) if stored.get(c, (None, None))[1] != nm]
    if changed:
        con.executemany("INSERT INTO areas (role, code, name) VALUES (?, ?, ?) ON CONFLICT (role, code) "
                        "DO UPDATE SET name = excluded.name WHERE name != excluded.name", changed)
        stored = {code: (aid, name) for aid, code, name in
                  con.execute("SELECT id, code, name FROM areas WHERE role = ?", (layer.role,))}
    return np.array([stored[c][0] for c in codes] + [-1], dtype=np.int64)


def _rows(values: pa.Array | None, sel: np.ndarray) -> sqlite_bulk.Text | None:
    return None if values is None else sqlite_bulk.Text(values, sel)


def _factorize(values: pa.Array) -> tuple[np.ndarray, list]:
    """(codes with -1 for missing, distinct values) of an Arrow array."""
    enc = pc.dictionary_encode(values)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    codes = np.asarray(enc.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    return codes, enc.dictionary.to_pylist()


def _used(codes: np.ndarray, sel: np.ndarray, size: int) -> np.ndarray:
    """Which distinct values the selected rows use (rejected rows must not add dictionary entries)."""
    used = np.zeros(size, dtype=bool)
    picked = codes[sel]
    used[picked[picked >= 0]] = True
    return used


def _category_ids(con, raw: pa.Array, sel: np.ndarray, slug_of: Callable[[str], str] | None = None) -> np.ndarray:
    """Category id of each selected row (categories are normalised, or mapped, once per distinct raw name)."""
    codes, uniques = _factorize(raw)
    used = _used(codes, sel, len(uniques))
    ids = np.full(len(uniques), -1, dtype=np.int64)
    for i in np.flatnonzero(used):
        value = uniques[i]
        slug = (slug_of or normalise_category)(value)
        con.execute("INSERT OR IGNORE INTO categories (slug, raw) VALUES (?, ?)", (slug, value))
        ids[i] = con.execute("SELECT id FROM categories WHERE slug = ? AND raw = ?", (slug, value)).fetchone()[0]
    return ids[codes[sel]] if len(sel) else np.empty(0, dtype=np.int64)


def _text_ids(con, values: pa.Array | None, sel: np.ndarray) -> np.ndarray | None:
    """Dictionary-encode repeated text (street names, outcomes) into the ``texts`` table; -1 = NULL."""
    if values is None:
        return None
    codes, uniques = _factorize(values)
    used = np.flatnonzero(_used(codes, sel, len(uniques)))
    if not len(used):
        return np.full(len(sel), -1, dtype=np.int64)
    con.execute("CREATE TEMP TABLE IF NOT EXISTS _texts (pos INTEGER PRIMARY KEY, text TEXT)")
    con.execute("DELETE FROM _texts")
    con.executemany("INSERT INTO _texts VALUES (?, ?)", ((int(i), str(uniques[i])) for i in used))
    con.execute("INSERT OR IGNORE INTO texts (text) SELECT text FROM _texts")
    ids = np.full(len(uniques), -1, dtype=np.int64)
    for pos, tid in con.execute("SELECT x.pos, t.id FROM _texts x JOIN texts t ON t.text = x.text"):
        ids[pos] = tid
    con.execute("DELETE FROM _texts")
    picked = codes[sel]
    return np.where(picked >= 0, ids[np.clip(picked, 0, None)], -1)


def warm_up() -> None:
    """Compile (or load from numba's cache) the ingest kernels: identity keys and point-in-polygon. A
    fixed cost per process (0.3-0.4 s with a warm cache, a few seconds the first time after install);
    servers pay it at start instead of on the first upload."""
    from . import keys, pip
    keys.warm_up()
    pip.warm_up()


def record_areas(con, geocoder: Geocoder) -> None:
    """Keep the names of the areas incidents are coded to, so the store explains its own codes."""
    with store.data_transaction(con):
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
                 on_error: Callable[[Exception], None] | None = None,
                 allowed_roots: Iterable[str | Path] | None = None) -> list[IngestSummary]:
    """Ingest each file in its own transaction. A file that fails entirely raises IngestError, unless
    ``on_error`` is given, in which case it is reported there and the next file goes on. With
    ``allowed_roots`` (ingest through the web), files whose real path is elsewhere are refused."""
    allowed_roots = None if allowed_roots is None else list(allowed_roots)
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
                    summaries.append(ingest_file(con, geocoder, f, fmt, config, progress=step,
                                                 allowed_roots=allowed_roots))
                except IngestError as exc:
                    if on_error is None:
                        raise
                    on_error(exc)
                if prog:
                    prog.advance(task)
        finally:
            if prog:
                prog.stop()
    finally:
        con.close()
    if any(s.accepted for s in summaries):  # after the close, which settles the store's files
        store.incident_columns(config.db_path, config.cache_dir)  # kept for every later reader of this version
    return summaries
