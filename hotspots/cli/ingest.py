"""`hotspots ingest PATH...`: incident files into the store, with a summary that accounts for every row."""
from __future__ import annotations

import click

from ..errors import HotspotsError
from . import cli, get_config


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["police-csv", "police-api-json", "extract"]), help="Force a format (default: detect per file).")
@click.option("--bundle", "from_bundle", is_flag=True,
              help="Ingest the incident datasets of the installed bundle (what `make run` does).")
@click.option("--keep-going", is_flag=True, help="Report a file that cannot be read and go on with the next.")
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[str, ...], fmt: str | None, from_bundle: bool, keep_going: bool) -> None:
    """Ingest police.uk CSV, police.uk API JSON or local-extract CSV files (or folders of them).

    Each file is one transaction: a file with missing columns, bad encoding or broken JSON is refused
    whole; rows that cannot be placed are kept in the rejects table with their reason."""
    from ..bundle import dataset_files
    from ..ingest import ingest_paths
    config = get_config(ctx)
    targets: list = list(paths)
    if from_bundle:
        for ds in config.datasets.values():
            if ds.kind == "incidents":
                targets += dataset_files(config, ds.key)
    if not targets:
        raise click.UsageError("name at least one file or folder, or pass --bundle")
    failures: list[HotspotsError] = []

    def report(exc: Exception) -> None:
        failures.append(exc)
        click.echo(f"error: {exc.message}", err=True)

    summaries = ingest_paths(config, targets, fmt, show_progress=True,
                             on_error=report if keep_going else None)
    _print_summary(summaries)
    useless = [s for s in summaries if s.all_rejected]
    for s in useless:
        when = " (when this same file was first ingested)" if s.already_rejected else ""
        click.echo(f"error: {s.path}: every row ({s.rows_read:,}) was rejected{when}; nothing of it was stored. "
                   "The reasons are above and each row is in the rejects table.", err=True)
    if failures:
        click.echo(f"{len(failures)} file(s) could not be ingested (nothing of them was written).", err=True)
    if failures or useless:
        ctx.exit(1)


def _print_summary(summaries) -> None:
    from rich.console import Console
    from rich.table import Table
    t = Table(title="Ingest summary (read = accepted + duplicates + rejected)")
    for col in ("file", "format", "read", "accepted", "duplicates", "rejected", "outside area", "LSOA agrees"):
        t.add_column(col, justify="right" if col not in ("file", "format") else "left")
    tot = {"read": 0, "acc": 0, "dup": 0, "rej": 0, "out": 0, "chk": 0, "agr": 0}
    reasons: dict[str, int] = {}
    for s in summaries:
        agree = f"{s.lsoa_agree:,}/{s.lsoa_checked:,}" if s.lsoa_checked else "-"
        dup = f"{s.duplicates:,}" + (f" ({s.already_rejected:,} rejected before)" if s.already_rejected else "")
        t.add_row(s.path.rsplit("/", 1)[-1], s.format, f"{s.rows_read:,}", f"{s.accepted:,}", dup,
                  f"{s.rejected:,}", f"{s.outside_area:,}", agree)
        tot["read"] += s.rows_read; tot["acc"] += s.accepted; tot["dup"] += s.duplicates
        tot["rej"] += s.rejected; tot["out"] += s.outside_area
        tot["chk"] += s.lsoa_checked; tot["agr"] += s.lsoa_agree
        for r, n in s.rejected_by_reason.items():
            reasons[r] = reasons.get(r, 0) + n
    t.add_row("TOTAL", "", f"{tot['read']:,}", f"{tot['acc']:,}", f"{tot['dup']:,}", f"{tot['rej']:,}",
              f"{tot['out']:,}", f"{tot['agr']:,}/{tot['chk']:,}" if tot["chk"] else "-", style="bold")
    console = Console(width=160)
    console.print(t)
    for r, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        console.print(f"  rejected, {r}: {n:,} (kept in the rejects table)")
    if tot["chk"]:
        console.print(f"  source LSOA code agrees with ours for {tot['agr']:,} of {tot['chk']:,} "
                      f"in-area rows ({100 * tot['agr'] / tot['chk']:.1f} %)")
    console.print(f"  {tot['acc'] - tot['out']:,} new incidents inside the area, {tot['out']:,} outside "
                  "(kept, flagged in_area = 0)")
