"""Place incidents in their LSOA and ward: vectorised point-in-polygon in British National Grid.

Why this design: police.uk locations are snapped to a finite set of anonymous map points, so a month of
crime has far fewer distinct locations than rows. We reproject and join each distinct location once
and broadcast the answer back to the rows. The join is compiled (hotspots.pip): a uniform grid over the
areas' bounding boxes gives the candidates and a point-in-polygon kernel that reproduces GEOS's
``intersects`` exactly decides them, in one pass over coordinate arrays (no shapely point per location;
shapely's STRtree only re-decides the rare points the kernel cannot, and it stays the reference).

Boundary rule: a point that lies exactly on a shared edge (or vertex) touches two or more areas; it goes
to the area with the smallest code, so the answer never depends on file order or floating-point luck.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import shapely
from pyproj import Transformer

from .bundle import BNG, WGS84, load_boundary
from .config import BOUNDARY_ROLES, Config
from .errors import ConfigError

if TYPE_CHECKING:
    from .pip import Rings

#: Great Britain, generously (EPSG:4326): used to reject impossible coordinates before geocoding.
GB_LON = (-8.75, 1.92)
GB_LAT = (49.80, 60.95)
#: British National Grid extent covering Great Britain (metres).
GB_EASTING = (0.0, 700_000.0)
GB_NORTHING = (0.0, 1_300_000.0)


@lru_cache(maxsize=2)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def lonlat_to_bng(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 longitude/latitude to BNG easting/northing (pyproj; Helmert unless the OSTN15 grid is installed)."""
    return _transformer(WGS84, BNG).transform(np.asarray(lon, float), np.asarray(lat, float))


def bng_to_lonlat(easting: np.ndarray, northing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _transformer(BNG, WGS84).transform(np.asarray(easting, float), np.asarray(northing, float))


@dataclass(frozen=True)
class Layer:
    role: str
    codes: np.ndarray  # sorted ascending, so the smallest index is the smallest code
    names: np.ndarray
    tree: shapely.STRtree
    #: Flat ring arrays and the bounding-box grid for the compiled point-in-polygon (hotspots.pip);
    #: built once, here.
    rings: "Rings | None" = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.rings is None:
            from .pip import build_rings
            object.__setattr__(self, "rings", build_rings(self.tree.geometries))

    def locate(self, points: np.ndarray, stats: dict | None = None) -> np.ndarray:
        """Index of the containing area for each point, -1 where none; ties go to the smallest code.

        "Containing" is GEOS's ``intersects`` (interior or boundary), decided by hotspots.pip with
        exactly GEOS's arithmetic; ``stats`` (optional) receives pair/fallback counts."""
        points = np.asarray(points, dtype=object)
        x = np.full(len(points), np.nan)
        y = np.full(len(points), np.nan)
        real = ~(shapely.is_missing(points) | shapely.is_empty(points))  # None / empty: no candidates
        if (shapely.get_type_id(points[real]) != shapely.GeometryType.POINT).any():
            raise TypeError("Layer.locate takes points")
        x[real] = shapely.get_x(points[real])
        y[real] = shapely.get_y(points[real])
        return self._locate(x, y, stats)

    def locate_xy(self, x: np.ndarray, y: np.ndarray, stats: dict | None = None) -> np.ndarray:
        """``locate`` for coordinate arrays (BNG metres); NaN coordinates are outside (-1)."""
        return self._locate(x, y, stats)

    def _locate(self, x: np.ndarray, y: np.ndarray, stats: dict | None = None) -> np.ndarray:
        from . import pip
        return pip.locate(self.tree, self.rings, x, y, stats)


@dataclass(frozen=True)
class Placement:
    """Per input row: BNG coordinates and, per boundary layer, the index into its ``codes`` (-1 outside)."""
    easting: np.ndarray
    northing: np.ndarray
    indices: dict[str, np.ndarray]

    def subset(self, rows: np.ndarray) -> "Placement":
        """The rows picked by a boolean mask or an index array (e.g. those not already stored)."""
        return Placement(self.easting[rows], self.northing[rows],
                         {role: idx[rows] for role, idx in self.indices.items()})


def _factorize_xy(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(code per row, row of each distinct (x, y) pair's first occurrence), by exact bit equality.

    A compiled hash over the two float64 bit patterns: 29 ms for 1M rows with 300k distinct, where
    pandas.factorize on the pair as complex128 takes 90-120 ms (np.unique sorts: 190 ms)."""
    from .pip import factorize_pairs
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    return factorize_pairs(x.view(np.uint64), y.view(np.uint64))


class Geocoder:
    """Point-in-polygon into every configured boundary layer (LSOA 2021 and 2011, current and old wards)."""

    def __init__(self, layers: dict[str, Layer], area_role: str = "lsoa21") -> None:
        if area_role not in layers:
            raise ConfigError(f"the {area_role} boundary layer is needed to decide what is inside the area")
        self.layers = layers
        self.area_role = area_role

    @classmethod
    def from_config(cls, config: Config) -> "Geocoder":
        layers = {}
        for role in BOUNDARY_ROLES:
            try:
                config.boundary(role)
            except ConfigError:
                continue
            gdf = load_boundary(config, role)
            layers[role] = Layer(role, gdf["code"].to_numpy(), gdf["name"].to_numpy(),
                                 shapely.STRtree(gdf.geometry.to_numpy()))
        return cls(layers)

    @classmethod
    def from_frames(cls, frames: dict) -> "Geocoder":
        """Build from GeoDataFrames in EPSG:27700 with ``code``/``name`` columns (tests, benchmarks)."""
        layers = {}
        for role, gdf in frames.items():
            if str(gdf.crs) != BNG and gdf.crs != BNG:
                gdf = gdf.to_crs(BNG)
            gdf = gdf.sort_values("code").reset_index(drop=True)
            layers[role] = Layer(role, gdf["code"].to_numpy(), gdf["name"].to_numpy(),
                                 shapely.STRtree(gdf.geometry.to_numpy()))
        return cls(layers)

    def assign_indices(self, easting: np.ndarray, northing: np.ndarray) -> dict[str, np.ndarray]:
        """Index into each layer's ``codes`` per point (-1 where outside). Each distinct location is
        reprojected and joined once."""
        e = np.asarray(easting, float)
        n = np.asarray(northing, float)
        if len(e) == 0:
            return {role: np.empty(0, dtype=np.int64) for role in self.layers}
        # Distinct locations to the millimetre: O(n), no sort.
        inverse, first = _factorize_xy(np.round(e * 1000), np.round(n * 1000))
        return self._locate_all(e[first], n[first], inverse)

    def place(self, x: np.ndarray, y: np.ndarray, crs: str) -> Placement:
        """Reproject and geocode rows given in ``crs`` ("EPSG:4326": x=lon, y=lat; "EPSG:27700": x=easting,
        y=northing). Distinct (x, y) pairs are found first, so each is reprojected and located once
        (police.uk snaps crimes to a fixed set of points: far fewer locations than rows). Coordinates
        must be finite (the caller validates)."""
        if crs not in (WGS84, BNG):
            raise ValueError(f"place() takes {WGS84} or {BNG} coordinates, not {crs!r}")
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if len(x) == 0:
            empty = np.empty(0, dtype=np.float64)
            return Placement(empty, empty.copy(), {role: np.empty(0, dtype=np.int64) for role in self.layers})
        codes, first = _factorize_xy(x, y)
        ux, uy = x[first], y[first]
        if crs == WGS84:
            ux, uy = lonlat_to_bng(ux, uy)
        return Placement(ux[codes], uy[codes], self._locate_all(ux, uy, codes))

    def _locate_all(self, x: np.ndarray, y: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Locate distinct BNG points in every layer and broadcast to the rows (``rows[i]`` = the
        distinct point of row i)."""
        return {role: layer._locate(x, y)[rows] for role, layer in self.layers.items()}

    def assign(self, easting: np.ndarray, northing: np.ndarray) -> dict[str, np.ndarray]:
        """Area code per point for every layer (object arrays, None where outside), plus ``in_area``."""
        idx = self.assign_indices(easting, northing)
        out: dict[str, np.ndarray] = {}
        for role, i in idx.items():
            codes = self.layers[role].codes
            out[role] = np.where(i >= 0, codes[np.clip(i, 0, None)] if len(codes) else None, None)
        out["in_area"] = idx[self.area_role] >= 0
        return out
