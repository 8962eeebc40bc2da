"""`hotspots source`: add, list and remove partner sources (counts per LSOA or ward and month).

A source is analysed like the police data: name it as a category, ``--category src:NAME``, in every
command and on the map. The add report always adds up (read = accepted + duplicates + rejected) and names
the file, row and column of each refused row; a file of which nothing is accepted stores nothing and exits 1.
"""
from __future__ import annotations

from pathlib import Path

import click

from . import cli, get_config

SHOW = 10


@cli.group()
def source() -> None:
    """Partner sources: hospital assaults, youth offending, missing episodes... as counts per area and month."""


@source.command("add")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--geography", type=click.Choice(["lsoa21", "lsoa11", "ward"]), required=True,
              help="Codes in the file: LSOA 2021, LSOA 2011 (converted to 2021 by best fit) or current ward.")
@click.option("--period", "period_col", required=True, help="Column with the month (YYYY-MM) or a date.")
@click.option("--count", "count_col", required=True, help="Column with the whole, unsuppressed count.")
@click.option("--category", "category_col", help="Column with a category (e.g. age band); optional.")
@click.option("--code", "code_col", help="Column with the area code (default: recognised by its name).")
@click.option("--disclosure", type=click.Choice(["default", "hospital"]), default="default", show_default=True,
              help="Small-number rule for viewers (hospital: 1-7 suppressed, others rounded to 5).")
@click.option("--title", help="Name shown on the map and in downloads (default: NAME).")
@click.option("--provenance", help="Who supplied it, what it counts and under which agreement.")
@click.option("--place", type=click.Choice(["incident", "residence", "unknown"]), default="unknown", show_default=True,
              help="Where a count is placed: where the incident happened, or where the person lives (hospital "
                   "data usually give the patient's home LSOA); comparisons with police data say so.")
@click.option("--analysts-only", is_flag=True, help="Keep the source from viewers (default: viewers see it, "
                                                    "protected under its disclosure rule).")
@click.option("--replace", is_flag=True, help="Replace a source of the same name.")
@click.pass_context
def add(ctx: click.Context, name: str, file: Path, geography: str, period_col: str, count_col: str,
        category_col: str | None, code_col: str | None, disclosure: str, title: str | None,
        provenance: str | None, place: str, analysts_only: bool, replace: bool) -> None:
    """Add FILE (CSV) as source NAME; analyse it with --category src:NAME."""
    from ..sources import add_source, slug
    config = get_config(ctx)
    r = add_source(config, name, file, geography, period_col, count_col, category_col=category_col,
                   code_col=code_col, disclosure=disclosure, title=title, provenance=provenance, place=place,
                   analysts_only=analysts_only, replace=replace)
    click.echo(f"{file}: read {r.read} = accepted {r.accepted} + duplicates {r.duplicates} + rejected {r.rejected}")
    for rej in r.rejects[:SHOW]:
        click.echo(f"{file}:{rej['row']}: {rej['column'] or '-'}: {rej['kind']}: {rej['reason']}", err=True)
    if len(r.rejects) > SHOW:
        click.echo(f"... and {len(r.rejects) - SHOW} more (hotspots source rejects {name})", err=True)
    if r.conversion:
        click.echo(f"note: {r.conversion}")
    period = f"{r.months[0]} to {r.months[-1]}" if r.months else "no month"
    click.echo(f"Stored source {name!r}: {r.total:,} counted in {r.areas} areas, {period}; analyse it with "
               f"--category {slug(name)}")


@source.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """List sources with their geography, disclosure rule, totals and provenance."""
    from ..sources import list_sources, slug
    rows = list_sources(get_config(ctx))
    if not rows:
        click.echo("No sources yet: add one with `hotspots source add NAME FILE ...`.")
    for s in rows:
        total = sum(s["categories"].values())
        who = "analysts only" if not s["viewers"] else f"{s['disclosure']} rule for viewers"
        click.echo(f"{s['name']}: {s['title']} ({s['geography']}, {who}) {total:,} counted; "
                   f"read {s['rows_read']} = {s['accepted']} + {s['duplicates']} duplicates + {s['rejected']} "
                   f"rejected; category {slug(s['name'])}; {s['provenance']}")
        for c, n in s["categories"].items():
            if c != slug(s["name"]):
                click.echo(f"  {c}: {n:,}")


@source.command("rejects")
@click.argument("name")
@click.pass_context
def rejects(ctx: click.Context, name: str) -> None:
    """Print the rows a source refused, with their reasons."""
    from .. import store
    from ..sources import get_source
    config = get_config(ctx)
    s = get_source(config, name)
    for r in store.source_rejects(config.db_path, name):
        click.echo(f"{s['path']}:{r['row']}: {r['column'] or '-'}: {r['kind']}: {r['reason']}: {r['raw']}")


@source.command("remove")
@click.argument("name")
@click.pass_context
def remove(ctx: click.Context, name: str) -> None:
    """Remove source NAME with its counts."""
    from .. import store
    from ..errors import NotFoundError
    config = get_config(ctx)
    if not store.remove_source(config.db_path, name):
        raise NotFoundError(f"no source named {name!r}", column="name")
    click.echo(f"Removed source {name!r}.")
