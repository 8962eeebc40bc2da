"""Bounded work per client for the web: ``bounded(key, fn)`` runs an uncached analysis on the app's
``hotspots.jobs.AnalysisPool`` (``app.extensions["hotspots_pool"]``, made by ``create_app`` from the
``[server] analysis_*`` keys) on behalf of the client asking.

Why here: the pool knows nothing of requests. This module decides who the client is (``user:<name>`` for a
signed-in account, else the remote address, which is the real client's address behind a ``trusted_proxy``)
and keeps results of different audiences apart: the role is part of the pool key, so a viewer never shares
an analyst's unsuppressed job. ``web.create_app`` turns ``TooBusy`` (429) and ``StillRunning`` (503) into
the JSON envelope with a ``Retry-After`` header.

Use it on a cache miss only, and resolve everything request-dependent first: ``fn`` runs outside the
request (no ``request``, ``g`` or session there). With ``[server] analysis_processes = true`` a picklable ``fn`` (a module-level function, or ``functools.partial`` of one with picklable arguments)
runs in the analysis child process, and ``then(result)`` runs back in the server, in an app context, to
store the result where a retry finds it (a job that outlives the budget goes on, and its ``then`` still
runs)::

    fn = functools.partial(pipeline.build_layer, config, req, aud)
    layer = bounded(key, fn, then=lambda value: store_layer(config, req, aud, value))

A closure (``lambda: pipeline.build_layer(config, req, aud)``) cannot be pickled: it runs on a pool thread
inside an app context, and its own caching applies; that works, at the cost measured in
docs/benchmarks.md ("Hostile load": threads against a child process).
"""
from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from flask import current_app, request

from hotspots.jobs import AnalysisPool
from hotspots.users import PUBLIC_VIEWER

from .auth import current_user

T = TypeVar("T")

logger = logging.getLogger("web")


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

    in_child = the_pool.processes and picklable(fn)  # a child process has no app, and needs a picklable fn
    return the_pool.run(client_id(), (audience(), key), fn if in_child else in_app(fn),
                        then=in_app(then) if then is not None else None, local=not in_child)


def picklable(fn: Callable[[], Any]) -> bool:
    """Can ``fn`` go to the analysis process? A closure cannot: it runs on a pool thread instead (it
    works, but its kernels hold the server's GIL: docs/deployment.md), logged once per app."""
    try:
        pickle.dumps(fn)
        return True
    except (pickle.PicklingError, AttributeError, TypeError):
        ext = current_app.extensions
        if not ext.get("hotspots_pool_local_logged"):
            ext["hotspots_pool_local_logged"] = True
            logger.info("analysis %r cannot be pickled: it runs on a pool thread, not in the analysis process "
                        "(pass a module-level function or functools.partial of one)", fn)
        return False
