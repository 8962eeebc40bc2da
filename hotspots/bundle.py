"""The data bundle: boundaries, denominators, deprivation and lookups, installed into the data folder.

Why a bundle: the product never reads ``../shared/data`` (or any other source) in place. ``install_bundle``
copies the files the configuration names into ``Config.data_dir``, records each file's SHA-256 in
``bundle.lock.json`` and validates its content; every later load re-checks the checksum, so a file that
was truncated or edited after installation is reported by name instead of producing a wrong map.
"""
from __future__ import annotations

import glob
import gzip
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import geopandas as gpd
import pandas as pd

from .config import Config, Dataset
from .errors import BundleError

logger = logging.getLogger(__name__)

#: Every computation happens in British National Grid; the web serves WGS84.
BNG = "EPSG:27700"
WGS84 = "EPSG:4326"
LOCK_VERSION = 1


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class InstalledFile:
    dataset: str
    path: str  # relative to the data dir
    sha256: str
    size: int
    count: int  # features or rows
    vintage: str
    status: str = "ok"  # ok | missing | corrupt


def _expand(dataset: Dataset, root: Path) -> list[Path]:
    if any(ch in dataset.path for ch in "*?["):
        return sorted(Path(p) for p in glob.glob(str(root / dataset.path)))
    p = root / dataset.path
    return [p] if p.exists() else []


def _count_and_check(dataset: Dataset, path: Path) -> int:
    """Open the file the way the engine will, so a broken file fails at install, naming itself."""
    try:
        if dataset.kind == "boundary":
            gdf = gpd.read_file(path)
            for col in (dataset.code, dataset.name):
                if col and col not in gdf.columns:
                    raise BundleError(f"column {col!r} not found (have: {', '.join(map(str, gdf.columns))})",
                                      path=path, column=col)
            if gdf.crs is None:
                raise BundleError("boundary file has no CRS", path=path)
            if gdf[dataset.code].duplicated().any():
                dup = gdf.loc[gdf[dataset.code].duplicated(), dataset.code].iloc[0]
                raise BundleError(f"duplicate area code {dup}", path=path, column=dataset.code)
            return len(gdf)
        if dataset.kind == "table":
            df = pd.read_csv(path, dtype=str, encoding="utf-8")
            if dataset.code and dataset.code not in df.columns:
                raise BundleError(f"column {dataset.code!r} not found", path=path, column=dataset.code)
            return len(df)
        raw = path.read_bytes()
        if path.name.lower().endswith(".gz"):
            raw = gzip.decompress(raw)
        if dataset.format == "police-csv":
            return max(raw.count(b"\n") - 1, 0)
        if dataset.format == "police-api-json":
            if path.name.lower().endswith((".jsonl", ".jsonl.gz", ".ndjson")):
                return sum(1 for line in raw.splitlines() if line.strip())
            return len(json.loads(raw or b"[]"))
        return 0
    except BundleError:
        raise
    except Exception as exc:  # unreadable content: name the file
        raise BundleError(f"cannot read {dataset.kind} file: {exc}", path=path) from None


def install_bundle(config: Config, source: Path | str | None = None, *, progress: bool = False) -> list[InstalledFile]:
    """Copy every configured dataset from ``source`` (a folder laid out like ``shared/data``) into the data
    dir, validate it and write ``bundle.lock.json``. Raises BundleError naming the first missing or unreadable file."""
    src = Path(source or config.bundle).expanduser().resolve()
    if not src.is_dir():
        raise BundleError("bundle folder not found", path=src)
    jobs: list[tuple[Dataset, Path]] = []
    for ds in config.datasets.values():
        files = _expand(ds, src)
        if not files:
            raise BundleError(f"dataset {ds.key!r}: no file matches {ds.path!r}", path=src / ds.path)
        jobs += [(ds, f) for f in files]
    dest_root = config.data_dir
    dest_root.mkdir(parents=True, exist_ok=True)
    installed: list[InstalledFile] = []
    iterator = jobs
    if progress:
        from rich.progress import track
        iterator = track(jobs, description="Installing bundle")
    for ds, f in iterator:
        rel = f.relative_to(src)
        dest = dest_root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        digest = sha256_file(f)
        if not dest.exists() or sha256_file(dest) != digest:  # an unchanged file is hashed once
            tmp = dest.with_suffix(dest.suffix + ".part")
            shutil.copyfile(f, tmp)
            if sha256_file(tmp) != digest:
                tmp.unlink(missing_ok=True)
                raise BundleError("copy does not match its source checksum", path=dest)
            tmp.replace(dest)
        count = _count_and_check(ds, dest)
        installed.append(InstalledFile(ds.key, rel.as_posix(), digest, dest.stat().st_size, count, ds.vintage))
    manifest = src / "MANIFEST.md"
    if manifest.exists():
        shutil.copyfile(manifest, dest_root / "MANIFEST.md")
    lock = {"version": LOCK_VERSION, "installed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source": str(src), "area": config.area_name, "lad_code": config.lad_code,
            "files": [f.__dict__ for f in installed]}
    tmp = config.lock_path.with_suffix(".part")
    tmp.write_text(json.dumps(lock, indent=2), encoding="utf-8")
    tmp.replace(config.lock_path)
    from .cache import note_write
    note_write()
    _load_boundary_cached.cache_clear()
    _read_table_cached.cache_clear()
    logger.info("installed %d files from %s", len(installed), src)
    return installed


def read_lock(config: Config) -> dict:
    if not config.lock_path.exists():
        raise BundleError("no data bundle installed: run `hotspots data install [BUNDLE]` (or `make run`)",
                          path=config.lock_path)
    try:
        return json.loads(config.lock_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"bundle lock file is corrupt: {exc}", path=config.lock_path) from None


def bundle_status(config: Config) -> list[InstalledFile]:
    """Every installed file with status ok, missing or corrupt (checksum differs from the one recorded)."""
    out = []
    for rec in read_lock(config)["files"]:
        f = InstalledFile(**rec)
        p = config.data_dir / f.path
        status = "missing" if not p.exists() else ("ok" if sha256_file(p) == f.sha256 else "corrupt")
        out.append(InstalledFile(**{**f.__dict__, "status": status}))
    return out


def verify_bundle(config: Config) -> None:
    """Raise BundleError naming the first missing or corrupt installed file."""
    for f in bundle_status(config):
        if f.status != "ok":
            raise BundleError(f"installed file is {f.status} (checksum recorded at install differs); "
                              "re-run `hotspots data install`", path=config.data_dir / f.path)


def dataset_files(config: Config, key: str) -> list[Path]:
    """Installed files of one dataset, each checked against the lock."""
    ds = config.dataset(key)
    lock = {r["path"]: r for r in read_lock(config)["files"] if r["dataset"] == key}
    files = _expand(ds, config.data_dir)
    if not files:
        raise BundleError(f"dataset {key!r} is not installed; run `hotspots data install`",
                          path=config.data_dir / ds.path)
    for p in files:
        rel = p.relative_to(config.data_dir).as_posix()
        rec = lock.get(rel)
        if rec is None:
            raise BundleError("file is not in the bundle lock; re-run `hotspots data install`", path=p)
        st = p.stat()
        if st.st_size != rec["size"] or _sha_cached(str(p), st.st_mtime_ns, st.st_size) != rec["sha256"]:
            raise BundleError("installed file is corrupt (checksum differs from install); "
                              "re-run `hotspots data install`", path=p)
    return files


@lru_cache(maxsize=64)
def _sha_cached(path: str, mtime_ns: int, size: int) -> str:
    return sha256_file(Path(path))


@lru_cache(maxsize=16)
def _load_boundary_cached(path: str, mtime_ns: int, code: str, name: str, lad_column: str = "",
                          lad_codes: tuple[str, ...] = ()) -> gpd.GeoDataFrame:
    gdf = gpd.read_file(path)
    if gdf.crs is None:
        raise BundleError("boundary file has no CRS", path=path)
    if lad_column and lad_codes:
        if lad_column not in gdf.columns:
            raise BundleError(f"column {lad_column!r} not found (have: {', '.join(map(str, gdf.columns))})",
                              path=path, column=lad_column)
        gdf = gdf[gdf[lad_column].astype(str).isin(lad_codes)]
        if gdf.empty:
            raise BundleError(f"no feature has a {lad_column} in [area] lad_codes ({', '.join(lad_codes)})",
                              path=path, column=lad_column)
    gdf = gdf.to_crs(BNG)
    out = gpd.GeoDataFrame({"code": gdf[code].astype(str), "name": gdf[name].astype(str) if name else gdf[code]},
                           geometry=gdf.geometry.make_valid(), crs=BNG)
    return out.sort_values("code", kind="stable").reset_index(drop=True)


def load_boundary(config: Config, role: str) -> gpd.GeoDataFrame:
    """Boundary layer playing ``role`` as a GeoDataFrame in EPSG:27700 with columns code, name, geometry,
    sorted by code; only the features of ``[area] lad_codes`` when the dataset names its ``lad_column``.
    Checked against the bundle lock; cached per file version. Callers must not mutate it."""
    ds = config.boundary(role)
    (path,) = dataset_files(config, ds.key)
    return _load_boundary_cached(str(path), path.stat().st_mtime_ns, ds.code, ds.name, ds.lad_column,
                                 config.lad_codes)


def load_table(config: Config, key: str) -> pd.DataFrame:
    """A configured CSV table as strings (callers convert the columns they use)."""
    (path,) = dataset_files(config, key)
    return _read_table_cached(str(path), path.stat().st_mtime_ns).copy()


@lru_cache(maxsize=32)
def _read_table_cached(path: str, mtime_ns: int) -> pd.DataFrame:
    """Each table file is parsed once per version (the web reads deprivation and population per layer)."""
    return pd.read_csv(path, dtype=str, encoding="utf-8")


def load_population(config: Config) -> pd.Series:
    """Usual residents per area code of the population dataset's geography (Census 2021 by default)."""
    (ds,) = config.table("population")[:1] or [None]
    if ds is None:
        raise BundleError("no population dataset configured (a [datasets.*] table with role = 'population')",
                          path=config.source)
    df = load_table(config, ds.key)
    values = pd.to_numeric(df[ds.value].str.replace(",", ""), errors="coerce")
    if values.isna().any():
        bad = df.loc[values.isna(), ds.code].iloc[0]
        raise BundleError(f"population for {bad} is not a number", path=config.data_dir / ds.path,
                          column=ds.value)
    return pd.Series(values.to_numpy(), index=df[ds.code].astype(str), name="population")
