"""Benchmark: end-to-end ingest of police.uk-format rows against a large polygon layer.

Compares, in the same run and on the same input file:

* hotspots: ``ingest_file`` (parse, validate every row, duplicate check, reproject, point-in-polygon,
  store in SQLite with indexes, one transaction);
* the naive baseline: ``pandas.read_csv`` + ``GeoDataFrame.to_crs`` + ``geopandas.sjoin`` +
  ``DataFrame.to_sql`` (no validation, no duplicate check).

Input: a synthetic tessellation of ``--areas`` Voronoi polygons (densified to about the vertex count of
generalised LSOA boundaries) over a 400 km x 400 km block of England, and ``--rows`` rows whose locations
are drawn from ``--snap-points`` distinct points (police.uk snaps every crime to one of about 750,000
anonymous map points, so a month of national crime repeats locations); ``--snap-points 0`` makes every
location unique (worst case). About 30 % of rows have no Crime ID (anti-social behaviour).

Run: ``python benchmarks/ingest.py`` (1,000,000 rows, 34,753 areas) or ``--quick``. Prints numbers; it is
not a test.
"""
from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hotspots import store  # noqa: E402
from hotspots.geocode import Geocoder, bng_to_lonlat  # noqa: E402
from hotspots.ingest import ingest_file, warm_up  # noqa: E402

X0, Y0, SIZE = 200_000.0, 150_000.0, 400_000.0


def tessellation(n: int, seed: int = 1) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    pts = shapely.points(rng.uniform(X0, X0 + SIZE, n), rng.uniform(Y0, Y0 + SIZE, n))
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts),
                                                       extend_to=shapely.box(X0, Y0, X0 + SIZE, Y0 + SIZE)))
    cells = shapely.intersection(cells, shapely.box(X0, Y0, X0 + SIZE, Y0 + SIZE))
    cells = shapely.segmentize(cells, 150.0)  # ~ vertex count of BGC LSOAs
    codes = [f"E01{i:06d}" for i in range(len(cells))]
    return gpd.GeoDataFrame({"code": codes, "name": codes}, geometry=cells, crs="EPSG:27700")


def make_csv(path: Path, rows: int, snap_points: int, seed: int = 2) -> None:
    rng = np.random.default_rng(seed)
    if snap_points:
        sx = rng.uniform(X0, X0 + SIZE, snap_points)
        sy = rng.uniform(Y0, Y0 + SIZE, snap_points)
        pick = rng.integers(0, snap_points, rows)
        x, y = sx[pick], sy[pick]
    else:
        x, y = rng.uniform(X0, X0 + SIZE, rows), rng.uniform(Y0, Y0 + SIZE, rows)
    lon, lat = bng_to_lonlat(x, y)
    has_id = rng.random(rows) > 0.3
    digests = rng.bytes(rows * 32).hex()  # Crime IDs are SHA-256 hex digests
    ids = np.where(has_id, [digests[i * 64:(i + 1) * 64] for i in range(rows)], "")
    types = np.array(["Violence and sexual offences", "Anti-social behaviour", "Burglary", "Vehicle crime",
                      "Shoplifting", "Criminal damage and arson", "Other theft", "Public order"])
    df = pd.DataFrame({
        "Crime ID": ids, "Month": "2024-06", "Reported by": "Test Police", "Falls within": "Test Police",
        "Longitude": np.round(lon, 6), "Latitude": np.round(lat, 6),
        "Location": [f"On or near Street {k}" for k in (pick if snap_points else np.arange(rows)) % 50_000],
        "LSOA code": "", "LSOA name": "", "Crime type": types[rng.integers(0, len(types), rows)],
        "Last outcome category": "Under investigation", "Context": ""})
    df.to_csv(path, index=False)


def baseline(csv: Path, polys: gpd.GeoDataFrame, db: Path) -> dict[str, float]:
    t = {}
    t0 = time.perf_counter()
    df = pd.read_csv(csv)
    t["read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    df = df.dropna(subset=["Longitude", "Latitude"])
    pts = gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df["Longitude"], df["Latitude"]), crs="EPSG:4326")
    pts = pts.to_crs("EPSG:27700")
    t["reproject"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    joined = gpd.sjoin(pts, polys[["code", "geometry"]], how="left", predicate="within")
    t["join"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    con = sqlite3.connect(db)
    out = pd.DataFrame(joined.drop(columns=["geometry"]))
    out["easting"], out["northing"] = pts.geometry.x, pts.geometry.y
    out.to_sql("incidents", con, index=False, if_exists="replace")
    con.commit()
    con.close()
    t["store"] = time.perf_counter() - t0
    t["total"] = sum(t.values())
    return t


def ours(csv: Path, geocoder: Geocoder, db: Path) -> tuple[float, object]:
    con = store.connect(db)
    t0 = time.perf_counter()
    summary = ingest_file(con, geocoder, csv, "police-csv")
    dt = time.perf_counter() - t0
    con.close()
    return dt, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--areas", type=int, default=34_753)
    ap.add_argument("--snap-points", type=int, default=300_000)
    ap.add_argument("--quick", action="store_true", help="50,000 rows, 2,000 areas")
    ap.add_argument("--worst-case", action="store_true", help="also run with every location unique")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.areas, args.snap_points = 50_000, 2_000, 20_000
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, numpy {np.__version__}, "
          f"pandas {pd.__version__}, geopandas {gpd.__version__}, shapely {shapely.__version__}, "
          f"sqlite {sqlite3.sqlite_version}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        polys = tessellation(args.areas)
        nverts = shapely.get_num_coordinates(polys.geometry.to_numpy()).mean()
        print(f"polygon layer: {len(polys):,} areas, {nverts:.0f} vertices each on average "
              f"(built in {time.perf_counter() - t0:.1f} s)")
        geocoder = Geocoder.from_frames({"lsoa21": polys})
        t0 = time.perf_counter()
        warm_up()  # numba: loads compiled kernels from its cache (compiles them on the very first run)
        one_off = time.perf_counter() - t0
        print(f"one-off per process: ingest kernels ready in {one_off:.2f} s (not in the times below)")
        cases = [("snapped", args.snap_points)] + ([("all unique", 0)] if args.worst_case else [])
        for label, snaps in cases:
            csv = tmp / f"rows-{label.replace(' ', '_')}.csv"
            make_csv(csv, args.rows, snaps)
            size = csv.stat().st_size / 1e6
            print(f"\ninput ({label}): {args.rows:,} rows, {size:.0f} MB, "
                  f"{snaps or args.rows:,} distinct locations")
            b = baseline(csv, polys, tmp / f"baseline-{label}.db")
            dt, s = ours(csv, geocoder, tmp / f"ours-{label}.db")
            print(f"  baseline read_csv+to_crs+sjoin+to_sql: {b['total']:6.2f} s  "
                  f"({args.rows / b['total']:,.0f} rows/s; read {b['read']:.2f}, reproject {b['reproject']:.2f}, "
                  f"join {b['join']:.2f}, store {b['store']:.2f})")
            print(f"  hotspots ingest (validated, deduped):  {dt:6.2f} s  ({args.rows / dt:,.0f} rows/s; "
                  f"accepted {s.accepted:,}, duplicates {s.duplicates:,}, rejected {s.rejected:,}, "
                  f"outside {s.outside_area:,})")
            print("    where hotspots spends it: " + ", ".join(f"{k} {v:.2f}" for k, v in s.timings.items()))
            print(f"  speed-up vs baseline: {b['total'] / dt:.2f}x "
                  f"({b['total'] / (dt + one_off):.2f}x counting the one-off kernel load)")


if __name__ == "__main__":
    main()
