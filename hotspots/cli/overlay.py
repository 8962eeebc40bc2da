"""`hotspots overlay`: add, list and remove risk-factor overlays (any indicator keyed by LSOA 2021 or ward code).

Codes in the file that are not areas of the map, and areas the file gives no value for, are printed by
name (and kept with the overlay, shown in its legend and downloads): nothing is dropped silently.
"""
from __future__ import annotations

from pathlib import Path

import click

from . import cli, get_config

SHOW = 20


def _names(codes: list[str]) -> str:
    more = f" and {len(codes) - SHOW} more" if len(codes) > SHOW else ""
    return ", ".join(codes[:SHOW]) + more


@cli.group()
def overlay() -> None:
    """Risk-factor overlays shown on the map beside the hot spots."""


@overlay.command("add")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--key", required=True, help="Column holding the area code (LSOA 2021 or ward code).")
@click.option("--value", required=True, help="Column holding the numeric value.")
@click.option("--label", required=True, help="Name shown in the layer control and legend.")
@click.option("--geography", type=click.Choice(["lsoa21", "ward"]), default="lsoa21", show_default=True)
@click.option("--id", "overlay_id", help="Identifier in URLs (default: from the label).")
@click.option("--attribution", default="", help="Source and licence of the indicator.")
@click.option("--strict", is_flag=True, help="Fail (exit 1) if any code is unknown or any area has no value.")
@click.pass_context
def add(ctx: click.Context, file: Path, key: str, value: str, label: str, geography: str,
        overlay_id: str | None, attribution: str, strict: bool) -> None:
    """Add FILE (CSV) as an overlay; unknown and missing codes are reported by name."""
    from ..errors import HotspotsError
    from ..overlays import add_overlay, remove_overlay
    config = get_config(ctx)
    ov = add_overlay(config, file, key, value, label, geography, overlay_id, attribution)
    click.echo(f"Added overlay {ov.id!r} ({ov.label}): {ov.n_values} {ov.geography} areas with a value.")
    if ov.unknown_codes:
        click.echo(f"warning: {len(ov.unknown_codes)} code(s) in {file.name} are not {ov.geography} areas of "
                   f"{config.area_name} and are not shown: {_names(ov.unknown_codes)}", err=True)
    if ov.missing_codes:
        click.echo(f"warning: {len(ov.missing_codes)} {ov.geography} area(s) have no value in {file.name} "
                   f"(shown as 'No data'): {_names(ov.missing_codes)}", err=True)
    if strict and (ov.unknown_codes or ov.missing_codes):
        remove_overlay(config, ov.id)
        raise HotspotsError("--strict: unknown or missing codes (listed above); overlay not added", path=file,
                            column=key)


@overlay.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """List overlays."""
    from ..overlays import list_overlays
    items = list_overlays(get_config(ctx))
    if not items:
        click.echo("No overlays. Add one with: hotspots overlay add FILE --key COL --value COL --label TEXT")
    for o in items:
        click.echo(f"{o.id}\t{o.label}\t{o.geography}\t{o.n_values} values\t{len(o.unknown_codes)} unknown\t"
                   f"{len(o.missing_codes)} missing\t{o.source}")


@overlay.command("remove")
@click.argument("overlay_id")
@click.pass_context
def remove(ctx: click.Context, overlay_id: str) -> None:
    """Remove an overlay."""
    from ..overlays import remove_overlay
    remove_overlay(get_config(ctx), overlay_id)
    click.echo(f"Removed overlay {overlay_id!r}.")
