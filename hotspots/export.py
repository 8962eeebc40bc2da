"""Writing layers for people to take away: GeoJSON (RFC 7946), CSV and GeoPackage, with provenance.

Why one module: every download (CLI ``--out``, the web's download links, the API) carries the same
attribution and method metadata, written in one place. GeoJSON follows RFC 7946: WGS84 longitude/
latitude, no ``crs`` member, coordinates to 6 decimal places (about 0.1 m), exterior rings anticlockwise
and holes clockwise (the right-hand rule); the metadata and attribution
travel as top-level foreign members, which GIS tools ignore safely. CSV cells that a spreadsheet would
run as a formula are neutralised.
"""
from __future__ import annotations

import io
import json
import warnings
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

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


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and not np.isfinite(v))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def status_words(disclosure: dict | None) -> dict[str, str]:
    """Disclosure label -> why the value is missing, from a layer's ``disclosure`` metadata."""
    d = disclosure or {}
    rng = d.get("suppressed_range") or []
    out = {}
    if d.get("label"):
        out[d["label"]] = f"suppressed: {rng[0]}-{rng[1]}" if len(rng) == 2 else "suppressed: small number"
    if d.get("secondary_label"):
        out[d["secondary_label"]] = "suppressed: protects another"
    return out


def typed_frame(frame: pd.DataFrame, counts: Sequence[str] = (), labels: dict[str, str] | None = None,
                numeric: Sequence[str] = ()) -> pd.DataFrame:
    """One type per column, so every reader (pandas, GDAL, a spreadsheet) sees numbers as numbers.

    Why: a published count column holds numbers and disclosure labels (``<5``, ``*``), and a redacted
    statistic numbers and None; written as is they become TEXT columns. Here numbers become numeric (whole
    numbers nullable integers), a label becomes a null, and each column in ``counts`` gets a
    ``<column>_status`` column after it saying why a value is missing (``labels``: label -> words).
    ``numeric`` names columns that are numbers even when every value is blanked (a redacted statistic).
    """
    out = frame.copy()
    labels = labels or {}
    geom = out.geometry.name if isinstance(out, gpd.GeoDataFrame) else None
    for col in [c for c in out.columns if c != geom]:
        s = out[col]
        status = None
        if col in counts:
            status = s.map(lambda v: (labels.get(v, f"suppressed: {v}") if isinstance(v, str) else "")).astype(str)
        if s.dtype == object:
            vals = [v for v in s if not _missing(v)]
            numbers = [v for v in vals if _is_number(v)]
            texts = [v for v in vals if not _is_number(v)]
            if (numbers and (col in counts or not texts)) or (col in numeric and not numbers and not texts):
                num = pd.to_numeric(s.map(lambda v: v if _is_number(v) and not _missing(v) else None),
                                    errors="coerce").astype("Float64")
                whole = bool(numbers) and all(isinstance(v, (int, np.integer)) for v in numbers)
                out[col] = num.astype("Int64") if whole else num.astype(float)
            elif numbers and texts:  # numbers among free text: text throughout
                out[col] = s.map(lambda v: None if _missing(v) else str(v))
        if status is not None:
            out.insert(out.columns.get_loc(col) + 1, f"{col}_status", status.to_numpy())
    return out


def csv_text(frame: pd.DataFrame) -> str:
    """Data only: one header row, then rows (no comment lines: pandas, GDAL and ``csv`` read it as is)."""
    df = pd.DataFrame(frame.drop(columns=frame.geometry.name) if isinstance(frame, gpd.GeoDataFrame) else frame)
    return safe_csv_frame(df).to_csv(index=False, lineterminator="\n")


def csvt_text(frame: pd.DataFrame) -> str:
    """GDAL's ``.csvt`` sidecar: the field types of :func:`csv_text`, so QGIS/ogr2ogr read numbers as numbers."""
    df = frame.drop(columns=frame.geometry.name) if isinstance(frame, gpd.GeoDataFrame) else frame
    def kind(s: pd.Series) -> str:
        if pd.api.types.is_bool_dtype(s):
            return "String"
        if pd.api.types.is_integer_dtype(s):
            return "Integer64"
        if pd.api.types.is_float_dtype(s):
            return "Real"
        return "String"
    return ",".join(f'"{kind(df[c])}"' for c in df.columns) + "\n"


def readme_text(meta: dict, columns: Sequence[str]) -> str:
    """The short README.txt of a zipped download: what it is, whose data, how to read it."""
    d = meta.get("disclosure") or {}
    status = [c for c in columns if c.endswith("_status")]
    lines = [str(meta.get("title") or "hotspots layer"), "",
             "Files: the .csv holds the data (one header row; numbers are plain numbers); the .csvt gives GDAL/QGIS",
             "the field types; metadata.json holds the method, parameters, global Moran's I (when computed) and",
             "provenance at full precision.", "", "Attribution:", *[f"  {a}" for a in meta.get("attribution") or []],
             "", f"Note: {meta.get('note') or POLICE_NOTE}"]
    if d:
        lines += ["", f"Disclosure control: rule {d.get('rule')} (version {d.get('version')}). {d.get('description') or ''}"]
    if status:
        lines += ["", f"An empty value in a count column was suppressed; {', '.join(status)} says why "
                      "('suppressed: 1-4' = a small number; 'suppressed: protects another' = hidden so that another "
                      "small number cannot be worked out)."]
    lines += ["", f"Generated {meta.get('generated_at')} by {meta.get('software')}."]
    return "\n".join(lines) + "\n"


def zip_bytes(frame: pd.DataFrame, meta: dict, stem: str) -> bytes:
    """``stem.csv`` + ``stem.csvt`` + ``metadata.json`` + ``README.txt`` in one zip."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{stem}.csv", csv_text(frame))
        z.writestr(f"{stem}.csvt", csvt_text(frame))
        z.writestr("metadata.json", json.dumps(jsonable(meta), indent=2, ensure_ascii=False, allow_nan=False))
        cols = [c for c in frame.columns if not (isinstance(frame, gpd.GeoDataFrame) and c == frame.geometry.name)]
        z.writestr("README.txt", readme_text(meta, cols))
    return buf.getvalue()


def write_gpkg(gdf: gpd.GeoDataFrame, path: Path, layer: str, meta: dict) -> Path:
    """The layer plus a ``metadata`` table (key, JSON value) in one GeoPackage. A layer without a CRS (a user's
    file that had none, already warned about) is written with an undefined SRS, without pyogrio's warning."""
    meta = jsonable(meta)
    meta_df = pd.DataFrame({"key": list(meta), "value": [json.dumps(v, ensure_ascii=False) if not isinstance(v, str)
                                                         else v for v in meta.values()]})
    with warnings.catch_warnings():
        if gdf.crs is None:
            warnings.filterwarnings("ignore", message="'crs' was not provided", category=UserWarning)
        gdf.to_file(path, driver="GPKG", layer=layer)
        gpd.GeoDataFrame(meta_df, geometry=[None] * len(meta_df), crs=gdf.crs).to_file(
            path, driver="GPKG", layer="metadata")
    return path


def write_layer(gdf: gpd.GeoDataFrame, path: Path, config: Config, title: str,
                metadata: dict | None = None) -> Path:
    """Write ``gdf`` by the file's suffix: .geojson/.json, .csv (+ .metadata.json sidecar), .gpkg (+ ``metadata``
    table); columns typed by :func:`typed_frame`."""
    path = Path(path)
    meta = provenance(config, title, metadata)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    gdf = typed_frame(gdf)
    if suffix in (".geojson", ".json"):
        path.write_text(json.dumps(to_geojson_dict(gdf, jsonable(meta)), separators=(",", ":")), encoding="utf-8")
    elif suffix == ".csv":
        path.write_text(csv_text(gdf), encoding="utf-8")
        path.with_suffix(".metadata.json").write_text(json.dumps(jsonable(meta), indent=2), encoding="utf-8")
    elif suffix == ".gpkg":
        write_gpkg(gdf, path, path.stem, meta)
    else:
        raise HotspotsError(f"unknown output format {suffix!r}: use .geojson, .csv or .gpkg", path=path)
    return path
