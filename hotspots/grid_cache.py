"""A grid's geography kept on disk: its cells, their display geometry and their place labels.

Why: a grid depends only on the configured area, its cell size and its shape, yet building London's 250 m
grid (clipping 21,611 cells to 25 boroughs), writing its display geometry and naming each cell's ward take
seconds. LSOAs are read from boundary files; a grid, once made, is read from a file too, by every process
(the server, its analysis process, the CLI). The file is named by a hash of what the grid is made from: the
SHA-256 of the LSOA 2021 (and, for labels, ward) boundary file in the bundle lock, the configured LADs, the
cell size, the shape and :data:`FORMAT`. A new bundle or configuration names other files, so nothing stale is
ever read; without a bundle lock nothing is kept.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import geopandas as gpd
import numpy as np
import shapely

from . import filecache
from .config import Config

#: bump when the grid, its display geometry or its labels are computed differently
FORMAT = 2
BNG_EPSG = 27700


def _path(config: Config, what: str, cell_m: float, shape: str, roles: tuple[str, ...],
          decimals: int | None = None, version: str | None = None) -> Path | None:
    from .bundle import read_lock
    from .errors import HotspotsError
    try:
        lock = read_lock(config)
        shas = {f.get("dataset"): f.get("sha256") for f in lock.get("files", [])}
        files = tuple(shas.get(config.boundary(role).key) for role in roles)
    except (HotspotsError, AttributeError, TypeError):
        return None
    if None in files:
        return None
    key = filecache.key_of(FORMAT, what, float(cell_m), shape, tuple(config.lad_codes), files, decimals)
    return config.cache_dir / (f"grid-{what}-{key}" + (f"-{version}" if version else "") + ".npz")


def _pack_geoms(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    wkb = shapely.to_wkb(geoms).tolist()
    offsets = np.zeros(len(wkb) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in wkb], out=offsets[1:])
    return np.frombuffer(b"".join(wkb), dtype=np.uint8), offsets


def _unpack_geoms(blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    raw = blob.tobytes()
    o = offsets.tolist()
    return shapely.from_wkb(np.array([raw[a:b] for a, b in zip(o[:-1], o[1:])], dtype=object))


def grid(config: Config, cell_m: float, shape: str, make: Callable[[], gpd.GeoDataFrame]) -> gpd.GeoDataFrame:
    """The grid ``make`` builds (:func:`hotspots.grid.make_grid` over the configured area), read from its file
    when one was kept; a grid that ``make`` refuses (too many cells) is never kept, so it is refused again."""
    path = _path(config, "cells", cell_m, shape, ("lsoa21",))
    z = filecache.load(path) if path is not None else None
    if z is not None:
        try:
            return _grid_from(z)
        except (KeyError, ValueError, UnicodeDecodeError, shapely.errors.GEOSException):
            pass  # not ours: build it again
    g = make()
    if path is not None:
        code_blob, code_off = filecache.pack_strings(g["code"].tolist())
        # a whole cell's clipped geometry is the cell itself: only the cells cut by the boundary are kept
        cut = np.flatnonzero(~shapely.equals_identical(g["clipped"].to_numpy(), g.geometry.to_numpy()))
        clip_blob, clip_off = _pack_geoms(g["clipped"].to_numpy()[cut])
        filecache.save(path, code_blob=code_blob, code_off=code_off, ix=g["ix"].to_numpy(np.int64),
                       iy=g["iy"].to_numpy(np.int64), share=g["share_inside"].to_numpy(float),
                       partial=g["partial"].to_numpy(bool), cut=cut, clip_blob=clip_blob, clip_off=clip_off,
                       cell_m=np.asarray(float(g.attrs["cell_m"])), shape=np.asarray(str(g.attrs["shape"])))
    return g


def _grid_from(z: dict[str, np.ndarray]) -> gpd.GeoDataFrame:
    """The GeoDataFrame :func:`hotspots.grid.make_grid` returns, from its kept arrays."""
    from .grid import cell_polygons
    codes = filecache.unpack_strings(z["code_blob"], z["code_off"])
    if not (len(codes) == len(z["ix"]) == len(z["iy"]) == len(z["share"]) == len(z["partial"])):
        raise ValueError("arrays of different lengths")
    full = cell_polygons(z["ix"], z["iy"], float(z["cell_m"]), str(z["shape"]))
    clipped = full.copy()
    clipped[z["cut"]] = _unpack_geoms(z["clip_blob"], z["clip_off"])
    g = gpd.GeoDataFrame({"code": np.asarray(codes, dtype=object), "ix": z["ix"], "iy": z["iy"],
                          "share_inside": z["share"], "partial": z["partial"],
                          "clipped": gpd.GeoSeries(clipped, crs=BNG_EPSG)},
                         geometry=gpd.GeoSeries(full, crs=BNG_EPSG), crs=BNG_EPSG)
    g.attrs.update({"cell_m": float(z["cell_m"]), "shape": str(z["shape"])})
    return g


def display(config: Config, cells: gpd.GeoDataFrame, decimals: int,
            labels: Callable[[gpd.GeoDataFrame], dict[str, str]]) -> tuple[dict[str, str], dict[str, str]]:
    """(code -> display geometry text in EPSG:4326 to ``decimals``, code -> place label) of every cell of a grid
    from :func:`grid`, kept beside it; ``labels`` names the cells (from the ward boundaries)."""
    from .grid import cell_geometry_texts
    cell_m, shape = float(cells.attrs["cell_m"]), str(cells.attrs["shape"])
    path = _path(config, "display", cell_m, shape, ("lsoa21", "ward"), decimals)
    z = filecache.load(path) if path is not None else None
    codes = cells["code"].tolist()
    if z is not None:
        try:
            kept = filecache.unpack_strings(z["code_blob"], z["code_off"])
            if kept == codes:
                texts = filecache.unpack_strings(z["geom_blob"], z["geom_off"])
                names = filecache.unpack_strings(z["label_blob"], z["label_off"])
                return dict(zip(codes, texts)), {c: n for c, n in zip(codes, names) if n}
        except (KeyError, ValueError, UnicodeDecodeError):
            pass
    texts = cell_geometry_texts(cells["clipped"].to_numpy(), decimals)
    frame = gpd.GeoDataFrame({"code": cells["code"].to_numpy()}, geometry=cells["clipped"].to_numpy(), crs=BNG_EPSG)
    names = labels(frame)
    if path is not None:
        code_blob, code_off = filecache.pack_strings(codes)
        geom_blob, geom_off = filecache.pack_strings(texts)
        label_blob, label_off = filecache.pack_strings(names.get(c, "") for c in codes)
        filecache.save(path, code_blob=code_blob, code_off=code_off, geom_blob=geom_blob, geom_off=geom_off,
                       label_blob=label_blob, label_off=label_off)
    return dict(zip(codes, texts)), names


def cell_index(config: Config, cells: gpd.GeoDataFrame, version: str | None, n_points: int,
               assign: Callable[[], np.ndarray]) -> np.ndarray:
    """The cell (row of ``cells``, −1 outside every cell) of each incident with coordinates of the store's
    snapshot ``version`` (:func:`hotspots.store.incident_columns`), in its order: ``assign`` computes it
    (:func:`hotspots.grid.assign_cells`) and it is kept per grid and store version, as the store keeps each
    incident's LSOA and ward. Older versions' files of this grid are removed."""
    cell_m, shape = float(cells.attrs["cell_m"]), str(cells.attrs["shape"])
    path = _path(config, "index", cell_m, shape, ("lsoa21",), version=version) if version else None
    z = filecache.load(path) if path is not None else None
    if z is not None and "cell" in z and len(z["cell"]) == n_points and int(z["n_cells"]) == len(cells):
        return z["cell"].astype(np.int64)
    idx = np.asarray(assign(), dtype=np.int64)
    if path is not None:
        filecache.save(path, cell=idx.astype(np.int32), n_cells=np.asarray(len(cells)))
        filecache.remove_others(path, path.name.rsplit("-", 1)[0] + "-*.npz")
    return idx
