"""Production settings: waitress's limits and the nginx front (issue 14: one client must not stop the server).

Why a front: waitress gives each connection a channel and stops accepting at ``connection_limit``; a client
that opens a few hundred connections and sends one header line every few seconds keeps them all busy
(its ``channel_timeout`` counts idle time, and every line is activity). nginx holds such connections for
the price of a few kilobytes each, cuts any that has not sent its whole header within
``client_header_timeout``, passes only complete, buffered requests to the app, and caps requests and
connections per address. ``render_nginx_config`` fills ``hotspots/nginx.conf.template`` (installed with the package);
``waitress_options`` gives ``hotspots serve`` its settings. docs/deployment.md explains both.
"""
from __future__ import annotations

import math
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .config import Config
from .errors import HotspotsError

NGINX_TEMPLATE = Path(__file__).resolve().parent / "nginx.conf.template"

#: waitress threads kept free of analysis waits (``AnalysisPool.max_waiters = threads - RESERVED``), so
#: cheap requests always find a thread while analyses are queued
RESERVED_THREADS = 2

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9][A-Za-z0-9-]{0,62})*$")
_IP = re.compile(r"^(\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:]+\])$")
_UNSAFE_PATH = re.compile(r"[\s;{}'\"\\$#]")


class DeployError(HotspotsError):
    """A deployment setting is unusable (bad name, port or path), or a tool it needs is missing."""


@dataclass(frozen=True)
class NginxSettings:
    """What the nginx front needs to know. Logs, pid and temporary files are relative to nginx's prefix
    (``nginx -p PREFIX``), so they live in one folder a normal user owns."""

    server_name: str = "localhost"
    listen_address: str = ""  # "" = every interface; "127.0.0.1" in tests
    https_port: int = 443
    http_port: int = 80  # answers with a redirect to HTTPS
    upstream_host: str = "127.0.0.1"
    upstream_port: int = 5000
    tls_cert: str = "tls/hotspots.crt"
    tls_key: str = "tls/hotspots.key"
    connections_per_address: int = 32
    requests_per_second: int = 20
    burst: int = 60
    header_timeout_s: int = 10
    body_timeout_s: int = 10
    max_body_mb: int = 51
    proxy_read_timeout_s: int = 30
    worker_connections: int = 4096

    @classmethod
    def for_config(cls, config: Config, **kw: Any) -> "NginxSettings":
        """Defaults that follow the app: the upload limit (+1 MB of multipart envelope), the analysis
        budget (+10 s) and the app's port."""
        base = {"max_body_mb": math.ceil(config.max_upload_mb) + 1,
                "proxy_read_timeout_s": math.ceil(config.analysis_budget_s) + 10, "upstream_port": config.port}
        return cls(**{**base, **{k: v for k, v in kw.items() if v is not None}})


def render_nginx_config(settings: NginxSettings, template: Path = NGINX_TEMPLATE) -> str:
    """The nginx configuration for ``settings``.

    Raises
    ------
    DeployError : a setting could end up as nginx syntax (a name or path with spaces, ``;``, braces,
        quotes or ``$``), a port or limit out of range, or the template names an unknown placeholder.
    """
    _validate(settings)
    values = {k: str(v) for k, v in asdict(settings).items()}
    values["listen_prefix"] = f"{settings.listen_address}:" if settings.listen_address else ""
    values["https_suffix"] = "" if settings.https_port == 443 else f":{settings.https_port}"
    try:
        text = template.read_text(encoding="utf-8")
    except OSError as exc:
        raise DeployError(f"cannot read the nginx template: {exc.strerror}", path=template) from None

    def fill(m: re.Match) -> str:
        if m.group(1) not in values:
            raise DeployError(f"unknown placeholder {m.group(0)}", path=template)
        return values[m.group(1)]
    return _PLACEHOLDER.sub(fill, text)


def write_nginx_config(out: Path, settings: NginxSettings) -> Path:
    """Render and write ``out`` (its folder made if needed); returns ``out``. Relative certificate paths
    are taken from ``out``'s folder and written absolute (nginx would read them from there anyway)."""
    base = out.resolve().parent
    settings = replace(settings, tls_cert=str((base / settings.tls_cert).resolve()),
                       tls_key=str((base / settings.tls_key).resolve()))
    text = render_nginx_config(settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out


def self_signed_cert(cert: Path, key: Path, server_name: str = "localhost", days: int = 30) -> None:
    """A self-signed certificate for ``server_name`` (tests and trials only: browsers warn about it; in
    production use a certificate from your CA or ACME). Needs the ``openssl`` command."""
    _check_name(server_name)
    exe = shutil.which("openssl")
    if exe is None:
        raise DeployError("the openssl command is needed to make a test certificate (Debian package openssl)")
    cert.parent.mkdir(parents=True, exist_ok=True)
    key.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([exe, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", str(days),
                        "-subj", f"/CN={server_name}", "-addext", f"subjectAltName=DNS:{server_name}",
                        "-keyout", str(key), "-out", str(cert)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise DeployError(f"openssl could not make the certificate: {r.stderr.strip()[-300:]}", path=cert)
    key.chmod(0o600)


def waitress_options(config: Config, threads: int = 8) -> dict[str, Any]:
    """Keyword arguments for ``waitress.serve`` (see docs/deployment.md for why each value).

    ``connection_limit`` above the 50 keep-alive clients of the load benchmark; ``channel_timeout`` closes
    idle keep-alive connections after 30 s, checked every ``cleanup_interval`` 10 s; poll() instead of
    select() so descriptors above 1024 work; headers capped at 64 KB and bodies at the upload limit
    (+1 MB), refused by waitress before the app reads them.
    """
    if threads < 1:
        raise DeployError(f"threads must be at least 1, got {threads}", column="threads")
    return {"threads": threads, "connection_limit": 200, "channel_timeout": 30, "cleanup_interval": 10,
            "backlog": 1024, "asyncore_use_poll": True, "max_request_header_size": 64 << 10,
            "max_request_body_size": int(config.max_upload_mb * (1 << 20)) + (1 << 20), "ident": "hotspots",
            "clear_untrusted_proxy_headers": not config.trusted_proxy}


def _check_name(name: str) -> None:
    if not (_HOSTNAME.match(name) or _IP.match(name)):
        raise DeployError(f"server name {name!r} is not a host name or IP address", column="server_name")


def _validate(s: NginxSettings) -> None:
    _check_name(s.server_name)
    for name in ("upstream_host", "listen_address"):
        value = getattr(s, name)
        if value and not (_HOSTNAME.match(value) or _IP.match(value)):
            raise DeployError(f"{name} {value!r} is not a host name or IP address", column=name)
    for name in ("https_port", "http_port", "upstream_port"):
        if not 1 <= getattr(s, name) <= 65535:
            raise DeployError(f"{name} must be 1..65535, got {getattr(s, name)}", column=name)
    if s.http_port == s.https_port:
        raise DeployError(f"http_port and https_port must differ (both {s.http_port})", column="http_port")
    for name in ("connections_per_address", "requests_per_second", "burst", "header_timeout_s",
                 "body_timeout_s", "max_body_mb", "proxy_read_timeout_s", "worker_connections"):
        if not 1 <= getattr(s, name) <= 1_000_000:
            raise DeployError(f"{name} must be a whole number from 1, got {getattr(s, name)}", column=name)
    for name in ("tls_cert", "tls_key"):
        value = getattr(s, name)
        if not value or _UNSAFE_PATH.search(value):
            raise DeployError(f"{name} {value!r}: a path without spaces, quotes, ';', '#', '$' or braces",
                              column=name)
