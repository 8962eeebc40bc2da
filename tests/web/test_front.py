"""web.front: anonymous views answered from the memo (never a signed-in user's, never across a data
change), and an address told to wait refused at the door until its Retry-After is over."""
from __future__ import annotations

import pytest

LAYER = "/api/v1/layers/count?category=violent-crime&from=2024-01&to=2024-01"


def _front(app):
    return app.extensions["hotspots_front"]


@pytest.fixture
def counting(public_app, monkeypatch):
    """The Flask app under the front, counting the requests that reach it."""
    front = _front(public_app)
    # the store's first reader creates its WAL file, which is part of the data version: open it first
    public_app.test_client().get(LAYER)
    front._memo.clear()
    calls: list[str] = []
    inner = front.app

    def app(environ, start_response):
        calls.append(environ["PATH_INFO"])
        return inner(environ, start_response)
    monkeypatch.setattr(front, "app", app)
    return calls


def test_an_anonymous_view_is_answered_from_the_memo_the_second_time(public_client, counting):
    first = public_client.get(LAYER)
    second = public_client.get(LAYER)
    assert first.status_code == second.status_code == 200
    assert second.data == first.data and second.headers["Content-Type"] == first.headers["Content-Type"]
    assert counting == ["/api/v1/layers/count"]  # the second never reached Flask
    assert second.headers["X-Frame-Options"] == "DENY"  # the security headers come with it
    gz = public_client.get(LAYER, headers={"Accept-Encoding": "gzip"})
    assert gz.headers.get("Content-Encoding") == "gzip" and len(counting) == 2  # its own entry


def test_signed_in_answers_are_never_kept_or_served_from_the_memo(public_app, users, sign_in, counting):
    analyst = public_app.test_client()
    sign_in(analyst, users["ana"])
    exact = analyst.get(LAYER).get_json()
    analyst.get(LAYER)
    assert counting == ["/api/v1/layers/count"] * 2 and _front(public_app).memo_size() == 0
    public = public_app.test_client().get(LAYER).get_json()
    assert public["rows"] != exact["rows"]  # the visitor gets the protected layer, not the analyst's


def test_a_data_change_makes_the_memo_unreachable(public_client, counting):
    from hotspots.cache import note_write
    public_client.get(LAYER)
    public_client.get(LAYER)
    note_write()  # what an ingest by this process does
    public_client.get(LAYER)
    assert counting == ["/api/v1/layers/count"] * 2


def test_pages_and_answers_that_set_a_cookie_are_not_kept(public_client, counting):
    public_client.get("/")
    public_client.get("/")
    assert counting.count("/") == 2
    assert not any(k[2] == "/" for k in _front(public_client.application)._memo)


def test_an_address_told_to_wait_is_refused_at_the_door_until_its_retry_after(public_app, counting, monkeypatch):
    from web import front as F
    fr = _front(public_app)
    clock = [1000.0]
    monkeypatch.setattr(F.time, "monotonic", lambda: clock[0])
    # what Flask's answer to a client over its analysis share looks like
    fr._note_refusal("10.7.0.1", [("Retry-After", "5"), ("Content-Type", "application/json")])
    c = public_app.test_client()
    other = "/api/v1/layers/gistar?category=burglary&from=2024-02&to=2024-02"
    r = c.get(other, environ_base={"REMOTE_ADDR": "10.7.0.1"})
    assert r.status_code == 429 and r.headers["Retry-After"] == "5" and r.get_json()["retry_after"] == 5
    assert r.get_json()["ok"] is False and "retry after 5 s" in r.get_json()["error"]
    assert r.headers["X-Content-Type-Options"] == "nosniff" and "default-src" in r.headers["Content-Security-Policy"]
    assert counting == []  # refused before Flask
    # cheap views and other addresses are not held back
    assert c.get("/api/v1/periods", environ_base={"REMOTE_ADDR": "10.7.0.1"}).status_code == 200
    assert c.get(other, environ_base={"REMOTE_ADDR": "10.7.0.2"}).status_code == 200
    clock[0] += 3
    third = "/api/v1/layers/lisa?category=violent-crime&from=2024-03&to=2024-03"
    assert c.get(third, environ_base={"REMOTE_ADDR": "10.7.0.1"}).headers["Retry-After"] == "2"
    clock[0] += 2.01
    assert c.get(third, environ_base={"REMOTE_ADDR": "10.7.0.1"}).status_code == 200


def test_a_flask_429_starts_the_wait_for_that_address(public_app, monkeypatch):
    """The refusal the pool gives (TooBusy, 429 + Retry-After) is what the front remembers."""
    from hotspots import pipeline
    from hotspots.jobs import TooBusy
    fr = _front(public_app)

    def busy(*a, **k):
        raise TooBusy("the analysis queue is full", retry_after=7)
    monkeypatch.setattr(pipeline, "is_cached", lambda *a, **k: False)
    monkeypatch.setattr("web.limits.bounded", busy)
    c = public_app.test_client()
    r = c.get("/api/v1/layers/lisa?category=burglary", environ_base={"REMOTE_ADDR": "10.7.0.3"})
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    assert 1 <= fr._still_refused("10.7.0.3") <= 7 and fr._still_refused("10.7.0.4") == 0
