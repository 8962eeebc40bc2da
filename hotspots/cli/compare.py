"""`hotspots compare SOURCE_A SOURCE_B`: two sources side by side by ward or LSOA.

A source is ``police`` (the incidents, with ``--category``; violence by default) or a partner source's
name (``hospital``, or ``hospital/18-24`` for one of its categories). Prints the side-by-side ranking with
Spearman's rho and p, the joint hot spots and the plain-words note; ``--out`` writes the comparison layer
(CSV, GeoJSON or GeoPackage) with the same fields as the API's download.
"""
from __future__ import annotations

from pathlib import Path

import click

from . import cli, get_config


def source_categories(name: str, police: tuple[str, ...]) -> list[str]:
    """A source argument as request categories: ``police`` -> the police categories, else ``src:NAME``."""
    if name == "police":
        return list(police) or ["violent-crime"]
    return [name if name.startswith("src:") else f"src:{name}"]


@cli.command()
@click.argument("source_a")
@click.argument("source_b")
@click.option("--level", type=click.Choice(["ward", "lsoa"]), default="ward", show_default=True)
@click.option("--category", "categories", multiple=True, help="Police categories when a source is 'police'.")
@click.option("--from", "month_from", metavar="YYYY-MM")
@click.option("--to", "month_to", metavar="YYYY-MM")
@click.option("--variable", type=click.Choice(["count", "rate", "eb_rate"]), default="count", show_default=True)
@click.option("--weights", help="Spatial weights (default from the config), e.g. queen or knn:5.")
@click.option("--permutations", type=int, help="Permutations of the bivariate LISA (default from the config).")
@click.option("--top", type=int, default=20, show_default=True, help="Rows of the ranking to print (0: all).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write FILE.csv, FILE.geojson or FILE.gpkg.")
@click.pass_context
def compare(ctx: click.Context, source_a: str, source_b: str, level: str, categories: tuple[str, ...],
            month_from: str | None, month_to: str | None, variable: str, weights: str | None,
            permutations: int | None, top: int, out: str | None) -> None:
    """Compare SOURCE_A and SOURCE_B (``police`` or a source name): rankings, Spearman's rho, joint hot spots."""
    from .. import pipeline, render
    from ..request import Audience
    config = get_config(ctx)
    args = {"category": ",".join(source_categories(source_a, categories)),
            "versus": ",".join(source_categories(source_b, categories)), "geography": level,
            "from": month_from or "", "to": month_to or "", "variable": variable}
    if weights:
        args["weights"] = weights
    if permutations is not None:
        args["permutations"] = str(permutations)
    req = pipeline.parse(config, args, "comparison", free=True)
    pub = pipeline.build_layer(config, req, Audience.ANALYST)
    meta = pub.metadata
    if out:
        body, _, _ = render.download(config, pub, Path(out).suffix.lstrip(".").lower())
        Path(out).write_bytes(body)
        click.echo(f"Wrote {len(pub.frame)} areas to {out}")
    from rich.console import Console
    from rich.table import Table
    rows = sorted(render.rows(pub), key=lambda r: (r["rank_a"], r["code"]))
    t = Table(title=f"{meta['source_a']} against {meta['source_b']}, {req.period_text}, by {level}")
    for c in ("rank A", "rank B", "code", "name", "A", "B", "joint hot spot", "bivariate LISA"):
        t.add_column(c, justify="right" if c in ("rank A", "rank B", "A", "B") else "left")
    for r in rows[:top or None]:
        t.add_row(str(r["rank_a"]), str(r["rank_b"]), r["code"], r["name"], f"{r['value_a']:,.4g}",
                  f"{r['value_b']:,.4g}", r["class_label"], r["bv_label"])
    Console(width=170).print(t)
    sp = meta["spearman"]
    click.echo(f"Spearman's rho = {sp['rho']:.3f}, p = {sp['p']:.3g} (n = {sp['n']})")
    j = meta["joint_hot_spots"]
    click.echo(f"Joint hot spots (Gi*, 95 %): both {j['both']}, only A {j['a']}, only B {j['b']}, "
               f"neither {j['neither']}")
    if meta.get("note"):
        click.echo(f"note: {meta['note']}")
