"""Incident keys from Arrow buffers (hotspots.keys) are bit-identical to the v2 numpy/pandas scheme.

The keys are the primary key of existing users' stores: any difference would make a re-ingest store its
rows twice. The oracle is the numpy/pandas implementation that computed them (copied verbatim below), and
a known-answer test pins literal keys so that a change in pandas' hashing cannot move both sides at once.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotspots.keys import KEY_SCHEME, incident_keys, warm_up

# --------------------------------------------------------------------------------- the oracle (verbatim)
# Copied from hotspots/ingest.py ("identities" section) as it stood before hotspots.keys replaced it.
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


def reference_keys(crime_id: np.ndarray, identity: np.ndarray) -> np.ndarray:
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


# ---------------------------------------------------------------------------------------------- helpers
def ref(ids: list, identity: list) -> np.ndarray:
    return reference_keys(np.array(ids, dtype=object), np.array(identity, dtype=object))


def arrow(values: list, typ=pa.string()) -> pa.Array:
    return pa.array(values, type=typ)


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == np.int64 and got.shape == want.shape
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, f"{bad.size} keys differ, first at row {bad[:5].tolist()}"


def hex64(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.array([b.tobytes().hex() for b in rng.integers(0, 256, size=(n, 32), dtype=np.uint8)], dtype=object)


# ---------------------------------------------------------------------------------------- known answers
KNOWN_IDS = ["0123456789abcdef" * 4, "0123456789ABCDEF" * 4, "f" * 64, "api:116208998", "extract:42", "",
             "é😀\x00", None, None, None, "0" * 63]
KNOWN_IDENTITY = [None] * 7 + ["2024-01\x1f-2.12\x1f52.58\x1fOn or near Park Road",
                               "2024-01\x1f-2.12\x1f52.58\x1fOn or near Park Road", "", None]
KNOWN_KEYS = [-8880390243121399853, -8880390243121399853, -4254186751190762846, 4618312209717966707,
              -1685620398234746661, -4021753825678520339, -8314423073587448407, -4893737350776028146,
              6506977468547170339, 1359122455983741135, -2921049711014533609]


def test_known_answers():
    assert KEY_SCHEME == "hex64-or-siphash64-v2"
    assert ref(KNOWN_IDS, KNOWN_IDENTITY).tolist() == KNOWN_KEYS  # the oracle has not moved either
    assert incident_keys(arrow(KNOWN_IDS), arrow(KNOWN_IDENTITY)).tolist() == KNOWN_KEYS
    # the second of two identical id-less rows is the first plus GOLDEN (wrapping)
    assert (KNOWN_KEYS[8] - KNOWN_KEYS[7]) % 2**64 == 0x9E3779B97F4A7C15


# ------------------------------------------------------------------------------------------- properties
def _case(s: str, flips: list[bool]) -> str:
    return "".join(c.upper() if f else c for c, f in zip(s, flips))


hex_ids = st.builds(lambda b, flips: _case(b.hex(), flips), st.binary(min_size=32, max_size=32),
                    st.lists(st.booleans(), min_size=64, max_size=64))
# a 64-character string one character away from hex: every SWAR edge ('/' ':' '@' 'G' '`' 'g', 0x10 which
# becomes '0' when lower-cased, non-ASCII, NUL, DEL)
near_hex = st.builds(lambda h, i, c: h[:i] + c + h[i + 1:], hex_ids, st.integers(0, 63),
                     st.sampled_from(list("/:@G`gxz \x00\x10\x11\x7fé😀\n")))
other_ids = st.one_of(
    st.text(max_size=80),
    st.text(alphabet="0123456789abcdefABCDEF", min_size=60, max_size=68),  # 63/65-digit hex and friends
    st.just(""),
    st.builds(lambda s: "api:" + s, st.text(max_size=20)),
    st.text(alphabet=st.sampled_from(list("aé😀\x00\x1f")), max_size=20),
)
ids_strategy = st.one_of(st.none(), hex_ids, near_hex, other_ids, hex_ids.map(lambda h: h + "\n"))
identity_pool = st.lists(st.text(max_size=120), min_size=1, max_size=6)


@st.composite
def cases(draw):
    ids = draw(st.lists(ids_strategy, max_size=40))
    pool = draw(identity_pool)  # few distinct identities: occurrence numbers matter
    identity = [draw(st.sampled_from(pool)) if i is None else draw(st.one_of(st.none(), st.sampled_from(pool)))
                for i in ids]
    return ids, identity


@st.composite
def layouts(draw, values: list):
    """The same values as a string/large_string array, possibly sliced out of a longer one, possibly
    chunked at arbitrary points (including empty chunks)."""
    typ = draw(st.sampled_from([pa.string(), pa.large_string()]))
    before = draw(st.lists(st.one_of(st.none(), st.text(max_size=5)), max_size=9))
    after = draw(st.lists(st.one_of(st.none(), st.text(max_size=5)), max_size=3))
    arr = pa.array(before + values + after, type=typ).slice(len(before), len(values))
    if draw(st.booleans()):
        cuts = sorted(draw(st.lists(st.integers(0, len(values)), max_size=4)))
        bounds = [0, *cuts, len(values)]
        arr = pa.chunked_array([arr.slice(a, b - a) for a, b in zip(bounds, bounds[1:])], type=typ)
    return arr


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_matches_reference(data):
    ids, identity = data.draw(cases())
    want = ref(ids, identity)
    got = incident_keys(data.draw(layouts(ids)), data.draw(layouts(identity)))
    assert_same(got, want)


def test_every_character_in_every_position_of_a_hex_id():
    """All 128 ASCII characters and a few non-ASCII ones at each of the 64 positions: the SWAR hex
    decoder must agree with the regex on what is hex, and with the table on what it is worth."""
    base = "0123456789abcdefABCDEF" * 3
    base = base[:64]
    chars = [chr(c) for c in range(128)] + ["é", "😀", "\u0660", "\uff10"]
    ids = [base[:i] + c + base[i + 1:] for i in range(64) for c in chars]
    assert_same(incident_keys(arrow(ids)), ref(ids, [None] * len(ids)))


# ------------------------------------------------------------------------------------- layouts & scale
def test_sliced_chunked_and_large_string():
    rng = np.random.default_rng(7)
    ids = list(hex64(rng, 30))
    for i in range(0, 30, 3):
        ids[i] = None
    ids[4] = "api:4"
    identity = [f"row {i % 4}" for i in range(30)]
    full = ref(ids, identity)
    a, b = arrow(ids), arrow(identity)
    assert_same(incident_keys(a, b), full)
    # a slice is keyed as the rows it holds: occurrence numbers count within the slice
    assert_same(incident_keys(a.slice(3, 10), b.slice(3, 10)), ref(ids[3:13], identity[3:13]))
    assert_same(incident_keys(a.slice(5), b.slice(5)), ref(ids[5:], identity[5:]))
    large = incident_keys(arrow(ids, pa.large_string()), arrow(identity, pa.large_string()))
    assert_same(large, full)
    chunked = pa.chunked_array([a.slice(0, 7), a.slice(7, 0), a.slice(7)])
    ident_chunked = pa.chunked_array([arrow(identity[:13], pa.large_string()),
                                      arrow(identity[13:], pa.large_string())])
    assert_same(incident_keys(chunked, ident_chunked), full)
    assert_same(incident_keys(pa.chunked_array([], pa.string())), np.zeros(0, np.int64))


def test_large_random_comparison():
    rng = np.random.default_rng(2024)
    n = 200_000
    ids = hex64(rng, n)
    upper = rng.random(n) < 0.1
    ids[upper] = [s.upper() for s in ids[upper]]
    null = rng.random(n) < 0.3
    ids[null] = None
    pool = np.array([f"2024-{i % 12 + 1:02d}\x1f-1.{i:06d}\x1f52.{i * 7 % 999983:06d}\x1fOn or near Some Street"
                     f"\x1fE0100{i % 4000:04d}\x1fAnti-social behaviour\x1f\x1f\x1fPolice" for i in range(20_000)],
                    dtype=object)
    identity = pool[rng.integers(0, len(pool), n)]
    want = reference_keys(ids, identity)
    got = incident_keys(pa.array(ids, pa.string(), from_pandas=True), pa.array(identity, pa.string()))
    assert_same(got, want)
    assert len(np.unique(got)) == len(got)  # repeats of an identity are told apart by occurrence


def test_all_null_and_null_typed_ids():
    identity = ["a", "b", "a", "a"]
    want = ref([None] * 4, identity)
    assert_same(incident_keys(pa.nulls(4), arrow(identity)), want)
    assert_same(incident_keys(pa.nulls(4, pa.string()), arrow(identity)), want)


def test_empty():
    out = incident_keys(arrow([]))
    assert out.dtype == np.int64 and out.shape == (0,)


# ---------------------------------------------------------------------------------------------- refusals
def test_missing_identity_where_id_is_null_is_refused():
    with pytest.raises(ValueError, match="no identity"):
        incident_keys(arrow(["api:1", None]))
    with pytest.raises(ValueError, match="row 2"):
        incident_keys(arrow(["api:1", None, None]), arrow(["x", "y", None]))
    with pytest.raises(ValueError, match="rows"):
        incident_keys(arrow(["api:1", None]), arrow(["x"]))
    # an identity is only needed where the id is missing
    assert_same(incident_keys(arrow(["api:1", None]), arrow([None, "y"])), ref(["api:1", None], [None, "y"]))
    assert_same(incident_keys(arrow(["api:1", "f" * 64])), ref(["api:1", "f" * 64], [None, None]))


def test_non_string_arrays_are_refused():
    with pytest.raises(TypeError):
        incident_keys(pa.array([1, 2]))
    with pytest.raises(TypeError):
        incident_keys(np.array(["api:1"], dtype=object))


WARM_UP_PROBE = """
import json
from numba.core.registry import CPUDispatcher
import pyarrow as pa
from hotspots import keys
entry = ("_id_keys", "_row_hashes", "_add_occurrences")
before = {n: len(getattr(keys, n).signatures) for n in entry}
keys.warm_up()
after = {n: len(getattr(keys, n).signatures) for n in entry}
ids, identity = json.loads(input())
got = keys.incident_keys(pa.array(ids, pa.string()), pa.array(identity, pa.string())).tolist()
print(json.dumps([before, after, got]))
"""


def test_warm_up_compiles_the_kernels_and_keys_stay_right():
    """In a fresh process (earlier tests cannot have compiled anything): no kernel is ready before
    ``warm_up``, every entry kernel has a compiled (or cache-loaded) signature after it, and keys
    computed afterwards are the pinned ones."""
    import json
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", WARM_UP_PROBE], input=json.dumps([KNOWN_IDS, KNOWN_IDENTITY]),
                         capture_output=True, text=True, check=True, timeout=300)
    before, after, got = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(before.values()) == {0}
    assert all(n >= 1 for n in after.values()), after
    assert got == KNOWN_KEYS
    warm_up()  # and in this process, idempotent
    assert incident_keys(arrow(KNOWN_IDS), arrow(KNOWN_IDENTITY)).tolist() == KNOWN_KEYS


def test_compact_identity_equals_aligned_identity():
    """``compact=True`` (identity only for the rows without an id) keys exactly like the aligned form."""
    rng = np.random.default_rng(11)
    n = 5_000
    ids = [None if rng.random() < 0.4 else f"{rng.integers(1 << 60):064x}" for _ in range(n)]
    content = [f"row|{rng.integers(50)}|é" for _ in range(n)]
    aligned = pa.array([c if i is None else None for i, c in zip(ids, content)], pa.string())
    compact = pa.array([c for i, c in zip(ids, content) if i is None], pa.string())
    crime_id = pa.array(ids, pa.string())
    want = incident_keys(crime_id, aligned)
    assert np.array_equal(incident_keys(crime_id, compact, compact=True), want)
    chunked = pa.chunked_array([compact.slice(0, 100), compact.slice(100)])
    assert np.array_equal(incident_keys(crime_id, chunked, compact=True), want)
    with pytest.raises(ValueError):
        incident_keys(crime_id, compact.slice(1), compact=True)
