"""Write a working configuration for any local authority from the national files as their publishers ship them.

Why: configuring another area used to mean copying 150 lines of TOML and guessing column names. The files
are recognised by their COLUMNS (ONS ``LSOA21CD``, ``WD24CD``, ``LAD24CD``; MHCLG's long IoD headers; Census
TS001; the police.uk archive schema), never by their names, so a folder of downloads renamed at will still
works. Membership of the area comes from the LAD columns the files themselves carry (a boundary's
``LADnnCD``, a lookup's, the IoD files'); a boundary with no LAD column is matched through those codes, or
failing that by where its areas lie. Only headers (``pyogrio.read_info`` for spatial files) are read to
recognise a file; the code columns are read to decide membership.

A boundary that covers more than the area and names no LAD column (the ONS national LSOA 2021 file) cannot be
filtered by ``lad_column``: its features for the area are written to an *area bundle* folder that mirrors the
source folder's layout (every other file is linked there), so the dataset paths stay those of the sources.
"""
from __future__ import annotations

import csv
import gzip
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import Transformer

from .bundle import BNG, WGS84
from .config import config_base
from .errors import ConfigError

UNKNOWN = "unknown — fill in"
OGL = "OGL-3.0"
SPATIAL_SUFFIXES = (".geojson", ".gpkg", ".shp")
JSON_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson")
POLICE_CSV_COLUMNS = ("Crime ID", "Month", "Reported by", "Longitude", "Latitude", "LSOA code", "Crime type")
POLICE_API_KEYS = {"category", "location", "month"}
#: police.uk API records sampled per file to decide whether it covers the area
API_SAMPLE = 2000
#: a code column of a family of geographies; the year (two or four digits) where the column carries one
_FAMILIES = (
    ("lsoa21", re.compile(r"^(LSOA21CD|LSOA code \(2021\))$", re.I)),
    ("lsoa11", re.compile(r"^(LSOA11CD|LSOA code \(2011\))$", re.I)),
    ("ward", re.compile(r"^WD(?P<yy>\d\d)CD$", re.I)),
    ("lad", re.compile(r"^(LAD(?P<yy>\d\d)CD|LADCD|LADCD_ACTIVE|Local Authority District code \((?P<yyyy>\d{4})\))$",
                       re.I)),
    ("rgn", re.compile(r"^(RGN(?P<yy>\d\d)CD|RGNCD)$", re.I)),
)
#: a decile column of the IoD files (File 1 writes "... Decile", the others add "(where 1 is most deprived ...)")
_DEPRIVED_DECILE = re.compile(r"^(?P<name>.+?)\s+Decile\b", re.I)
TS001_CODES = ("geography code", "mnemonic")
TS001_VALUES = ("Residence type: Total; measures: Value", "total", "Usual residents: Total; measures: Value")
TS001_NAMES = ("geography", "2021 super output area - lower layer")

ONS_BOUNDARY_ATTRIBUTION = ("Source: Office for National Statistics licensed under the Open Government Licence v3.0. "
                            "Contains OS data © Crown copyright and database right {year}.")
IOD_ATTRIBUTION = ("Contains public sector information licensed under the Open Government Licence v3.0 "
                   "(English Indices of Deprivation {year}, MHCLG).")
CENSUS_ATTRIBUTION = ("Source: Office for National Statistics, Census 2021, licensed under the Open Government "
                      "Licence v3.0.")
POLICE_ATTRIBUTION = ("Contains public sector information licensed under the Open Government Licence v3.0 "
                      "(data.police.uk, Home Office).")


class InitError(ConfigError):
    """``hotspots init`` cannot write a working configuration (no boundary covers the area, a file exists)."""


@dataclass
class Recognised:
    """One file recognised by its columns: what it is and which of its columns hold which codes."""

    path: Path
    rel: str  # path relative to the scanned folder, POSIX separators
    what: str  # boundary | deprivation | population | lookup | police-csv | police-api-json | other
    columns: tuple[str, ...] = ()
    #: family (lsoa21, lsoa11, ward, lad, rgn) -> code columns of that family, best first
    codes: dict[str, list[str]] = field(default_factory=dict)
    ward_year: int = 0  # 2000 + yy of the ward code column
    iod_year: int = 0  # 2019 or 2025 for IoD files
    driver_format: str = ""  # geojson | gpkg | shp | csv | police-csv | police-api-json
    #: the code and name columns, read once (a national boundary file takes seconds to parse)
    frame: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def role(self) -> str:
        """The geography a boundary is keyed on (its first of LSOA 2021, LSOA 2011, ward code columns)."""
        return next((fam for fam in ("lsoa21", "lsoa11", "ward") if fam in self.codes), "")


@dataclass
class Pick:
    """A dataset of the configuration to write."""

    key: str
    spec: dict
    source: Recognised | None = None
    in_area: int = 0  # features/rows of the area
    total: int = 0
    note: str = ""


@dataclass
class InitPlan:
    """Everything ``hotspots init`` found for the area: what to write, what is missing, what was skipped."""

    folder: Path
    lad_codes: tuple[str, ...]
    lad_code: str
    name: str
    picks: list[Pick]
    missing: list[str]
    skipped: list[str]
    centre: tuple[float, float]
    zoom: int
    lsoa_count: int
    ward_count: int
    #: dataset path -> GeoDataFrame of the area's features, for boundaries that cover more and name no LAD
    #: column, and for shapefiles (written as GeoPackages)
    subsets: dict = field(default_factory=dict)
    uses_lad_filter: bool = False


# -- recognising files -------------------------------------------------------------------------------------

def code_columns(columns: list[str] | tuple[str, ...]) -> tuple[dict[str, list[str]], int]:
    """Family -> code columns, and the ward year (from ``WDyyCD``), read off a header."""
    out: dict[str, list[str]] = {}
    ward_year = 0
    for col in columns:
        for fam, pattern in _FAMILIES:
            m = pattern.match(str(col).strip())
            if m:
                out.setdefault(fam, []).append(col)
                if fam == "ward":
                    ward_year = max(ward_year, 2000 + int(m.group("yy")))
    return out, ward_year


def name_column(code: str, columns: tuple[str, ...]) -> str:
    """The name column beside a code column (``WD25CD`` -> ``WD25NM``, ``LSOA code (2021)`` -> name)."""
    for cand in (re.sub(r"CD$", "NM", code, flags=re.I), code.replace(" code ", " name ")):
        hit = next((c for c in columns if c.lower() == cand.lower()), None)
        if hit and hit != code:
            return hit
    return ""


def _csv_header(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return next(csv.reader(fh), [])


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.name.lower().endswith(".gz") else \
        open(path, encoding="utf-8")


def _police_api_records(path: Path, limit: int | None = API_SAMPLE) -> list[dict]:
    """The first ``limit`` records of a police.uk API dump (a JSON array, or JSON Lines)."""
    with _open_text(path) as fh:
        head = fh.read(1)
        while head and head.isspace():
            head = fh.read(1)
        if head == "[":
            records = json.loads(head + fh.read())
            return records[:limit] if limit else records
        out = []
        first = head + fh.readline()
        if first.strip():
            out.append(json.loads(first))
        for line in fh:
            if limit and len(out) >= limit:
                break
            if line.strip():
                out.append(json.loads(line))
        return out


def _looks_like_police_api(path: Path) -> bool:
    try:
        with _open_text(path) as fh:
            text = fh.read(4096)
    except (OSError, UnicodeDecodeError, EOFError):
        return False
    first = text.lstrip()[:1]
    if first not in ("[", "{"):
        return False
    keys = set(re.findall(r'"([a-z_]+)"\s*:', text[:2000]))
    return POLICE_API_KEYS <= keys and "FeatureCollection" not in text[:200]


def recognise(path: Path, folder: Path) -> Recognised | None:
    """What one file is, from its columns (spatial files via ``pyogrio.read_info``); None if not one of ours."""
    rel = path.relative_to(folder).as_posix()
    low = path.name.lower()
    if low.endswith(SPATIAL_SUFFIXES) or (low.endswith(".json") and not _looks_like_police_api(path)):
        try:
            info = pyogrio.read_info(path)
        except Exception:  # not a spatial file after all (pyogrio raises its own DataSourceError types)
            return None
        cols = tuple(str(c) for c in info["fields"])
        codes, year = code_columns(cols)
        fmt = "gpkg" if low.endswith(".gpkg") else "shp" if low.endswith(".shp") else "geojson"
        if any(f in codes for f in ("lsoa21", "lsoa11", "ward")):
            return Recognised(path, rel, "boundary", cols, codes, ward_year=year, driver_format=fmt)
        return None
    if low.endswith(JSON_SUFFIXES):
        return Recognised(path, rel, "police-api-json", driver_format="police-api-json") \
            if _looks_like_police_api(path) else None
    if not low.endswith(".csv"):
        return None
    try:
        cols = tuple(c.strip() for c in _csv_header(path))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    codes, year = code_columns(cols)
    rec = Recognised(path, rel, "other", cols, codes, ward_year=year, driver_format="csv")
    if all(c in cols for c in POLICE_CSV_COLUMNS):
        rec.what, rec.driver_format = "police-csv", "police-csv"
    elif any(_DEPRIVED_DECILE.search(c) for c in cols) and ("lsoa21" in codes or "lsoa11" in codes):
        rec.what, rec.iod_year = "deprivation", 2025 if "lsoa21" in codes else 2019
    elif "lsoa11" in codes and not ({"lsoa21", "ward"} & set(codes)) and any("mid 20" in c for c in cols):
        rec.what, rec.iod_year = "denominators", 2019  # IoD2019 File 6 (Census 2021 is the population used)
    elif _pick_ci(cols, TS001_CODES) and _pick_ci(cols, TS001_VALUES):
        rec.what = "population"
    elif len({"lsoa21", "lsoa11", "ward", "lad", "rgn"} & set(codes)) >= 2:
        rec.what = "lookup"
    return rec if rec.what != "other" or rec.codes else None  # a CSV with no code column is not ours


def _pick_ci(columns: tuple[str, ...], wanted: tuple[str, ...]) -> str:
    low = {c.lower(): c for c in columns}
    return next((low[w.lower()] for w in wanted if w.lower() in low), "")


def scan(folder: Path) -> list[Recognised]:
    """Every recognised file under ``folder`` (recursively; hidden folders and shapefile sidecars skipped)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            rec = recognise(Path(root) / name, folder)
            if rec is not None:
                found.append(rec)
    return found


# -- reading the code columns ------------------------------------------------------------------------------

def read_columns(rec: Recognised, columns: list[str]) -> pd.DataFrame:
    """Only ``columns`` of a table or boundary file, as strings (no geometry). Every code column and its
    name column are read together on first use and kept with the file."""
    columns = list(dict.fromkeys(columns))
    if rec.frame is None or not set(columns) <= set(rec.frame.columns):
        codes = [c for cols in rec.codes.values() for c in cols]
        wanted = list(dict.fromkeys(columns + codes + [n for c in codes for n in [name_column(c, rec.columns)] if n]))
        if rec.what == "boundary":
            df = pyogrio.read_dataframe(rec.path, columns=wanted, read_geometry=False)
        else:
            df = pd.read_csv(rec.path, usecols=wanted, dtype=str, encoding="utf-8-sig")
        rec.frame = df[wanted].astype(str)
    return rec.frame[columns]


def membership(found: list[Recognised]) -> tuple[dict[str, dict[str, set[str]]], dict[str, set[str]]]:
    """From every file holding a geography code and a LAD code: family -> code -> LADs, and region -> LADs."""
    members: dict[str, dict[str, set[str]]] = {"lsoa21": {}, "lsoa11": {}, "ward": {}}
    regions: dict[str, set[str]] = {}
    for rec in found:
        if "lad" not in rec.codes:
            continue
        for fam in members:
            for col in rec.codes.get(fam, []):
                for lad_col in rec.codes["lad"]:
                    df = read_columns(rec, [col, lad_col])
                    for code, lad in zip(df[col], df[lad_col]):
                        members[fam].setdefault(code, set()).add(lad)
        for rgn_col in rec.codes.get("rgn", []):
            for lad_col in rec.codes["lad"]:
                df = read_columns(rec, [rgn_col, lad_col])
                for rgn, lad in zip(df[rgn_col], df[lad_col]):
                    regions.setdefault(rgn, set()).add(lad)
    return members, regions


def expand_lads(codes: list[str], region: str | None, regions: dict[str, set[str]]) -> tuple[str, ...]:
    """LAD codes asked for; a region (``--region``, or an ``E12...`` code among them) expanded to its LADs
    through any file pairing region and LAD codes."""
    asked = [(c.strip().upper(), c.strip().upper().startswith("E12")) for c in codes if c.strip()]
    asked += [(region.strip().upper(), True)] if region else []
    out: list[str] = []
    for code, is_region in asked:
        if not is_region:
            out.append(code)
        elif code in regions:
            out += sorted(regions[code])
        else:
            raise InitError(f"region {code} cannot be expanded: no file in the folder pairs a region code "
                            "column (RGNnnCD) with a LAD code column", column="--region")
    if not out:
        raise InitError("no local authority given (use --lad CODE[,CODE...] or --region CODE)", column="--lad")
    return tuple(dict.fromkeys(out))


# -- choosing the files of the area ------------------------------------------------------------------------

@dataclass
class _Coverage:
    rec: Recognised
    code: str
    name: str
    in_area: list[str]
    total: int
    lad_column: str = ""  # set when the file's own LAD column selects the area


def boundary_coverage(rec: Recognised, lads: tuple[str, ...], members: dict, area_shape) -> _Coverage | None:
    """Which features of a boundary file belong to the area: by its own LAD column, else through the codes
    other files assign to the area's LADs, else (no code known) by where each feature's interior point lies."""
    fam = rec.role
    code = rec.codes[fam][0]
    name = name_column(code, rec.columns)
    wanted = set(lads)
    for lad_col in rec.codes.get("lad", []):
        df = read_columns(rec, [code, lad_col])
        hit = df.loc[df[lad_col].isin(wanted), code].tolist()
        if hit:
            return _Coverage(rec, code, name, hit, len(df), lad_col if len(hit) < len(df) else "")
    codes = read_columns(rec, [code])[code]
    known = members.get(fam, {})
    if any(c in known for c in codes):
        hit = [c for c in codes if known.get(c, set()) & wanted]
    elif area_shape is not None:
        gdf = pyogrio.read_dataframe(rec.path, columns=[code]).to_crs(BNG)
        pts = gdf.geometry.representative_point()
        hit = gdf.loc[shapely.contains_xy(area_shape, pts.x.to_numpy(), pts.y.to_numpy()), code].tolist()
    else:
        return None
    return _Coverage(rec, code, name, hit, len(codes)) if hit else None


def _best(covers: list[_Coverage]) -> _Coverage | None:
    """The file with most of the area's features; then the one holding least else (no filter needed)."""
    return max(covers, key=lambda c: (len(c.in_area), -c.total), default=None)


def _newest(covers: list[_Coverage]) -> _Coverage | None:
    """Of ward files, the best of the newest year's (the wards in force for that period)."""
    newest = max((c.rec.ward_year for c in covers), default=0)
    return _best([c for c in covers if c.rec.ward_year == newest])


def area_features(cov: _Coverage):
    """The area's features of a boundary file, in its own CRS (read with a SQL filter, not the whole file)."""
    codes = ", ".join("'" + c.replace("'", "''") + "'" for c in cov.in_area)
    gdf = pyogrio.read_dataframe(cov.rec.path, where=f'"{cov.code}" IN ({codes})')
    if gdf.crs is None:
        raise InitError("boundary file has no CRS (a shapefile needs its .prj)", path=cov.rec.path)
    return gdf


def centre_and_zoom(bng_bounds: tuple[float, float, float, float]) -> tuple[tuple[float, float], int]:
    """Map centre (lat, lon) and a Web Mercator zoom that shows the whole extent in about 800 pixels."""
    x0, y0, x1, y1 = bng_bounds
    lon, lat = Transformer.from_crs(BNG, WGS84, always_xy=True).transform((x0 + x1) / 2, (y0 + y1) / 2)
    extent = max(x1 - x0, y1 - y0, 1000.0)
    zoom = int(math.floor(math.log2(156543.03 * math.cos(math.radians(lat)) * 800 / extent)))
    return (round(lat, 4), round(lon, 4)), max(5, min(zoom, 16))


def _police_csv_covers(rec: Recognised, lsoa_codes: set[str]) -> bool:
    col = read_columns(rec, ["LSOA code"])["LSOA code"]
    return bool(col.isin(lsoa_codes).any())


def _police_api_covers(rec: Recognised, area_shape) -> bool:
    lonlat = []
    for r in _police_api_records(rec.path):
        loc = r.get("location") or {}
        try:
            lonlat.append((float(loc.get("longitude")), float(loc.get("latitude"))))
        except (TypeError, ValueError):
            continue
    if not lonlat:
        return False
    lon, lat = np.asarray(lonlat).T
    x, y = Transformer.from_crs(WGS84, BNG, always_xy=True).transform(lon, lat)
    return bool(shapely.contains_xy(area_shape, np.asarray(x), np.asarray(y)).any())


def _force_of(rec: Recognised) -> str:
    """The police force of a police.uk CSV (its ``Reported by`` on the first row): coverage is per force."""
    with open(rec.path, encoding="utf-8-sig", newline="") as fh:
        row = next(csv.DictReader(fh), None) or {}
    return row.get("Reported by", "") or rec.path.name


def _glob_candidates(rel: str) -> list[str]:
    """Globs that could stand for a file and its siblings: the police.uk archive's
    ``parent/*/*-force-street.csv`` over month folders, ``dir/*-force-street.csv``, then ``dir/*.ext``."""
    folder, _, name = rel.rpartition("/")
    prefix = folder + "/" if folder else ""
    suffix = "".join(Path(name).suffixes[-2:]) if name.endswith(".gz") else Path(name).suffix
    m = re.match(r"^\d{4}-\d{2}-(.+-street\.csv)$", name)
    out = []
    if m and "/" in folder:
        out.append(f"{folder.rsplit('/', 1)[0]}/*/*-{m.group(1)}")
    if m:
        out.append(f"{prefix}*-{m.group(1)}")
    return out + [f"{prefix}*{suffix}"]


def incident_globs(files: list[Recognised], folder: Path) -> dict[str, list[Recognised]]:
    """Incident files grouped under as few globs as match exactly the chosen files (a file no glob fits
    stands for itself)."""
    chosen = {f.rel for f in files}
    groups: dict[str, list[Recognised]] = {}
    for f in files:
        for pattern in _glob_candidates(f.rel):
            matched = {p.relative_to(folder).as_posix() for p in folder.glob(pattern)}
            if f.rel in matched and matched <= chosen:
                break
        else:
            pattern = re.sub(r"([*?\[])", r"[\1]", f.rel)
        groups.setdefault(pattern, []).append(f)
    return dict(sorted(groups.items()))


# -- metadata ----------------------------------------------------------------------------------------------

def manifest_vintages(folder: Path) -> dict[str, str]:
    """``path -> vintage`` from the folder's MANIFEST.md tables that have a ``vintage`` column (first sentence)."""
    manifest = folder / "MANIFEST.md"
    out: dict[str, str] = {}
    if not manifest.exists():
        return out
    header: list[str] = []
    for line in manifest.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = []
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not header:
            header = [c.lower() for c in cells]
            continue
        m = re.match(r"^`([^`]+)`$", cells[0]) if cells else None
        if m and "vintage" in header and len(cells) == len(header):
            vintage = cells[header.index("vintage")]
            out[m.group(1)] = re.split(r"(?<=\))\.\s|\.\s", vintage)[0].strip()
    return out


def boundary_metadata(rec: Recognised, role: str) -> dict:
    year = {"lsoa21": 2021, "lsoa11": 2011}.get(role, rec.ward_year)
    vintage = {"lsoa21": "LSOA December 2021 (ONS)", "lsoa11": "LSOA December 2011 (ONS)"}.get(
        role, f"Electoral wards {rec.ward_year} (ONS WD{rec.ward_year % 100:02d})")
    return {"vintage": vintage, "licence": OGL, "attribution": ONS_BOUNDARY_ATTRIBUTION.format(year=year)}


# -- the plan ----------------------------------------------------------------------------------------------

def plan_area(folder: Path, lad: list[str], region: str | None = None, name: str | None = None) -> InitPlan:
    """Recognise the files under ``folder``, decide which belong to the area, and what is missing.

    :raise InitError: no LSOA 2021 boundary holds any area of the LADs (nothing would work)."""
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise InitError("folder not found", path=folder)
    found = scan(folder)
    members, regions = membership(found)
    lads = expand_lads(lad, region, regions)
    lad_code = region.strip().upper() if region else lads[0]
    vintages = manifest_vintages(folder)
    picks: list[Pick] = []
    missing: list[str] = []
    skipped: list[str] = []
    subsets: dict = {}
    boundaries = [r for r in found if r.what == "boundary"]

    lsoa21 = _best([c for r in boundaries if r.role == "lsoa21"
                    for c in [boundary_coverage(r, lads, members, None)] if c])
    if lsoa21 is None:
        have = [r for r in boundaries if r.role == "lsoa21"]
        hint = "" if not have or members["lsoa21"] or any("lad" in r.codes for r in have) else \
            "; no file gives their LSOAs a LAD code: add the ONS LSOA 2021 to LAD lookup"
        raise InitError(f"no LSOA 2021 boundary holds any area of {_codes_text(lads)} (LSOA 2021 files found: "
                        f"{', '.join(r.rel for r in have) or 'none'}{hint}); nothing can be mapped without one",
                        path=folder)
    area21 = area_features(lsoa21).to_crs(BNG)
    area_shape = shapely.union_all(area21.geometry.buffer(1.0).to_numpy())
    shapely.prepare(area_shape)
    centre, zoom = centre_and_zoom(tuple(area21.total_bounds))
    lad_filter = False

    def add_boundary(key: str, role: str, cov: _Coverage) -> None:
        nonlocal lad_filter
        spec = {"kind": "boundary", "role": role, "path": cov.rec.rel, "format": cov.rec.driver_format,
                "code": cov.code, "name": cov.name, **boundary_metadata(cov.rec, role)}
        note = ""
        if cov.lad_column:
            spec["lad_column"] = cov.lad_column
            lad_filter = True
            note = f"filtered by its {cov.lad_column} column"
        elif len(cov.in_area) < cov.total or cov.rec.driver_format == "shp":
            if cov.rec.driver_format == "shp":  # `data install` copies one file: a shapefile is several
                spec.update(path=cov.rec.rel[:-4] + ".gpkg", format="gpkg")
                note = "shapefile written as a GeoPackage (its area's features) to the area bundle"
            else:
                note = "its area's features written to the area bundle (the file names no LAD column)"
            subsets[spec["path"]] = area_features(cov)
        spec["vintage"] = vintages.get(cov.rec.rel, spec["vintage"])
        picks.append(Pick(key, spec, cov.rec, len(cov.in_area), cov.total, note))

    add_boundary("lsoa21", "lsoa21", lsoa21)
    lsoa11 = _best([c for r in boundaries if r.role == "lsoa11"
                    for c in [boundary_coverage(r, lads, members, area_shape)] if c])
    if lsoa11:
        add_boundary("lsoa11", "lsoa11", lsoa11)
    else:
        missing.append("no LSOA 2011 boundaries found: the LSOA 2011 layers and IoD2019 maps will be off")
    wards = [c for r in boundaries if r.role == "ward" for c in [boundary_coverage(r, lads, members, area_shape)] if c]
    current = _newest([c for c in wards if c.rec.ward_year >= 2023])
    previous = _newest([c for c in wards if c.rec.ward_year < 2023])
    if current:
        add_boundary("ward", "ward", current)
    else:
        missing.append("no ward boundaries (2023 or later) found: the ward layers will be off")
    if previous:
        add_boundary("ward_pre2023", "ward_pre2023", previous)
    else:
        missing.append("no pre-2023 ward boundaries found: the old-ward layers will be off")
    for r in boundaries:
        if r not in [p.source for p in picks]:
            skipped.append(f"{r.rel}: {r.role} boundary not used (another file covers the area better, or it "
                           "holds none of its areas)")

    codes = {"lsoa21": set(lsoa21.in_area), **({"lsoa11": set(lsoa11.in_area)} if lsoa11 else {})}
    _add_tables(found, codes, picks, missing, skipped, vintages)
    _add_incidents(found, folder, codes, area_shape, lads, picks, missing, skipped)
    ward_pick = next((p for p in picks if p.key == "ward"), None)
    return InitPlan(folder, lads, lad_code, name or _default_name(lads, lad_code, lsoa21), picks, missing, skipped,
                    centre, zoom, len(lsoa21.in_area), ward_pick.in_area if ward_pick else 0, subsets, lad_filter)


def _default_name(lads: tuple[str, ...], lad_code: str, lsoa21: _Coverage) -> str:
    """The LSOA names start with the LAD's name (``Wolverhampton 001A``): the area is named after them."""
    if not lsoa21.name:
        return lad_code
    names = read_columns(lsoa21.rec, [lsoa21.code, lsoa21.name])
    names = names.loc[names[lsoa21.code].isin(set(lsoa21.in_area)), lsoa21.name]
    places = sorted({re.sub(r"\s+\d{3}[A-Z]$", "", n) for n in names})
    return ", ".join(places) if len(places) <= 3 else f"{len(lads)} local authorities ({lad_code})"


def _add_tables(found: list[Recognised], codes: dict[str, set[str]], picks: list[Pick], missing: list[str],
                skipped: list[str], vintages: dict[str, str]) -> None:
    """Population (TS001), deprivation (IoD2025 on LSOA 2021, IoD2019 on LSOA 2011) and the two lookups the
    configuration schema names, each kept only when its code column holds areas of the area."""
    def covering(rec: Recognised, fam: str, code_col: str) -> int:
        if fam not in codes:
            return 0
        return int(read_columns(rec, [code_col])[code_col].isin(codes[fam]).sum())

    pops = []
    for rec in (r for r in found if r.what == "population"):
        code = _pick_ci(rec.columns, TS001_CODES)
        n = covering(rec, "lsoa21", code)
        if n:
            pops.append((n, rec, code))
        else:
            skipped.append(f"{rec.rel}: Census TS001 table with no LSOA 2021 of the area")
    if pops:
        n, rec, code = max(pops, key=lambda t: t[0])
        picks.append(Pick("population", {
            "kind": "table", "role": "population", "path": rec.rel, "format": "csv", "code": code,
            "name": _pick_ci(rec.columns, TS001_NAMES), "value": _pick_ci(rec.columns, TS001_VALUES),
            "geography": "lsoa21", "vintage": vintages.get(rec.rel, "Census 2021 TS001 usual residents"),
            "licence": OGL, "attribution": CENSUS_ATTRIBUTION}, rec, n, 0))
    else:
        missing.append("no Census 2021 TS001 population for the area: rates per 1,000 residents will be off")

    for year, fam in ((2025, "lsoa21"), (2019, "lsoa11")):
        files = []
        for rec in (r for r in found if r.what == "deprivation" and r.iod_year == year):
            code = rec.codes[fam][0]
            n = covering(rec, fam, code)
            if n:
                files.append((rec, code, n))
            else:
                skipped.append(f"{rec.rel}: IoD{year} table with no {fam.upper()} of the area")
        deciles = {rec.rel: {m.group("name").strip().lower() for c in rec.columns
                             for m in [_DEPRIVED_DECILE.match(c)] if m} for rec, _, _ in files}
        kept = [(rec, code, n) for rec, code, n in files
                if not any(deciles[rec.rel] < deciles[o.rel] for o, _, _ in files)]
        for rel in sorted({f[0].rel for f in files} - {k[0].rel for k in kept}):
            skipped.append(f"{rel}: its deciles are all in another IoD{year} file that is used")
        kept.sort(key=lambda t: (-len(deciles[t[0].rel]), t[0].rel))
        for i, (rec, code, n) in enumerate(kept):
            extra = [c for c in deciles[rec.rel] if "idaci" in c or "idaopi" in c]
            key = f"iod{year}" if i == 0 else f"iod{year}_{'supplementary' if extra else i}"
            picks.append(Pick(key, {
                "kind": "table", "role": "deprivation", "path": rec.rel, "format": "csv", "code": code,
                "name": name_column(code, rec.columns), "geography": fam,
                "vintage": vintages.get(rec.rel, f"English Indices of Deprivation {year} (MHCLG), "
                                                 f"LSOA {2021 if fam == 'lsoa21' else 2011}"),
                "licence": OGL, "attribution": IOD_ATTRIBUTION.format(year=year)}, rec, n, 0))
        if not kept:
            missing.append(f"no IoD{year} file for the area: the IoD{year} deprivation layers will be off")

    current_ward = next((p.spec["code"] for p in picks if p.key == "ward"), "")
    for key, a, b in (("lsoa21_to_ward", "lsoa21", "ward"), ("lsoa11_to_lsoa21", "lsoa11", "lsoa21")):
        cands = []
        for rec in (r for r in found if r.what == "lookup" and a in r.codes and b in r.codes):
            if b == "ward" and (not current_ward or rec.codes["ward"][0].upper() != current_ward.upper()):
                continue  # a lookup to other wards than the configured ones would mislead
            n = covering(rec, a, rec.codes[a][0])
            if n:
                cands.append((n, rec))
        if cands:
            n, rec = max(cands, key=lambda t: (t[0], t[1].rel))
            code = rec.codes[a][0]
            picks.append(Pick(key, {"kind": "table", "role": "lookup", "path": rec.rel, "format": "csv",
                                    "code": code, "name": name_column(code, rec.columns),
                                    "vintage": vintages.get(rec.rel, UNKNOWN), "licence": UNKNOWN,
                                    "attribution": UNKNOWN}, rec, n, 0))
    used = {p.source.rel for p in picks if p.source}
    for rec in (r for r in found if r.what == "denominators"):
        skipped.append(f"{rec.rel}: IoD2019 population denominators (mid-2015) not used: Census 2021 TS001 is")
    for rec in found:
        if rec.what in ("lookup", "other") and rec.rel not in used:
            skipped.append(f"{rec.rel}: {'lookup' if rec.what == 'lookup' else 'table'} not needed by the "
                           "configuration" + (" (used to find the area)" if "lad" in rec.codes else ""))


def _add_incidents(found: list[Recognised], folder: Path, codes: dict[str, set[str]], area_shape,
                   lads: tuple[str, ...], picks: list[Pick], missing: list[str], skipped: list[str]) -> None:
    """police.uk archive CSVs whose force's first file has LSOAs of the area, and police.uk API dumps with
    records inside the area; a force-wide file is kept whole (ingest flags the rows outside the area)."""
    lsoas = set().union(*codes.values()) if codes else set()
    force_covers: dict[str, bool] = {}
    chosen: list[Recognised] = []
    for rec in (r for r in found if r.what == "police-csv"):
        force = _force_of(rec)
        if force not in force_covers:
            force_covers[force] = _police_csv_covers(rec, lsoas)
        (chosen if force_covers[force] else skipped).append(
            rec if force_covers[force] else f"{rec.rel}: police.uk CSV of {force}, no LSOA of the area")
    api = []
    for rec in (r for r in found if r.what == "police-api-json"):
        if _police_api_covers(rec, area_shape):
            api.append(rec)
        else:
            skipped.append(f"{rec.rel}: police.uk API records, none inside the area")
    if not chosen:
        missing.append(f"no police.uk CSV covers {_codes_text(lads)}"
                       + ("" if api else " (and no police.uk API records either: no incidents to ingest)"))
    for fmt, files in (("police-csv", chosen), ("police-api-json", api)):
        for pattern, group in incident_globs(files, folder).items():
            slug = re.sub(r"[^a-z0-9]+", "_", re.sub(r"\*|\.[a-z.]+$", "", pattern.lower())).strip("_")
            key = "crime_" + (re.sub(r"^crime_", "", slug)[-40:].strip("_") or "files")
            while key in {p.key for p in picks}:
                key += "_2"
            what = "police.uk street-level crime (archive CSV)" if fmt == "police-csv" else \
                "police.uk API crimes-street"
            picks.append(Pick(key, {"kind": "incidents", "path": pattern, "format": fmt,
                                    "vintage": f"{what}, {_months(group)}", "licence": OGL,
                                    "attribution": POLICE_ATTRIBUTION}, group[0], len(group), 0))


def _codes_text(codes: tuple[str, ...]) -> str:
    return ", ".join(codes) if len(codes) <= 3 else f"{', '.join(codes[:3])} or the other {len(codes) - 3} LADs"


def _months(group: list[Recognised]) -> str:
    months = sorted({m for g in group for m in re.findall(r"(?<!\d)(\d{4}-\d{2})(?!\d)", g.rel)})
    return (months[0] if len(months) == 1 else f"{months[0]} to {months[-1]}") if months else UNKNOWN


# -- writing -----------------------------------------------------------------------------------------------

def _toml_value(value) -> str:
    """A TOML literal for a string, number or list of strings (JSON's string escapes are valid TOML)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def _relative(target: Path, base: Path) -> str:
    try:
        return Path(os.path.relpath(target, base)).as_posix()
    except ValueError:  # another drive (Windows)
        return target.as_posix()


def render_toml(plan: InitPlan, out: Path, bundle: Path, command: str) -> str:
    """The configuration, in config/hotspots.toml's schema, with what was found and missing as comments."""
    base = config_base(out)
    stem = out.stem
    lines = [f"# hotspots configuration for {plan.name}, written by:", f"#   {command}",
             f"# from the files under {plan.folder} (recognised by their columns).",
             f"# LSOAs (2021) in the area: {plan.lsoa_count}; current wards: {plan.ward_count}."]
    lines += ["# MISSING: " + m for m in plan.missing]
    lines += ["# Check every vintage, licence and attribution marked \"" + UNKNOWN + "\".", "",
              "[area]", f"name = {_toml_value(plan.name)}", f"lad_code = {_toml_value(plan.lad_code)}"]
    if plan.uses_lad_filter or len(plan.lad_codes) > 1:
        lines.append(f"lad_codes = {_toml_value(list(plan.lad_codes))}")
    lines += [f"centre = [{plan.centre[0]}, {plan.centre[1]}]", f"zoom = {plan.zoom}", "",
              "[paths]", f"data_dir = {_toml_value('data-' + stem)}",
              f"instance_dir = {_toml_value('instance-' + stem)}", f"bundle = {_toml_value(_relative(bundle, base))}",
              "", "[server]", 'host = "127.0.0.1"', "port = 5000", 'tiles = "none"', "", "[disclosure]",
              'rule = "default"', "", "[analysis]", "permutations = 9999", "seed = 12345", "alpha = 0.05",
              'weights = "queen"']
    for pick in plan.picks:
        lines += ["", f"[datasets.{pick.key}]"]
        if pick.note:
            lines.append(f"# {pick.note}")
        lines += [f"{k} = {_toml_value(v)}" for k, v in pick.spec.items() if v != ""]
    return "\n".join(lines) + "\n"


def area_bundle_dir(out: Path) -> Path:
    """Where the area's subsets go when a boundary needs one: ``<config base>/area-bundles/<config name>``."""
    return config_base(out) / "area-bundles" / out.stem


def write_area(plan: InitPlan, out: Path, command: str, force: bool = False) -> Path:
    """Write the configuration (and, when a boundary needed a subset, the area bundle); return the bundle
    the configuration installs from. Nothing is overwritten without ``force``.

    :raise InitError: the configuration (or the area bundle) exists and ``force`` is false."""
    out = Path(out)
    if out.exists() and not force:
        raise InitError("configuration exists; pass --force to overwrite it", path=out)
    bundle = plan.folder
    if plan.subsets:
        bundle = area_bundle_dir(out)
        if bundle.exists() and any(bundle.iterdir()) and not force:
            raise InitError("area bundle folder exists; pass --force to overwrite it", path=bundle)
        _write_area_bundle(plan, bundle)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = render_toml(plan, out.resolve(), bundle, command)
    tmp = out.with_suffix(out.suffix + ".part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return bundle


def _write_area_bundle(plan: InitPlan, bundle: Path) -> None:
    """The area's features of each boundary that needed a subset (or a GeoPackage), and a link to every other
    chosen file, at the same relative paths as under the source folder."""
    bundle.mkdir(parents=True, exist_ok=True)
    for pick in plan.picks:
        pattern = pick.spec["path"]
        if pattern in plan.subsets:
            targets = [(bundle / pattern, None)]
        else:
            targets = [(bundle / src.relative_to(plan.folder), src) for src in sorted(plan.folder.glob(pattern))]
        for dest, src in targets:
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.is_symlink() or dest.exists():
                dest.unlink()
            if src is None:
                pyogrio.write_dataframe(plan.subsets[pattern], dest)
            else:
                dest.symlink_to(src)
