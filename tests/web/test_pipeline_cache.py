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




def test_data_version_sees_this_process_writes_at_once_and_others_within_the_ttl(config, monkeypatch):
    """The version is memoised (each stat releases the GIL, costly under load), yet an ingest by this
    process moves it at once and a file changed by another process within VERSION_TTL_S."""
    import os

    from hotspots import cache as L
    from hotspots import store

    v0 = L.data_version(config)
    assert L.data_version(config) == v0  # memoised: same answer, no change
    con = store.connect(config.db_path)
    try:
        with store.data_transaction(con):
            con.execute("INSERT OR REPLACE INTO meta VALUES ('probe', '1')")
    finally:
        con.close()
    v1 = L.data_version(config)
    assert v1 != v0  # this process's write: at once
    # another process's write: not seen inside the TTL, seen after it
    st = config.db_path.stat()
    os.utime(config.db_path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    clock = [time.monotonic()]
    monkeypatch.setattr(L.time, "monotonic", lambda: clock[0])
    L._version_memo.clear()
    v2 = L.data_version(config)
    os.utime(config.db_path, ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))
    assert L.data_version(config) == v2
    clock[0] += L.VERSION_TTL_S + 0.01
    assert L.data_version(config) != v2
