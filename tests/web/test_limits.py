"""web.limits.bounded and the app's analysis pool: who the client is, 429/503 answers with Retry-After in
the JSON envelope, audiences kept apart, and the [server] analysis_* keys (file and environment).

A tiny test blueprint stands in for the API routes the lead wires (``bounded`` around every uncached
analysis); its jobs block on events, so the tests check states, never durations."""
from __future__ import annotations

import threading
import time

import pytest
from flask import Blueprint, current_app, jsonify

from hotspots.config import load_config
from hotspots.errors import ConfigError

SETTLE_S = 10.0

#: per test: name -> threading.Event released by the test (the blueprint's jobs wait on them)
GATES: dict[str, threading.Event] = {}
CALLS: list[str] = []


def _gated(name: str) -> str:
    CALLS.append(name)
    assert GATES.setdefault(name, threading.Event()).wait(SETTLE_S)
    return current_app.config["HOTSPOTS"].area_name  # runs in an app context, outside the request


def _blueprint() -> Blueprint:
    bp = Blueprint("limits_test", __name__, url_prefix="/api/v1/limits-test")

    @bp.get("/job/<name>")
    def job(name: str):
        from web.limits import bounded
        return jsonify(ok=True, area=bounded(("test", name), lambda: _gated(name)))
    return bp


@pytest.fixture
def limited_app(gridtown_app_config, users):
    from web import create_app
    config = gridtown_app_config.with_overrides(public_mode=True, analysis_workers=1, analysis_queue=1,
                                                analysis_per_client=1, analysis_budget_s=SETTLE_S,
                                                analysis_processes=False)  # the test jobs are closures
    app = create_app(config, test_config={"TESTING": True, "WARM_UP": False})
    app.register_blueprint(_blueprint())
    GATES.clear()
    CALLS.clear()
    yield app
    for gate in GATES.values():
        gate.set()
    app.extensions["hotspots_pool"].close(timeout=SETTLE_S)


def wait_until(cond, what: str) -> None:
    deadline = time.monotonic() + SETTLE_S
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        time.sleep(0.005)


def get_in_thread(app, path: str, addr: str) -> dict:
    box: dict = {}

    def go() -> None:
        resp = app.test_client().get(path, environ_base={"REMOTE_ADDR": addr})
        box.update(status=resp.status_code, json=resp.get_json(), headers=dict(resp.headers))
    box["thread"] = threading.Thread(target=go, daemon=True)
    box["thread"].start()
    return box


def test_create_app_sizes_the_pool_from_the_config(limited_app):
    pool = limited_app.extensions["hotspots_pool"]
    assert (pool.workers, pool.queue_size, pool.per_client, pool.budget_s) == (1, 1, 1, SETTLE_S)
    assert pool.snapshot()["threads"] == 0  # nothing runs until an analysis is asked for


def test_a_second_job_from_one_address_is_429_with_retry_after_and_another_address_gets_in(limited_app):
    pool = limited_app.extensions["hotspots_pool"]
    first = get_in_thread(limited_app, "/api/v1/limits-test/job/a", "10.9.0.1")
    wait_until(lambda: pool.snapshot()["per_client"].get("10.9.0.1") == 1, "the first job is held")
    resp = limited_app.test_client().get("/api/v1/limits-test/job/b", environ_base={"REMOTE_ADDR": "10.9.0.1"})
    assert resp.status_code == 429
    body = resp.get_json()
    assert body["ok"] is False and body["status"] == 429 and "limit is 1" in body["error"]
    assert int(resp.headers["Retry-After"]) == body["retry_after"] >= 1
    assert "b" not in CALLS  # refused before anything ran
    other = get_in_thread(limited_app, "/api/v1/limits-test/job/c", "10.9.0.2")
    wait_until(lambda: pool.snapshot()["per_client"].get("10.9.0.2") == 1, "another address is queued")
    GATES.setdefault("a", threading.Event()).set()
    GATES.setdefault("c", threading.Event()).set()
    for box in (first, other):
        box["thread"].join(SETTLE_S)
        assert box["status"] == 200 and box["json"]["area"] == limited_app.config["HOTSPOTS"].area_name


def test_over_budget_is_503_with_retry_after_and_the_retry_is_answered(gridtown_app_config, users):
    from web import create_app
    config = gridtown_app_config.with_overrides(public_mode=True, analysis_budget_s=0.2, analysis_processes=False)
    app = create_app(config, test_config={"TESTING": True, "WARM_UP": False})
    app.register_blueprint(_blueprint())
    GATES.clear()
    client = app.test_client()
    resp = client.get("/api/v1/limits-test/job/slow", environ_base={"REMOTE_ADDR": "10.9.0.3"})
    assert resp.status_code == 503 and int(resp.headers["Retry-After"]) >= 1
    assert resp.get_json()["status"] == 503 and "goes on in the background" in resp.get_json()["error"]
    GATES["slow"].set()
    pool = app.extensions["hotspots_pool"]
    wait_until(lambda: pool.snapshot()["running"] == 0, "the job finished in the background")
    resp = client.get("/api/v1/limits-test/job/slow", environ_base={"REMOTE_ADDR": "10.9.0.3"})
    assert resp.status_code == 200 and "Retry-After" not in resp.headers
    pool.close(timeout=SETTLE_S)


def test_an_html_page_gets_the_retry_after_header_too(limited_app):
    pool = limited_app.extensions["hotspots_pool"]
    first = get_in_thread(limited_app, "/api/v1/limits-test/job/a", "10.9.0.4")
    wait_until(lambda: pool.snapshot()["per_client"].get("10.9.0.4") == 1, "the first job is held")
    with limited_app.test_request_context("/page", environ_base={"REMOTE_ADDR": "10.9.0.4"},
                                          headers={"Accept": "text/html"}):
        from flask import g

        from hotspots.jobs import TooBusy
        from hotspots.users import PUBLIC_VIEWER
        from web.limits import bounded
        g.user = PUBLIC_VIEWER
        with pytest.raises(TooBusy) as info:
            bounded(("test", "z"), lambda: "never")
        resp = limited_app.handle_user_exception(info.value)
    assert resp.status_code == 429 and resp.mimetype == "text/html"
    assert resp.headers["Retry-After"] == str(info.value.retry_after)
    GATES.setdefault("a", threading.Event()).set()
    first["thread"].join(SETTLE_S)


def test_signed_in_users_are_counted_by_name_and_audiences_do_not_share(limited_app, users):
    from flask import g

    from hotspots.users import PUBLIC_VIEWER
    from web.limits import audience, client_id
    with limited_app.test_request_context("/", environ_base={"REMOTE_ADDR": "10.9.0.5"}):
        g.user = users["ana"]
        assert (client_id(), audience()) == ("user:ana", "analyst")
        g.user = PUBLIC_VIEWER
        assert (client_id(), audience()) == ("10.9.0.5", "viewer")
    # an analyst and a viewer asking the same key at once: two jobs (the viewer never gets exact results)
    pool = limited_app.extensions["hotspots_pool"]
    seen: list = []

    def ask(user) -> None:
        with limited_app.test_request_context("/", environ_base={"REMOTE_ADDR": "10.9.0.6"}):
            from web.limits import bounded
            g.user = user
            seen.append(bounded(("same", "key"), lambda: _gated(f"for-{user.role}")))
    threads = [threading.Thread(target=ask, args=(u,), daemon=True) for u in (users["ana"], PUBLIC_VIEWER)]
    for t in threads:
        t.start()
    wait_until(lambda: pool.snapshot()["queued"] + pool.snapshot()["running"] == 2, "two separate jobs")
    for name in ("for-analyst", "for-viewer"):
        GATES.setdefault(name, threading.Event()).set()
    for t in threads:
        t.join(SETTLE_S)
    assert sorted(CALLS) == ["for-analyst", "for-viewer"] and len(seen) == 2


def test_with_processes_fn_runs_in_a_child_and_then_in_an_app_context_here(gridtown_app_config, users):
    import functools
    import os

    from flask import g

    from hotspots.users import PUBLIC_VIEWER
    from web import create_app
    from web.limits import bounded
    app = create_app(gridtown_app_config.with_overrides(analysis_processes=True),
                     test_config={"TESTING": True, "WARM_UP": False})
    assert app.extensions["hotspots_pool"].processes
    cache: dict = {}

    def store(pid: int) -> int:
        cache[("pid", current_app.config["HOTSPOTS"].area_name)] = pid  # an app context, in this process
        return pid
    try:
        with app.test_request_context("/", environ_base={"REMOTE_ADDR": "10.9.0.7"}):
            g.user = PUBLIC_VIEWER
            pid = bounded(("pid",), os.getpid, then=store)
        assert pid != os.getpid() and cache == {("pid", "Gridtown"): pid}
        with app.test_request_context("/", environ_base={"REMOTE_ADDR": "10.9.0.7"}):
            g.user = PUBLIC_VIEWER  # a closure cannot be pickled: it runs on a pool thread, in an app context
            here = bounded(("closure",), lambda: (os.getpid(), current_app.config["HOTSPOTS"].area_name))
        assert here == (os.getpid(), "Gridtown")
    finally:
        app.extensions["hotspots_pool"].close(timeout=SETTLE_S)


def test_pool_keys_from_the_file_and_the_environment(tmp_path, gridtown_app_config):
    text = gridtown_app_config.source.read_text(encoding="utf-8")
    assert "[server]" not in text
    path = tmp_path / "pool.toml"
    path.write_text(text + "\n[server]\nanalysis_workers = 2\nanalysis_budget_s = 7.5\n", encoding="utf-8")
    c = load_config(path, env={"HOTSPOTS_ANALYSIS_QUEUE": "9", "HOTSPOTS_ANALYSIS_PER_CLIENT": "3",
                               "HOTSPOTS_ANALYSIS_PROCESSES": "1"})
    assert (c.analysis_workers, c.analysis_queue, c.analysis_per_client, c.analysis_budget_s) == (2, 9, 3, 7.5)
    assert c.analysis_processes is True and load_config(path, env={}).analysis_processes is False
    with pytest.raises(ConfigError, match="HOTSPOTS_ANALYSIS_QUEUE must be a number"):
        load_config(path, env={"HOTSPOTS_ANALYSIS_QUEUE": "many"})
    with pytest.raises(ConfigError, match="analysis_budget_s above 0"):
        load_config(path, env={"HOTSPOTS_ANALYSIS_BUDGET_S": "0"})
