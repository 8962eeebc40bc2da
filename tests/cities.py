"""Synthetic cities for the statistics tests: square grids in EPSG:27700 with planted patterns.

Why synthetic: the hot block, the cold corner and the island are known in advance, so a test can
say exactly which areas must come out hot, cold or "No neighbours", with no dependency on ingest.
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import scipy.sparse as sp
from shapely.geometry import box

ORIGIN = (390_000.0, 298_000.0)  # around Wolverhampton, in British National Grid metres
CELL_M = 100.0
HOT_BLOCK = (slice(3, 6), slice(3, 6))  # rows, cols of the planted 3×3 hot block
COLD_CORNER = (slice(7, 10), slice(7, 10))
ISLAND_ID = "ISLAND"


def code(r: int, c: int) -> str:
    return f"G{r:02d}{c:02d}"


def grid_city(side: int = 10, *, island: bool = False, seed: int = 7, background: float = 5.0,
              hot: float = 30.0, cold: float = 0.0, population: bool = True) -> gpd.GeoDataFrame:
    """A side×side grid of 100 m squares with a hot 3×3 block and a cold 3×3 corner.

    Columns: code, name, ward_code, ward_name, count, population, geometry (EPSG:27700).
    With ``island=True`` one extra square far away (5 km east) has no neighbours.
    """
    rng = np.random.default_rng(seed)
    counts = rng.poisson(background, size=(side, side)).astype(float)
    if side >= 10:
        counts[HOT_BLOCK] = hot + rng.integers(0, 5, size=(3, 3))
        counts[COLD_CORNER] = cold
    rows = []
    x0, y0 = ORIGIN
    for r in range(side):
        for c in range(side):
            ward = "W1" if c < side // 2 else "W2"
            rows.append({"code": code(r, c), "name": f"Grid {r},{c}", "ward_code": ward,
                         "ward_name": "West Ward" if ward == "W1" else "East Ward",
                         "count": counts[r, c], "population": 1500 + 10 * ((r * side + c) % 17),
                         "geometry": box(x0 + c * CELL_M, y0 - (r + 1) * CELL_M,
                                         x0 + (c + 1) * CELL_M, y0 - r * CELL_M)})
    if island:
        rows.append({"code": ISLAND_ID, "name": "Far away", "ward_code": "W3", "ward_name": "Island Ward",
                     "count": 12.0, "population": 1600,
                     "geometry": box(x0 + 5000, y0, x0 + 5000 + CELL_M, y0 + CELL_M)})
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs=27700)
    if not population:
        gdf = gdf.drop(columns="population")
    return gdf


def hot_codes() -> set[str]:
    return {code(r, c) for r in range(3, 6) for c in range(3, 6)}


def cold_codes() -> set[str]:
    return {code(r, c) for r in range(7, 10) for c in range(7, 10)}


def lattice(side: int, queen: bool = True) -> sp.csr_matrix:
    """Binary contiguity of a side×side lattice, built arithmetically (independent of weights.py)."""
    rows, cols = [], []
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if queen:
        steps += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    for r in range(side):
        for c in range(side):
            for dr, dc in steps:
                a, b = r + dr, c + dc
                if 0 <= a < side and 0 <= b < side:
                    rows.append(r * side + c)
                    cols.append(a * side + b)
    n = side * side
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
