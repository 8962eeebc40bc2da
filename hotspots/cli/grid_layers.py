"""Writing a grid layer (grid Gi*, KDE) from the CLI: one pipeline call and one download.

Why shared: ``hotspots analyse --level grid`` and ``hotspots kde`` differ only in the layer they ask for, and
both must write exactly what the API's download of that layer gives (same columns, metadata, file name rules).
"""
from __future__ import annotations

from pathlib import Path

import click

from ..config import Config
from ..errors import AnalysisError

FORMATS = {".geojson": "geojson", ".json": "geojson", ".csv": "csv", ".gpkg": "gpkg", ".tif": "tif", ".tiff": "tif"}


def write_grid_layer(config: Config, layer: str, options: dict, out: Path, formats: tuple[str, ...] = ()) -> None:
    """Build ``layer`` for an analyst from CLI ``options`` (free values: the engine's own limits apply) and
    write it to ``out`` in the format its suffix names; print the legend's note and what was written."""
    from .. import pipeline, render
    from ..request import Audience
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None or (formats and fmt not in formats):
        allowed = [s for s, f in FORMATS.items() if not formats or f in formats]
        raise AnalysisError(f"unknown output format {out.suffix!r}: use {', '.join(allowed)}", path=out)
    args = {k: v for k, v in options.items() if v not in (None, "", [], ())}
    req = pipeline.parse(config, args, layer, free=True)
    published = pipeline.build_layer(config, req, Audience.ANALYST)
    body, _, _ = render.download(config, published, fmt)
    click.echo(published.title)
    if published.legend.get("note"):
        click.echo(published.legend["note"])
    for w in published.metadata.get("method", {}).get("warnings", []):
        click.echo(f"Warning: {w}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(body)
    click.echo(f"Wrote {out} ({len(published.frame)} cells, {fmt}).")
