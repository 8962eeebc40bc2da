"""Incident keys: the store's primary key and its duplicate check, computed from Arrow string buffers.

Every stored incident is keyed by a signed 64-bit integer derived from its id (or, for rows without an
id, from its content). The key is the primary key of existing users' SQLite stores and the test that
finds a re-ingested row again, so the scheme is frozen: this module is bit-identical to the v2 key scheme
``hex64-or-siphash64-v2`` that ``hotspots.ingest`` computed with numpy and ``pd.util.hash_array``:

* a police.uk archive Crime ID (exactly 64 hex digits, a SHA-256, either case) keys by
  ``mix64(XOR_j word_j * WORD_MULT[j])`` over its four big-endian 64-bit words;
* any other non-null id (``api:<id>``, ``extract:<id>``, even ``""``) keys by
  ``mix64(SipHash-2-4(utf8(id), key=b"hotspots-id-v2!!"))`` -- exactly what ``pd.util.hash_array(...,
  categorize=False)`` returns for a string (pandas finalises its SipHash with the same splitmix64 mixer);
* a row whose id is null keys by ``mix64(SipHash-2-4(utf8(identity), key=b"hotspots-row-v2!")) +
  occ * GOLDEN`` (wrapping), where ``occ`` is the 0-based number of earlier id-less rows of the same hash:
  two identical rows are two incidents, and re-ingesting the file finds both again.

Why compiled code on Arrow buffers: the previous implementation spent about a second per million rows
turning strings into Python objects (and back) -- more than everything else in an ingest. Here the
offsets/data/validity buffers go straight into numba kernels, and no Python object is made per row.

Kernels are compiled lazily (``cache=True``: the first call in a fresh environment compiles and writes
numba's on-disk cache, later processes load it). :func:`warm_up` compiles/loads them up front.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

__all__ = ["KEY_SCHEME", "incident_keys", "warm_up"]

KEY_SCHEME = "hex64-or-siphash64-v2"

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_WORD_MULT = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93],
                      dtype=np.uint64)

_ID_KEY = b"hotspots-id-v2!!"    # SipHash key for ids that are not 64 hex digits
_ROW_KEY = b"hotspots-row-v2!"   # SipHash key for the content of rows without an id


def _sip_key(key: bytes) -> np.ndarray:
    assert len(key) == 16
    return np.array([int.from_bytes(key[:8], "little"), int.from_bytes(key[8:], "little")], dtype=np.uint64)


_ID_K = _sip_key(_ID_KEY)
_ROW_K = _sip_key(_ROW_KEY)

# uint64 constants (numba freezes module globals; np.uint64 keeps every operation in unsigned 64-bit)
_U0 = np.uint64(0)
_U4 = np.uint64(4)
_U8 = np.uint64(8)
_U0xFF = np.uint64(0xFF)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S56 = np.uint64(56)
_S6 = np.uint64(6)
_S16 = np.uint64(16)
_S24 = np.uint64(24)
_S32 = np.uint64(32)
_S48 = np.uint64(48)
_U9 = np.uint64(9)
_X01 = np.uint64(0x0101010101010101)
_X0F = np.uint64(0x0F0F0F0F0F0F0F0F)
_X20 = np.uint64(0x2020202020202020)
_X80 = np.uint64(0x8080808080808080)
_X00FF = np.uint64(0x00FF00FF00FF00FF)
_GE_0 = np.uint64(0x0101010101010101 * (0x80 - ord("0")))        # + this: top bit iff c >= '0'
_GE_9 = np.uint64(0x0101010101010101 * (0x80 - ord("9") - 1))    # top bit iff c > '9'
_GE_A = np.uint64(0x0101010101010101 * (0x80 - ord("a")))        # top bit iff c >= 'a'
_GE_F = np.uint64(0x0101010101010101 * (0x80 - ord("f") - 1))    # top bit iff c > 'f'
_SIP0 = np.uint64(0x736F6D6570736575)
_SIP1 = np.uint64(0x646F72616E646F6D)
_SIP2 = np.uint64(0x6C7967656E657261)
_SIP3 = np.uint64(0x7465646279746573)


# ------------------------------------------------------------------------------------------- primitives
@numba.njit(cache=True, inline="always")
def _rotl(x, b):
    return (x << np.uint64(b)) | (x >> np.uint64(64 - b))


@numba.njit(cache=True, inline="always")
def _sipround(v0, v1, v2, v3):
    """One SipRound."""
    v0 += v1
    v1 = _rotl(v1, 13)
    v1 ^= v0
    v0 = _rotl(v0, 32)
    v2 += v3
    v3 = _rotl(v3, 16)
    v3 ^= v2
    v0 += v3
    v3 = _rotl(v3, 21)
    v3 ^= v0
    v2 += v1
    v1 = _rotl(v1, 17)
    v1 ^= v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


@numba.njit(cache=True, inline="always")
def _mix64(x):
    """splitmix64 finaliser (also pandas' finaliser after SipHash in ``hash_array``)."""
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


@numba.njit(cache=True, inline="always")
def _load64(data, p):
    """Little-endian uint64 of ``data[p:p + 8]``. The unsigned index spares numba's negative-index
    wraparound, which lets LLVM fold the eight byte loads into one (6x faster)."""
    q = np.uint64(p)
    x = _U0
    for j in range(8):
        x |= np.uint64(data[q + np.uint64(j)]) << np.uint64(8 * j)
    return x


@numba.njit(cache=True)
def _siphash24(data, start, end, k0, k1):
    """SipHash-2-4 of ``data[start:end]`` (the reference algorithm, as in pandas' ``hashing.pyx``)."""
    v0 = _SIP0 ^ k0
    v1 = _SIP1 ^ k1
    v2 = _SIP2 ^ k0
    v3 = _SIP3 ^ k1
    n = end - start
    stop = start + (n - (n & 7))
    p = start
    while p < stop:
        m = _load64(data, p)
        v3 ^= m
        for _ in range(2):
            v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
        v0 ^= m
        p += 8
    b = np.uint64(n) << _S56
    q = np.uint64(p)
    for j in range(n & 7):
        b |= np.uint64(data[q + np.uint64(j)]) << np.uint64(8 * j)
    v3 ^= b
    for _ in range(2):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    v0 ^= b
    v2 ^= _U0xFF
    for _ in range(4):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


@numba.njit(cache=True, inline="always")
def _is_valid(bits, bit_offset, i):
    if bits.size == 0:  # no validity bitmap: every row is valid
        return True
    k = bit_offset + i
    return (bits[k >> 3] >> (k & 7)) & 1 == 1


@numba.njit(cache=True, inline="always")
def _hex8(data, p):
    """The 32-bit value of the 8 hex digits ``data[p:p + 8]`` (big-endian, either case), and a mask that
    is zero iff all eight are hex digits -- SWAR: eight bytes at once in one 64-bit word."""
    x = _load64(data, p)
    # per byte c < 0x80: (c + 0x80 - k) has its top bit set iff c >= k, with no carry into the next byte
    lower = x | _X20
    digit = (x + _GE_0) & ~(x + _GE_9) & _X80                # '0' <= c <= '9'
    letter = (lower + _GE_A) & ~(lower + _GE_F) & _X80       # 'a' <= c | 0x20 <= 'f'
    bad = (x & _X80) | ((digit | letter) ^ _X80)             # nonzero unless all eight are hex digits
    v = (x & _X0F) + _U9 * ((x >> _S6) & _X01)               # each byte: its digit's value, 0..15
    y = ((v << _U4) | (v >> _U8)) & _X00FF                   # 16-bit lanes: (first << 4) | second
    word = (((y & _U0xFF) << _S24) | (((y >> _S16) & _U0xFF) << _S16) | (((y >> _S32) & _U0xFF) << _U8)
            | ((y >> _S48) & _U0xFF))
    return word, bad


# ---------------------------------------------------------------------------------------------- kernels
@numba.njit(cache=True)
def _id_keys(bits, bit_offset, offsets, data, word_mult, id_k, keys, no_id):
    """Keys of the rows with an id; ``no_id[i]`` marks the rows without one. Returns their count."""
    n = keys.size
    k0 = id_k[0]
    k1 = id_k[1]
    missing = 0
    for i in range(n):
        if not _is_valid(bits, bit_offset, i):
            no_id[i] = True
            missing += 1
            continue
        s = offsets[i]
        e = offsets[i + 1]
        if e - s == 64:
            acc = _U0
            bad = _U0
            for w in range(4):
                hi, bad_hi = _hex8(data, s + 16 * w)
                lo, bad_lo = _hex8(data, s + 16 * w + 8)
                bad |= bad_hi | bad_lo
                acc ^= ((hi << _S32) | lo) * word_mult[w]
            if bad == _U0:
                keys[i] = _mix64(acc)
                continue
        keys[i] = _mix64(_siphash24(data, s, e, k0, k1))
    return missing


@numba.njit(cache=True)
def _row_hashes(bits, bit_offset, offsets, data, row_k, no_id, keys):
    """Content hashes of the rows without an id (``no_id``), into ``keys``.

    Returns -1, or the first such row whose identity is null (nothing to key it by).
    """
    k0 = row_k[0]
    k1 = row_k[1]
    for i in range(keys.size):
        if no_id[i]:
            if not _is_valid(bits, bit_offset, i):
                return i
            keys[i] = _mix64(_siphash24(data, offsets[i], offsets[i + 1], k0, k1))
    return -1


@numba.njit(cache=True)
def _add_occurrences(no_id, missing, golden, keys):
    """``keys[i] += occ * golden`` at the rows without an id, ``occ`` the number of earlier such rows of
    the same hash (pandas' ``groupby(h, sort=False).cumcount()``).

    An open-addressing table {hash: count so far}: slot j is (table[2j], table[2j+1]) = (hash, count),
    count 0 meaning empty, so a probe touches one cache line. Sized for load <= 1/2 even if every hash is
    distinct; the hashes are well mixed, so their low bits index.
    """
    size = 16
    while size < 2 * missing:
        size *= 2
    mask = np.uint64(size - 1)
    table = np.zeros(2 * size, dtype=np.uint64)
    for i in range(keys.size):
        if not no_id[i]:
            continue
        h = keys[i]
        j = h & mask
        while table[2 * j + 1] != _U0 and table[2 * j] != h:
            j = (j + np.uint64(1)) & mask
        occ = table[2 * j + 1]
        table[2 * j] = h
        table[2 * j + 1] = occ + np.uint64(1)
        keys[i] = h + occ * golden


# -------------------------------------------------------------------------------------------------- API
_EMPTY_BITS = np.empty(0, dtype=np.uint8)


def _chunks(arr: pa.Array | pa.ChunkedArray, what: str) -> list[pa.Array]:
    if isinstance(arr, pa.ChunkedArray):
        chunks = arr.chunks
    elif isinstance(arr, pa.Array):
        chunks = [arr]
    else:
        raise TypeError(f"{what} must be a pyarrow Array or ChunkedArray, not {type(arr).__name__}")
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) or pa.types.is_null(arr.type)):
        raise TypeError(f"{what} must be a string or large_string array, not {arr.type}")
    return [c for c in chunks if len(c)]


def _buffers(arr: pa.Array):
    """(validity bits, bit offset, int64 offsets[len + 1], uint8 data) of a non-empty string array, as
    views of its Arrow buffers (only ``string``'s int32 offsets are copied, widened to int64). All are
    made read-only, whatever the buffers' origin, so that each kernel is compiled once."""
    if pa.types.is_null(arr.type):
        arr = arr.cast(pa.string())
    n = len(arr)
    validity, offs, data = arr.buffers()
    if validity is None or arr.null_count == 0:
        bits, bit_offset = _EMPTY_BITS, 0
    else:
        bits, bit_offset = np.frombuffer(validity, dtype=np.uint8), arr.offset
    off_dtype = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(offs, dtype=off_dtype)[arr.offset:arr.offset + n + 1].astype(np.int64, copy=False)
    chars = _EMPTY_BITS if data is None else np.frombuffer(data, dtype=np.uint8)
    for view in (bits, offsets, chars):
        view.setflags(write=False)
    return bits, bit_offset, offsets, chars


def incident_keys(crime_id: pa.Array | pa.ChunkedArray,
                  identity: pa.Array | pa.ChunkedArray | None = None, *, compact: bool = False) -> np.ndarray:
    """Signed 64-bit identity keys (int64, one per row of ``crime_id``), scheme ``hex64-or-siphash64-v2``.

    ``crime_id`` and ``identity`` are Arrow ``string``/``large_string`` arrays (chunked -- in any chunking,
    read in place -- or sliced ones too). A null ``crime_id`` is a row without an id, keyed by its
    ``identity``, which must then be given and non-null there (else ValueError: the v2 code would have
    keyed a None identity as pandas' stringified ``"None"``; ingest never passes one). An empty string is an
    id like any other (callers turn blanks into nulls first).

    ``compact=True``: ``identity`` holds one value per row *without* an id, in row order (building the
    content of only those rows is cheaper than a full-length column that is mostly null).
    """
    id_chunks = _chunks(crime_id, "crime_id")
    n = len(crime_id)
    if identity is not None:
        identity_chunks = _chunks(identity, "identity")
        if len(identity) != n and not compact:
            raise ValueError(f"identity has {len(identity)} rows, crime_id has {n}")
    keys = np.zeros(n, dtype=np.uint64)
    no_id = np.zeros(n, dtype=np.bool_)
    missing = 0
    start = 0
    for chunk in id_chunks:
        stop = start + len(chunk)
        missing += _id_keys(*_buffers(chunk), _WORD_MULT, _ID_K, keys[start:stop], no_id[start:stop])
        start = stop
    if missing:
        if identity is None:
            raise ValueError(f"{missing} row(s) have no crime id, and no identity was given to key them by")
        if compact and len(identity) != missing:
            raise ValueError(f"identity has {len(identity)} rows for {missing} rows without a crime id")
        target, rows = (np.zeros(missing, dtype=np.uint64), np.flatnonzero(no_id)) if compact else (keys, None)
        flags = np.ones(missing, dtype=np.bool_) if compact else no_id
        start = 0
        for chunk in identity_chunks:
            stop = start + len(chunk)
            bad = _row_hashes(*_buffers(chunk), _ROW_K, flags[start:stop], target[start:stop])
            if bad >= 0:
                row = start + bad if rows is None else int(rows[start + bad])
                raise ValueError(f"row {row} has neither a crime id nor an identity to key it by")
            start = stop
        if compact:
            keys[rows] = target
        _add_occurrences(no_id, missing, _GOLDEN, keys)
    return keys.view(np.int64)


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel, on a tiny input: call before the first ingest."""
    incident_keys(pa.array(["0" * 64, "api:1", None, None], pa.string()), pa.array(["a", "b", "a", "a"]))
