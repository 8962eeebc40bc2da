"""Uploads (analysts): size limit (413), type checks, content-addressed server-made names, ingest by a
background worker (202, a job page with progress, then the report), one transaction per file, a report of
accepted and rejected rows, the layer cache cleared, the file removed once, 404 for any malformed id.
Runs on its own Gridtown copy so the shared fixture's counts stay as the other tests expect."""
from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import time
from contextlib import contextmanager

import pytest


PAYLOAD = '<img src=x onerror="window.__xss=1">'


@pytest.fixture(scope="module")
def up(tmp_path_factory, PASSWORDS, ROLES, sign_in):
    from argon2 import PasswordHasher
    from hotspots.bundle import install_bundle
    from hotspots.config import load_config
    from hotspots.users import UserStore
    from synthetic_bundle import build
    from web import create_app
    tmp = tmp_path_factory.mktemp("gridtown-uploads")
    b = build(tmp)
    config = load_config(b.config_path, env={}, data_dir=b.data_dir, instance_dir=b.instance_dir,
                         bundle=b.root / "bundle", max_upload_mb=0.05)
    install_bundle(config)
    from hotspots.ingest import ingest_paths
    ingest_paths(config, [b.root / "bundle" / "crime"])
    st = UserStore.from_config(config, PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    users = {n: st.add_user(n, PASSWORDS[n], ROLES[n]) for n in PASSWORDS}
    app = create_app(config, test_config={"TESTING": True, "WARM_UP": False})
    return {"config": config, "app": app, "users": users, "sign_in": sign_in}


def _client(up, who="ana"):
    c = up["sign_in"](up["app"].test_client(), up["users"][who])
    return c


def _token(c):
    return re.search(r'name="csrf_token" value="([^"]+)"', c.get("/upload").get_data(as_text=True)).group(1)


def _csv(rows):
    from synthetic_bundle import bng_to_lonlat, cell_centre
    head = ("Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,Crime type,"
            "Last outcome category,Context\n")
    out = [head]
    for cid, month, (i, j), loc, lon_override in rows:
        x, y = cell_centre(i, j)
        lon, lat = bng_to_lonlat(x, y)
        lon = lon_override if lon_override is not None else f"{lon:.6f}"
        out.append(f'{cid},{month},Test,Test,{lon},{lat:.6f},"{loc}",,,Violence and sexual offences,,\n')
    return "".join(out).encode()


def _post(c, data: bytes, name: str, fmt="auto", json_=False):
    tok = _token(c)
    return c.post("/upload", data={"csrf_token": tok, "format": fmt, "file": (io.BytesIO(data), name)},
                  content_type="multipart/form-data",
                  headers={"Accept": "application/json"} if json_ else {})


def _wait(c, url, json_=True, timeout=120.0):
    """Poll a job until it is over: JSON until its state is done or failed, HTML until it stops being the
    200 progress page (303 to the report, or the 422 error page)."""
    deadline = time.time() + timeout
    while True:
        r = c.get(url, headers={"Accept": "application/json"} if json_ else {})
        if r.status_code != 200 or json_ and r.get_json()["job"]["state"] in ("done", "failed"):
            return r
        assert time.time() < deadline, r.get_data(as_text=True)[:300]
        time.sleep(0.05)


def _upload(c, data: bytes, name: str, fmt="auto", json_=False):
    """POST, then (if it was queued: 202 + Location) follow the job until it is over."""
    r = _post(c, data, name, fmt, json_)
    if r.status_code != 202:
        return r
    assert r.headers["Location"].startswith("/uploads/jobs/")
    return _wait(c, r.headers["Location"], json_)


def _stored_files(up) -> list[str]:
    return sorted(p.name for p in (up["config"].instance_dir / "uploads").iterdir() if p.name != "uploads.jsonl")


@contextmanager
def _held(app):
    """Hold the app's upload worker before it ingests anything until the yielded event is set."""
    from web.uploads import worker
    w = worker(app)
    gate, real = threading.Event(), w.ingest

    def held(path, fmt, progress):
        assert gate.wait(60)
        return real(path, fmt, progress)
    w.ingest = held
    try:
        yield gate
    finally:
        gate.set()
        w.ingest = real


def test_upload_ingests_reports_rejects_and_clears_cache(up):
    c = _client(up)
    q = "/api/v1/layers/count?from=2024-05&to=2024-05&category=violent-crime"
    before = c.get(q).get_json()
    assert sum(r["count"] for r in before["rows"]) == 0  # and now cached
    rows = [(f"up{k}", "2024-05", (0, 0), "On or near " + PAYLOAD, None) for k in range(6)]
    rows += [("bad1", "2024-13", (0, 0), "x", None), ("bad2", "2024-05", (1, 1), "=cmd|' /C calc'!A0", "999")]
    data = _csv(rows)
    r = _post(c, data, "../../etc/passwd.csv")
    assert r.status_code == 202 and r.mimetype == "text/html"
    job_url = r.headers["Location"]
    state = c.get(job_url, headers={"Accept": "application/json"}).get_json()["job"]
    # stored under a server-made, content-addressed name, never the client's
    assert state["stored_as"] == hashlib.sha256(data).hexdigest() + ".csv" and state["file"] == "passwd.csv"
    r = _wait(c, job_url, json_=False)
    assert r.status_code == 303
    loc = r.headers["Location"]
    ingest_id = int(loc.rsplit("/", 1)[1])
    page = c.get(loc).get_data(as_text=True)
    assert 'id="r-accepted">6<' in page and 'id="r-rejected">2<' in page
    assert PAYLOAD not in page  # the raw row of a reject is shown as text
    assert "passwd.csv" in page and "../" not in page.split('id="r-file">')[1][:40]
    rep = c.get(loc, headers={"Accept": "application/json"}).get_json()
    assert rep["accepted"] == 6 and rep["rejected"] == 2
    assert {x["column"] for x in rep["rejects"]} >= {"Month"} or len(rep["rejects"]) == 2
    # the file is removed once ingested (the store keeps its rows, rejects and SHA-256); no client name on disk
    assert _stored_files(up) == []
    assert not (up["config"].instance_dir / "uploads" / "passwd.csv").exists()
    assert rep["sha256"] == hashlib.sha256(data).hexdigest()
    # the cache was cleared: the new month is there at once
    after = c.get(q).get_json()
    assert sum(r["count"] for r in after["rows"]) == 6
    # the location strings reach analysts as data (escaped by the page script), and CSV is formula-safe
    inc = c.get("/api/v1/incidents?from=2024-05&to=2024-05&format=csv").get_data(as_text=True)
    assert "=cmd" not in inc.replace("'=cmd", "")
    assert ingest_id > 0


def test_json_upload_and_json_answer(up):
    c = _client(up)
    recs = [{"category": "violent-crime", "month": "2024-06", "id": 900000 + k, "persistent_id": "",
             "location": {"latitude": "52.0", "longitude": "-2.0", "street": {"id": 1, "name": PAYLOAD}},
             "context": "", "outcome_status": None, "location_type": "Force", "location_subtype": ""}
            for k in range(2)]
    r = _upload(c, json.dumps(recs).encode(), "crimes.json", json_=True)
    assert r.status_code in (200, 422), r.get_data(as_text=True)
    body = r.get_json()
    if r.status_code == 200:
        assert body["ok"] and body["rows_read"] == 2 and body["job"]["state"] == "done"
    else:
        assert body["ok"] is False


@pytest.mark.parametrize("data,name,status,text", [
    (b"\x89PNG\r\n\x1a\n\x00\x00", "map.csv", 400, "binary"),
    (b"hello", "notes.txt", 400, "only .csv and .json"),
    (b"MZ\x90\x00", "evil.exe", 400, "only .csv and .json"),
    (b"[1,2,3]", "x.csv", 400, "header row"),
    (b"a,b\n1,2\n", "x.json", 400, "must hold JSON"),
    (b"", "x.csv", 400, "empty"),
    (b"Crime ID,Month\n1,2024-01\n", "x.csv", 422, "not ingested"),
])
def test_bad_files_refused_with_reason(up, data, name, status, text):
    c = _client(up)
    r = _upload(c, data, name, json_=True)
    assert r.status_code in (status, 400, 422), r.get_data(as_text=True)
    assert r.get_json()["ok"] is False
    html = _upload(c, data, name)
    assert html.status_code == r.status_code and html.mimetype == "text/html"
    if status == 400:
        assert text in r.get_json()["error"]


def test_too_large_is_413_json_and_html(up):
    c = _client(up)
    big = b"Crime ID,Month\n" + b"x" * 120_000
    r = _post(c, big, "big.csv", json_=True)
    assert r.status_code == 413 and r.get_json()["status"] == 413 and "too large" in r.get_json()["error"]
    r = _post(c, big, "big.csv")
    assert r.status_code == 413 and r.mimetype == "text/html" and "too large" in r.get_data(as_text=True)


def test_viewers_cannot_upload(up):
    c = _client(up, "vic")
    assert c.get("/upload").status_code == 403
    tok = re.search(r'name="csrf-token" content="([^"]+)"', c.get("/").get_data(as_text=True)).group(1)
    r = c.post("/upload", data={"csrf_token": tok, "file": (io.BytesIO(b"a,b\n"), "a.csv")},
               content_type="multipart/form-data", headers={"Accept": "application/json"})
    assert r.status_code == 403
    anon = up["app"].test_client()
    assert anon.post("/upload").status_code == 401


def test_upload_without_csrf_refused(up):
    c = _client(up)
    r = c.post("/upload", data={"file": (io.BytesIO(_csv([("z", "2024-07", (0, 0), "x", None)])), "a.csv")},
               content_type="multipart/form-data")
    assert r.status_code == 400 and "CSRF" in r.get_data(as_text=True)


def test_upload_is_queued_deduplicated_by_content_and_reports_progress(up):
    c = _client(up)
    data = _csv([(f"q{k}", "2024-08", (1, 2), "x", None) for k in range(4)])
    with _held(up["app"]) as gate:
        r = _post(c, data, "a.csv", json_=True)
        assert r.status_code == 202 and r.get_json()["ok"] and r.headers["Location"] == r.get_json()["url"]
        job = r.get_json()["job"]
        assert job["state"] in ("queued", "parsing") and job["rows_stored"] == 0
        # the same bytes again (another name) while queued: the same job and one file on disk
        again = _post(c, data, "copy-of-a.csv", json_=True)
        assert again.status_code == 202 and again.get_json()["job"]["id"] == job["id"]
        assert _stored_files(up) == [hashlib.sha256(data).hexdigest() + ".csv"]
        page = c.get(r.headers["Location"])  # the progress page, reloading itself
        assert page.status_code == 200 and 'id="job-state"' in page.get_data(as_text=True)
        assert 'http-equiv="refresh"' in page.get_data(as_text=True)
        assert "a.csv" in c.get("/upload").get_data(as_text=True)  # listed as being ingested
        gate.set()
        done = _wait(c, r.headers["Location"])
    body = done.get_json()
    assert done.status_code == 200 and body["job"]["state"] == "done"
    assert body["accepted"] == 4 and body["job"]["rows_stored"] == 4 and body["job"]["rows_read"] == 4
    assert body["job"]["file_removed"] and _stored_files(up) == []
    assert body["report_url"] == f"/uploads/{body['ingest_id']}"


def test_failed_job_says_why_and_removes_its_file(up):
    c = _client(up)
    r = _post(c, b"Crime ID,Month\n1,2024-01\n", "thin.csv", json_=True)
    assert r.status_code == 202
    done = _wait(c, r.headers["Location"])
    body = done.get_json()
    assert done.status_code == 422 and body["ok"] is False and "thin.csv was not ingested" in body["error"]
    assert body["job"]["state"] == "failed" and body["job"]["file_removed"] and _stored_files(up) == []
    html = c.get(r.headers["Location"])
    assert html.status_code == 422 and "was not ingested" in html.get_data(as_text=True)


def test_a_full_queue_answers_503_with_retry_after(up, monkeypatch):
    import web.upload_jobs as J
    monkeypatch.setattr(J, "MAX_QUEUED", 1)
    c = _client(up)
    with _held(up["app"]) as gate:
        first = _post(c, _csv([("f1", "2024-09", (2, 2), "x", None)]), "one.csv", json_=True)
        assert first.status_code == 202
        r = _post(c, _csv([("f2", "2024-09", (2, 2), "x", None)]), "two.csv", json_=True)
        assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0 and "waiting" in r.get_json()["error"]
        assert _stored_files(up) == [first.get_json()["job"]["stored_as"]]  # the refused one is not kept
        gate.set()
        assert _wait(c, first.headers["Location"]).get_json()["job"]["state"] == "done"


def test_files_left_by_a_crash_are_removed_when_the_worker_starts(up):
    from web import create_app
    folder = up["config"].instance_dir / "uploads"
    stray = [folder / ("ab" * 32 + ".csv"), folder / ".incoming-0123456789abcdef.part.json"]
    for p in stray:
        p.write_bytes(b"left by a killed server")
    keep = folder / "uploads.jsonl"
    app = create_app(up["config"], test_config={"TESTING": True, "WARM_UP": False})  # a restarted server
    c = up["sign_in"](app.test_client(), up["users"]["ana"])
    r = _upload(c, _csv([("s1", "2024-10", (3, 1), "x", None)]), "s.csv", json_=True)
    assert r.status_code == 200 and r.get_json()["accepted"] == 1
    assert not any(p.exists() for p in stray) and keep.exists() and _stored_files(up) == []


def test_jobs_are_private_to_their_uploader(up):
    from argon2 import PasswordHasher
    from hotspots.users import UserStore
    st = UserStore.from_config(up["config"], PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    other = st.get_user("ann2") or st.add_user("ann2", "second-analyst-pw", "analyst")
    c = _client(up)
    with _held(up["app"]) as gate:
        r = _post(c, _csv([("p1", "2024-11", (0, 3), "x", None)]), "mine.csv", json_=True)
        url = r.headers["Location"]
        assert up["sign_in"](up["app"].test_client(), other).get(url).status_code == 404
        assert _client(up, "root").get(url, headers={"Accept": "application/json"}).status_code == 200
        assert _client(up, "vic").get(url).status_code == 403
        gate.set()
        _wait(c, url)


BAD_IDS = ["99999999999999999999", "18446744073709551616", "9223372036854775808", "-1", "0", "007", "abc",
           "1.0", "1e3", "%201", "1%00", "%00", "%EF%BC%91%EF%BC%92", "%F0%9F%92%A5", "..%2f..%2fusers.db",
           "1;DROP", "123456789", "x" * 300]


@pytest.mark.parametrize("ident", BAD_IDS)
def test_malformed_or_unknown_ids_are_404_never_500(up, ident):
    c = _client(up)
    for prefix in ("/uploads/", "/uploads/jobs/"):
        for headers in ({}, {"Accept": "application/json"}):
            r = c.get(prefix + ident, headers=headers)
            assert r.status_code == 404, (prefix + ident, r.status_code, r.get_data(as_text=True)[:200])
            assert "Traceback" not in r.get_data(as_text=True)
