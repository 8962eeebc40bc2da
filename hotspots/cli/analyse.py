"""``hotspots analyse``: Gi*, LISA and global Moran on the city's areas or on any polygon file.

Two sources of areas:

* ``--level lsoa|ward`` with ``--category``/``--from``/``--to``: counts of ingested incidents from
  :func:`hotspots.aggregate.area_counts`;
* ``--areas FILE --id COL --value COL [--name COL]``: any polygon layer with a value column. A file without a
  CRS (a shapefile without ``.prj``) is accepted for contiguity weights (queen/rook: shared vertices, no units)
  with a warning; ``--crs EPSG:XXXX`` declares its CRS; distance and k-nearest weights need one.

Outputs use the download field names (``code``, ``name``, ``ward_code``, ``ward_name``, ``count``, ...;
``--areas`` keeps the user's id column name).
* ``--level grid --cell METRES [--shape hex] [--optimized]``: Gi* on a grid over the configured area, through
  the layer pipeline (the ``grid_gistar`` layer of :mod:`hotspots.kinds_grid`, exact counts).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import geopandas as gpd

from . import cli, get_config
from .where import where_option
from ..errors import AnalysisError, ConfigError, HotspotsError

OUT_SUFFIXES = (".csv", ".geojson", ".json", ".gpkg")


def _config_or_none(ctx: click.Context):
    try:
        return get_config(ctx)
    except ConfigError:
        return None  # --areas works without a configured city


@cli.command()
@click.option("--level", type=click.Choice(["lsoa", "ward", "grid"]), help="Analyse incident counts at this level.")
@click.option("--cell", type=float, default=None, help="Grid cell size in metres (--level grid; default 250).")
@click.option("--shape", type=click.Choice(["square", "hex"]), default="square", show_default=True,
              help="Grid cell shape (--level grid).")
@click.option("--optimized", is_flag=True,
              help="--level grid: choose the distance band from the first peak of incremental spatial autocorrelation.")
@click.option("--category", "categories", multiple=True, help="Incident category (repeatable; default all).")
@click.option("--from", "month_from", metavar="YYYY-MM", help="First month (inclusive).")
@click.option("--to", "month_to", metavar="YYYY-MM", help="Last month (inclusive).")
@click.option("--areas", "areas_path", type=click.Path(dir_okay=False), help="Any polygon file instead of --level.")
@click.option("--id", "id_col", help="Area id column of --areas.")
@click.option("--value", "value_col", help="Value column of --areas.")
@click.option("--name", "name_col", help="Area name column of --areas.")
@click.option("--population", "population_col", help="Population column of --areas (for rates).")
@click.option("--crs", "crs", metavar="EPSG:XXXX", help="Declare the CRS of an --areas file that has none.")
@click.option("--stat", "stat", default="gistar,lisa,moran", show_default=True,
              help="Comma-separated: gistar, lisa, moran.")
@click.option("--weights", default=None, help="queen | rook | knn:K | distance:METRES (default from config, else queen).")
@click.option("--permutations", type=click.IntRange(min=0), default=None,
              help="Permutations (default 9,999 below 10,000 areas, else 999).")
@click.option("--seed", type=int, default=None, help="Random seed (default from config, else 12345).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="Significance level for LISA labels (default from config, else 0.05).")
@click.option("--fdr", is_flag=True, help="Benjamini-Hochberg false discovery rate correction (= --significance fdr).")
@click.option("--significance", type=click.Choice(["raw", "fdr", "bonferroni"]), default=None,
              help="Multiple-testing correction of the classes: none (raw), FDR or Bonferroni.")
@click.option("--variable", type=click.Choice(["count", "rate", "eb_rate"]), default="count", show_default=True,
              help="count, rate per 1,000 residents, or empirical-Bayes-smoothed rate.")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True,
              help="Output FILE.csv, FILE.geojson or FILE.gpkg.")
@where_option
@click.pass_context
def analyse(ctx: click.Context, level, cell, shape, optimized, categories, month_from, month_to, areas_path, id_col,
            value_col, name_col, population_col, crs, stat, weights, permutations, seed, alpha, fdr, significance,
            variable, out, where) -> None:
    """Find hot and cold spots (Gi*), clusters and outliers (local Moran) and overall clustering."""
    from ..analysis import analyse_areas, read_areas

    out_path = Path(out)
    if out_path.suffix.lower() not in OUT_SUFFIXES:
        raise AnalysisError(f"unknown output format {out_path.suffix!r}: use .csv, .geojson or .gpkg", path=out_path)
    if bool(level) == bool(areas_path):
        raise click.UsageError("give either --level or --areas (exactly one)")
    if level != "grid" and (cell is not None or optimized or shape != "square"):
        raise click.UsageError("--cell, --shape and --optimized go with --level grid")
    if where and not level:
        raise click.UsageError("--where filters ingested incidents: it goes with --level")
    if level == "grid":
        from .grid_layers import write_grid_layer
        opts = {"cell": cell if cell is not None else 250, "shape": shape, "category": list(categories),
                "from": month_from, "to": month_to, "optimized": "1" if optimized else None, "weights": weights,
                "permutations": permutations, "alpha": alpha, "significance": "fdr" if fdr else None,
                "where": list(where)}
        write_grid_layer(get_config(ctx), "grid_gistar", opts, out_path)
        return
    config = _config_or_none(ctx) if areas_path else get_config(ctx)
    seed = seed if seed is not None else (config.seed if config else 12345)
    alpha = alpha if alpha is not None else (config.alpha if config else 0.05)
    weights = weights or (config.weights if config else "queen")
    cache_dir = config.cache_dir if config else None
    stats = tuple(s for s in stat.split(",") if s.strip())
    meta: dict = {}
    if config and level:  # the configured city's attributions apply to its own areas only
        meta["area"] = config.area_name
        if config.attributions():
            meta["attribution"] = config.attributions()
    if crs and not areas_path:
        raise click.UsageError("--crs declares the CRS of an --areas file")

    if level:
        from .. import pipeline
        from ..request import Audience
        opts = {"geography": level, "category": list(categories), "from": month_from, "to": month_to,
                "weights": weights, "alpha": str(alpha), "variable": variable,
                "significance": significance or ("fdr" if fdr else "raw"), "where": list(where)}
        if permutations is not None:
            opts["permutations"] = str(permutations)
        req = pipeline.parse(config, opts, "gistar", free=True)  # the web's parser, without its menus
        areas, result = pipeline.analyse(config, req, Audience.ANALYST, stats=stats, seed=seed)
        result = _with_counts(result, areas)
    else:
        if not id_col or not value_col:
            raise click.UsageError("--areas needs --id and --value")
        extra = [c for c in (name_col, population_col) if c]
        areas = read_areas(areas_path, id_col, value_col, extra_cols=extra, crs=crs, allow_no_crs=True)
        meta.update({"geography": str(areas_path), "subject": value_col, "id_column": id_col,
                     "attribution": [f"Areas and values: {Path(areas_path).name}, supplied by the user (its own "
                                     "licence and attribution apply)."]})
        no_crs = areas.crs is None
        if no_crs:
            _check_no_crs(weights, out_path, areas_path)
            click.echo(f"Warning: {areas_path} has no CRS; {weights} contiguity needs none (shared borders), but "
                       "the output has no CRS either: declare one with --crs EPSG:XXXX to map it.", err=True)
            meta["crs"] = None
        try:
            result = analyse_areas(_local_frame(areas) if no_crs else areas, id_col, value_col, name_col=name_col,
                                   stats=stats, weights=weights, permutations=permutations, seed=seed, alpha=alpha,
                                   fdr=fdr, significance=significance, variable=variable,
                                   population_col=population_col, metadata=meta,
                                   cache_dir=cache_dir)
        except HotspotsError as exc:
            if exc.path is None:
                exc.path = str(areas_path)
            raise
        if no_crs:
            result = dataclasses.replace(result, table=result.table.set_crs(None, allow_override=True))
    for line in result.summary_lines():
        click.echo(line)
    written = result.write(out_path)
    click.echo(f"Wrote {written} ({len(result.table)} areas, {result.metadata['weights']} weights, "
               f"{result.metadata['permutations']} permutations, seed {result.metadata['seed']}).")


def _check_no_crs(weights: str, out_path: Path, areas_path: str) -> None:
    """A file without a CRS: contiguity only (distances need metres), and no GeoJSON (RFC 7946 is lon/lat)."""
    from ..weights import parse_spec
    spec = parse_spec(weights)
    if spec.kind not in ("queen", "rook"):
        raise AnalysisError(f"{spec} weights measure distances, which need a projected CRS, and the file has "
                            "none: declare it with --crs EPSG:XXXX, or use --weights queen or rook",
                            path=areas_path)
    if out_path.suffix.lower() in (".geojson", ".json"):
        raise AnalysisError("the areas have no CRS, and GeoJSON must be in longitude/latitude: declare the "
                            "file's CRS with --crs EPSG:XXXX, or write .csv or .gpkg", path=areas_path)


def _local_frame(areas: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The same coordinates labelled EPSG:27700 for the weights builder's CRS check. Queen and rook weights
    depend only on which vertices two polygons share, never on units, so the label changes no result; the
    caller removes it from the outputs (which say ``crs: null``)."""
    from ..weights import BNG_EPSG
    return areas.set_crs(BNG_EPSG, allow_override=True)


def _with_counts(result, areas: gpd.GeoDataFrame):
    """Add the count columns of the web's layers (count, population, rates, IMD decile) after the ward, so a
    ``--level`` file has the same fields as the web's download of the same layer."""
    t = result.table
    idx = areas.set_index("code")
    at = list(t.columns).index("ward_name") + 1
    for col in [c for c in ("imd_decile", "count", "population", "rate_per_1000", "eb_rate_per_1000")
                if c in idx.columns][::-1]:
        t.insert(at, col, idx[col].reindex(t["area_code"]).to_numpy())
    return dataclasses.replace(result, table=t)
