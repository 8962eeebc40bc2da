"""Fault: the server restarts cleanly with its state. A real `hotspots serve` over a synthetic bundle:
sign in, upload incidents, read state; kill it (SIGTERM, then SIGKILL in a second case); start it again on
the same instance folder: same users, same data, same secret key and the same server-side sessions, so
the old session cookie still works; after signing out, a copy of it does not, before or after a restart."""
from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("hotspots")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "hotspots.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, env: dict, log: Path):
        self.env, self.log_path = env, log
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = _free_port()  # a fresh port: the killed server's may still be held by the kernel
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(_cli() + ["serve", "--host", "127.0.0.1", "--port", str(self.port),
                                               "--no-warm-up", "--threads", "2"],
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                raise AssertionError(f"server exited with {self.proc.returncode}:\n" + self.log_path.read_text())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("server did not start:\n" + self.log_path.read_text())

    def stop(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _opener(jar):
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))


def _get(op, url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with op.open(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _token(op, url):
    status, body = _get(op, url)
    return re.search(rb'name="csrf_token" value="([^"]+)"', body).group(1).decode()


def _multipart(fields: dict, files: dict) -> tuple[bytes, str]:
    b = uuid.uuid4().hex
    out = []
    for k, v in fields.items():
        out.append(f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    for k, (name, data) in files.items():
        out.append(f'--{b}\r\nContent-Disposition: form-data; name="{k}"; filename="{name}"\r\n'
                   f"Content-Type: text/csv\r\n\r\n".encode() + data + b"\r\n")
    out.append(f"--{b}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={b}"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from synthetic_bundle import build
    tmp = tmp_path_factory.mktemp("restart")
    b = build(tmp)
    env = {**os.environ, "HOTSPOTS_CONFIG": str(b.config_path), "HOTSPOTS_DATA_DIR": str(b.data_dir),
           "HOTSPOTS_INSTANCE_DIR": str(b.instance_dir), "HOTSPOTS_BUNDLE": str(b.root / "bundle")}
    for k in ("HOTSPOTS_PUBLIC", "HOTSPOTS_SECRET_KEY"):
        env.pop(k, None)
    for cmd in (["data", "install", str(b.root / "bundle")], ["ingest", str(b.root / "bundle" / "crime")]):
        r = subprocess.run(_cli() + cmd, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    r = subprocess.run(_cli() + ["users", "add", "ana", "--role", "analyst", "--password-stdin"], env=env,
                       input="restart-password-1\n", capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return {"env": env, "bundle": b, "tmp": tmp}


def _csv_rows(tag: str, n: int) -> bytes:
    from synthetic_bundle import cell_centre, police_csv
    x, y = cell_centre(2, 2)
    return police_csv([(f"{tag}{k}", "2024-04", x + k, y, "Violence and sexual offences") for k in range(n)]).encode()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_restart_keeps_users_data_and_sessions(site, sig):
    srv = Server(site["env"], site["tmp"] / f"server-{sig.name}.log")
    srv.start()
    jar = http.cookiejar.CookieJar()
    op = _opener(jar)
    try:
        tok = _token(op, srv.url + "/login")
        data = urllib.parse.urlencode({"username": "ana", "password": "restart-password-1", "csrf_token": tok})
        req = urllib.request.Request(srv.url + "/login", data=data.encode(), method="POST")
        with op.open(req, timeout=60) as r:
            assert r.status == 200 and r.url.rstrip("/") == srv.url  # redirected to the map
        status, body = _get(op, srv.url + "/api/v1/me")
        assert status == 200 and json.loads(body)["username"] == "ana"
        # upload: state written by the web process
        tok = _token(op, srv.url + "/upload")
        payload, ctype = _multipart({"csrf_token": tok, "format": "auto"},
                                    {"file": ("more.csv", _csv_rows(sig.name, 3))})
        req = urllib.request.Request(srv.url + "/upload", data=payload, method="POST",
                                     headers={"Content-Type": ctype, "Accept": "application/json"})
        with op.open(req, timeout=120) as r:
            assert r.status == 202
            job_url = srv.url + json.loads(r.read())["url"]
        deadline = time.time() + 120
        while True:  # the worker ingests it; the job says when
            status, body = _get(op, job_url, {"Accept": "application/json"})
            job = json.loads(body)
            if job.get("job", {}).get("state") in ("done", "failed") or status != 200:
                break
            assert time.time() < deadline, body
            time.sleep(0.1)
        assert status == 200 and job["accepted"] == 3 and job["job"]["file_removed"], body
        q = "/api/v1/layers/count?from=2024-04&to=2024-04&category=violent-crime"
        status, body = _get(op, srv.url + q)
        before_counts = {r["code"]: r["count"] for r in json.loads(body)["rows"]}
        assert sum(before_counts.values()) >= 3
        key_before = (site["bundle"].instance_dir / "secret_key").read_text()
    finally:
        srv.stop(sig)
    assert srv.proc.returncode != 0 or sig == signal.SIGTERM
    srv.start()  # same instance folder, new process
    try:
        status, body = _get(op, srv.url + "/api/v1/me")
        assert status == 200, body  # the old session cookie is still valid: same secret key and user stamp
        assert json.loads(body)["username"] == "ana"
        status, body = _get(op, srv.url + q)
        assert status == 200 and {r["code"]: r["count"] for r in json.loads(body)["rows"]} == before_counts
        assert (site["bundle"].instance_dir / "secret_key").read_text() == key_before
        r = subprocess.run(_cli() + ["users", "list"], env=site["env"], capture_output=True, text=True, timeout=60)
        assert "ana" in r.stdout and "analyst" in r.stdout
        # a fresh client without the cookie is still asked to sign in (public mode stays off)
        status, _ = _get(_opener(http.cookiejar.CookieJar()), srv.url + "/api/v1/me")
        assert status == 401
        # sign out; a copy of the cookie taken before is refused now and after another restart
        copy = _opener(_copy_jar(jar))
        assert _get(copy, srv.url + "/api/v1/me")[0] == 200
        tok = _token(op, srv.url + "/upload")
        req = urllib.request.Request(srv.url + "/logout", data=urllib.parse.urlencode({"csrf_token": tok}).encode(),
                                     method="POST")
        with op.open(req, timeout=60) as r:
            assert r.status == 200
        assert _get(copy, srv.url + "/api/v1/me")[0] == 401
    finally:
        srv.stop(signal.SIGTERM)
    srv.start()
    try:
        assert _get(copy, srv.url + "/api/v1/me")[0] == 401
    finally:
        srv.stop(signal.SIGTERM)


def _copy_jar(jar: http.cookiejar.CookieJar) -> http.cookiejar.CookieJar:
    """Another client holding copies of ``jar``'s cookies (a cookie lifted from a shared computer)."""
    out = http.cookiejar.CookieJar()
    for c in jar:
        out.set_cookie(c)
    return out
