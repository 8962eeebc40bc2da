"""`hotspots data install|status`: the data bundle."""
from __future__ import annotations

from pathlib import Path

import click

from . import cli, get_config


@cli.group()
def data() -> None:
    """Install and check the data bundle (boundaries, population, deprivation, lookups, crime)."""


@data.command("install")
@click.argument("bundle", required=False, type=click.Path(file_okay=False))
@click.pass_context
def data_install(ctx: click.Context, bundle: str | None) -> None:
    """Copy BUNDLE (default: ../shared/data, or HOTSPOTS_BUNDLE) into the data folder and check it."""
    from ..bundle import install_bundle
    config = get_config(ctx)
    files = install_bundle(config, Path(bundle) if bundle else None, progress=True)
    click.echo(f"Installed {len(files)} files into {config.data_dir} (checksums in {config.lock_path.name}).")


@data.command("status")
@click.pass_context
def data_status(ctx: click.Context) -> None:
    """List installed files with vintages, feature/row counts and checksum status. Exit 1 if any is bad."""
    from ..bundle import bundle_status, read_lock
    config = get_config(ctx)
    lock = read_lock(config)
    rows = bundle_status(config)
    from rich.console import Console
    from rich.table import Table
    t = Table(title=f"{lock.get('area')} ({lock.get('lad_code')}): bundle installed {lock.get('installed_at')}")
    for col in ("dataset", "file", "rows/features", "vintage", "status"):
        t.add_column(col)
    for f in rows:
        t.add_row(f.dataset, f.path, f"{f.count:,}", f.vintage,
                  f.status if f.status == "ok" else f"[bold red]{f.status}[/]")
    Console(width=200).print(t)
    bad = [f for f in rows if f.status != "ok"]
    if bad:
        for f in bad:
            click.echo(f"error: {config.data_dir / f.path}: {f.status}; re-run `hotspots data install`", err=True)
        ctx.exit(1)
