"""Bulk INSERT of columnar data (numpy integers, Arrow strings) into SQLite, in compiled code.

Why: storing a million incidents through CPython's ``sqlite3`` spends most of its time building and
binding one Python object per value, not in SQLite. Here a numba loop binds int64 and UTF-8 values
straight from numpy and Arrow buffers, calling SQLite's C API (``sqlite3_bind_*``, ``sqlite3_step``).

Safety, in order:

* the C functions come from the SQLite library that CPython's own ``_sqlite3`` module is linked with
  (looked up through that extension module, so its dependencies are searched), never from a second copy:
  two SQLite libraries in one process would not share POSIX file locks;
* the statement runs on the caller's connection, inside the caller's transaction: rollback, WAL and
  locking behave exactly as with ``executemany``;
* the connection's ``sqlite3 *`` handle is read from CPython's Connection object (the first field after
  the object header in CPython 3.8 to 3.14) and checked before use: it must name the same database file,
  report the same total changes and the same transaction state as the Python connection;
* anything unexpected (another Python implementation or version, a statically linked SQLite, numba
  missing, ``HOTSPOTS_NATIVE_SQLITE=0``) makes ``available()`` false, and the caller falls back to
  ``executemany`` with identical results (tests compare the two).
"""
from __future__ import annotations

import ctypes
import os
import platform
import sqlite3
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa

SQLITE_OK, SQLITE_CONSTRAINT, SQLITE_DONE = 0, 19, 101
#: CPython versions whose ``pysqlite_Connection`` starts with ``sqlite3 *db`` after ``PyObject_HEAD``.
_KNOWN_PYTHONS = ((3, 8), (3, 15))
CHUNK_ROWS = 100_000  # rows per call of the compiled loop (progress is reported between calls)

_P = ctypes.c_uint64  # pointers travel as 64-bit integers (same registers as pointers on 64-bit ABIs)


@dataclass(frozen=True)
class _Api:
    prepare: object
    finalize: object
    bind_int64: object
    bind_null: object
    bind_text: object
    step: object
    reset: object
    errmsg: object
    db_filename: object
    total_changes: object
    get_autocommit: object


@lru_cache(maxsize=1)
def _api() -> _Api | None:
    if os.environ.get("HOTSPOTS_NATIVE_SQLITE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    if platform.python_implementation() != "CPython" or sys.maxsize <= 2 ** 32 or \
            not (_KNOWN_PYTHONS[0] <= sys.version_info[:2] < _KNOWN_PYTHONS[1]):
        return None
    try:
        import _sqlite3
        import numba  # noqa: F401  (the loop below is compiled with it)
        lib = ctypes.CDLL(_sqlite3.__file__)

        def fn(name: str, res, *args):
            f = getattr(lib, name)
            f.restype, f.argtypes = res, list(args)
            return f

        version = fn("sqlite3_libversion_number", ctypes.c_int)()
        if version != sqlite3.sqlite_version_info[0] * 1_000_000 + sqlite3.sqlite_version_info[1] * 1_000 + \
                sqlite3.sqlite_version_info[2]:
            return None  # not the library the sqlite3 module reports: do not touch it
        return _Api(
            prepare=fn("sqlite3_prepare_v2", ctypes.c_int, _P, ctypes.c_char_p, ctypes.c_int,
                       ctypes.POINTER(ctypes.c_void_p), _P),
            finalize=fn("sqlite3_finalize", ctypes.c_int, _P),
            bind_int64=fn("sqlite3_bind_int64", ctypes.c_int, _P, ctypes.c_int, ctypes.c_int64),
            bind_null=fn("sqlite3_bind_null", ctypes.c_int, _P, ctypes.c_int),
            bind_text=fn("sqlite3_bind_text", ctypes.c_int, _P, ctypes.c_int, _P, ctypes.c_int, _P),
            step=fn("sqlite3_step", ctypes.c_int, _P),
            reset=fn("sqlite3_reset", ctypes.c_int, _P),
            errmsg=fn("sqlite3_errmsg", ctypes.c_char_p, _P),
            db_filename=fn("sqlite3_db_filename", ctypes.c_char_p, _P, ctypes.c_char_p),
            total_changes=fn("sqlite3_total_changes", ctypes.c_int, _P),
            get_autocommit=fn("sqlite3_get_autocommit", ctypes.c_int, _P),
        )
    except (ImportError, OSError, AttributeError):
        return None


def available() -> bool:
    """True when the compiled path can be used in this process."""
    return _api() is not None


def _handle(con: sqlite3.Connection, api: _Api) -> int | None:
    """The connection's ``sqlite3 *``, or None when it cannot be confirmed to be that connection's."""
    if type(con) is not sqlite3.Connection or type(con).__basicsize__ < object.__basicsize__ + 8:
        return None
    ptr = ctypes.c_void_p.from_address(id(con) + object.__basicsize__).value
    if not ptr:
        return None
    main = next((row[2] for row in con.execute("PRAGMA database_list") if row[1] == "main"), None)
    name = api.db_filename(ptr, b"main")
    if main is None or name is None:
        return None
    name = os.fsdecode(name)
    if (name or main) and os.path.realpath(name) != os.path.realpath(main):  # both "" for :memory:
        return None
    if api.total_changes(ptr) != con.total_changes or \
            bool(api.get_autocommit(ptr)) == con.in_transaction:
        return None
    return ptr


def native_connection_ok(con: sqlite3.Connection) -> bool:
    """Whether ``insert`` will take the compiled path on this connection (for tests and benchmarks)."""
    api = _api()
    return api is not None and _handle(con, api) is not None


@dataclass(frozen=True)
class Text:
    """A text column: Arrow strings (``string``, ``large_string`` or a dictionary of them), optionally
    read at ``rows`` (so a selection of rows is bound without copying any text). Null = SQL NULL."""

    values: pa.Array | pa.ChunkedArray
    rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.values) if self.rows is None else len(self.rows)

    def all_null(self) -> bool:
        """Every selected value is NULL (such a column need not be bound at all)."""
        values = self.values
        if pa.types.is_dictionary(values.type):
            if values.dictionary.null_count == len(values.dictionary):
                return True
            values = values.indices
        return values.null_count == len(values) or (self.rows is not None and len(self.rows) == 0)

    def resolved(self) -> pa.Array:
        """The column as a plain Arrow string array (for the executemany fallback)."""
        arr = self.values if self.rows is None else self.values.take(pa.array(self.rows))
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        return arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr


@dataclass
class _Packed:
    """Integer columns as one (n, k) matrix with a null mask; text cells as (start, length) into their
    column's own byte buffer at ``text_base[j]`` (length -1 = NULL). ``keep`` holds the buffers alive."""

    ints: np.ndarray
    int_null: np.ndarray
    text_base: np.ndarray
    text_start: np.ndarray
    text_len: np.ndarray
    keep: list


def _string_parts(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(int64 offsets with len+1 entries, byte buffer, null mask or None) of a string array."""
    if arr.type == pa.large_string():
        width = np.int64
    elif arr.type == pa.string():
        width = np.int32
    else:
        raise TypeError(f"text columns must be Arrow strings, not {arr.type}")
    _, offs, data = arr.buffers()
    offsets = np.frombuffer(offs, dtype=width)[arr.offset:arr.offset + len(arr) + 1].astype(np.int64)
    body = np.frombuffer(data, dtype=np.uint8) if data is not None and len(data) else np.zeros(1, np.uint8)
    null = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool) if arr.null_count else None
    return offsets, body, null


def _pack(n: int, ints: Sequence[tuple[np.ndarray, np.ndarray | None]], texts: Sequence[Text]) -> _Packed:
    mat = np.empty((n, len(ints)), dtype=np.int64)
    null = np.zeros((n, len(ints)), dtype=np.bool_)
    for j, (values, mask) in enumerate(ints):
        mat[:, j] = values
        if mask is not None:
            null[:, j] = mask
    t = len(texts)
    base, start, length = np.empty(t, np.int64), np.empty((n, t), np.int64), np.empty((n, t), np.int64)
    keep = []
    for j, col in enumerate(texts):
        arr = col.values.combine_chunks() if isinstance(col.values, pa.ChunkedArray) else col.values
        rows = col.rows
        if pa.types.is_dictionary(arr.type):  # strings at dictionary[indices[rows]]
            idx = np.asarray(arr.indices.to_numpy(zero_copy_only=False))
            idx_null = np.asarray(arr.indices.is_null().to_numpy(zero_copy_only=False), dtype=bool) \
                if arr.indices.null_count else None
            offsets, body, dict_null = _string_parts(arr.dictionary)
            if rows is not None:
                idx, idx_null = idx[rows], (idx_null[rows] if idx_null is not None else None)
            idx = np.where(idx_null, 0, idx).astype(np.int64) if idx_null is not None else idx.astype(np.int64)
            cell_null = idx_null
            if dict_null is not None:
                cell_null = dict_null[idx] if cell_null is None else (cell_null | dict_null[idx])
        else:
            offsets, body, cell_null = _string_parts(arr)
            idx = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
            if rows is not None and cell_null is not None:
                cell_null = cell_null[idx]
        start[:, j] = offsets[idx]
        length[:, j] = offsets[idx + 1] - offsets[idx]
        if cell_null is not None:
            length[cell_null, j] = -1
        keep.append(body)
        base[j] = body.ctypes.data
    if t and length.max(initial=0) > 2 ** 31 - 1:
        raise ValueError("a text value longer than 2 GiB")
    return _Packed(mat, null, base, start, length, keep)


_KERNEL = None
_KERNEL_LOCK = threading.Lock()
#: Rows per INSERT statement. One statement keeps its table cursor open across its rows, so rows that
#: arrive in key order append to the B-tree without a fresh search each; 64 rows measured fastest.
ROWS_PER_STATEMENT = 64


def _kernel():
    """The compiled row loop (compiled on first use, then cached on disk by numba)."""
    global _KERNEL
    with _KERNEL_LOCK:
        if _KERNEL is None:
            import numba

            # nogil: SQLite needs no GIL, so a server's other threads keep answering during an upload
            @numba.njit(cache=True, nogil=True)
            def load(bind_int64, bind_null, bind_text, step, reset, stmt, rows_per_statement, ints, int_null,
                     text_base, text_start, text_len, lo, hi):  # pragma: no cover - compiled
                """Bind rows lo..hi (a multiple of rows_per_statement) and step once per statement."""
                k = ints.shape[1]
                t = text_start.shape[1]
                width = k + t
                for first in range(lo, hi, rows_per_statement):
                    for r in range(rows_per_statement):
                        i = first + r
                        p = r * width + 1
                        for j in range(k):
                            if int_null[i, j]:
                                rc = bind_null(stmt, p + j)
                            else:
                                rc = bind_int64(stmt, p + j, ints[i, j])
                            if rc != 0:
                                return first, rc
                        for j in range(t):
                            if text_len[i, j] < 0:
                                rc = bind_null(stmt, p + k + j)
                            else:  # SQLITE_STATIC: the buffer outlives the step
                                rc = bind_text(stmt, p + k + j, text_base[j] + text_start[i, j],
                                               text_len[i, j], 0)
                            if rc != 0:
                                return first, rc
                    rc = step(stmt)
                    if rc != 101:
                        return first, rc
                    reset(stmt)
                return hi, 101

            _KERNEL = load
    return _KERNEL


def insert(con: sqlite3.Connection, head: str, row: str, n: int,
           ints: Sequence[tuple[np.ndarray, np.ndarray | None]], texts: Sequence[Text | pa.Array],
           progress: Callable[[int], None] | None = None) -> None:
    """Insert ``n`` rows with ``head`` (``INSERT ... (columns) VALUES``) and ``row`` (the values tuple,
    ``(?, ?, ...)``, one ``?`` per column of ``ints`` then ``texts``; constants may be written into it),
    binding ``ints`` (values, null mask or None) then ``texts`` (``Text`` or Arrow strings; null = NULL),
    ROWS_PER_STATEMENT rows per statement. ``progress`` is called with the rows stored since its last call.

    The compiled path is used when ``native_connection_ok(con)``; otherwise ``executemany`` stores the
    same rows. Must be called inside a transaction on ``con``. Raises ``sqlite3.IntegrityError``
    (constraints) or ``sqlite3.OperationalError`` with SQLite's message on failure (the caller's
    transaction then rolls back)."""
    if not con.in_transaction:
        raise RuntimeError("bulk insert must run inside a transaction")
    if row.count("?") != len(ints) + len(texts):
        raise ValueError(f"{row!r} has {row.count('?')} parameters for {len(ints) + len(texts)} columns")
    texts = [t if isinstance(t, Text) else Text(t) for t in texts]
    for j, col in enumerate(texts):
        if len(col) != n:
            raise ValueError(f"text column {j} has {len(col)} rows, expected {n}")
    if n == 0:
        return
    per = min(ROWS_PER_STATEMENT, max(1, 32766 // max(1, len(ints) + len(texts))))  # SQLite's parameter cap
    api = _api()
    handle = _handle(con, api) if api is not None else None
    if handle is None:
        _insert_executemany(con, head, row, n, per, ints, texts, progress)
        return
    packed = _pack(n, ints, texts)
    load = _kernel()
    full = n // per * per
    for rows, lo, hi in ((per, 0, full), (n - full, full, n)):
        if hi <= lo:
            continue
        stmt = ctypes.c_void_p()
        sql = head + " " + ", ".join([row] * rows)
        if api.prepare(handle, sql.encode("utf-8"), -1, ctypes.byref(stmt), 0) != SQLITE_OK:
            raise sqlite3.OperationalError(f"{api.errmsg(handle).decode('utf-8', 'replace')} (preparing bulk insert)")
        try:
            step = max(rows, CHUNK_ROWS // rows * rows)
            for start in range(lo, hi, step):
                stop = min(start + step, hi)
                at, rc = load(api.bind_int64, api.bind_null, api.bind_text, api.step, api.reset, stmt.value, rows,
                              packed.ints, packed.int_null, packed.text_base, packed.text_start, packed.text_len,
                              start, stop)
                if rc != SQLITE_DONE:
                    api.reset(stmt.value)
                    error = sqlite3.IntegrityError if rc & 0xFF == SQLITE_CONSTRAINT else sqlite3.OperationalError
                    raise error(f"{api.errmsg(handle).decode('utf-8', 'replace')} "
                                f"(bulk insert, rows {at + 1}-{at + rows} of {n})")
                if progress:
                    progress(stop - start)
        finally:
            api.finalize(stmt.value)


def _insert_executemany(con: sqlite3.Connection, head: str, row: str, n: int, per: int,
                        ints: Sequence[tuple[np.ndarray, np.ndarray | None]], texts: Sequence[Text],
                        progress: Callable[[int], None] | None) -> None:
    """The same rows through Python's ``sqlite3`` (one Python object per value): where the compiled path
    cannot be used."""
    table = np.empty((n, len(ints) + len(texts)), dtype=object)
    for j, (values, null) in enumerate(ints):
        table[:, j] = np.asarray(values, dtype=np.int64).tolist()
        if null is not None:
            table[np.asarray(null, dtype=bool), j] = None
    for j, col in enumerate(texts, start=len(ints)):
        table[:, j] = col.resolved().to_numpy(zero_copy_only=False)
    full = n // per * per
    for rows, lo, hi in ((per, 0, full), (n - full, full, n)):
        if hi <= lo:
            continue
        sql = head + " " + ", ".join([row] * rows)
        step = max(rows, CHUNK_ROWS // rows * rows)
        for start in range(lo, hi, step):
            stop = min(start + step, hi)
            con.executemany(sql, (table[i:i + rows].ravel().tolist() for i in range(start, stop, rows)))
            if progress:
                progress(stop - start)


def warm_up() -> None:
    """Compile the row loop now (servers and the CLI call this before the first large ingest)."""
    if not available():
        return
    con = sqlite3.connect(":memory:", isolation_level=None)
    try:
        con.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        con.execute("BEGIN")
        insert(con, "INSERT INTO t (a, b) VALUES", "(?, ?)", 3, [(np.array([1, 2, 3]), None)],
               [pa.array(["x", "y", "z"])])
        con.execute("ROLLBACK")
    finally:
        con.close()
