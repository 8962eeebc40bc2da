"""``hotspots hours``: incidents per hour of day × day of week for the whole area, a ward, an LSOA or a
set of areas (a hot spot), as a CSV (one row per weekday, columns h00..h23 and total)."""
from __future__ import annotations

from pathlib import Path

import click

from . import cli, get_config
from .where import where_option
from ..errors import HotspotsError


@cli.command()
@click.option("--ward", "ward", metavar="CODE", help="One ward (2024 code).")
@click.option("--lsoa", "lsoa", metavar="CODE", help="One LSOA (2021 code).")
@click.option("--codes", "codes", metavar="CODE,CODE", help="Several areas (a hot spot), with --level.")
@click.option("--level", type=click.Choice(["lsoa", "ward"]), default=None, help="The geography of --codes.")
@click.option("--category", "categories", multiple=True, help="Incident category (repeatable; default violent-crime).")
@click.option("--from", "month_from", metavar="YYYY-MM")
@click.option("--to", "month_to", metavar="YYYY-MM")
@where_option
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Output FILE.csv.")
@click.pass_context
def hours(ctx: click.Context, ward, lsoa, codes, level, categories, month_from, month_to, where, out) -> None:
    """When in the week: incidents per hour of day and day of week (exact counts). Exits 1 when no matching
    incident has a time of day."""
    from .. import pipeline
    from ..hours import hour_weekday
    from ..request import Audience
    if sum(x is not None for x in (ward, lsoa, codes)) > 1:
        raise click.UsageError("give at most one of --ward, --lsoa and --codes")
    if codes and not level:
        raise click.UsageError("--codes needs --level lsoa or ward")
    if Path(out).suffix.lower() != ".csv":
        raise HotspotsError(f"hours writes a CSV: name the output FILE.csv, not {Path(out).name!r}", path=out)
    config = get_config(ctx)
    req = pipeline.parse(config, {"category": list(categories), "from": month_from, "to": month_to,
                                  "where": list(where)}, "count", free=True)
    geography, chosen = ("ward", [ward]) if ward else ("lsoa", [lsoa]) if lsoa else \
        (level, codes.split(",")) if codes else (None, [])
    table = hour_weekday(config, req, Audience.ANALYST, geography, chosen)
    if not table.has_times:
        raise HotspotsError(f"{table.notes[0]} ({table.scope}, {req.period_text}; {table.without_time:,} incidents "
                            "without a time)")
    table.frame().to_csv(out, index=False, lineterminator="\n")
    click.echo(f"Wrote {out}: {table.total:,} incidents with a time in {table.scope}, {req.period_text}"
               f"{f'; {table.without_time:,} without a time' if table.without_time else ''}.")
