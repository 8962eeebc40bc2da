"""``hotspots kde``: kernel density of incidents on a grid, in incidents per km² (or per 1,000 residents, a dual
KDE), to a file (or a GeoTIFF)."""
from __future__ import annotations

from pathlib import Path

import click

from . import cli, get_config


@cli.command()
@click.option("--cell", type=float, default=100.0, show_default=True, help="Grid cell size in metres.")
@click.option("--bandwidth", type=float, default=400.0, show_default=True,
              help="Kernel bandwidth in metres (the quartic kernel's search radius; the Gaussian's sd).")
@click.option("--kernel", type=click.Choice(["quartic", "gaussian"]), default="quartic", show_default=True)
@click.option("--shape", type=click.Choice(["square", "hex"]), default="square", show_default=True,
              help="Grid cell shape (a GeoTIFF needs square cells).")
@click.option("--category", "categories", multiple=True, help="Incident category (repeatable; default violent crime).")
@click.option("--from", "month_from", metavar="YYYY-MM", help="First month (inclusive).")
@click.option("--to", "month_to", metavar="YYYY-MM", help="Last month (inclusive).")
@click.option("--per-residents", "per_residents", is_flag=True,
              help="A dual KDE: incidents per 1,000 residents (the incidents' density over the residents', each "
                   "LSOA's Census residents spread over it); needs the population table.")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True,
              help="Output FILE.geojson, FILE.csv, FILE.gpkg or FILE.tif (GeoTIFF, EPSG:27700).")
@click.pass_context
def kde(ctx: click.Context, cell, bandwidth, kernel, shape, categories, month_from, month_to, per_residents,
        out) -> None:
    """Kernel density surface of incidents (quartic by default, as ArcGIS and CrimeStat)."""
    from .grid_layers import write_grid_layer
    opts = {"cell": cell, "bandwidth": bandwidth, "kernel": kernel, "shape": shape, "category": list(categories),
            "from": month_from, "to": month_to, "variable": "rate" if per_residents else "count"}
    write_grid_layer(get_config(ctx), "kde", opts, Path(out))
