"""Configuration outside a checkout: ``pip install .`` then run from a folder that holds ``config/``, or pass
``--config FILE``; relative paths follow the configuration, not the package's location."""
from __future__ import annotations

from pathlib import Path

import pytest

from hotspots import config as cfg
from hotspots.config import DEFAULT_CONFIG, config_base, default_config_path, load_config
from hotspots.errors import ConfigError


def _copy_config(dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(DEFAULT_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    return dst


def test_working_directory_config_folder_is_found_and_anchors_relative_paths(tmp_path, monkeypatch):
    site = tmp_path / "site"
    p = _copy_config(site / "config" / "hotspots.toml")
    monkeypatch.chdir(site)
    assert default_config_path(env={}) == Path("config/hotspots.toml").resolve() or \
        default_config_path(env={}).resolve() == p.resolve()
    c = load_config(env={})
    assert c.data_dir == (site / "data").resolve() and c.instance_dir == (site / "instance").resolve()
    assert c.bundle == (tmp_path / "shared" / "data").resolve()


def test_a_file_outside_a_config_folder_anchors_paths_to_its_own_folder(tmp_path):
    p = _copy_config(tmp_path / "etc" / "wolves.toml")
    c = load_config(p, env={})
    assert config_base(p) == (tmp_path / "etc").resolve()
    assert c.data_dir == (tmp_path / "etc" / "data").resolve()


def test_environment_wins_and_no_config_anywhere_is_a_clear_error(tmp_path, monkeypatch):
    p = _copy_config(tmp_path / "x" / "config" / "hotspots.toml")
    assert default_config_path(env={"HOTSPOTS_CONFIG": str(p)}) == p
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cfg, "DEFAULT_CONFIG", tmp_path / "nowhere" / "hotspots.toml")
    with pytest.raises(ConfigError, match="--config FILE"):
        default_config_path(env={})


def test_the_nginx_template_ships_inside_the_package():
    from importlib.resources import files
    assert (files("hotspots") / "nginx.conf.template").is_file()
    import tomllib
    meta = tomllib.loads((DEFAULT_CONFIG.parent.parent / "pyproject.toml").read_text())
    assert "*.template" in meta["tool"]["setuptools"]["package-data"]["hotspots"]
