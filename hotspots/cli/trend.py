"""``hotspots trend``: the Mann-Kendall trend and Sen's slope of every area and of the whole area, and, with
``--compare-to``, the tested change of the whole area against another period ("−27 % (95 % CI …, p = …)").
A thin shell over the pipeline's ``trend`` and ``change`` layers."""
from __future__ import annotations

import re
from dataclasses import replace

import click

from . import cli, get_config
from .emerging import out_format, request_options, time_options, write_layer
from ..errors import HotspotsError

PERIOD = re.compile(r"^(\d{4}-\d{2}):(\d{4}-\d{2})$")


def baseline(compare_to: str, month_from: str, month_to: str) -> tuple[str, str]:
    """``previous-year`` (the same months a year earlier) or ``YYYY-MM:YYYY-MM``."""
    from ..request import check_period, shift_month
    if compare_to == "previous-year":
        return shift_month(month_from, -12), shift_month(month_to, -12)
    m = PERIOD.match(compare_to.strip())
    if not m:
        raise HotspotsError(f"--compare-to must be previous-year or YYYY-MM:YYYY-MM, got {compare_to[:30]!r}",
                            column="compare-to")
    return check_period(m.group(1), m.group(2), ("compare-to start", "compare-to end"))


@cli.command()
@time_options
@click.option("--significance", type=click.Choice(["raw", "fdr", "bonferroni"]), default="raw", show_default=True,
              help="Correction for testing many areas.")
@click.option("--compare-to", "compare_to", default=None, metavar="previous-year|YYYY-MM:YYYY-MM",
              help="Also test the change of the whole area against this period.")
@click.pass_context
def trend(ctx: click.Context, level, categories, month_from, month_to, step, alpha, out, where, significance,
          compare_to) -> None:
    """Rising or falling? Mann-Kendall trend and Sen's slope per area and for the whole area."""
    from .. import pipeline
    from ..request import Audience
    fmt = out_format(out)
    config = get_config(ctx)
    req = pipeline.parse(config, request_options(level, categories, month_from, month_to, step, alpha, where,
                                                 significance=significance), "trend", free=True)
    pub = pipeline.build_layer(config, req, Audience.ANALYST)
    click.echo(pub.metadata["city_trend"]["sentence"])
    tally: dict[str, int] = {}
    for c in pub.frame["trend_class"]:
        tally[c] = tally.get(c, 0) + 1
    click.echo("Areas: " + "; ".join(f"{k}: {v}" for k, v in sorted(tally.items())))
    if compare_to:
        bf, bt = baseline(compare_to, req.month_from, req.month_to)
        cmp = pipeline.comparison(config, replace(req, layer="change", compare_from=bf, compare_to=bt),
                                  Audience.ANALYST)
        click.echo(cmp["sentence"])
    write_layer(config, pub, out, fmt)
