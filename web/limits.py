"""Bounded work per client for the web: ``bounded(key, fn)`` runs an uncached analysis on the app's
``hotspots.jobs.AnalysisPool`` (``app.extensions["hotspots_pool"]``, made by ``create_app`` from the
``[server] analysis_*`` keys) on behalf of the client asking.

Why here: the pool knows nothing of requests. This module decides who the client is (``user:<name>`` for a
signed-in account, else the remote address, which is the real client's address behind a ``trusted_proxy``)
and keeps results of different audiences apart: the role is part of the pool key, so a viewer never shares
an analyst's unsuppressed job. ``web.create_app`` turns ``TooBusy`` (429) and ``StillRunning`` (503) into
the JSON envelope with a ``Retry-After`` header.

Use it on a cache miss only, and resolve everything request-dependent first: ``fn`` runs outside the
request (no ``request``, ``g`` or session there). With ``[server] analysis_processes = true`` (the default)
``fn`` runs in a child process, so it must be picklable: a module-level function, or ``functools.partial``
of one with picklable arguments (``Config`` and ``LayerParams`` are); ``then(result)`` runs back in the
server, in an app context, and stores the result where a retry finds it (a job that outlives the budget
goes on, and its ``then`` still runs)::

    key = ("analysis", ...)                       # the key web.layers.analysis caches under
    table = bounded(key, functools.partial(_run_analysis, config, p),
                    then=lambda value: store(config, key, value))

With ``analysis_processes = false`` ``fn`` runs on a pool thread inside an app context (closures are
fine), at the cost measured in docs/benchmarks.md.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from flask import current_app, request

from hotspots.jobs import AnalysisPool
from hotspots.users import PUBLIC_VIEWER

from .auth import current_user

T = TypeVar("T")


def make_pool(config) -> AnalysisPool:
    """The pool sized by ``[server] analysis_workers/_queue/_per_client/_budget_s/_processes``."""
    return AnalysisPool(workers=config.analysis_workers, queue=config.analysis_queue,
                        per_client=config.analysis_per_client, budget_s=config.analysis_budget_s,
                        processes=config.analysis_processes)


def pool() -> AnalysisPool:
    return current_app.extensions["hotspots_pool"]


def client_id() -> str:
    """``user:<name>`` for a signed-in account, else the client's address (one budget per address)."""
    user = current_user()
    if user is not None and user is not PUBLIC_VIEWER:
        return f"user:{user.username}"
    return request.remote_addr or "unknown"


def audience() -> str:
    user = current_user()
    return user.role if user is not None else "anonymous"


def bounded(key: Hashable, fn: Callable[[], Any], then: Callable[[Any], T] | None = None) -> T:
    """``fn()`` on the analysis pool for this request's client, then ``then(result)`` if given (in this
    process, in an app context); identical ``key``s in flight (for the same role) are computed once.

    Raises ``hotspots.jobs.TooBusy`` (429) when the client has its share of jobs or the queue is full,
    ``hotspots.jobs.StillRunning`` (503) after ``analysis_budget_s``, or whatever ``fn`` or ``then`` raised.
    """
    the_pool = pool()
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def in_app(f: Callable[..., Any]) -> Callable[..., Any]:
        def run(*a: Any) -> Any:
            with app.app_context():
                return f(*a)
        return run

    work = fn if the_pool.processes else in_app(fn)  # a child process has no app (and needs a picklable fn)
    return the_pool.run(client_id(), (audience(), key), work, then=in_app(then) if then is not None else None)
