"""The pipeline cache: one computation per key however many callers miss it at once."""
from __future__ import annotations

import csv
import io
import threading
import time

import pytest

# -- 6: no cache stampede --------------------------------------------------------------------------
def test_concurrent_misses_compute_once(config):
    from hotspots import cache as L
    calls = []
    gate = threading.Barrier(8)

    def build():
        calls.append(threading.get_ident())
        time.sleep(0.3)
        return object()

    out = [None] * 8

    def worker(i):
        gate.wait()
        out[i] = L.cached(config, key, build)

    key = ("test-stampede", time.time_ns())
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1, f"the build ran {len(calls)} times"
    assert all(o is out[0] for o in out)
    assert not any(k[-2:] == key for k in L._key_locks)  # no lock left behind
    assert L.in_flight() == 0


def test_failed_build_is_retried_by_the_next_caller(config):
    from hotspots import cache as L
    key = ("test-stampede-error", time.time_ns())

    def boom():
        raise RuntimeError("no")
    with pytest.raises(RuntimeError):
        L.cached(config, key, boom)
    assert L.cached(config, key, lambda: 42) == 42


