"""`hotspots deploy`: the nginx front for production (a thin shell over ``hotspots.deploy``)."""
from __future__ import annotations

from pathlib import Path

import click

from . import cli, get_config


@cli.group()
def deploy() -> None:
    """Production deployment: the nginx configuration and a test certificate (docs/deployment.md)."""


@deploy.command("nginx-config")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="File to write.")
@click.option("--server-name", default="localhost", show_default=True, help="Host name clients use.")
@click.option("--listen-address", default="", help="Interface nginx listens on (default: all).")
@click.option("--https-port", type=int, default=443, show_default=True)
@click.option("--http-port", type=int, default=80, show_default=True, help="Redirects to HTTPS.")
@click.option("--upstream-host", default="127.0.0.1", show_default=True, help="Where `hotspots serve` listens.")
@click.option("--upstream-port", type=int, default=None, help="Its port (default from config: 5000).")
@click.option("--tls-cert", default="tls/hotspots.crt", show_default=True,
              help="Certificate (PEM); relative to the folder of --out unless absolute.")
@click.option("--tls-key", default="tls/hotspots.key", show_default=True, help="Its private key (PEM).")
@click.option("--connections-per-address", type=int, default=None, help="Concurrent requests per address (32).")
@click.option("--requests-per-second", type=int, default=None, help="Request rate per address (20).")
@click.option("--burst", type=int, default=None, help="Requests above the rate served at once (60).")
@click.option("--header-timeout", "header_timeout_s", type=int, default=None,
              help="Seconds for a whole request header (10).")
@click.pass_context
def nginx_config(ctx: click.Context, out: Path, **options) -> None:
    """Write an nginx configuration for the app behind TLS with per-address limits."""
    from ..deploy import NginxSettings, write_nginx_config
    settings = NginxSettings.for_config(get_config(ctx), **options)
    write_nginx_config(out, settings)
    click.echo(f"Wrote {out}: https://{settings.server_name}:{settings.https_port}/ -> "
               f"http://{settings.upstream_host}:{settings.upstream_port}/ (serve the app with "
               "HOTSPOTS_TRUSTED_PROXY=1)", err=True)


@deploy.command("self-signed-cert")
@click.option("--cert", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--key", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--server-name", default="localhost", show_default=True)
@click.option("--days", type=click.IntRange(1, 825), default=30, show_default=True)
def self_signed_cert(cert: Path, key: Path, server_name: str, days: int) -> None:
    """A self-signed certificate for tests and trials (browsers warn; use your CA's in production)."""
    from ..deploy import self_signed_cert as make
    make(cert, key, server_name, days)
    click.echo(f"Wrote {cert} and {key} (self-signed for {server_name}, {days} days)", err=True)
