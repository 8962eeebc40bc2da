"""Bounded work per client for the web: ``bounded(key, fn)`` runs an uncached analysis on the app's
``hotspots.jobs.AnalysisPool`` (``app.extensions["hotspots_pool"]``, made by ``create_app`` from the
``[server] analysis_*`` keys) on behalf of the client asking.

Why here: the pool knows nothing of requests. This module decides who the client is (``user:<name>`` for a
signed-in account, else the remote address, which is the real client's address behind a ``trusted_proxy``)
and keeps results of different audiences apart: the role is part of the pool key, so a viewer never shares
an analyst's unsuppressed job. ``web.create_app`` turns ``TooBusy`` (429) and ``StillRunning`` (503) into
the JSON envelope with a ``Retry-After`` header.

Use it on a cache miss only, and resolve everything request-dependent first: ``fn`` runs on a pool thread
inside an app context but outside the request (no ``request``, ``g`` or session there)::

    config, p, show_all = get_config(), _params("gistar"), full()
    r = bounded(("layer", p.cache_key(), show_all), lambda: L.layer_data(config, p, full=show_all))

A job that outlives the budget goes on; its function must leave the result where a retry finds it (the
``web.layers`` cache does this for every layer).
"""
from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

from flask import current_app, request

from hotspots.jobs import AnalysisPool
from hotspots.users import PUBLIC_VIEWER

from .auth import current_user

T = TypeVar("T")


def make_pool(config) -> AnalysisPool:
    """The pool sized by ``[server] analysis_workers/_queue/_per_client/_budget_s``."""
    return AnalysisPool(workers=config.analysis_workers, queue=config.analysis_queue,
                        per_client=config.analysis_per_client, budget_s=config.analysis_budget_s)


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


def bounded(key: Hashable, fn: Callable[[], T]) -> T:
    """``fn()`` on the analysis pool for this request's client; identical ``key``s in flight (for the
    same role) are computed once.

    Raises ``hotspots.jobs.TooBusy`` (429) when the client has its share of jobs or the queue is full,
    ``hotspots.jobs.StillRunning`` (503) after ``analysis_budget_s``, or whatever ``fn`` raised.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def in_app_context() -> T:
        with app.app_context():
            return fn()

    return pool().run(client_id(), (audience(), key), in_app_context)
