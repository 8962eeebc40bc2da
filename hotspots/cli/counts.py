"""`hotspots counts`: incidents per LSOA or ward, with rates per 1,000 residents."""
from __future__ import annotations

from pathlib import Path

import click

from . import cli, get_config
from .where import where_option
from ..errors import HotspotsError


@cli.command()
@click.option("--level", type=click.Choice(["lsoa", "ward", "lsoa11", "ward_pre2023"]), default="lsoa",
              show_default=True)
@click.option("--category", "categories", multiple=True,
              help="Category slug or name, e.g. violent-crime or 'Violence and sexual offences' (repeatable).")
@click.option("--from", "month_from", metavar="YYYY-MM")
@click.option("--to", "month_to", metavar="YYYY-MM")
@click.option("--out", type=click.Path(dir_okay=False), help="Write FILE.csv, FILE.geojson or FILE.gpkg.")
@click.option("--top", type=int, default=0, help="Print only the N areas with most incidents (0: all).")
@where_option
@click.pass_context
def counts(ctx: click.Context, level: str, categories: tuple[str, ...], month_from: str | None,
           month_to: str | None, out: str | None, top: int, where: tuple[str, ...]) -> None:
    """Counts and rates per 1,000 usual residents (Census 2021) per area; ``--out`` uses the download field
    names (code, name, ward_code, ward_name, count, population, rate_per_1000, eb_rate_per_1000). Exits 1
    when no incident matches."""
    from .. import filters
    from ..aggregate import area_counts
    from ..export import write_layer
    config = get_config(ctx)
    chosen = filters.parse(config, where)
    gdf = area_counts(config, level, list(categories), month_from, month_to, where=chosen)
    if len(gdf) == 0 or int(gdf["count"].sum()) == 0:
        cats = ", ".join(gdf.attrs.get("categories") or categories) or "any category"
        cats += f" ({filters.describe(chosen)})" if chosen else ""
        raise HotspotsError(f"no incidents of {cats} between {month_from or 'the start'} and {month_to or 'the end'} "
                            f"in the {len(gdf)} {level} areas: nothing to count (check --category, --from and --to, "
                            "or ingest that period first)")
    if out:
        write_layer(gdf, Path(out), config, title=f"Incident counts by {level}"
                    + (f", {filters.describe(chosen)}" if chosen else ""))
        click.echo(f"Wrote {len(gdf)} areas to {out}")
    table = gdf.sort_values(["count", "code"], ascending=[False, True])
    if top:
        table = table.head(top)
    from rich.console import Console
    from rich.table import Table
    cats = ", ".join(gdf.attrs.get("categories") or ["all categories"])
    cats += f" ({filters.describe(chosen)})" if chosen else ""
    t = Table(title=f"{cats}, {month_from or 'start'} to {month_to or 'end'}, by {level}")
    for col in ("code", "name", "ward", "count", "population", "per 1,000"):
        t.add_column(col, justify="right" if col in ("count", "population", "per 1,000") else "left")
    for r in table.itertuples():
        t.add_row(r.code, r.name, str(r.ward_name or ""), f"{r.count:,}",
                  "" if r.population != r.population else f"{int(r.population):,}",
                  "" if r.rate_per_1000 != r.rate_per_1000 else f"{r.rate_per_1000:.2f}")
    t.add_row("TOTAL", "", "", f"{int(gdf['count'].sum()):,}", "", "", style="bold")
    Console(width=160).print(t)
