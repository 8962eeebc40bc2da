"""``hotspots report``: the briefing pack (A4 PDF) and, with ``--png``, the map as a PNG for slides.

A thin shell: parse the layer parameters as the web does (``free=True``), compose the briefing from the
published layers for the chosen audience (:mod:`hotspots.briefing`) and write the files.
"""
from __future__ import annotations

from pathlib import Path

import click

from . import cli, get_config
from ..errors import HotspotsError


@cli.command()
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="Output FILE.pdf (or FILE.png).")
@click.option("--png", "png", is_flag=True, help="Also write the map as FILE.png beside the PDF (for slides).")
@click.option("--marking", default=None, help="Protective marking: OFFICIAL or OFFICIAL-SENSITIVE "
              "(default [report] marking of the config).")
@click.option("--organisation", default=None, help="Organisation named on every page (default the area name).")
@click.option("--audience", type=click.Choice(["viewer", "analyst"]), default="analyst", show_default=True,
              help="viewer: protected figures with small numbers suppressed, safe to share; analyst: exact.")
@click.option("--geography", type=click.Choice(["lsoa", "ward"]), default=None, help="Areas (default lsoa).")
@click.option("--category", "categories", multiple=True, help="Incident category (repeatable).")
@click.option("--from", "month_from", metavar="YYYY-MM", help="First month (inclusive).")
@click.option("--to", "month_to", metavar="YYYY-MM", help="Last month (inclusive).")
@click.option("--variable", type=click.Choice(["count", "rate", "eb_rate"]), default=None)
@click.option("--weights", default=None, help="queen | rook | knn:K | distance:METRES.")
@click.option("--significance", type=click.Choice(["raw", "fdr", "bonferroni"]), default=None)
@click.option("--alpha", type=float, default=None)
@click.option("--permutations", type=int, default=None)
@click.option("--compare-from", "compare_from", metavar="YYYY-MM", help="Baseline first month of the change table.")
@click.option("--compare-to", "compare_to", metavar="YYYY-MM", help="Baseline last month of the change table.")
@click.pass_context
def report(ctx: click.Context, out: str, png: bool, marking: str | None, organisation: str | None, audience: str,
           categories: tuple[str, ...], **params) -> None:
    """Write the briefing pack: Gi* map, emerging-hot-spot and trend maps (when the period has enough months),
    top-10 hot spots with wards, change table, method, attribution."""
    from .. import briefing, pipeline
    from ..request import Audience

    out_path = Path(out)
    suffix = out_path.suffix.lower()
    if suffix not in (".pdf", ".png"):
        raise HotspotsError(f"unknown output format {out_path.suffix!r}: use .pdf (or .png for the map alone)",
                            path=str(out_path))
    config = get_config(ctx)
    args = {k: v for k, v in params.items() if v is not None}
    if categories:
        args["category"] = ",".join(categories)
    args = {("from" if k == "month_from" else "to" if k == "month_to" else k): str(v) for k, v in args.items()}
    req = pipeline.parse(config, args, "gistar", free=True)
    b = briefing.compose(config, req, Audience(audience), marking=marking, organisation=organisation)
    written = []
    if suffix == ".pdf":
        out_path.write_bytes(briefing.briefing_pdf(b))
        written.append(out_path)
    if suffix == ".png" or png:
        p = out_path.with_suffix(".png")
        p.write_bytes(briefing.briefing_png(b))
        written.append(p)
    for p in written:
        click.echo(f"Wrote {p} ({b.marking}, {audience} figures): {b.title}")
    for note in b.time_notes:  # a time map left out: say why in one line
        click.echo(note)
