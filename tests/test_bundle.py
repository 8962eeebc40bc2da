"""Data bundle: installed by copy, checked by checksum, missing or corrupt files named."""
from __future__ import annotations

import json

import pytest

from hotspots.bundle import (bundle_status, dataset_files, install_bundle, load_boundary, load_population,
                             verify_bundle)
from hotspots.config import load_config
from hotspots.errors import BundleError, ConfigError


def test_install_records_checksums_and_counts(gridtown):
    b, config = gridtown
    lock = json.loads(config.lock_path.read_text())
    by_ds = {f["dataset"]: f for f in lock["files"]}
    assert by_ds["lsoa21"]["count"] == 16 and by_ds["ward"]["count"] == 4
    assert len(by_ds["lsoa21"]["sha256"]) == 64
    assert all(f.status == "ok" for f in bundle_status(config))


def test_boundaries_load_in_british_national_grid(gridtown):
    _, config = gridtown
    gdf = load_boundary(config, "lsoa21")
    assert gdf.crs.to_epsg() == 27700
    assert list(gdf.columns) == ["code", "name", "geometry"]
    assert gdf.geometry.area.round(-1).eq(250_000).all()  # 500 m squares survive the round trip
    assert load_population(config).sum() == sum(1000 + 100 * k for k in range(16))


def test_corrupt_file_is_named(gridtown):
    _, config = gridtown
    target = config.data_dir / "boundaries/lsoa21.geojson"
    target.write_bytes(target.read_bytes()[:-10])
    with pytest.raises(BundleError, match="lsoa21.geojson.*corrupt"):
        verify_bundle(config)
    with pytest.raises(BundleError, match="corrupt"):
        dataset_files(config, "lsoa21")
    assert {f.dataset: f.status for f in bundle_status(config)}["lsoa21"] == "corrupt"


def test_missing_source_file_is_named(gridtown, tmp_path):
    b, config = gridtown
    (b.root / "bundle/population/pop.csv").unlink()
    with pytest.raises(BundleError, match="dataset 'population': no file matches"):
        install_bundle(config)


def test_unreadable_boundary_fails_at_install(gridtown):
    b, config = gridtown
    (b.root / "bundle/boundaries/wards.geojson").write_text("{not json")
    with pytest.raises(BundleError, match="wards.geojson: cannot read boundary file"):
        install_bundle(config)


def test_not_installed_says_what_to_do(tmp_path):
    config = load_config(env={}, data_dir=tmp_path / "d", instance_dir=tmp_path / "i")
    with pytest.raises(BundleError, match="hotspots data install"):
        load_boundary(config, "lsoa21")


def test_config_environment_overrides(tmp_path):
    c = load_config(env={"HOTSPOTS_DATA_DIR": str(tmp_path / "x"), "HOTSPOTS_PORT": "5099"})
    assert c.data_dir == tmp_path / "x" and c.port == 5099 and c.lad_code == "E08000031"
    assert c.boundary("lsoa21").code == "LSOA21CD"
    assert any("Crown copyright" in a for a in c.attributions())


def test_config_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[area]\nname = 'X'\n")
    with pytest.raises(ConfigError, match="bad.toml.*lad_code"):
        load_config(bad, env={})
    bad.write_text("[area\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, env={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})


def test_lad_codes_keep_only_the_configured_authorities(gridtown):
    """A regional or national boundary file serves one authority by configuration alone."""
    import geopandas as gpd
    from hotspots.bundle import _load_boundary_cached
    b, config = gridtown
    src = b.root / "bundle/boundaries/lsoa21.geojson"
    g = gpd.read_file(src)
    g["LADCD"] = ["E0800000A" if i < 4 else "E0800000B" for i in range(len(g))]
    g.to_file(src, driver="GeoJSON")
    lsoa = config.datasets["lsoa21"]
    from dataclasses import replace
    cfg = replace(config, lad_codes=("E0800000A",),
                  datasets={**config.datasets, "lsoa21": replace(lsoa, lad_column="LADCD")})
    install_bundle(cfg)
    _load_boundary_cached.cache_clear()
    assert len(load_boundary(cfg, "lsoa21")) == 4
    with pytest.raises(BundleError, match="no feature has a LADCD"):
        load_boundary(replace(cfg, lad_codes=("E08999999",)), "lsoa21")
