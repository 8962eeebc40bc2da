"""Uploads (analysts): size limit (413), type checks, server-made names, one transaction per file, a
report of accepted and rejected rows, the layer cache cleared. Runs on its own Gridtown copy so the
shared fixture's counts stay as the other tests expect."""
from __future__ import annotations

import io
import json
import re

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


def test_upload_ingests_reports_rejects_and_clears_cache(up):
    c = _client(up)
    q = "/api/v1/layers/count?from=2024-05&to=2024-05&category=violent-crime"
    before = c.get(q).get_json()
    assert sum(r["count"] for r in before["rows"]) == 0  # and now cached
    rows = [(f"up{k}", "2024-05", (0, 0), "On or near " + PAYLOAD, None) for k in range(6)]
    rows += [("bad1", "2024-13", (0, 0), "x", None), ("bad2", "2024-05", (1, 1), "=cmd|' /C calc'!A0", "999")]
    r = _post(c, _csv(rows), "../../etc/passwd.csv")
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
    # stored under a server-made name, never the client's
    files = [p.name for p in (up["config"].instance_dir / "uploads").iterdir() if p.suffix == ".csv"]
    assert files and all(re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{16}\.csv", f) for f in files)
    assert not (up["config"].instance_dir / "uploads" / "passwd.csv").exists()
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
    r = _post(c, json.dumps(recs).encode(), "crimes.json", json_=True)
    assert r.status_code in (201, 422), r.get_data(as_text=True)
    body = r.get_json()
    if r.status_code == 201:
        assert body["ok"] and body["rows_read"] == 2
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
    r = _post(c, data, name, json_=True)
    assert r.status_code in (status, 400, 422), r.get_data(as_text=True)
    assert r.get_json()["ok"] is False
    html = _post(c, data, name)
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
