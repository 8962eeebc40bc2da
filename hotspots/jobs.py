"""A bounded pool for expensive work, so that one client cannot stall a server (issue 14, item 3).

Why: an uncached analysis (9,999 permutations on every LSOA) takes seconds to minutes. Run in the request
thread, eight of them occupy eight waitress threads and every cheap request waits behind them. The pool
runs such work on ``workers`` threads behind a queue of at most ``queue`` jobs, at most ``per_client``
jobs per client, and answers a caller within ``budget_s`` seconds whatever happens:

* identical keys in flight are computed once; every waiter gets the same result or the same exception
  (the pool caches nothing: the job's function stores its result in the caller's cache);
* a client with ``per_client`` jobs queued or running, or a full queue, gets :class:`TooBusy` at once
  (HTTP 429) with a ``retry_after`` estimated from the measured durations of finished jobs;
* a caller still waiting after ``budget_s`` gets :class:`StillRunning` (HTTP 503, ``retry_after``) while
  the job runs on to completion, so that a retry finds its result in the caller's cache.

Workers are daemon threads (a job stuck in a kernel never blocks interpreter exit). The numba kernels of
``hotspots.stats`` hold the GIL while they run, so a job computed in a worker thread stalls every other
request of the process for the length of each kernel call. With ``processes=True`` each job runs in a
child process (spawned once, kept, at a lower CPU priority). Measured with ``benchmarks/load.py
--hostile`` (docs/benchmarks.md, "Hostile load"), neither wins everywhere: a child halved the cached
median on one code base and lost on the merged pipeline, so the web default is the thread. No Flask here: ``web.limits`` adapts the pool to requests.
"""
from __future__ import annotations

import logging
import math
import multiprocessing
import os
import queue as queue_mod
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import HotspotsError

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: how much lower the priority of a child process computing analyses is (os.nice increment)
CHILD_NICENESS = 10
#: how often a child process checks that the server that started it is still alive (seconds)
PARENT_CHECK_S = 1.0
#: smoothing of the measured job duration behind the Retry-After estimates (weight of the newest job)
DURATION_SMOOTHING = 0.3


class RetryLater(HotspotsError):
    """Not answered now; the client should retry after ``retry_after`` whole seconds (web: ``Retry-After``)."""

    def __init__(self, reason: str, *, retry_after: int, **kw: Any) -> None:
        self.retry_after = int(retry_after)
        super().__init__(reason, **kw)


class TooBusy(RetryLater):
    """Refused at once: the client already has its share of jobs, or the queue is full (HTTP 429)."""

    status = 429


class StillRunning(RetryLater):
    """The time budget ran out; the job goes on in the background (HTTP 503: retry after ``retry_after``)."""

    status = 503


class JobCrashed(HotspotsError):
    """The child process computing a job died (``processes=True``); the job may be asked for again."""

    status = 500


class PoolClosed(HotspotsError):
    """The pool was closed (the server is stopping) before the job could run."""

    status = 503


@dataclass(eq=False)
class _Job:
    key: Hashable
    fn: Callable[[], Any]
    then: Callable[[Any], Any] | None
    local: bool
    clients: set[str]
    submitted: float
    started: float | None = None
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class AnalysisPool:
    """Run expensive, keyed jobs on a few threads with a bounded queue, per-client caps and a time budget.

    Parameters
    ----------
    workers : threads computing jobs (1 on a 2-core machine: the kernels are parallel themselves).
    queue : jobs that may wait for a worker; one more is refused with :class:`TooBusy`.
    per_client : jobs one client may have queued or running; one more is refused with :class:`TooBusy`.
    budget_s : longest a caller waits before :class:`StillRunning`.
    expected_s : duration assumed for Retry-After estimates until a job has been measured
        (default ``budget_s / 2``).
    max_waiters : callers that may wait at once, shared jobs included (None: no cap). Each waiter holds a
        server thread; ``hotspots serve`` sets this below its thread count so cheap requests always find one.
    processes : compute each ``fn`` in a child process (``workers`` of them, started with ``spawn`` on the
        first job and kept): the statistics kernels hold the GIL, so in a thread they stall every other
        request of the server (measured: docs/benchmarks.md). ``fn`` must then be picklable (a module-level
        function, or ``functools.partial`` of one with picklable arguments); ``then`` runs in this process.

    Examples
    --------
    >>> pool = AnalysisPool(workers=1, queue=2, per_client=1, budget_s=5.0)
    >>> pool.run("127.0.0.1", ("square", 7), lambda: 7 * 7)
    49
    >>> pool.close()
    """

    def __init__(self, workers: int = 1, queue: int = 4, per_client: int = 2, budget_s: float = 20.0,
                 expected_s: float | None = None, max_waiters: int | None = None, processes: bool = False,
                 name: str = "hotspots-analysis") -> None:
        if workers < 1 or queue < 0 or per_client < 1 or not budget_s > 0:
            raise HotspotsError(f"AnalysisPool needs workers >= 1, queue >= 0, per_client >= 1 and budget_s > 0 "
                                f"(got workers={workers}, queue={queue}, per_client={per_client}, "
                                f"budget_s={budget_s})")
        self.workers, self.queue_size, self.per_client, self.budget_s = workers, queue, per_client, float(budget_s)
        self.name = name
        self.max_waiters = max_waiters
        self.processes = processes
        self._executor: ProcessPoolExecutor | None = None
        self._waiting = 0
        self._mean_s = float(expected_s) if expected_s else self.budget_s / 2
        self._lock = threading.Lock()
        self._inflight: dict[Hashable, _Job] = {}
        self._queue: queue_mod.SimpleQueue[_Job | None] = queue_mod.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.counters = {"computed": 0, "shared": 0, "refused_client": 0, "refused_queue": 0,
                         "refused_waiters": 0, "over_budget": 0, "failed": 0}

    # -- public ---------------------------------------------------------------------------------------
    def run(self, client: str, key: Hashable, fn: Callable[[], Any], then: Callable[[Any], T] | None = None,
            *, local: bool = False) -> T:
        """``fn()`` computed on a worker (once per ``key`` in flight), for ``client`` (an address or
        ``user:<name>``); ``then(result)``, if given, runs after it in this process (to store the result
        in the caller's cache: with ``processes`` ``fn`` runs elsewhere) and its value is returned.
        ``local=True`` computes ``fn`` on the worker thread even with ``processes`` (for a function that
        cannot be pickled).

        Raises
        ------
        TooBusy : ``client`` has ``per_client`` jobs in flight, ``queue`` jobs are waiting, or
            ``max_waiters`` callers are waiting.
        StillRunning : not finished within ``budget_s``; the job goes on and its function's side
            effects (the caller's cache) hold the result for a retry.
        PoolClosed : the pool is closed.
        Exception : whatever ``fn`` raised (every waiter of the job gets it).
        """
        arrived = time.monotonic()
        with self._lock:
            if self._closed:
                raise PoolClosed("the server is stopping; try again shortly")
            if self.max_waiters is not None and self._waiting >= self.max_waiters:
                self.counters["refused_waiters"] += 1
                wait = self._next_free_locked(arrived)
                raise TooBusy(f"the server is busy: {self._waiting} requests are waiting for analyses; retry in "
                              f"about {wait} s", retry_after=wait)
            job = self._inflight.get(key)
            if job is not None:  # the same work is queued or running: wait for it, add nothing
                job.clients.add(client)
                self.counters["shared"] += 1
            else:
                job = self._submit(client, key, fn, then, local, arrived)
            self._waiting += 1
        try:
            finished = job.done.wait(max(self.budget_s - (time.monotonic() - arrived), 0.0))
        finally:
            with self._lock:
                self._waiting -= 1
        if not finished:
            with self._lock:
                wait = self._remaining_locked(job, time.monotonic())
                self.counters["over_budget"] += 1
            raise StillRunning(f"the analysis takes longer than {self.budget_s:g} s; it goes on in the "
                               f"background: retry in about {wait} s", retry_after=wait)
        if job.error is not None:
            raise job.error
        return job.result

    def start(self, warm: Callable[[], Any] | None = None) -> None:
        """With ``processes``: start the child now and run ``warm`` (picklable) in it in the background,
        so the first analysis does not pay the start-up (about 5 s of imports). Without: nothing."""
        if not self.processes:
            return
        executor = self._child_pool()
        if warm is not None:
            executor.submit(warm).add_done_callback(_log_warm_failure)

    def snapshot(self) -> dict[str, Any]:
        """Jobs queued and running, clients holding them, counters and the mean duration (for logs and
        tests)."""
        with self._lock:
            queued = sum(j.started is None for j in self._inflight.values())
            per_client: dict[str, int] = {}
            for j in self._inflight.values():
                for c in j.clients:
                    per_client[c] = per_client.get(c, 0) + 1
            return {"queued": queued, "running": len(self._inflight) - queued, "waiting": self._waiting,
                    "per_client": per_client,
                    "threads": sum(t.is_alive() for t in self._threads), "mean_s": round(self._mean_s, 3),
                    **self.counters}

    def close(self, timeout: float | None = None) -> None:
        """Refuse new jobs, let the queued and running ones finish, and stop the workers (waiting at most
        ``timeout`` seconds for each)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        for t in threads:
            t.join(timeout)
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "AnalysisPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals (called with self._lock held where named *_locked or from run) ---------------------
    def _submit(self, client: str, key: Hashable, fn: Callable[[], Any], then: Callable[[Any], Any] | None,
                local: bool, now: float) -> _Job:
        mine = [j for j in self._inflight.values() if client in j.clients]
        if len(mine) >= self.per_client:
            self.counters["refused_client"] += 1
            wait = min(self._remaining_locked(j, now) for j in mine)
            raise TooBusy(f"you already have {len(mine)} analyses running or queued (the limit is "
                          f"{self.per_client}): retry in about {wait} s", retry_after=wait)
        queued = [j for j in self._inflight.values() if j.started is None]
        if len(queued) >= self.queue_size and len(self._inflight) - len(queued) >= self.workers:
            self.counters["refused_queue"] += 1
            wait = self._next_free_locked(now)
            raise TooBusy(f"the server is busy with {len(self._inflight)} analyses: retry in about {wait} s",
                          retry_after=wait)
        job = _Job(key=key, fn=fn, then=then, local=local, clients={client}, submitted=now)
        self._inflight[key] = job
        if len(self._threads) < self.workers:  # started lazily: an idle app holds no threads
            t = threading.Thread(target=self._work, name=f"{self.name}-{len(self._threads) + 1}", daemon=True)
            self._threads.append(t)
            t.start()
        self._queue.put(job)
        return job

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                job.started = time.monotonic()
            try:
                value = self._compute(job.fn, local=job.local)
                job.result = job.then(value) if job.then is not None else value
            except BaseException as exc:  # every waiter gets it; the worker lives on
                job.error = exc
            seconds = time.monotonic() - job.started
            with self._lock:
                self._mean_s += DURATION_SMOOTHING * (seconds - self._mean_s)
                self.counters["failed" if job.error is not None else "computed"] += 1
                if self._inflight.get(job.key) is job:
                    del self._inflight[job.key]
            job.done.set()
            if job.error is not None:
                logger.info("job %r failed after %.1f s: %s", job.key, seconds, job.error)
            del job  # the waiters hold the result; the worker keeps nothing alive until its next job

    def _compute(self, fn: Callable[[], Any], local: bool) -> Any:
        if local or not self.processes:
            return fn()
        executor = self._child_pool()
        try:
            return executor.submit(fn).result()
        except BrokenProcessPool:
            with self._lock:  # a child died (killed, out of memory): the next job starts a fresh one
                if self._executor is executor:
                    self._executor = None
            executor.shutdown(wait=False)
            raise JobCrashed("the analysis process stopped unexpectedly; try again") from None

    def _child_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                if self._closed:
                    raise PoolClosed("the server is stopping; try again shortly")
                self._executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                     initializer=_child_init, initargs=(os.getpid(),))
            return self._executor

    def _remaining_locked(self, job: _Job, now: float) -> int:
        """Whole seconds (at least 1) until ``job`` is expected to finish."""
        if job.started is not None:
            return _whole(self._left(now - job.started))
        ahead = [j for j in self._inflight.values() if j.started is None and j.submitted < job.submitted]
        return _whole(self._next_free_s(now) + len(ahead) * self._mean_s / self.workers + self._mean_s)

    def _next_free_locked(self, now: float) -> int:
        return _whole(self._next_free_s(now))

    def _next_free_s(self, now: float) -> float:
        """Seconds until a worker is expected to be free (0 if one is idle)."""
        running = [j for j in self._inflight.values() if j.started is not None]
        if len(running) < self.workers:
            return 0.0
        return min(self._left(now - j.started) for j in running)  # type: ignore[operator]

    def _left(self, elapsed: float) -> float:
        """Expected seconds left of a job running for ``elapsed``; past the mean, a quarter of its age."""
        return self._mean_s - elapsed if elapsed < self._mean_s else max(0.25 * elapsed, 1.0)


def _log_warm_failure(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.warning("warming the analysis process failed: %s", future.exception())


def _child_init(parent: int) -> None:
    """In each child: yield the CPU to the server's own threads (cheap requests first), and exit when the
    server is gone. A server stopped by a signal runs no exit handlers, and the executor's pipes stay open
    in the child itself, so without the watch its children would live on as orphans."""
    try:
        os.nice(CHILD_NICENESS)
    except OSError:  # not allowed here: run at the normal priority
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)  # the parent died: nothing to answer to, and nothing of ours to flush
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _whole(seconds: float) -> int:
    return max(1, math.ceil(seconds))
