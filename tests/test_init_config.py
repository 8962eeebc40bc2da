"""`hotspots init`: national files built here in their publishers' formats, for two local authorities side by side.

A 4 x 4 grid of 500 m LSOAs in British National Grid: the west half (columns 0-1) is LAD A, the east half LAD B,
both in one region. Files are named to say nothing (``downloads/x1.gpkg``): init must know them by their columns.
- LSOA 2021 boundaries: ONS national BGC layout (no LAD column), GeoPackage in EPSG:27700;
- LSOA 2011 boundaries: a shapefile, no LAD column; their LADs come from the IoD2019 file;
- wards 2024 (GeoJSON, WGS84) with LAD24CD; wards 2019 with no LAD column and no lookup (matched by where they lie);
- ONS lookups LSOA21 -> WD24 -> LAD24, LSOA11 -> LSOA21 -> LAD22, LAD22 -> RGN22;
- IoD2025 File 7, IoD2019 File 2, Census 2021 TS001 (Nomis bulk layout), police.uk archive CSVs of two forces.
"""
from __future__ import annotations

import sqlite3
import tomllib
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from click.testing import CliRunner
from pyproj import Transformer
from shapely.geometry import box

from hotspots.bundle import install_bundle, load_boundary
from hotspots.cli import cli
from hotspots.config import load_config
from hotspots.ingest import ingest_paths

X0, Y0, CELL, N = 400_000.0, 300_000.0, 500.0, 4
LAD_A, LAD_B, REGION = "E08000901", "E08000902", "E12000909"
TO_WGS = Transformer.from_crs("EPSG:27700", "EPSG:4326", always_xy=True)


def lad_of(j: int) -> str:
    return LAD_A if j < 2 else LAD_B


def lsoa21(i: int, j: int) -> str:
    return f"E0190{i * N + j:04d}"


def lsoa11(i: int, j: int) -> str:
    return f"E0180{i * N + j:04d}"


def ward(i: int, j: int, year: int) -> str:
    return f"E05{year % 100:02d}{(i // 2) * 2 + j // 2:04d}"


def place(j: int) -> str:
    return "Westtown" if j < 2 else "Easton"


CELLS = [(i, j) for i in range(N) for j in range(N)]


def _cell(i: int, j: int):
    return box(X0 + j * CELL, Y0 + i * CELL, X0 + (j + 1) * CELL, Y0 + (i + 1) * CELL)


def build_national(root: Path) -> Path:
    """The national files for the two LADs under ``root/national`` (returned)."""
    folder = root / "national"
    for sub in ("downloads", "more/deep", "police/2024-01", "police/2024-02", "police/2024-01-other"):
        (folder / sub).mkdir(parents=True)
    lsoa = gpd.GeoDataFrame({
        "FID": range(1, 17), "LSOA21CD": [lsoa21(i, j) for i, j in CELLS],
        "LSOA21NM": [f"{place(j)} {i * N + j:03d}A" for i, j in CELLS], "LSOA21NMW": [""] * 16,
        "BNG_E": [X0 + (j + .5) * CELL for _, j in CELLS], "BNG_N": [Y0 + (i + .5) * CELL for i, _ in CELLS],
        "GlobalID": [f"g{k}" for k in range(16)]}, geometry=[_cell(i, j) for i, j in CELLS], crs="EPSG:27700")
    lsoa.to_file(folder / "downloads" / "x1.gpkg")
    old = gpd.GeoDataFrame({"LSOA11CD": [lsoa11(i, j) for i, j in CELLS],
                            "LSOA11NM": [f"{place(j)} {i * N + j:03d}A" for i, j in CELLS]},
                           geometry=[_cell(i, j) for i, j in CELLS], crs="EPSG:27700")
    old.to_file(folder / "more" / "deep" / "shapes.shp")
    for year, lad_col in ((2024, "LAD24CD"), (2019, None)):
        blocks = {}
        for i, j in CELLS:
            blocks.setdefault(ward(i, j, year), []).append(_cell(i, j))
        frame = {f"WD{year % 100}CD": list(blocks), f"WD{year % 100}NM": [f"Ward {c[-2:]}" for c in blocks]}
        if lad_col:
            frame[lad_col] = [LAD_A if int(c[-1]) % 2 == 0 else LAD_B for c in blocks]
        gdf = gpd.GeoDataFrame(frame, geometry=[gpd.GeoSeries(g).union_all() for g in blocks.values()],
                               crs="EPSG:27700")
        (gdf.to_crs("EPSG:4326") if lad_col else gdf).to_file(folder / "downloads" / f"w{year}.geojson")
    pd.DataFrame({"LSOA21CD": [lsoa21(i, j) for i, j in CELLS], "LSOA21NM": lsoa["LSOA21NM"],
                  "WD24CD": [ward(i, j, 2024) for i, j in CELLS], "WD24NM": "w",
                  "LAD24CD": [lad_of(j) for _, j in CELLS], "LAD24NM": [place(j) for _, j in CELLS]}
                 ).to_csv(folder / "downloads" / "lk1.csv", index=False)
    pd.DataFrame({"LSOA11CD": [lsoa11(i, j) for i, j in CELLS], "LSOA11NM": old["LSOA11NM"],
                  "LSOA21CD": [lsoa21(i, j) for i, j in CELLS], "LSOA21NM": lsoa["LSOA21NM"], "CHGIND": "U",
                  "LAD22CD": [lad_of(j) for _, j in CELLS], "LAD22NM": "x", "LAD22NMW": ""}
                 ).to_csv(folder / "downloads" / "lk2.csv", index=False)
    pd.DataFrame({"LAD22CD": [LAD_A, LAD_B], "LAD22NM": ["Westtown", "Easton"], "RGN22CD": [REGION] * 2,
                  "RGN22NM": ["Middle"] * 2}).to_csv(folder / "downloads" / "lk3.csv", index=False)
    imd = "Index of Multiple Deprivation (IMD)"
    rank = [str(k * 100 + 1) for k in range(16)]
    pd.DataFrame({"LSOA code (2021)": lsoa["LSOA21CD"], "LSOA name (2021)": lsoa["LSOA21NM"],
                  "Local Authority District code (2024)": [lad_of(j) for _, j in CELLS],
                  "Local Authority District name (2024)": [place(j) for _, j in CELLS],
                  f"{imd} Score": [f"{40 - k}.5" for k in range(16)],
                  f"{imd} Rank (where 1 is most deprived)": rank,
                  f"{imd} Decile (where 1 is most deprived 10% of LSOAs)": [1 + k // 2 for k in range(16)],
                  "Income Rank (where 1 is most deprived)": rank,
                  "Income Decile (where 1 is most deprived 10% of LSOAs)": [1 + k // 2 for k in range(16)]}
                 ).to_csv(folder / "downloads" / "t7.csv", index=False)
    pd.DataFrame({"LSOA code (2011)": old["LSOA11CD"], "LSOA name (2011)": old["LSOA11NM"],
                  "Local Authority District code (2019)": [lad_of(j) for _, j in CELLS],
                  "Local Authority District name (2019)": [place(j) for _, j in CELLS],
                  f"{imd} Rank (where 1 is most deprived)": rank,
                  f"{imd} Decile (where 1 is most deprived 10% of LSOAs)": [1 + k // 2 for k in range(16)]}
                 ).to_csv(folder / "downloads" / "t2.csv", index=False)
    pd.DataFrame({"date": 2021, "geography": lsoa["LSOA21NM"], "geography code": lsoa["LSOA21CD"],
                  "Residence type: Total; measures: Value": [1000 + 10 * k for k in range(16)],
                  "Residence type: Lives in a household; measures: Value": [990 + 10 * k for k in range(16)],
                  "Residence type: Lives in a communal establishment; measures: Value": 10}
                 ).to_csv(folder / "downloads" / "census.csv", index=False)
    police = ["Crime ID", "Month", "Reported by", "Falls within", "Longitude", "Latitude", "Location", "LSOA code",
              "LSOA name", "Crime type", "Last outcome category", "Context"]
    for month in ("2024-01", "2024-02"):
        rows = []
        for k, (i, j) in enumerate(CELLS):
            lon, lat = TO_WGS.transform(X0 + (j + .5) * CELL, Y0 + (i + .5) * CELL)
            rows.append([f"{month}-{k:04d}", month, "Force A Police", "Force A Police", f"{lon:.6f}", f"{lat:.6f}",
                         "On or near X", lsoa11(i, j), "x", "Violence and sexual offences", "", ""])
        pd.DataFrame(rows, columns=police).to_csv(folder / "police" / month / f"{month}-force-a-street.csv",
                                                  index=False)
    pd.DataFrame([["z1", "2024-01", "Other Police", "Other Police", "-1.55", "53.59", "On or near Y", "E01007359",
                   "Barnsley 005C", "Burglary", "", ""]], columns=police
                 ).to_csv(folder / "police" / "2024-01-other" / "2024-01-other-street.csv", index=False)
    (folder / "downloads" / "notes.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def national(tmp_path_factory) -> Path:
    return build_national(tmp_path_factory.mktemp("init"))


def run_init(*args: str):
    return CliRunner().invoke(cli, ["init", *args])


def test_only_the_asked_lad_is_configured_installed_and_ingested(national, tmp_path, monkeypatch):
    out = tmp_path / "config" / "westtown.toml"
    res = run_init("--lad", LAD_A, "--from", str(national), "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "8 LSOAs (2021), 2 current wards" in res.output
    assert "downloads/notes.csv" not in res.output  # not one of ours: neither used nor mentioned
    raw = tomllib.loads(out.read_text(encoding="utf-8"))
    ds = raw["datasets"]
    assert {k: (d["path"], d.get("role", "")) for k, d in ds.items() if d["kind"] != "incidents"} == {
        "lsoa21": ("downloads/x1.gpkg", "lsoa21"), "lsoa11": ("more/deep/shapes.gpkg", "lsoa11"),
        "ward": ("downloads/w2024.geojson", "ward"), "ward_pre2023": ("downloads/w2019.geojson", "ward_pre2023"),
        "population": ("downloads/census.csv", "population"), "iod2025": ("downloads/t7.csv", "deprivation"),
        "iod2019": ("downloads/t2.csv", "deprivation"), "lsoa21_to_ward": ("downloads/lk1.csv", "lookup"),
        "lsoa11_to_lsoa21": ("downloads/lk2.csv", "lookup")}
    assert ds["ward"]["lad_column"] == "LAD24CD" and ds["ward"]["code"] == "WD24CD"
    assert ds["population"]["value"] == "Residence type: Total; measures: Value"
    assert ds["iod2025"]["code"] == "LSOA code (2021)" and ds["iod2019"]["geography"] == "lsoa11"
    crime = [d for d in ds.values() if d["kind"] == "incidents"]
    assert [(d["path"], d["format"]) for d in crime] == [("police/*/*-force-a-street.csv", "police-csv")]
    assert raw["area"]["lad_codes"] == [LAD_A] and raw["area"]["name"] == "Westtown"
    # centre of LAD A's extent (x 400000-401000, y 300000-302000), converted independently
    lon, lat = TO_WGS.transform(400_500, 301_000)
    assert raw["area"]["centre"] == pytest.approx([lat, lon], abs=1e-4)

    for var in ("HOTSPOTS_CONFIG", "HOTSPOTS_DATA_DIR", "HOTSPOTS_INSTANCE_DIR", "HOTSPOTS_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
    for command in (["data", "install"], ["ingest", "--bundle"]):  # as a user would, from the written file
        res = CliRunner().invoke(cli, ["--config", str(out), *command])
        assert res.exit_code == 0, res.output
    config = load_config(out, env={})
    assert config.bundle == out.parent.parent / "area-bundles" / "westtown"
    assert config.data_dir == tmp_path / "data-westtown"
    expected = {"lsoa21": {lsoa21(i, j) for i, j in CELLS if j < 2},
                "lsoa11": {lsoa11(i, j) for i, j in CELLS if j < 2},
                "ward": {ward(i, j, 2024) for i, j in CELLS if j < 2},
                "ward_pre2023": {ward(i, j, 2019) for i, j in CELLS if j < 2}}
    for role, codes in expected.items():
        assert set(load_boundary(config, role)["code"]) == codes, role
    con = sqlite3.connect(config.db_path)
    # both force A months, 16 rows each: LAD A's 8 inside, LAD B's kept and flagged outside; no other force
    assert con.execute("SELECT in_area, COUNT(*) FROM incidents GROUP BY in_area").fetchall() == [(0, 16), (1, 16)]
    assert ingest_paths(config, [config.bundle / "police"])[0].duplicates == 16  # the same files, already in


def test_a_region_expands_to_its_lads(national, tmp_path):
    out = tmp_path / "both.toml"
    res = run_init("--region", REGION, "--from", str(national), "--out", str(out))
    assert res.exit_code == 0, res.output
    raw = tomllib.loads(out.read_text(encoding="utf-8"))
    assert raw["area"]["lad_code"] == REGION and raw["area"]["lad_codes"] == [LAD_A, LAD_B]
    assert "16 LSOAs (2021), 4 current wards" in res.output
    # every feature belongs: the national files are used in place, no area bundle is needed
    assert "lad_column" not in raw["datasets"]["ward"] and raw["datasets"]["lsoa21"]["path"] == "downloads/x1.gpkg"
    assert load_config(out, env={}).lad_codes == (LAD_A, LAD_B)


def test_what_is_missing_is_said_and_the_config_still_works(national, tmp_path):
    folder = tmp_path / "partial"
    for rel in ("downloads/x1.gpkg", "downloads/lk1.csv", "downloads/census.csv"):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes((national / rel).read_bytes())
    out = tmp_path / "config" / "b.toml"
    res = run_init("--lad", LAD_B, "--from", str(folder), "--out", str(out))
    assert res.exit_code == 0, res.output
    for said in ("no ward boundaries (2023 or later) found: the ward layers will be off",
                 "no LSOA 2011 boundaries found", f"no police.uk CSV covers {LAD_B}", "no IoD2025 file"):
        assert f"MISSING: {said}" in res.output
    config = load_config(out, env={})
    install_bundle(config)
    assert set(load_boundary(config, "lsoa21")["code"]) == {lsoa21(i, j) for i, j in CELLS if j >= 2}


def test_no_boundary_for_the_lad_exits_1_and_writes_nothing(national, tmp_path):
    out = tmp_path / "none.toml"
    res = run_init("--lad", "E06000999", "--from", str(national), "--out", str(out))
    assert res.exit_code == 1
    assert "no LSOA 2021 boundary holds any area of E06000999" in res.output
    assert not out.exists()


def test_an_existing_config_is_kept_without_force(national, tmp_path):
    out = tmp_path / "keep.toml"
    out.write_text("# mine\n", encoding="utf-8")
    res = run_init("--lad", LAD_A, "--from", str(national), "--out", str(out))
    assert res.exit_code == 1 and "pass --force" in res.output
    assert out.read_text(encoding="utf-8") == "# mine\n"
    assert run_init("--lad", LAD_A, "--from", str(national), "--out", str(out), "--force").exit_code == 0
    assert load_config(out, env={}).lad_code == LAD_A


@pytest.mark.bundle
def test_real_bundle_gives_the_shipped_configuration(real_bundle, tmp_path):
    """For Wolverhampton the same files, columns and roles as config/hotspots.toml, recognised by columns."""
    out = tmp_path / "config" / "wolverhampton.toml"
    res = run_init("--lad", "E08000031", "--from", str(real_bundle), "--out", str(out))
    assert res.exit_code == 0, res.output
    made = load_config(out, env={})
    shipped = load_config(Path(__file__).resolve().parent.parent / "config" / "hotspots.toml", env={})
    fields = ("kind", "role", "path", "format", "code", "name", "value", "geography", "lad_column")
    def tables(config):  # incident datasets are compared by their files: their keys are free names
        return {k: tuple(getattr(d, f) for f in fields) for k, d in config.datasets.items() if d.kind != "incidents"}

    def incidents(config):
        return {tuple(getattr(d, f) for f in fields) for d in config.datasets.values() if d.kind == "incidents"}

    assert tables(made) == tables(shipped) and incidents(made) == incidents(shipped)
    assert made.bundle == real_bundle.resolve() and made.lad_code == "E08000031" and made.zoom == shipped.zoom
    assert made.centre == pytest.approx(shipped.centre, abs=0.01)
    assert "MISSING: no police.uk CSV covers E08000031" in res.output


@pytest.mark.bundle
def test_real_bundle_london_boroughs_give_the_shipped_london_files(real_bundle, tmp_path):
    """A list of 25 LADs: the London files, filtered by their LADCD column, as config/london.toml has them."""
    shipped = load_config(Path(__file__).resolve().parent.parent / "config" / "london.toml", env={})
    out = tmp_path / "config" / "london.toml"
    res = run_init("--lad", ",".join(shipped.lad_codes), "--from", str(real_bundle), "--out", str(out))
    assert res.exit_code == 0, res.output
    made = load_config(out, env={})
    fields = ("kind", "role", "path", "format", "code", "name", "lad_column")
    boundaries = {k: tuple(getattr(d, f) for f in fields) for k, d in shipped.datasets.items() if d.kind == "boundary"}
    assert {k: tuple(getattr(d, f) for f in fields) for k, d in made.datasets.items()
            if d.kind == "boundary"} == boundaries
    assert made.lad_codes == shipped.lad_codes and made.zoom == shipped.zoom

    def crime_files(config):
        return sorted(p for d in config.datasets.values() if d.kind == "incidents" for p in real_bundle.glob(d.path))

    assert len(crime_files(made)) == 12 and crime_files(made) == crime_files(shipped)
    assert "MISSING: no Census 2021 TS001 population for the area" in res.output


def test_no_area_given_is_a_usage_error(national, tmp_path):
    res = run_init("--from", str(national), "--out", str(tmp_path / "x.toml"))
    assert res.exit_code == 2 and "give --lad" in res.output
    assert not (tmp_path / "x.toml").exists()


def test_a_region_no_file_expands_is_refused(national, tmp_path):
    res = run_init("--region", "E12000001", "--from", str(national), "--out", str(tmp_path / "r.toml"))
    assert res.exit_code == 1 and "region E12000001 cannot be expanded" in res.output
