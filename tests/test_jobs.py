"""hotspots.jobs.AnalysisPool with fake jobs that block on events: sharing, per-client and queue caps,
the time budget, exception propagation and thread hygiene. Refusals are checked by state (the refused
function never ran, the pool's counters), not by wall-clock time."""
from __future__ import annotations

import functools
import os
import threading
import time
from typing import Any

import pytest

from hotspots.errors import HotspotsError
from hotspots.jobs import AnalysisPool, JobCrashed, PoolClosed, StillRunning, TooBusy

#: generous bound for "the pool reached this state" (polled; the tests never measure durations)
SETTLE_S = 10.0


def wait_until(cond, what: str) -> None:
    deadline = time.monotonic() + SETTLE_S
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.005)


class Call:
    """``pool.run`` in a background thread, keeping its result or exception."""

    def __init__(self, pool: AnalysisPool, client: str, key, fn) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._go, args=(pool, client, key, fn), daemon=True)
        self.thread.start()

    def _go(self, pool, client, key, fn) -> None:
        try:
            self.result = pool.run(client, key, fn)
        except BaseException as exc:
            self.error = exc

    def join(self) -> "Call":
        self.thread.join(SETTLE_S)
        assert not self.thread.is_alive(), "pool.run did not return"
        return self


class Blocker:
    """A fake job: records that it started, then waits until released (never longer than SETTLE_S)."""

    def __init__(self, value: Any = None) -> None:
        self.value = value
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        self.started.set()
        assert self.release.wait(SETTLE_S)
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value


@pytest.fixture
def pools():
    made: list[AnalysisPool] = []

    def make(**kw) -> AnalysisPool:
        made.append(AnalysisPool(**kw))
        return made[-1]
    yield make
    for p in made:
        p.close(timeout=SETTLE_S)


def test_identical_keys_in_flight_are_computed_once_and_shared(pools):
    pool = pools(workers=1, queue=4, per_client=2, budget_s=SETTLE_S)
    job = Blocker(value=["the result"])
    first = Call(pool, "10.0.0.1", ("gistar", "queen", 999), job)
    assert job.started.wait(SETTLE_S)
    second = Call(pool, "10.0.0.2", ("gistar", "queen", 999), job)
    third = Call(pool, "10.0.0.1", ("gistar", "queen", 999), job)  # the same client asking again
    wait_until(lambda: pool.snapshot()["shared"] == 2, "both callers joined the job in flight")
    assert pool.snapshot()["per_client"] == {"10.0.0.1": 1, "10.0.0.2": 1}
    job.release.set()
    results = [c.join().result for c in (first, second, third)]
    assert job.calls == 1
    assert results[0] == ["the result"] and all(r is results[0] for r in results)
    snap = pool.snapshot()
    assert (snap["computed"], snap["queued"], snap["running"], snap["per_client"]) == (1, 0, 0, {})


def test_a_client_at_its_cap_is_refused_at_once_and_others_are_not(pools):
    pool = pools(workers=1, queue=4, per_client=2, budget_s=SETTLE_S)
    a, b = Blocker("a"), Blocker("b")
    calls = [Call(pool, "10.0.0.1", "job-a", a), Call(pool, "10.0.0.1", "job-b", b)]
    wait_until(lambda: pool.snapshot()["per_client"].get("10.0.0.1") == 2, "two jobs held by the client")
    never = Blocker("never")
    with pytest.raises(TooBusy) as info:
        pool.run("10.0.0.1", "job-c", never)
    assert never.calls == 0  # refused before anything was queued: the function never ran
    assert info.value.status == 429 and info.value.retry_after >= 1
    assert isinstance(info.value, HotspotsError) and "limit is 2" in info.value.reason
    assert pool.snapshot()["refused_client"] == 1
    other = Blocker("other")
    other.release.set()
    calls.append(Call(pool, "10.0.0.2", "job-d", other))  # another client still gets in
    wait_until(lambda: pool.snapshot()["per_client"].get("10.0.0.2") == 1, "the other client's job queued")
    a.release.set()
    b.release.set()
    assert [c.join().result for c in calls] == ["a", "b", "other"]
    assert pool.run("10.0.0.1", "job-c", lambda: "now") == "now"  # its jobs finished: it may ask again


def test_a_full_queue_is_refused_with_a_retry_after_from_the_measured_durations(pools):
    pool = pools(workers=1, queue=1, per_client=5, budget_s=SETTLE_S, expected_s=40.0)
    running, waiting = Blocker(1), Blocker(2)
    calls = [Call(pool, "10.0.0.1", "running", running)]
    assert running.started.wait(SETTLE_S)
    calls.append(Call(pool, "10.0.0.2", "waiting", waiting))
    wait_until(lambda: pool.snapshot()["queued"] == 1, "one job queued behind the running one")
    with pytest.raises(TooBusy) as info:
        pool.run("10.0.0.3", "third", lambda: 3)
    # no job measured yet: the estimate is the expected 40 s minus what the running job has spent
    assert info.value.status == 429 and 1 <= info.value.retry_after <= 40
    assert pool.snapshot()["refused_queue"] == 1
    running.release.set()
    waiting.release.set()
    assert [c.join().result for c in calls] == [1, 2]
    assert pool.snapshot()["mean_s"] < 40.0  # the measured (short) durations now drive the estimate


def test_waiters_beyond_max_waiters_are_refused_even_for_a_shared_job(pools):
    pool = pools(workers=1, queue=4, per_client=2, budget_s=SETTLE_S, max_waiters=2)
    job = Blocker("shared")
    calls = [Call(pool, "10.0.0.1", "k", job), Call(pool, "10.0.0.2", "k", job)]
    wait_until(lambda: pool.snapshot()["waiting"] == 2, "two callers waiting on one job")
    with pytest.raises(TooBusy, match="2 requests are waiting"):
        pool.run("10.0.0.3", "k", job)  # the same job, but no server thread is left to wait with
    assert pool.snapshot()["refused_waiters"] == 1 and pool.snapshot()["shared"] == 1
    job.release.set()
    assert [c.join().result for c in calls] == ["shared", "shared"]
    assert pool.snapshot()["waiting"] == 0
    assert pool.run("10.0.0.3", "k", lambda: "free again") == "free again"


def test_over_budget_answers_still_running_and_the_job_completes_into_the_callers_cache(pools):
    pool = pools(workers=1, queue=4, per_client=2, budget_s=0.2)
    cache: dict[str, str] = {}
    job = Blocker("expensive result")
    finished = threading.Event()

    def compute_and_cache() -> str:
        cache["k"] = job()
        finished.set()
        return cache["k"]

    with pytest.raises(StillRunning) as info:
        pool.run("10.0.0.1", "k", compute_and_cache)
    assert info.value.status == 503 and info.value.retry_after >= 1
    assert job.started.is_set() and not finished.is_set()  # the job was running, not abandoned
    assert pool.snapshot()["per_client"] == {"10.0.0.1": 1}  # and still counts against the client
    job.release.set()
    assert finished.wait(SETTLE_S)
    wait_until(lambda: pool.snapshot()["running"] == 0, "the job left the pool")
    assert cache == {"k": "expensive result"}
    assert pool.run("10.0.0.1", "k", lambda: cache["k"]) == "expensive result"  # the retry
    assert job.calls == 1 and pool.snapshot()["over_budget"] == 1


def test_a_retry_while_still_running_joins_the_same_job(pools):
    pool = pools(workers=1, queue=4, per_client=1, budget_s=0.2)
    job = Blocker(42)
    with pytest.raises(StillRunning):
        pool.run("10.0.0.1", "k", job)
    with pytest.raises(StillRunning):  # per_client=1 and a job in flight, but it is the same job: no 429
        pool.run("10.0.0.1", "k", job)
    job.release.set()
    wait_until(lambda: pool.snapshot()["running"] == 0, "the job left the pool")
    assert job.calls == 1 and pool.snapshot()["shared"] == 1


def test_an_exception_reaches_every_waiter_and_nothing_is_cached(pools):
    pool = pools(workers=1, queue=4, per_client=2, budget_s=SETTLE_S)
    boom = ValueError("constant values: no variance")
    job = Blocker(boom)
    calls = [Call(pool, "10.0.0.1", "k", job)]
    assert job.started.wait(SETTLE_S)
    calls.append(Call(pool, "10.0.0.2", "k", job))
    wait_until(lambda: pool.snapshot()["shared"] == 1, "the second caller joined")
    job.release.set()
    assert [c.join().error for c in calls] == [boom, boom]
    assert pool.snapshot()["failed"] == 1
    assert pool.run("10.0.0.1", "k", lambda: "second try") == "second try"  # computed again: no caching
    assert pool.run("10.0.0.1", "k", lambda: "third try") == "third try"


def test_the_worker_survives_a_failing_job(pools):
    pool = pools(workers=1, queue=1, per_client=1, budget_s=SETTLE_S)

    def fail() -> None:
        raise KeyError("gone")

    for _ in range(3):
        with pytest.raises(KeyError):
            pool.run("10.0.0.1", "k", fail)
    assert pool.run("10.0.0.1", "k", lambda: "alive") == "alive"
    assert pool.snapshot()["threads"] == 1


def test_no_thread_leak():
    before = set(threading.enumerate())
    pool = AnalysisPool(workers=2, queue=50, per_client=50, budget_s=SETTLE_S, name="leak-check")
    assert pool.snapshot()["threads"] == 0  # an idle pool holds no threads
    calls = [Call(pool, f"10.0.0.{i % 5}", i, lambda i=i: i * i) for i in range(40)]
    assert sorted(c.join().result for c in calls) == sorted(i * i for i in range(40))
    workers = [t for t in threading.enumerate() if t.name.startswith("leak-check")]
    assert 1 <= len(workers) <= 2 and all(t.daemon for t in workers)
    pool.close(timeout=SETTLE_S)
    assert not any(t.is_alive() for t in workers)
    assert set(threading.enumerate()) <= before
    with pytest.raises(PoolClosed):
        pool.run("10.0.0.1", "late", lambda: 1)


def test_close_lets_queued_jobs_finish():
    pool = AnalysisPool(workers=1, queue=3, per_client=3, budget_s=SETTLE_S)
    first, second = Blocker("first"), Blocker("second")
    calls = [Call(pool, "10.0.0.1", 1, first)]
    assert first.started.wait(SETTLE_S)
    calls.append(Call(pool, "10.0.0.1", 2, second))
    wait_until(lambda: pool.snapshot()["queued"] == 1, "second job queued")
    closer = threading.Thread(target=pool.close, kwargs={"timeout": SETTLE_S})
    closer.start()
    first.release.set()
    second.release.set()
    closer.join(SETTLE_S)
    assert [c.join().result for c in calls] == ["first", "second"]


@pytest.mark.parametrize("kw", [{"workers": 0}, {"queue": -1}, {"per_client": 0}, {"budget_s": 0}])
def test_bad_sizes_are_refused_with_a_clear_error(kw):
    with pytest.raises(HotspotsError, match="AnalysisPool needs"):
        AnalysisPool(**kw)


# -- processes=True: the work runs in a child process (the kernels hold the GIL) ------------------------

def test_a_process_pool_computes_in_a_child_and_runs_then_here(pools):
    pool = pools(workers=1, queue=2, per_client=2, budget_s=120.0, processes=True)
    here = os.getpid()
    stored: dict[str, Any] = {}

    def store(pid: int) -> int:
        stored["pid"], stored["in"] = pid, os.getpid()
        return pid
    child = pool.run("10.0.0.1", "pid", os.getpid, then=store)
    assert child != here and stored == {"pid": child, "in": here}
    assert pool.run("10.0.0.1", "pow", functools.partial(pow, 7, 2)) == 49
    assert pool.run("10.0.0.1", "pid-again", os.getpid) == child  # the child is kept between jobs
    with pytest.raises(ValueError, match="invalid literal"):
        pool.run("10.0.0.1", "bad", functools.partial(int, "x"))  # the child's exception reaches the caller
    assert os.getpriority(os.PRIO_PROCESS, child) >= os.getpriority(os.PRIO_PROCESS, here)


def test_a_crashed_child_is_a_clear_error_and_the_next_job_gets_a_new_one(pools):
    pool = pools(workers=1, queue=2, per_client=2, budget_s=120.0, processes=True)
    first = pool.run("10.0.0.1", "pid", os.getpid)
    with pytest.raises(JobCrashed, match="stopped unexpectedly"):
        pool.run("10.0.0.1", "die", functools.partial(os._exit, 3))
    second = pool.run("10.0.0.1", "pid", os.getpid)
    assert second not in (first, os.getpid())


def test_a_process_pool_leaves_no_thread_or_child_behind():
    import multiprocessing
    before = set(threading.enumerate())
    pool = AnalysisPool(workers=1, queue=2, per_client=2, budget_s=120.0, processes=True)
    pool.start(warm=functools.partial(pow, 2, 10))
    child = pool.run("10.0.0.1", "pid", os.getpid)
    assert any(p.pid == child for p in multiprocessing.active_children())
    pool.close(timeout=SETTLE_S)
    assert not any(p.pid == child for p in multiprocessing.active_children())
    assert set(threading.enumerate()) <= before


CHILD_OF_A_DOOMED_SERVER = """
import os, sys, time
from hotspots.jobs import AnalysisPool
pool = AnalysisPool(processes=True, budget_s=120.0)
print(pool.run("c", "pid", os.getpid), flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    from pathlib import Path
    try:
        state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                     if line.startswith("State:"))
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        return False
    return "Z" not in state.split()[1]  # a zombie has exited (PID 1 of a container may never reap it)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc to watch the child")
def test_children_exit_when_the_server_is_killed(tmp_path):
    import signal
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parent.parent
    server = subprocess.Popen([sys.executable, "-c", CHILD_OF_A_DOOMED_SERVER], cwd=repo, stdout=subprocess.PIPE,
                              text=True)
    try:
        child = int(server.stdout.readline())
        assert _alive(child)
    finally:
        server.send_signal(signal.SIGKILL)  # no exit handlers run
        server.wait(SETTLE_S)
        server.stdout.close()
    wait_until(lambda: not _alive(child), "the orphaned child exits")
