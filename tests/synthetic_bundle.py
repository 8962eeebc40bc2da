"""A tiny synthetic city bundle, built by the tests themselves (no real data needed).

A 4 x 4 grid of 500 m square LSOAs in British National Grid, south-west corner at (400000, 300000)
(the West Midlands), grouped into four 2 x 2 wards. LSOA 2011 = the same squares with other codes.
Population: 1,000 + 100 * index per LSOA. The config TOML mirrors config/hotspots.toml's dataset roles.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
from pyproj import Transformer
from shapely.geometry import box

X0, Y0, CELL, N = 400_000.0, 300_000.0, 500.0, 4
_TO_WGS = Transformer.from_crs("EPSG:27700", "EPSG:4326", always_xy=True)


def lsoa_code(i: int, j: int, prefix: str = "E0109") -> str:
    return f"{prefix}{i * N + j:04d}"


def ward_code(i: int, j: int) -> str:
    return f"E0599{(i // 2) * 2 + (j // 2):04d}"


def bng_to_lonlat(x: float, y: float) -> tuple[float, float]:
    return _TO_WGS.transform(x, y)


def cell_centre(i: int, j: int) -> tuple[float, float]:
    """Centre of row i (south to north), column j (west to east) in BNG."""
    return X0 + (j + 0.5) * CELL, Y0 + (i + 0.5) * CELL


@dataclass
class SyntheticBundle:
    root: Path
    config_path: Path
    data_dir: Path
    instance_dir: Path

    def env(self) -> dict[str, str]:
        return {"HOTSPOTS_CONFIG": str(self.config_path), "HOTSPOTS_DATA_DIR": str(self.data_dir),
                "HOTSPOTS_INSTANCE_DIR": str(self.instance_dir), "HOTSPOTS_BUNDLE": str(self.root / "bundle")}


def build(tmp: Path) -> SyntheticBundle:
    bundle = tmp / "bundle"
    (bundle / "boundaries").mkdir(parents=True)
    (bundle / "population").mkdir()
    (bundle / "crime").mkdir()
    rows = []
    for i in range(N):
        for j in range(N):
            g = box(X0 + j * CELL, Y0 + i * CELL, X0 + (j + 1) * CELL, Y0 + (i + 1) * CELL)
            rows.append({"i": i, "j": j, "geometry": g})
    cells = gpd.GeoDataFrame(rows, crs="EPSG:27700")
    lsoa21 = cells.assign(LSOA21CD=[lsoa_code(r.i, r.j) for r in cells.itertuples()],
                          LSOA21NM=[f"Gridtown {r.i}{r.j}A" for r in cells.itertuples()])
    lsoa21[["LSOA21CD", "LSOA21NM", "geometry"]].to_crs("EPSG:4326").to_file(
        bundle / "boundaries/lsoa21.geojson", driver="GeoJSON")
    lsoa11 = cells.assign(LSOA11CD=[lsoa_code(r.i, r.j, "E0108") for r in cells.itertuples()],
                          LSOA11NM=[f"Gridtown {r.i}{r.j}B" for r in cells.itertuples()])
    lsoa11[["LSOA11CD", "LSOA11NM", "geometry"]].to_crs("EPSG:4326").to_file(
        bundle / "boundaries/lsoa11.geojson", driver="GeoJSON")
    wards = cells.assign(WDCD=[ward_code(r.i, r.j) for r in cells.itertuples()]).dissolve("WDCD").reset_index()
    wards["WDNM"] = ["Ward " + c[-1] for c in wards["WDCD"]]
    wards[["WDCD", "WDNM", "geometry"]].to_crs("EPSG:4326").to_file(bundle / "boundaries/wards.geojson",
                                                                      driver="GeoJSON")
    pop = pd.DataFrame({"total": [1000 + 100 * k for k in range(N * N)],
                        "name": lsoa21["LSOA21NM"], "mnemonic": lsoa21["LSOA21CD"]})
    pop.to_csv(bundle / "population/pop.csv", index=False)
    (bundle / "crime/sample.csv").write_text(police_csv([("abc1", "2024-01", *cell_centre(0, 0), "Violence and sexual offences")]))
    cfg = tmp / "gridtown.toml"
    cfg.write_text(CONFIG_TEMPLATE, encoding="utf-8")
    return SyntheticBundle(tmp, cfg, tmp / "data", tmp / "instance")


def ingested(b: SyntheticBundle, name: str, rows):
    """The bundle's config with ``rows`` (as for :func:`police_csv`) as its only incidents: the sample file
    replaced by ``name``, the bundle installed and the incidents ingested."""
    from hotspots.bundle import install_bundle
    from hotspots.config import load_config
    from hotspots.ingest import ingest_paths
    crime = b.root / "bundle" / "crime"
    (crime / "sample.csv").unlink(missing_ok=True)
    (crime / name).write_text(police_csv(rows))
    config = load_config(b.config_path, env={}, data_dir=b.data_dir, instance_dir=b.instance_dir,
                         bundle=b.root / "bundle")
    install_bundle(config)
    ingest_paths(config, [crime])
    return config


HEADER = ("Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,"
          "Crime type,Last outcome category,Context\n")


def police_csv(rows, lsoa: str = "") -> str:
    """rows: (crime_id, month, easting, northing, crime_type) -> police.uk archive CSV text (lon/lat)."""
    out = [HEADER]
    for cid, month, x, y, ctype in rows:
        lon, lat = bng_to_lonlat(x, y)
        out.append(f"{cid},{month},Test Police,Test Police,{lon:.6f},{lat:.6f},On or near Test Street,"
                   f"{lsoa},,{ctype},,\n")
    return "".join(out)


CONFIG_TEMPLATE = """
[area]
name = "Gridtown"
lad_code = "E08999999"

[paths]
data_dir = "data"
instance_dir = "instance"

[analysis]
permutations = 999

[datasets.lsoa21]
kind = "boundary"
role = "lsoa21"
path = "boundaries/lsoa21.geojson"
format = "geojson"
code = "LSOA21CD"
name = "LSOA21NM"
vintage = "synthetic"
attribution = "Synthetic test boundaries."

[datasets.lsoa11]
kind = "boundary"
role = "lsoa11"
path = "boundaries/lsoa11.geojson"
format = "geojson"
code = "LSOA11CD"
name = "LSOA11NM"
vintage = "synthetic"

[datasets.ward]
kind = "boundary"
role = "ward"
path = "boundaries/wards.geojson"
format = "geojson"
code = "WDCD"
name = "WDNM"
vintage = "synthetic"

[datasets.population]
kind = "table"
role = "population"
path = "population/pop.csv"
format = "csv"
code = "mnemonic"
name = "name"
value = "total"
geography = "lsoa21"

[datasets.crime]
kind = "incidents"
path = "crime/*.csv"
format = "police-csv"
"""
