"""Writing layers for people to take away: GeoJSON (RFC 7946), CSV and GeoPackage, with provenance.

Why one module: every download (CLI ``--out``, the web's download links, the API) carries the same
attribution and method metadata, written in one place. GeoJSON follows RFC 7946: WGS84 longitude/
latitude, no ``crs`` member, coordinates to 6 decimal places (about 0.1 m), exterior rings anticlockwise
and holes clockwise (the right-hand rule); the metadata and attribution
travel as top-level foreign members, which GIS tools ignore safely. CSV cells that a spreadsheet would
run as a formula are neutralised.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .bundle import WGS84
from .config import Config
from .errors import HotspotsError

COORD_DECIMALS = 6
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
POLICE_NOTE = ("police.uk locations are snapped to anonymous map points, not true locations; "
               "counts are by the area that contains the snapped point.")


def attribution_text(config: Config) -> str:
    return " ".join(config.attributions())


def provenance(config: Config, title: str, extra: dict | None = None) -> dict[str, Any]:
    from . import __version__
    meta = {"title": title, "area": config.area_name, "lad_code": config.lad_code,
            "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "software": f"hotspots {__version__}", "licence": "Open Government Licence v3.0",
            "attribution": config.attributions(), "note": POLICE_NOTE}
    meta.update(extra or {})
    return meta


def jsonable(v: Any) -> Any:
    """Plain JSON values from numpy/pandas ones, recursively: NaN and infinities become null."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, Path):
        return str(v)
    return v


def to_geojson_dict(gdf: gpd.GeoDataFrame, metadata: dict | None = None, decimals: int = COORD_DECIMALS) -> dict:
    """RFC 7946 FeatureCollection (EPSG:4326, rounded coordinates) with metadata as a foreign member."""
    if gdf.crs is None:
        raise HotspotsError("layer has no CRS; cannot write GeoJSON")
    g = gdf.to_crs(WGS84)
    geoms = shapely.set_precision(g.geometry.to_numpy(), 10 ** -decimals)
    geoms = shapely.make_valid(geoms)
    geoms = shapely.orient_polygons(geoms, exterior_cw=False)  # RFC 7946 §3.1.6: exteriors anticlockwise
    props = g.drop(columns=g.geometry.name)
    records = props.to_dict(orient="records")
    features = []
    for geom, rec in zip(geoms, records):
        features.append({"type": "Feature", "properties": {k: jsonable(v) for k, v in rec.items()},
                         "geometry": None if geom is None else json.loads(shapely.to_geojson(geom))})
    fc: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if metadata:
        fc["metadata"] = metadata
    return fc


def neutralise_formula(value: Any) -> Any:
    """Prefix a text cell that a spreadsheet would execute (=, +, -, @, tab, CR) with a quote."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        try:
            float(value)
            return value  # a negative number is data, not a formula
        except ValueError:
            return "'" + value
    return value


def safe_csv_frame(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(neutralise_formula)
    return out


def write_layer(gdf: gpd.GeoDataFrame, path: Path, config: Config, title: str,
                metadata: dict | None = None) -> Path:
    """Write ``gdf`` by the file's suffix: .geojson/.json, .csv (+ .metadata.json sidecar), .gpkg."""
    path = Path(path)
    meta = provenance(config, title, metadata)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in (".geojson", ".json"):
        path.write_text(json.dumps(to_geojson_dict(gdf, meta), separators=(",", ":")), encoding="utf-8")
    elif suffix == ".csv":
        safe_csv_frame(pd.DataFrame(gdf.drop(columns=gdf.geometry.name))).to_csv(path, index=False)
        path.with_suffix(".metadata.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    elif suffix == ".gpkg":
        gdf.to_file(path, driver="GPKG", layer=path.stem)
        meta_df = pd.DataFrame({"key": list(meta), "value": [json.dumps(v) if not isinstance(v, str) else v
                                                               for v in meta.values()]})
        gpd.GeoDataFrame(meta_df, geometry=[None] * len(meta_df), crs=gdf.crs).to_file(
            path, driver="GPKG", layer="metadata")
    else:
        raise HotspotsError(f"unknown output format {suffix!r}: use .geojson, .csv or .gpkg", path=path)
    return path
