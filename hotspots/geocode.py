"""Place incidents in their LSOA and ward: vectorised point-in-polygon in British National Grid.

Why this design: police.uk locations are snapped to a finite set of anonymous map points, so a month of
crime has far fewer distinct locations than rows. We reproject and join each distinct location once
(shapely's STRtree, all points in one call) and broadcast the answer back to the rows.

Boundary rule: a point that lies exactly on a shared edge (or vertex) touches two or more areas; it goes
to the area with the smallest code, so the answer never depends on file order or floating-point luck.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely
from pyproj import Transformer

from .bundle import BNG, WGS84, load_boundary
from .config import BOUNDARY_ROLES, Config
from .errors import ConfigError

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


def _factorize_first(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, index of each distinct value's first occurrence)."""
    import pandas as pd
    codes, uniques = pd.factorize(values)
    first = np.full(len(uniques), len(values), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(values)))
    return codes, first


@dataclass(frozen=True)
class Layer:
    role: str
    codes: np.ndarray  # sorted ascending, so the smallest index is the smallest code
    names: np.ndarray
    tree: shapely.STRtree

    def locate(self, points: np.ndarray) -> np.ndarray:
        """Index of the containing area for each point, -1 where none; ties go to the smallest code."""
        pt_idx, poly_idx = self.tree.query(points, predicate="intersects")
        out = np.full(len(points), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(out, pt_idx, poly_idx)
        out[out == np.iinfo(np.int64).max] = -1
        return out


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
        # Distinct locations by hashing (e, n) in millimetres packed into one int64: O(n), no sort.
        packed = (np.round(e * 1000).astype(np.int64) << 31) ^ np.round(n * 1000).astype(np.int64)
        inverse, first = _factorize_first(packed)
        points = shapely.points(e[first], n[first])
        return {role: layer.locate(points)[inverse] for role, layer in self.layers.items()}

    def assign(self, easting: np.ndarray, northing: np.ndarray) -> dict[str, np.ndarray]:
        """Area code per point for every layer (object arrays, None where outside), plus ``in_area``."""
        idx = self.assign_indices(easting, northing)
        out: dict[str, np.ndarray] = {}
        for role, i in idx.items():
            codes = self.layers[role].codes
            out[role] = np.where(i >= 0, codes[np.clip(i, 0, None)] if len(codes) else None, None)
        out["in_area"] = idx[self.area_role] >= 0
        return out
