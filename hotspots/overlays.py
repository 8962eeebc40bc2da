"""Context layers drawn under or beside the hot spots: deprivation (IoD2025, IoD2019) and risk factors.

Deprivation comes from the bundle: every configured table with ``role = "deprivation"`` offers one layer
per "... Decile" column (the IMD and each domain and sub-domain), keyed on its own geography (IoD2025 on
LSOA 2021, IoD2019 on LSOA 2011: never joined across vintages).

Risk-factor overlays are any indicator file keyed by LSOA 2021 or ward code, added with
``hotspots overlay add``. The file's values are checked against the boundary codes: codes the map does not
know and areas the file does not cover are reported by name and recorded with the overlay (shown in the
legend note and in every download), never silently dropped. Overlays live in ``<instance>/overlays/``:
one CSV of code,value per overlay and ``overlays.json`` describing them.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from .bundle import load_boundary, load_table, sha256_file
from .config import Config
from .errors import HotspotsError, NotFoundError

#: geography name accepted by ``overlay add`` -> boundary role.
OVERLAY_GEOGRAPHIES = {"lsoa21": "lsoa21", "lsoa": "lsoa21", "ward": "ward"}
_DECILE = re.compile(r"^(?P<name>.+?)\s+Decile\b", re.I)
_lock = threading.Lock()


# -- deprivation --------------------------------------------------------------------------------------

def _slug(text: str) -> str:
    text = re.sub(r"\((IMD|IDACI|IDAOPI)\)", "", text)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def deprivation_sets(config: Config) -> list[dict]:
    """Configured deprivation tables: key, geography (boundary role), vintage, attribution."""
    return [{"key": d.key, "geography": d.geography, "vintage": d.vintage, "attribution": d.attribution}
            for d in config.table("deprivation")]


def deprivation_domains(config: Config, key: str) -> list[dict]:
    """Domains of one deprivation dataset: [{slug, label, column}], the IMD first.

    Domains from datasets sharing the same file geography (e.g. IoD2019 and its supplementary indices)
    are merged under the first key, so "iod2019" offers IDACI and IDAOPI as well."""
    frames = _deprivation_frames(config, key)
    out, seen = [], set()
    for ds_key, df in frames:
        for col in df.columns:
            m = _DECILE.match(col)
            if not m:
                continue
            label = m.group("name").strip()
            slug = _slug(label)
            if slug in seen:
                continue
            seen.add(slug)
            if slug == "index-of-multiple-deprivation":
                slug = "imd"
            out.append({"slug": slug, "label": label, "column": col, "dataset": ds_key})
    out.sort(key=lambda d: d["slug"] != "imd")
    return out


def _deprivation_frames(config: Config, key: str) -> list[tuple[str, pd.DataFrame]]:
    sets = {d.key: d for d in config.table("deprivation")}
    if key not in sets:
        raise NotFoundError(f"unknown deprivation dataset {key!r} (have: {', '.join(sets) or 'none configured'})",
                            column="layer")
    main = sets[key]
    keys = [key] + [k for k, d in sets.items() if k != key and k.startswith(key + "_") and d.geography == main.geography]
    return [(k, load_table(config, k)) for k in keys]


def deprivation_layer(config: Config, key: str, domain: str = "imd") -> gpd.GeoDataFrame:
    """Deciles (and ranks, scores where given) of one domain on the dataset's own LSOA geography (EPSG:27700).

    Columns: code, name, decile, rank, score, geometry. LSOAs of the boundary with no row get NaN (shown
    as "No data") and are listed in ``attrs["missing"]``."""
    domains = {d["slug"]: d for d in deprivation_domains(config, key)}
    if domain not in domains:
        raise NotFoundError(f"unknown domain {domain!r} for {key} (have: {', '.join(domains)})", column="domain")
    d = domains[domain]
    ds = config.dataset(d["dataset"])
    df = dict(_deprivation_frames(config, key))[d["dataset"]]
    prefix = d["column"][: d["column"].lower().index(" decile")]
    rank_col = next((c for c in df.columns if c.startswith(prefix + " Rank")), None)
    score_col = next((c for c in df.columns if c.startswith(prefix + " Score")), None)
    role = ds.geography or "lsoa21"
    areas = load_boundary(config, role)
    table = pd.DataFrame({"code": df[ds.code].astype(str),
                          "decile": pd.to_numeric(df[d["column"]], errors="coerce"),
                          "rank": pd.to_numeric(df[rank_col], errors="coerce") if rank_col else np.nan,
                          "score": pd.to_numeric(df[score_col], errors="coerce") if score_col else np.nan})
    out = areas[["code", "name", "geometry"]].merge(table, on="code", how="left")
    out = gpd.GeoDataFrame(out[["code", "name", "decile", "rank", "score", "geometry"]], geometry="geometry",
                           crs=areas.crs)
    out.attrs.update({"dataset": d["dataset"], "domain": domain, "domain_label": d["label"], "geography": role,
                      "vintage": ds.vintage, "attribution": ds.attribution,
                      "missing": out.loc[out["decile"].isna(), "code"].tolist()})
    return out


# -- risk-factor overlays -----------------------------------------------------------------------------

@dataclass
class Overlay:
    id: str
    label: str
    geography: str  # boundary role: lsoa21 | ward
    source: str  # original file name
    sha256: str
    key: str
    value: str
    added_at: str
    n_values: int
    unknown_codes: list[str] = field(default_factory=list)  # in the file, not on the map
    missing_codes: list[str] = field(default_factory=list)  # on the map, not in the file (or blank)
    attribution: str = ""

    def describe(self) -> dict:
        return asdict(self)


def overlays_dir(config: Config) -> Path:
    return config.instance_dir / "overlays"


def _registry_path(config: Config) -> Path:
    return overlays_dir(config) / "overlays.json"


def list_overlays(config: Config) -> list[Overlay]:
    p = _registry_path(config)
    if not p.exists():
        return []
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HotspotsError(f"overlay registry is corrupt: {exc}", path=p) from None
    return [Overlay(**r) for r in raw.get("overlays", [])]


def get_overlay(config: Config, overlay_id: str) -> Overlay:
    for o in list_overlays(config):
        if o.id == overlay_id:
            return o
    have = ", ".join(o.id for o in list_overlays(config)) or "none added"
    raise NotFoundError(f"unknown overlay {overlay_id!r} (have: {have}; add one with `hotspots overlay add`)",
                        column="layer")


def _save_registry(config: Config, overlays: list[Overlay]) -> None:
    p = _registry_path(config)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".part")
    tmp.write_text(json.dumps({"version": 1, "overlays": [o.describe() for o in overlays]}, indent=2),
                   encoding="utf-8")
    tmp.replace(p)
    from .cache import note_write
    note_write()


def read_indicator(path: Path, key: str, value: str) -> pd.DataFrame:
    """code,value rows of an indicator CSV; raises naming the file, row and column of any fault."""
    path = Path(path)
    if not path.exists():
        raise HotspotsError("file not found", path=path)
    try:
        df = pd.read_csv(path, dtype=str, encoding="utf-8-sig", keep_default_na=False)
    except Exception as exc:  # unreadable: name the file
        raise HotspotsError(f"cannot read CSV: {exc}", path=path) from None
    for col in (key, value):
        if col not in df.columns:
            raise HotspotsError(f"column {col!r} not found (have: {', '.join(df.columns)})", path=path, column=col)
    codes = df[key].str.strip()
    raw = df[value].str.strip().str.replace(",", "", regex=False)
    vals = pd.to_numeric(raw.where(raw != "", None), errors="coerce")
    bad = vals.isna() & (raw != "")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise HotspotsError(f"value {df[value].iloc[i]!r} is not a number", path=path, row=i + 2, column=value)
    blank_code = codes == ""
    if blank_code.any():
        i = int(np.flatnonzero(blank_code.to_numpy())[0])
        raise HotspotsError("area code is blank", path=path, row=i + 2, column=key)
    dup = codes.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise HotspotsError(f"area code {codes.iloc[i]} appears twice", path=path, row=i + 2, column=key)
    return pd.DataFrame({"code": codes, "value": vals})


def add_overlay(config: Config, path: Path | str, key: str, value: str, label: str,
                geography: str = "lsoa21", overlay_id: str | None = None, attribution: str = "") -> Overlay:
    """Validate an indicator file against the boundary codes and store it as an overlay.

    Returns the Overlay, whose ``unknown_codes`` (in the file but not an area of the map) and
    ``missing_codes`` (areas with no value) the caller must report. Adding an overlay with the same id
    replaces it."""
    if geography not in OVERLAY_GEOGRAPHIES:
        raise HotspotsError(f"unknown geography {geography!r} (use lsoa21 or ward)", column="geography")
    if not label.strip():
        raise HotspotsError("the overlay needs a --label", column="label")
    role = OVERLAY_GEOGRAPHIES[geography]
    path = Path(path)
    table = read_indicator(path, key, value)
    areas = load_boundary(config, role)
    known = set(areas["code"])
    unknown = sorted(set(table["code"]) - known)
    have = set(table.loc[table["value"].notna(), "code"])
    missing = sorted(known - have)
    matched = table[table["code"].isin(known)]
    if matched["value"].notna().sum() == 0:
        raise HotspotsError(f"no code in column {key!r} matches a {role} area of {config.area_name} "
                            f"(first codes in the file: {', '.join(table['code'].head(3))})", path=path, column=key)
    oid = overlay_id or _slug(label) or "overlay"
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", oid):
        raise HotspotsError(f"overlay id {oid!r} must be lower-case letters, digits and dashes", column="id")
    ov = Overlay(id=oid, label=label.strip(), geography=role, source=path.name, sha256=sha256_file(path),
                 key=key, value=value, added_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 n_values=int(matched["value"].notna().sum()), unknown_codes=unknown, missing_codes=missing,
                 attribution=attribution)
    with _lock:
        d = overlays_dir(config)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f"{oid}.csv.part"
        matched.to_csv(tmp, index=False)
        tmp.replace(d / f"{oid}.csv")
        others = [o for o in list_overlays(config) if o.id != oid]
        _save_registry(config, others + [ov])
    return ov


def remove_overlay(config: Config, overlay_id: str) -> None:
    get_overlay(config, overlay_id)
    with _lock:
        _save_registry(config, [o for o in list_overlays(config) if o.id != overlay_id])
        (overlays_dir(config) / f"{overlay_id}.csv").unlink(missing_ok=True)


def overlay_layer(config: Config, overlay_id: str) -> gpd.GeoDataFrame:
    """The overlay on its boundary (EPSG:27700): code, name, value, geometry; areas without a value NaN."""
    ov = get_overlay(config, overlay_id)
    p = overlays_dir(config) / f"{ov.id}.csv"
    if not p.exists():
        raise HotspotsError("overlay data file is missing; add the overlay again", path=p)
    vals = pd.read_csv(p, dtype={"code": str})
    areas = load_boundary(config, ov.geography)
    out = areas[["code", "name", "geometry"]].merge(vals, on="code", how="left")
    out = gpd.GeoDataFrame(out[["code", "name", "value", "geometry"]], geometry="geometry", crs=areas.crs)
    out.attrs.update({"overlay": ov.describe()})
    return out
