"""`hotspots serve`: the web map and API on waitress (a production WSGI server; never Flask's debug server).

Its limits come from ``hotspots.deploy.waitress_options`` (docs/deployment.md); in production it listens on
loopback behind nginx (``hotspots deploy nginx-config``), which absorbs slow clients.
"""
from __future__ import annotations

import click

from ..deploy import RESERVED_THREADS
from . import cli, get_config


@cli.command()
@click.option("--host", default=None, help="Interface to listen on (default from config: 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default from config: 5000).")
@click.option("--threads", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Worker threads (analyses may wait in all but two of them, and in at least one).")
@click.option("--no-warm-up", is_flag=True, help="Do not compile the statistics kernels at start.")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, threads: int, no_warm_up: bool) -> None:
    """Serve the map at http://HOST:PORT/ and the JSON API at /api/v1/ (works offline)."""
    config = get_config(ctx)
    from hotspots.bundle import read_lock
    read_lock(config)  # a clear error now, rather than on the first request, if no bundle is installed
    from waitress import serve as waitress_serve

    from web import create_app
    app = create_app(config, test_config={"WARM_UP": not no_warm_up} if no_warm_up else None)
    host = host or config.host
    port = port or config.port
    from hotspots.users import list_users
    n_users = len(list_users(config))
    if config.public_mode:
        click.echo("Public mode: anonymous visitors get viewer rights (small numbers suppressed); "
                   f"{n_users} account(s) can sign in at /login.", err=True)
    elif n_users == 0:
        click.echo("Sign-in required and no accounts exist yet: add one with "
                   "`hotspots users add NAME --role admin` (or serve with HOTSPOTS_PUBLIC=1).", err=True)
    else:
        click.echo(f"Sign-in required ({n_users} account(s)); public mode is off.", err=True)
    click.echo(f"Serving {config.area_name} on http://{host}:{port}/ (Ctrl+C to stop)", err=True)
    if config.trusted_proxy:
        click.echo("trusted_proxy is on: X-Forwarded-For/-Proto/-Host are taken from the proxy in front; "
                   "clients must not reach this port directly.", err=True)
    # requests waiting for analyses never take the last RESERVED_THREADS threads: cheap pages stay fast
    app.extensions["hotspots_pool"].max_waiters = max(1, threads - RESERVED_THREADS)
    # Proxy headers: waitress strips them unless trusted_proxy is on, when the app's ProxyFix
    # (web.create_app) applies one hop of them.
    from hotspots.deploy import waitress_options
    waitress_serve(app, host=host, port=port, **waitress_options(config, threads))
