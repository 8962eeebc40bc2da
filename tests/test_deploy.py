"""hotspots.deploy: the nginx configuration, the waitress settings, the `hotspots deploy` commands, and the
production front under a slow-header attack (a real nginx and a real `hotspots serve`, loopback only)."""
from __future__ import annotations

import http.client
import os
import select
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hotspots.cli import cli
from hotspots.config import load_config
from hotspots.deploy import (NGINX_TEMPLATE, DeployError, NginxSettings, render_nginx_config, waitress_options,
                             write_nginx_config)
from synthetic_bundle import build, cell_centre, police_csv


def _nginx() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)),
                                         None)


@pytest.fixture(scope="module")
def gridtown(tmp_path_factory):
    b = build(tmp_path_factory.mktemp("deploy"))
    config = load_config(b.config_path, env={}, data_dir=b.data_dir, instance_dir=b.instance_dir,
                         bundle=b.root / "bundle")
    return b, config


# -- the configuration ------------------------------------------------------------------------------------

def test_the_rendered_configuration_carries_every_limit(gridtown):
    _, config = gridtown
    s = NginxSettings.for_config(config, server_name="hotspots.example.org", upstream_port=5055,
                                 connections_per_address=12, requests_per_second=7, burst=30, header_timeout_s=6)
    text = render_nginx_config(s)
    assert "{{" not in text and "}}" not in text
    for line in ("server_name hotspots.example.org;", "server 127.0.0.1:5055;", "client_header_timeout 6s;",
                 "client_body_timeout 10s;", "limit_conn hotspots_conn 12;", "rate=7r/s;",
                 "limit_req zone=hotspots_req burst=30 nodelay;", "proxy_request_buffering on;",
                 "proxy_set_header X-Forwarded-For $remote_addr;", "proxy_set_header X-Forwarded-Proto $scheme;",
                 "proxy_set_header X-Forwarded-Host $http_host;", "listen 443 ssl;", "listen 80;",
                 "return 301 https://$host$request_uri;",
                 f"client_max_body_size {int(config.max_upload_mb) + 1}m;",
                 f"proxy_read_timeout {int(config.analysis_budget_s) + 10}s;"):
        assert line in text, line
    other = render_nginx_config(NginxSettings(listen_address="127.0.0.1", https_port=8443, http_port=8080))
    assert "listen 127.0.0.1:8443 ssl;" in other and "return 301 https://$host:8443$request_uri;" in other


@pytest.mark.parametrize("kw, column", [
    ({"server_name": "evil.org; include /etc/passwd"}, "server_name"),
    ({"server_name": "a b"}, "server_name"),
    ({"upstream_host": "x}"}, "upstream_host"),
    ({"tls_cert": "/tmp/my cert.pem"}, "tls_cert"),
    ({"tls_key": "/tmp/$k.pem"}, "tls_key"),
    ({"https_port": 0}, "https_port"),
    ({"http_port": 443}, "http_port"),
    ({"burst": 0}, "burst"),
])
def test_settings_that_would_become_nginx_syntax_are_refused(kw, column):
    with pytest.raises(DeployError) as info:
        render_nginx_config(NginxSettings(**kw))
    assert info.value.column == column


def test_an_unknown_placeholder_in_the_template_is_an_error(tmp_path):
    bad = tmp_path / "t.conf"
    bad.write_text(NGINX_TEMPLATE.read_text(encoding="utf-8") + "\n# {{ nope }}\n", encoding="utf-8")
    with pytest.raises(DeployError, match="unknown placeholder"):
        render_nginx_config(NginxSettings(), template=bad)


def test_relative_certificate_paths_are_written_absolute_from_the_output_folder(tmp_path):
    out = write_nginx_config(tmp_path / "conf" / "nginx.conf", NginxSettings(tls_cert="../tls/a.crt"))
    text = out.read_text(encoding="utf-8")
    assert f"ssl_certificate {tmp_path / 'tls' / 'a.crt'};" in text
    assert f"ssl_certificate_key {tmp_path / 'conf' / 'tls' / 'hotspots.key'};" in text


def test_the_cli_writes_the_configuration_and_refuses_a_bad_name_with_one_line(gridtown, tmp_path):
    b, _ = gridtown
    env = {"HOTSPOTS_CONFIG": str(b.config_path)}
    out = tmp_path / "nginx.conf"
    r = CliRunner().invoke(cli, ["deploy", "nginx-config", "--out", str(out), "--server-name", "maps.example.org",
                                 "--upstream-port", "5999"], env=env)
    assert r.exit_code == 0, r.output
    assert "server 127.0.0.1:5999;" in out.read_text(encoding="utf-8")
    r = CliRunner().invoke(cli, ["deploy", "nginx-config", "--out", str(tmp_path / "x.conf"),
                                 "--server-name", "a;b"], env=env)
    assert r.exit_code == 1 and "server name 'a;b' is not a host name" in r.output
    assert not (tmp_path / "x.conf").exists()


@pytest.mark.skipif(_nginx() is None, reason="the nginx binary is not installed (make test installs it)")
def test_nginx_accepts_the_rendered_configuration(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    r = CliRunner().invoke(cli, ["deploy", "self-signed-cert", "--cert", str(tmp_path / "tls" / "hotspots.crt"),
                                 "--key", str(tmp_path / "tls" / "hotspots.key")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "tls" / "hotspots.key").stat().st_mode & 0o077 == 0
    conf = write_nginx_config(tmp_path / "nginx.conf", NginxSettings(listen_address="127.0.0.1", https_port=18443,
                                                                     http_port=18080))
    t = subprocess.run([_nginx(), "-t", "-p", f"{tmp_path}/", "-c", str(conf), "-e", str(tmp_path / "e.log")],
                       capture_output=True, text=True, timeout=60)
    assert t.returncode == 0, t.stderr


# -- waitress ---------------------------------------------------------------------------------------------

def test_waitress_options_are_valid_waitress_settings(gridtown):
    from waitress.adjustments import Adjustments
    _, config = gridtown
    opts = waitress_options(config, threads=6)
    adj = Adjustments(**opts)  # waitress itself rejects unknown names and bad values
    assert (adj.threads, adj.connection_limit, adj.channel_timeout, adj.cleanup_interval) == (6, 200, 30, 10)
    assert adj.max_request_body_size == int(config.max_upload_mb * (1 << 20)) + (1 << 20)
    assert adj.asyncore_use_poll is True and adj.clear_untrusted_proxy_headers is True
    assert waitress_options(config.with_overrides(trusted_proxy=True))["clear_untrusted_proxy_headers"] is False
    with pytest.raises(DeployError):
        waitress_options(config, threads=0)


def test_serve_runs_waitress_with_these_options_and_keeps_two_threads_free_of_analyses(gridtown, monkeypatch):
    import waitress

    from hotspots.bundle import install_bundle
    b, config = gridtown
    install_bundle(config)
    seen: dict = {}
    monkeypatch.setattr(waitress, "serve", lambda app, **kw: seen.update(app=app, **kw))
    env = {"HOTSPOTS_CONFIG": str(b.config_path), "HOTSPOTS_DATA_DIR": str(b.data_dir),
           "HOTSPOTS_INSTANCE_DIR": str(b.instance_dir), "HOTSPOTS_PUBLIC": "1"}
    r = CliRunner().invoke(cli, ["serve", "--port", "5999", "--threads", "6", "--no-warm-up"], env=env)
    assert r.exit_code == 0, r.output
    app = seen.pop("app")
    assert seen == {"host": "127.0.0.1", "port": 5999, **waitress_options(config, 6)}
    assert app.extensions["hotspots_pool"].max_waiters == 4
    r = CliRunner().invoke(cli, ["serve", "--threads", "2", "--no-warm-up"], env=env)
    assert r.exit_code == 0 and seen["app"].extensions["hotspots_pool"].max_waiters == 1  # never 0
    r = CliRunner().invoke(cli, ["serve", "--threads", "0"], env=env)
    assert r.exit_code == 2 and "--threads" in r.output


# -- the front under attack -------------------------------------------------------------------------------

ATTACK_S = 10.0
ATTACKERS = 250
LINE_EVERY_S = 2.0
HEADER_TIMEOUT_S = 4  # the attack outlasts it: every slow connection must be cut by nginx


REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


def _cli() -> list[str]:
    """`hotspots` of this checkout (run from its root, so an install of another checkout cannot answer)."""
    return [sys.executable, "-c", "from hotspots.cli import main; main()"]


def _wait_listening(port: int, proc: subprocess.Popen, log: Path, what: str, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"{what} did not listen on {port} within {seconds:g} s:\n{log.read_text(errors='replace')[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)


class SlowHeaders:
    """``n`` TLS connections from ``source`` that each send a request line, then one header line every
    ``LINE_EVERY_S``, never finishing; a connection the server closes is counted and re-opened."""

    def __init__(self, port: int, ctx: ssl.SSLContext, source: str, n: int) -> None:
        self.port, self.ctx, self.source, self.n = port, ctx, source, n
        self.opened = self.cut = self.refused = 0
        self.socks: list[ssl.SSLSocket] = []

    def _open(self) -> None:
        try:
            raw = socket.create_connection(("127.0.0.1", self.port), timeout=5, source_address=(self.source, 0))
            s = self.ctx.wrap_socket(raw, server_hostname="localhost")
            s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n")
            self.socks.append(s)
            self.opened += 1
        except OSError:
            self.refused += 1

    def run(self, until: float) -> None:
        while len(self.socks) < self.n and time.monotonic() < until:
            self._open()
        while time.monotonic() < until:
            time.sleep(min(LINE_EVERY_S, max(until - time.monotonic(), 0)))
            readable, _, _ = select.select(self.socks, [], [], 0) if self.socks else ([], [], [])
            for s in list(self.socks):
                try:
                    if s in readable or s.pending():
                        raise ConnectionResetError("the server answered or closed")
                    s.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    self.cut += 1
                    self.socks.remove(s)
                    s.close()
            while len(self.socks) < self.n and time.monotonic() < until:
                self._open()

    def close(self) -> None:
        for s in self.socks:
            s.close()
        self.socks.clear()


@pytest.mark.slow
@pytest.mark.skipif(_nginx() is None, reason="the nginx binary is not installed (make test installs it)")
def test_slow_header_attack_on_the_nginx_front_does_not_block_other_clients(gridtown, tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    b, _ = gridtown
    env = {**os.environ, "HOTSPOTS_CONFIG": str(b.config_path), "HOTSPOTS_DATA_DIR": str(b.data_dir),
           "HOTSPOTS_INSTANCE_DIR": str(b.instance_dir), "HOTSPOTS_BUNDLE": str(b.root / "bundle"),
           "HOTSPOTS_PUBLIC": "1", "HOTSPOTS_TRUSTED_PROXY": "1"}
    env.pop("HOTSPOTS_SECRET_KEY", None)
    incidents = tmp_path / "incidents.csv"
    incidents.write_text(police_csv([(f"d{i}", "2024-01", *cell_centre(i % 4, i // 4), "Violence and sexual offences")
                                     for i in range(16)]), encoding="utf-8")
    for cmd in (["data", "install", str(b.root / "bundle")], ["ingest", str(incidents)]):
        r = subprocess.run(_cli() + cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    prefix = tmp_path / "nginx"
    cert, key = prefix / "tls" / "hotspots.crt", prefix / "tls" / "hotspots.key"
    r = subprocess.run(_cli() + ["deploy", "self-signed-cert", "--cert", str(cert), "--key", str(key)], env=env,
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    app_port, https_port, http_port = _free_port(), _free_port(), _free_port()
    conf = prefix / "nginx.conf"
    r = subprocess.run(_cli() + ["deploy", "nginx-config", "--out", str(conf), "--listen-address", "127.0.0.1",
                                 "--https-port", str(https_port), "--http-port", str(http_port),
                                 "--upstream-port", str(app_port), "--header-timeout", str(HEADER_TIMEOUT_S)],
                       env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    app_log, nginx_log = tmp_path / "app.log", prefix / "error.log"
    with open(app_log, "w") as log:
        app = subprocess.Popen(_cli() + ["serve", "--host", "127.0.0.1", "--port", str(app_port), "--threads", "4",
                                         "--no-warm-up"], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    front = None
    attack = None
    try:
        _wait_listening(app_port, app, app_log, "hotspots serve")
        with open(tmp_path / "nginx.out", "w") as out:
            front = subprocess.Popen([_nginx(), "-p", f"{prefix}/", "-c", str(conf), "-e", str(nginx_log),
                                      "-g", "daemon off;"], stdout=out, stderr=subprocess.STDOUT)
        _wait_listening(https_port, front, nginx_log, "nginx")
        ctx = ssl.create_default_context(cafile=str(cert))
        ctx.check_hostname = False  # the certificate is for "localhost"; we connect by address

        def get(path: str) -> int:
            c = http.client.HTTPSConnection("127.0.0.1", https_port, timeout=5, context=ctx,
                                            source_address=("127.0.0.3", 0))
            try:
                c.request("GET", path, headers={"Host": "localhost"})
                resp = c.getresponse()
                resp.read()
                return resp.status
            finally:
                c.close()

        assert get("/api/v1/health") == 200  # the front works before the attack
        attack = SlowHeaders(https_port, ctx, "127.0.0.2", ATTACKERS)
        until = time.monotonic() + ATTACK_S
        attacker = threading.Thread(target=attack.run, args=(until,), daemon=True)
        attacker.start()
        while len(attack.socks) < ATTACKERS and attacker.is_alive():
            time.sleep(0.05)  # all slow connections open before the normal client starts
        statuses: list[int | str] = []
        seconds: list[float] = []
        while time.monotonic() < until:
            for path in ("/api/v1/health", "/api/v1/categories", "/api/v1/periods"):
                t0 = time.perf_counter()
                try:
                    statuses.append(get(path))
                except OSError as exc:
                    statuses.append(type(exc).__name__)
                seconds.append(time.perf_counter() - t0)
            time.sleep(0.2)
        attacker.join(ATTACK_S + 30)
        assert not attacker.is_alive()
        assert attack.opened >= ATTACKERS and attack.refused == 0
        assert len(statuses) >= 10 and set(statuses) == {200}, statuses
        # nginx cut every slow connection once its whole header was overdue (and the attacker re-opened)
        assert attack.cut >= ATTACKERS, (attack.opened, attack.cut)
        print(f"slow-header attack: {attack.opened} slow connections opened, {attack.cut} cut by nginx; "
              f"normal client: {len(statuses)} requests, all 200, max {max(seconds) * 1000:.0f} ms")
    finally:
        if attack is not None:
            attack.close()
        if front is not None:
            _stop(front)
        _stop(app)
    assert front.returncode is not None and app.returncode is not None
