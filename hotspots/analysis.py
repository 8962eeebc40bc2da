"""One call from an area layer to a hot-spot table: weights, Gi*, local and global Moran, labels.

Why a separate layer over :mod:`hotspots.stats`: the statistics take arrays; people and the web
app need a table with area and ward names, plain-English labels, the global result in words, and
provenance (weights, permutations, seed, cut-offs, versions) travelling with every export.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd

from . import stats as _stats  # aliased: ``stats`` is a parameter of analyse_areas
from .errors import AnalysisError
from .export import jsonable
from .weights import BNG_EPSG, SpatialWeights, build_weights, parse_spec

STATS = ("gistar", "lisa", "moran")
#: multiple-testing modes: no correction, Benjamini-Hochberg FDR, Bonferroni (GeoDa's three)
SIGNIFICANCE = {"raw": "no correction", "fdr": "False Discovery Rate (Benjamini-Hochberg)",
                "bonferroni": "Bonferroni"}
VARIABLES = ("count", "rate", "eb_rate")
#: Rates are per this many residents.
RATE_PER = 1000.0
#: Shown on every export when the caller gives no attribution of its own.
DEFAULT_ATTRIBUTION = ("Contains public sector information licensed under the Open Government Licence v3.0. "
                       "Boundaries: Office for National Statistics; contains OS data © Crown copyright and "
                       "database right.")
#: How many 99 % hot spots the summary names.
SUMMARY_TOP = 5
TABLE_COLUMNS = ["area_code", "area_name", "ward_code", "ward_name", "value", "gi_z", "gi_p", "gi_p_sim",
                 "gi_bin", "gi_label", "lisa_i", "lisa_q", "lisa_p_sim", "lisa_label", "n_neighbours",
                 "geometry"]
POLYGON_TYPES = {"Polygon", "MultiPolygon"}


def _versions() -> dict[str, str]:
    import geopandas
    import numpy
    import scipy
    import shapely

    from . import __version__ as hv
    return {"numpy": numpy.__version__, "scipy": scipy.__version__, "shapely": shapely.__version__,
            "geopandas": geopandas.__version__, "hotspots": hv}


def format_p(p: float, permutations: int | None = None) -> str:
    """p in words; at a permutation test's floor, 2/(R+1) two-sided, say that it is the floor."""
    if not math.isfinite(p):
        return "p not computed"
    if permutations and p <= 2.0 / (permutations + 1) + 1e-12:
        return f"p ≤ {p:.4g}, the smallest {permutations:,} permutations can give"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


@dataclass(frozen=True)
class AnalysisResult:
    """The table (EPSG:27700), the global Moran dict and the provenance metadata."""

    table: gpd.GeoDataFrame
    moran: dict
    metadata: dict

    # -- words ------------------------------------------------------------------------------------
    def summary_lines(self, subject: str | None = None) -> list[str]:
        """Plain-English lines: what global Moran's I means here, then the 99 % Gi* hot spots."""
        subject = subject or self.metadata.get("subject") or "violence"
        lines: list[str] = []
        if self.moran:
            lines.append("Global Moran's I: " + moran_sentence(self.moran, self.metadata.get("alpha", 0.05), subject))
        t = self.table
        if "gi_bin" in t and t["gi_z"].notna().any():
            hot = t[t["gi_bin"] == 3].sort_values("gi_z", ascending=False)
            n95 = int((t["gi_bin"] >= 2).sum())
            n_cold = int((t["gi_bin"] <= -2).sum())
            fdr = " (FDR-corrected)" if self.metadata.get("fdr") else ""
            if len(hot):
                lines.append(f"{len(hot)} area(s) are Gi* hot spots at 99% confidence{fdr}; the strongest:")
                for _, r in hot.head(SUMMARY_TOP).iterrows():
                    ward = f", ward {r['ward_name']}" if isinstance(r["ward_name"], str) and r["ward_name"] else ""
                    name = r["area_name"] if isinstance(r["area_name"], str) and r["area_name"] else r["area_code"]
                    lines.append(f"  {name} ({r['area_code']}{ward}): value {r['value']:g}, z = {r['gi_z']:.2f}")
            else:
                lines.append(f"No area is a Gi* hot spot at 99% confidence{fdr}.")
            lines.append(f"Hot spots at 95% or more: {n95}; cold spots at 95% or more: {n_cold}.")
        for w in self.metadata.get("warnings", []):
            lines.append(f"Warning: {w}")
        return lines

    # -- files ------------------------------------------------------------------------------------
    def _attribution(self) -> list[str]:
        """The metadata's attribution when the caller set one (an empty list for a file of the user's own);
        the ONS/OS default only when nobody said."""
        a = self.metadata["attribution"] if "attribution" in self.metadata else [DEFAULT_ATTRIBUTION]
        return [a] if isinstance(a, str) else list(a or [])

    def export_metadata(self) -> dict:
        """Everything a file says about itself: provenance, parameters, attribution and global Moran (all
        inference modes, full precision)."""
        meta = dict(jsonable(self.metadata))
        meta["attribution"] = self._attribution()
        meta["moran"] = jsonable(self.moran)
        return meta

    def export_table(self) -> gpd.GeoDataFrame:
        """The table with the field names every download uses: ``code`` (or the ``id_column`` of a user's
        file) and ``name``; one type per column (:func:`hotspots.export.typed_frame`)."""
        from .export import typed_frame
        key = self.metadata.get("id_column") or "code"
        t = self.table.rename(columns={"area_code": key, "area_name": "name"})
        return typed_frame(t)

    def to_geojson(self, path: str | Path) -> Path:
        """RFC 7946 GeoJSON: EPSG:4326, 6-decimal coordinates, no ``crs`` member; ``metadata`` and
        ``attribution`` as top-level foreign members."""
        from .export import to_geojson_dict
        path = Path(path)
        if self.table.crs is None:
            raise AnalysisError("the areas have no CRS, and GeoJSON must be in longitude/latitude: declare the "
                                "file's CRS with --crs EPSG:XXXX, or write .csv or .gpkg", path=path)
        fc = to_geojson_dict(self.export_table(), self.export_metadata())
        fc.pop("crs", None)
        fc["attribution"] = self._attribution()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(fc, separators=(",", ":"), allow_nan=False), encoding="utf-8")
        return path

    def sidecar_path(self, path: str | Path) -> Path:
        return Path(path).with_suffix(".metadata.json")

    def _write_sidecar(self, path: Path) -> None:
        self.sidecar_path(path).write_text(json.dumps(self.export_metadata(), indent=2, allow_nan=False),
                                           encoding="utf-8")

    def to_csv(self, path: str | Path) -> Path:
        """The table without geometry, data only; metadata in the sidecar ``<name>.metadata.json``."""
        from .export import csv_text
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(csv_text(self.export_table()), encoding="utf-8")
        self._write_sidecar(path)
        return path

    def to_gpkg(self, path: str | Path) -> Path:
        """GeoPackage layer ``hotspots`` (EPSG:27700) with a ``metadata`` table, plus the metadata sidecar."""
        from .export import write_gpkg
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        write_gpkg(self.export_table(), path, "hotspots", self.export_metadata())
        self._write_sidecar(path)
        return path

    def write(self, path: str | Path) -> Path:
        """Write by suffix: .csv, .geojson/.json or .gpkg."""
        suffix = Path(path).suffix.lower()
        if suffix == ".csv":
            return self.to_csv(path)
        if suffix in (".geojson", ".json"):
            return self.to_geojson(path)
        if suffix == ".gpkg":
            return self.to_gpkg(path)
        raise AnalysisError(f"unknown output format {suffix!r}: use .csv, .geojson or .gpkg", path=path)


# -- significance ----------------------------------------------------------------------------------

def cutoffs(table: pd.DataFrame, mode: str, alpha: float) -> dict:
    """The p-value cut-offs actually applied, for legends, panels and export metadata."""
    pg = table["gi_p"].to_numpy(float) if "gi_p" in table else np.array([])
    pl = table["lisa_p_sim"].to_numpy(float) if "lisa_p_sim" in table else np.array([])
    out: dict[str, Any] = {"mode": mode, "alpha": alpha, "tests": int(np.isfinite(pg).sum())}
    levels = (("90%", 0.10), ("95%", 0.05), ("99%", 0.01))
    if mode == "raw":
        out["gi"] = {lvl: a for lvl, a in levels}
        out["lisa"] = alpha
    elif mode == "fdr":
        out["gi"] = {lvl: _stats.fdr_cutoff(pg, a) for lvl, a in levels}
        out["lisa"] = _stats.fdr_cutoff(pl, alpha)
    else:
        out["gi"] = {lvl: _stats.bonferroni_cutoff(pg, a) for lvl, a in levels}
        out["lisa"] = _stats.bonferroni_cutoff(pl, alpha)
    return out


def rebin_bonferroni(table: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Gi* bins and LISA labels with Bonferroni cut-offs (α/m per confidence level; m = areas tested)."""
    t = table.copy()
    pg = t["gi_p"].to_numpy(float)
    z = t["gi_z"].to_numpy(float)
    bins = np.zeros(len(t), dtype=int)
    for level, a in ((1, 0.10), (2, 0.05), (3, 0.01)):
        bins[np.isfinite(pg) & (pg <= _stats.bonferroni_cutoff(pg, a))] = level
    t["gi_bin"] = np.where(np.nan_to_num(z) < 0, -bins, bins)
    t["gi_label"] = [old if not np.isfinite(pp) else _stats.GI_LABELS[int(b)]  # islands, undefined: as they were
                     for b, pp, old in zip(t["gi_bin"], pg, t["gi_label"])]
    if "lisa_p_sim" in t:
        pl = t["lisa_p_sim"].to_numpy(float)
        cut = _stats.bonferroni_cutoff(pl, alpha)
        t["lisa_label"] = [lab if lab == _stats.LABEL_NO_NEIGHBOURS else
                           (_stats.LISA_QUADRANTS.get(int(q), _stats.LABEL_NOT_SIGNIFICANT)
                            if np.isfinite(pp) and pp <= cut else _stats.LABEL_NOT_SIGNIFICANT)
                           for lab, q, pp in zip(t["lisa_label"], t["lisa_q"].fillna(0), pl)]
    return t


def moran_sentence(moran: dict, alpha: float, subject: str = "violence") -> str:
    """Global Moran's I in plain English: the one place this sentence is written (CLI summary, side panel,
    briefing)."""
    if not moran:
        return ""
    def num(key: str) -> float:  # exported dicts carry null for NaN
        v = moran.get(key)
        return float("nan") if v is None else float(v)
    simulated = math.isfinite(num("p_sim"))
    p = num("p_sim") if simulated else num("p_rand")
    if not math.isfinite(num("I")):
        return f"Moran's I is undefined for {subject} here (no variation, or no neighbours)."
    nums = f"(I = {num('I'):.2f}, z = {num('z_rand'):.1f}, {format_p(p, moran.get('permutations') if simulated else None)})"
    if p <= alpha and num("I") > num("EI"):
        return f"{subject} is clustered: similar values sit next to each other more than chance would give {nums}."
    if p <= alpha:
        return f"{subject} is dispersed: neighbouring areas differ more than chance would give {nums}."
    return f"no evidence that {subject} clusters; the map is consistent with chance {nums}."


# -- input ----------------------------------------------------------------------------------------

def read_areas(path: str | Path, id_col: str, value_col: str | None = None,
               extra_cols: Iterable[str] = (), *, crs: str | None = None,
               allow_no_crs: bool = False) -> gpd.GeoDataFrame:
    """Read any polygon file (GeoJSON, GeoPackage, shapefile...) and reproject it to EPSG:27700.

    ``crs`` declares the CRS of a file that has none (a shapefile without ``.prj``); a file that has one
    keeps it. ``allow_no_crs`` returns a file without a CRS as it is (``crs`` None): contiguity needs no
    units, distances do, so the caller decides. Errors name the file and, for a missing column, the
    columns it does have.
    """
    path = Path(path)
    if not path.exists():
        raise AnalysisError("file not found", path=path)
    try:
        try:  # Arrow batches are about twice as fast as pyogrio's row-by-row reading
            gdf = gpd.read_file(path, engine="pyogrio", use_arrow=True)
        except ImportError:  # pragma: no cover - pyarrow is optional
            gdf = gpd.read_file(path)
    except Exception as exc:  # pyogrio raises several types; all mean "not a readable layer"
        raise AnalysisError(f"cannot read as a spatial layer: {exc}", path=path) from None
    for col in [id_col, value_col, *extra_cols]:
        if col and col not in gdf.columns:
            have = ", ".join(c for c in gdf.columns if c != gdf.geometry.name)
            raise AnalysisError(f"no column {col!r} (columns: {have})", path=path, column=col)
    if crs is not None:
        from pyproj import CRS
        try:
            declared = CRS.from_user_input(crs)
        except Exception:  # pyproj raises CRSError and others for text it cannot read
            raise AnalysisError(f"--crs {crs!r} is not a CRS pyproj knows (e.g. EPSG:27700)", path=path) from None
        if gdf.crs is not None and not gdf.crs.equals(declared):
            raise AnalysisError(f"the file already has a CRS ({gdf.crs.name}); --crs only declares one for a file "
                                "without a CRS: leave it out", path=path)
        gdf = gdf.set_crs(declared, allow_override=True)
    if gdf.crs is None and not allow_no_crs:
        raise AnalysisError("the file has no CRS; save it with one (e.g. EPSG:27700 or EPSG:4326) or declare it "
                            "with --crs EPSG:XXXX", path=path)
    if len(gdf) == 0:
        raise AnalysisError("the file has no features", path=path)
    types = set(gdf.geom_type.dropna())
    if not types <= POLYGON_TYPES:
        raise AnalysisError(f"need polygons, found {', '.join(sorted(types))}", path=path)
    if gdf.geometry.isna().any() or gdf.geometry.is_empty.any():
        raise AnalysisError("some features have no geometry", path=path)
    if gdf.crs is None:
        return gdf
    return gdf if gdf.crs.to_epsg() == BNG_EPSG else gdf.to_crs(BNG_EPSG)


def _values(areas: gpd.GeoDataFrame, value_col: str, variable: str, population_col: str | None,
            ids: Sequence) -> np.ndarray:
    if value_col not in areas:
        raise AnalysisError(f"no column {value_col!r}", column=value_col)
    raw = pd.to_numeric(areas[value_col], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(raw))
    if len(bad):
        names = ", ".join(str(ids[i]) for i in bad[:10])
        raise AnalysisError(f"not a number in {len(bad)} area(s): {names}", column=value_col)
    if variable == "count":
        return raw
    if not population_col or population_col not in areas:
        raise AnalysisError(f"variable {variable!r} needs a population column", column=population_col)
    pop = pd.to_numeric(areas[population_col], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~(pop > 0))
    if len(bad):
        names = ", ".join(str(ids[i]) for i in bad[:10])
        raise AnalysisError(f"population missing or zero in {len(bad)} area(s), so no rate: {names}",
                            column=population_col)
    if variable == "rate":
        return raw / pop * RATE_PER
    return _stats.empirical_bayes_rate(raw, pop) * RATE_PER


def analyse_areas(areas: gpd.GeoDataFrame, id_col: str, value_col: str, *, name_col: str | None = None,
                  ward_cols: tuple[str, str] | None = None, stats: Sequence[str] = STATS,
                  weights: str = "queen", permutations: int | None = None, seed: int = 12345,
                  alpha: float = 0.05, fdr: bool = False, variable: str = "count",
                  population_col: str | None = None, metadata: dict | None = None,
                  cache_dir: str | Path | None = None, significance: str | None = None,
                  spatial_weights: SpatialWeights | None = None, draws: str = "per-site",
                  moran_permutations: int | None = None) -> AnalysisResult:
    """Run Gi*, local Moran and global Moran on one value per area.

    Parameters
    ----------
    areas : polygons in EPSG:27700, one row per area (zero counts included).
    id_col, value_col, name_col : area code, the value (a count) and an optional area name.
    ward_cols : (ward code column, ward name column) if the table should carry the ward.
    stats : any of ``gistar``, ``lisa``, ``moran``.
    weights : ``queen`` | ``rook`` | ``knn:K`` | ``distance:METRES``.
    permutations : None = 9,999 below 10,000 areas, else 999.
    variable : ``count`` (value as is), ``rate`` (per 1,000 of ``population_col``) or ``eb_rate``
        (empirical-Bayes-smoothed rate per 1,000, for small populations).
    metadata : merged into the result's metadata (e.g. geography, period, attribution).
    significance : ``raw`` | ``fdr`` | ``bonferroni`` (``fdr=True`` is the older spelling of ``fdr``); the
        cut-offs actually applied are in ``metadata["cutoffs"]``.
    spatial_weights : weights already built for these areas in this order (a grid's lattice weights); the
        ``weights`` text then only names them.
    draws : how Gi*'s permutations are drawn (:func:`hotspots.stats.gi_star`).
    moran_permutations : permutations for the global Moran's I (default: ``permutations``); 0 leaves it to
        the analytical tests alone, as ArcGIS's Spatial Autocorrelation tool does.
    """
    significance = significance or ("fdr" if fdr else "raw")
    if significance not in SIGNIFICANCE:
        raise AnalysisError(f"unknown significance {significance!r}: choose from {', '.join(SIGNIFICANCE)}")
    fdr = significance == "fdr"
    chosen = tuple(dict.fromkeys(s.strip().lower() for s in stats))
    unknown = [s for s in chosen if s not in STATS]
    if unknown or not chosen:
        raise AnalysisError(f"unknown statistic {', '.join(unknown) or '(none)'}: choose from {', '.join(STATS)}")
    if variable not in VARIABLES:
        raise AnalysisError(f"unknown variable {variable!r}: choose from {', '.join(VARIABLES)}")
    if not 0 < alpha < 1:
        raise AnalysisError(f"alpha must be between 0 and 1, got {alpha}")
    if id_col not in areas:
        raise AnalysisError(f"no column {id_col!r}", column=id_col)
    spec = parse_spec(weights)
    if spatial_weights is None:
        w = build_weights(areas, spec, id_col=id_col, cache_dir=cache_dir)
    else:
        w = spatial_weights
        if list(w.ids) != areas[id_col].tolist():
            raise AnalysisError("the weights given are not for these areas in this order", column=id_col)
    ids = w.ids
    y = _values(areas, value_col, variable, population_col, ids)
    n = len(y)
    n_perm = _stats.default_permutations(n) if permutations is None else int(permutations)
    warnings: list[str] = []

    table = pd.DataFrame({
        "area_code": list(ids),
        "area_name": areas[name_col].to_numpy() if name_col else [None] * n,
        "ward_code": areas[ward_cols[0]].to_numpy() if ward_cols else [None] * n,
        "ward_name": areas[ward_cols[1]].to_numpy() if ward_cols else [None] * n,
        "value": y,
    })
    nan = np.full(n, np.nan)
    gi_cut: dict = {}
    if "gistar" in chosen:
        gi = _stats.gi_star(y, w, permutations=n_perm, seed=seed, alpha=alpha, fdr=fdr, draws=draws)
        table["gi_z"], table["gi_p"], table["gi_p_sim"] = gi.z, gi.p_norm, gi.p_sim
        table["gi_bin"], table["gi_label"] = gi.bin, list(gi.labels)
        gi_cut = gi.bin_cutoffs
        warnings += [x for x in gi.warnings if x not in warnings]
    else:
        table["gi_z"], table["gi_p"], table["gi_p_sim"] = nan, nan, nan
        table["gi_bin"], table["gi_label"] = 0, "Not computed"
    lisa_cut = None
    if "lisa" in chosen:
        lm = _stats.local_moran(y, w, permutations=n_perm, seed=seed, alpha=alpha, fdr=fdr)
        table["lisa_i"], table["lisa_q"], table["lisa_p_sim"] = lm.I, lm.q, lm.p_sim
        table["lisa_label"] = list(lm.labels)
        lisa_cut = lm.cutoff
        warnings += [x for x in lm.warnings if x not in warnings]
    else:
        table["lisa_i"], table["lisa_q"], table["lisa_p_sim"] = nan, 0, nan
        table["lisa_label"] = "Not computed"
    table["n_neighbours"] = w.cardinalities
    moran_perm = n_perm if moran_permutations is None else int(moran_permutations)
    moran = _stats.moran_global(y, w, permutations=moran_perm, seed=seed) if "moran" in chosen else {}
    if w.islands and not any("no neighbours" in x for x in warnings):
        warnings.append(f"{len(w.islands)} area(s) have no neighbours: {', '.join(map(str, w.islands[:10]))}")
    if n < _stats.MIN_AREAS_GISTAR and _stats.WARN_FEW_AREAS not in warnings:
        warnings.append(_stats.WARN_FEW_AREAS)

    cut = cutoffs(table, significance, alpha)
    if significance == "bonferroni":
        table = rebin_bonferroni(table, alpha)
    gdf = gpd.GeoDataFrame(table, geometry=areas.geometry.to_numpy(), crs=areas.crs)[TABLE_COLUMNS]
    meta: dict[str, Any] = {
        "geography": None, "weights": str(spec), "islands": list(w.islands),
        "n_components": w.n_components, "permutations": n_perm, "seed": int(seed), "fdr": bool(fdr),
        "draws": draws, "moran_permutations": moran_perm if "moran" in chosen else None,
        "alpha": float(alpha), "cutoff_lisa": lisa_cut, "cutoff_gi_bins": gi_cut,
        "significance_rule": "p <= cut-off; all p-values two-sided", "significance": significance,
        "cutoffs": cut, "moran": jsonable(moran),
        "p_floor": 2.0 / (n_perm + 1) if n_perm else None,
        "n": n, "variable": variable, "value_column": value_col,
        "rate_per": RATE_PER if variable != "count" else None,
        "statistics": list(chosen), "warnings": warnings, "versions": _versions(),
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "crs": f"EPSG:{BNG_EPSG}",
    }
    meta.update(metadata or {})
    return AnalysisResult(table=gdf, moran=moran, metadata=meta)
