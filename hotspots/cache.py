"""One in-process cache for every step of the layer pipeline, keyed by the data version.

Why here and not in the web: the CLI, the API and the map all go through ``hotspots.pipeline``, and a
9,999-permutation analysis must be computed once however many callers ask for it at the same moment. The
key of every entry starts with the data version (the store, the bundle lock and the overlay registry), so
an ingest or an overlay change makes every older entry unreachable without any explicit invalidation.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Hashable

from .config import Config

#: Entries kept (least recently used evicted first). A London Gi* layer is a few MB.
CACHE_SIZE = 96

_cache: OrderedDict = OrderedDict()
_cache_lock = threading.Lock()
#: key -> [lock, number of threads using it]: one thread computes a missing entry, the others wait for it
_key_locks: dict = {}


#: How long a data version read from the file system is trusted. Why: a cached map view looks the version up
#: several times, and each ``stat`` releases the GIL; under load (an analysis holding the GIL) every
#: release can cost a thread switch interval (5 ms), which made ``stat`` the largest cost of a cached view.
#: Writes made by this process (``note_write``) are seen at once; another process's (a CLI ingest while the
#: server runs) within this many seconds.
VERSION_TTL_S = 0.5

_version_memo: dict = {}  # (db, lock, overlays) -> (monotonic time read, version)
_writes = 0  # bumped by note_write: part of the version, so an in-process write is seen at once


def note_write() -> None:
    """A write by this process (store commit, bundle install, overlay change): the data version moves now."""
    global _writes
    with _cache_lock:
        _writes += 1
        _version_memo.clear()


def data_version(config: Config) -> tuple:
    """Changes whenever the store, the bundle or the overlays change (a few stat calls, at most one set
    per ``VERSION_TTL_S``)."""
    where = (config.db_path, config.lock_path, config.instance_dir)
    now = time.monotonic()
    hit = _version_memo.get(where)
    if hit is not None and now - hit[0] < VERSION_TTL_S:
        return hit[1]
    version = _read_version(config) + (_writes,)
    _version_memo[where] = (now, version)
    return version


def _read_version(config: Config) -> tuple:
    out: list = []
    overlays_json = config.instance_dir / "overlays" / "overlays.json"
    wal = config.db_path.with_name(config.db_path.name + "-wal")
    for p in (config.db_path, config.lock_path, overlays_json, wal):
        try:
            st = p.stat()
            out.append((st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


def full_key(config: Config, key: tuple) -> tuple:
    return (str(config.instance_dir), str(config.data_dir), data_version(config)) + key


def peek(config: Config, key: tuple) -> bool:
    """True when ``key`` is cached for the current data version (no computation)."""
    with _cache_lock:
        return full_key(config, key) in _cache


def cached(config: Config, key: tuple, fn: Callable[[], Any]) -> Any:
    """``fn()`` once per key and data version. Concurrent misses of one key wait for the thread that
    computes it; ``fn`` runs outside the global lock, so other keys are served meanwhile. If ``fn`` raises,
    nothing is stored and the next caller tries again."""
    full = full_key(config, key)
    with _cache_lock:
        if full in _cache:
            _cache.move_to_end(full)
            return _cache[full]
        entry = _key_locks.get(full)
        if entry is None:
            entry = _key_locks[full] = [threading.Lock(), 0]
        entry[1] += 1
    try:
        with entry[0]:
            with _cache_lock:
                if full in _cache:  # computed by the thread we waited for
                    _cache.move_to_end(full)
                    return _cache[full]
            value = fn()
            with _cache_lock:
                _cache[full] = value
                while len(_cache) > CACHE_SIZE:
                    _cache.popitem(last=False)
            return value
    finally:
        with _cache_lock:
            entry[1] -= 1
            if entry[1] == 0 and _key_locks.get(full) is entry:
                del _key_locks[full]


def clear() -> None:
    """Forget everything (after an upload; tests)."""
    with _cache_lock:
        _cache.clear()
        _version_memo.clear()


def size() -> int:
    with _cache_lock:
        return len(_cache)


def in_flight() -> int:
    """Keys being computed now (tests check that none is left behind)."""
    with _cache_lock:
        return len(_key_locks)


__all__ = ["cached", "clear", "data_version", "note_write", "peek", "size", "in_flight", "CACHE_SIZE", "Hashable"]
