"""Shared fixtures: synthetic bundles built by the tests, and the real bundle for integration tests."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

#: a fixed perturbation key, so viewer (protected) figures are the same in every run; a deployment gets its
#: own from the instance's secret key (hotspots.protect.perturbation_key)
os.environ.setdefault("HOTSPOTS_DISCLOSURE_KEY", "tests-only-disclosure-key-0123456789abcdef")

from bundle_paths import REPO, real_bundle_path  # noqa: F401  (re-exported for fixtures)


@pytest.fixture
def gridtown(tmp_path):
    """A synthetic 4x4-LSOA city installed into its own data dir; returns (bundle, config)."""
    from hotspots.bundle import install_bundle
    from hotspots.config import load_config
    from synthetic_bundle import build
    b = build(tmp_path)
    config = load_config(b.config_path, env={}, data_dir=b.data_dir, instance_dir=b.instance_dir,
                         bundle=b.root / "bundle")
    install_bundle(config)
    return b, config


@pytest.fixture(scope="session")
def real_bundle() -> Path:
    p = real_bundle_path()
    if p is None:
        pytest.skip("real data bundle not found (set HOTSPOTS_BUNDLE or place shared/data beside the repo)")
    return p


@pytest.fixture(scope="session")
def wolverhampton(real_bundle, tmp_path_factory):
    """The real Wolverhampton bundle installed and all its crime ingested, once per session."""
    from hotspots.bundle import install_bundle
    from hotspots.config import load_config
    from hotspots.ingest import ingest_paths
    root = tmp_path_factory.mktemp("wolverhampton")
    config = load_config(env={}, data_dir=root / "data", instance_dir=root / "instance", bundle=real_bundle)
    install_bundle(config)
    summaries = ingest_paths(config, [real_bundle / "crime"])
    return config, summaries
