"""``hotspots emerging``: emerging hot spot analysis (ArcGIS's 17 outcomes) of the city's areas over time.

A thin shell over the pipeline: the options become a ``LayerRequest`` (free: any time-neighbour count), the
``emerging`` layer is built for an analyst and written through :func:`hotspots.render.download`, so the file
carries the same columns and metadata as the API's download.
"""
from __future__ import annotations

from pathlib import Path

import click

from . import cli, get_config
from .where import where_option
from ..errors import HotspotsError

OUT_FORMATS = {".csv": "csv", ".geojson": "geojson", ".json": "geojson", ".gpkg": "gpkg"}


def time_options(f=None, *, levels: tuple[str, ...] = ("lsoa", "ward")):
    """The options every time command shares (level, categories, period, step, output); ``levels`` are the
    geographies the command offers (``@time_options`` or ``@time_options(levels=...)``)."""
    if f is None:
        return lambda g: time_options(g, levels=levels)
    for opt in reversed([
        click.option("--level", type=click.Choice(list(levels)), default="lsoa", show_default=True),
        click.option("--category", "categories", multiple=True, help="Incident category (repeatable)."),
        click.option("--from", "month_from", metavar="YYYY-MM", help="First month (default: the first stored)."),
        click.option("--to", "month_to", metavar="YYYY-MM", help="Last month (default: the last stored)."),
        click.option("--step", type=click.Choice(["month", "quarter", "year"]), default="month", show_default=True,
                     help="Time step of the cube (quarters and years must be whole)."),
        click.option("--alpha", type=float, default=None, help="Significance level (default from config)."),
        click.option("--out", type=click.Path(dir_okay=False), required=True,
                     help="Output FILE.csv, FILE.geojson or FILE.gpkg."),
        where_option,
    ]):
        f = opt(f)
    return f


def out_format(out: str) -> str:
    fmt = OUT_FORMATS.get(Path(out).suffix.lower())
    if fmt is None:
        raise HotspotsError(f"unknown output format {Path(out).suffix!r}: use .csv, .geojson or .gpkg", path=out)
    return fmt


def request_options(level, categories, month_from, month_to, step, alpha, where=(), **more) -> dict:
    opts = {"geography": level, "category": list(categories), "from": month_from, "to": month_to, "step": step,
            "where": list(where), **{k: v for k, v in more.items() if v is not None}}
    if alpha is not None:
        opts["alpha"] = str(alpha)
    return opts


def write_layer(config, published, out: str, fmt: str) -> None:
    from .. import render
    body, _, _ = render.download(config, published, fmt)
    Path(out).write_bytes(body)
    click.echo(f"Wrote {out} ({len(published.frame)} areas).")


@cli.command()
@time_options(levels=("lsoa", "ward", "grid"))
@click.option("--time-neighbours", type=click.IntRange(min=0), default=1, show_default=True,
              help="How many time steps back a bin's neighbourhood reaches (ArcGIS's neighbourhood time step).")
@click.option("--weights", default=None, help="queen | rook | knn:K | distance:METRES (default from config; "
              "on a grid, a band of two cells).")
@click.option("--cell", type=float, default=None, help="Grid cell size in metres (--level grid; default 250).")
@click.option("--shape", type=click.Choice(["square", "hex"]), default=None,
              help="Grid cell shape (--level grid; default square).")
@click.pass_context
def emerging(ctx: click.Context, level, categories, month_from, month_to, step, alpha, out, where, time_neighbours,
             weights, cell, shape) -> None:
    """Emerging hot spots: new, intensifying, persistent, diminishing ... hot and cold spots (ArcGIS's 17), on
    areas or on grid cells (--level grid --cell 250 [--shape hex])."""
    from .. import pipeline
    from ..request import Audience
    fmt = out_format(out)
    if level != "grid" and (cell is not None or shape is not None):
        raise HotspotsError("--cell and --shape apply to --level grid only", column="level")
    config = get_config(ctx)
    grid = {"cell": None if cell is None else f"{cell:g}", "shape": shape} if level == "grid" else {}
    req = pipeline.parse(config, request_options(level, categories, month_from, month_to, step, alpha, where,
                                                 time_neighbours=str(time_neighbours), weights=weights, **grid),
                         "emerging", free=True)
    pub = pipeline.build_layer(config, req, Audience.ANALYST)
    meta = pub.metadata
    click.echo(f"{pub.title}: {len(meta['steps'])} {req.step}s, time neighbours {req.time_neighbours}, "
               f"bins significant at p ≤ {meta['bin_cutoff']:.3g} (FDR).")
    for name, n in meta["outcomes"].items():
        if n:
            click.echo(f"  {name}: {n}")
    for w in meta.get("warnings", []):
        click.echo(f"Warning: {w}")
    write_layer(config, pub, out, fmt)
