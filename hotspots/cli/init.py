"""`hotspots init --lad CODE`: a working configuration for any local authority from the national files."""
from __future__ import annotations

import shlex
from pathlib import Path

import click

from . import cli, get_config
from ..errors import HotspotsError


def _default_folder(ctx: click.Context) -> Path:
    """The configured bundle folder (HOTSPOTS_BUNDLE or [paths] bundle), else ../shared/data beside the repo."""
    try:
        return get_config(ctx).bundle
    except HotspotsError:
        from ..config import REPO_ROOT
        return REPO_ROOT.parent / "shared" / "data"


@cli.command("init")
@click.option("--lad", "lad", default="", help="Local authority code(s), comma-separated (E08000031,E08000030).")
@click.option("--region", default=None, help="A region code (E12...) expanded to its local authorities.")
@click.option("--from", "folder", type=click.Path(file_okay=False, exists=True),
              help="Folder of national files, scanned recursively (default: the bundle folder).")
@click.option("--name", default=None, help="Area name (default: the place names of its LSOAs).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Configuration to write (default: config/<first code>.toml).")
@click.option("--force", is_flag=True, help="Overwrite an existing configuration (and area bundle).")
@click.pass_context
def init(ctx: click.Context, lad: str, region: str | None, folder: str | None, name: str | None, out: str | None,
         force: bool) -> None:
    """Recognise the files under FOLDER by their columns, keep the area's, write a configuration and say
    what is missing. Exit 1 when no LSOA 2021 boundary holds the area."""
    from ..init_config import InitError, plan_area, write_area
    if not lad and not region:
        raise click.UsageError("give --lad CODE[,CODE...] or --region CODE")
    src = Path(folder) if folder else _default_folder(ctx)
    plan = plan_area(src, [c for c in lad.split(",") if c.strip()], region, name)
    target = Path(out) if out else Path("config") / f"{(region or plan.lad_codes[0]).lower()}.toml"
    if target.exists() and not force:
        raise InitError("configuration exists; pass --force to overwrite it", path=target)
    options = [("--lad", lad), ("--region", region), ("--from", folder), ("--name", name), ("--out", str(target))]
    command = " ".join(["hotspots init"] + [f"{opt} {shlex.quote(v)}" for opt, v in options if v])
    bundle = write_area(plan, target, command, force=force)
    click.echo(f"{plan.name}: {', '.join(plan.lad_codes)}; {plan.lsoa_count} LSOAs (2021), "
               f"{plan.ward_count} current wards; centre {plan.centre[0]}, {plan.centre[1]}, zoom {plan.zoom}")
    click.echo("Found:")
    for p in plan.picks:
        counts = f" ({p.in_area} of {p.total} in the area)" if p.total else \
            (f" ({p.in_area} files)" if p.spec["kind"] == "incidents" else f" ({p.in_area} rows of the area)")
        click.echo(f"  {p.key:<24} {p.spec['path']}{counts}{'; ' + p.note if p.note else ''}")
    for s in plan.skipped:
        click.echo(f"  skipped: {s}")
    for m in plan.missing:
        click.echo(f"MISSING: {m}")
    if bundle != plan.folder:
        click.echo(f"Area bundle (subsets and links): {bundle}")
    click.echo(f"Wrote {target}. Next: HOTSPOTS_CONFIG={target} hotspots data install && "
               f"HOTSPOTS_CONFIG={target} hotspots ingest --bundle")
