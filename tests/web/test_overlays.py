"""Risk-factor overlays: unknown and missing codes reported by name, stored under the instance folder."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from hotspots.cli import cli


def _write(tmp_path, rows, name="ind.csv"):
    p = tmp_path / name
    p.write_text("code,value\n" + "".join(f"{c},{v}\n" for c, v in rows))
    return p


@pytest.fixture
def codes(config):
    from hotspots.bundle import load_boundary
    return list(load_boundary(config, "lsoa21")["code"])


def test_cli_add_reports_unknown_and_missing_codes_then_serves_the_layer(config, codes, client, viewer_client,
                                                                         tmp_path):
    rows = [(c, i * 1.5) for i, c in enumerate(codes[:-2])] + [("E01999999", 3), ("X123", 4)]
    f = _write(tmp_path, rows)
    r = CliRunner().invoke(cli, ["overlay", "add", str(f), "--key", "code", "--value", "value",
                                 "--label", "Youth unemployment (%)"], obj={"config": config})
    try:
        assert r.exit_code == 0, r.output
        assert "E01999999" in r.output and "X123" in r.output  # unknown codes, by name
        assert codes[-1] in r.output and codes[-2] in r.output  # missing areas, by name
        assert (config.instance_dir / "overlays" / "youth-unemployment.csv").exists()
        lst = CliRunner().invoke(cli, ["overlay", "list"], obj={"config": config})
        assert "youth-unemployment" in lst.output
        layers = client.get("/api/v1/layers").get_json()["layers"]
        assert any(l["name"] == "overlay-youth-unemployment" for l in layers)
        fc = client.get("/api/v1/layers/overlay-youth-unemployment.geojson").get_json()
        assert len(fc["features"]) == 16
        assert "not on this map" in fc["legend"]["note"] and "E01999999" in fc["legend"]["note"]
        nodata = [f for f in fc["features"] if f["properties"]["class_label"] == "No data"]
        assert len(nodata) == 2
        meta = client.get("/api/v1/downloads/overlay-youth-unemployment.geojson").get_json()["metadata"]
        assert meta["overlay"]["unknown_codes"] == ["E01999999", "X123"]
        assert "overlay-youth-unemployment" in client.get("/").get_data(as_text=True)
        # risk-factor overlays are for analysts: a viewer neither sees nor fetches them
        assert "overlay-youth-unemployment" not in viewer_client.get("/").get_data(as_text=True)
        assert not any(l["name"].startswith("overlay-") for l in viewer_client.get("/api/v1/layers").get_json()["layers"])
        r = viewer_client.get("/api/v1/layers/overlay-youth-unemployment.geojson")
        assert r.status_code == 403 and r.get_json()["column"] == "layer"
        assert viewer_client.get("/api/v1/downloads/overlay-youth-unemployment.csv").status_code == 403
        assert viewer_client.get("/?layer=overlay-youth-unemployment").status_code == 403
    finally:
        CliRunner().invoke(cli, ["overlay", "remove", "youth-unemployment"], obj={"config": config})
    assert client.get("/api/v1/layers/overlay-youth-unemployment").status_code == 404


def test_strict_refuses_unknown_codes(config, codes, tmp_path):
    f = _write(tmp_path, [(c, 1) for c in codes] + [("E01999999", 3)])
    r = CliRunner().invoke(cli, ["overlay", "add", str(f), "--key", "code", "--value", "value", "--label", "S",
                                 "--strict"], obj={"config": config})
    assert r.exit_code == 1 and "E01999999" in r.output
    from hotspots.overlays import list_overlays
    assert not list_overlays(config)


@pytest.mark.parametrize("content,msg", [
    ("code,value\nE01090000,abc\n", "not a number"),
    ("code,value\nE01090000,1\nE01090000,2\n", "appears twice"),
    ("code,value\n,1\n", "blank"),
    ("area,value\nE01090000,1\n", "column 'code' not found"),
    ("code,value\nZZZ,1\n", "no code"),
])
def test_bad_files_fail_naming_row_and_column(config, tmp_path, content, msg):
    f = tmp_path / "bad.csv"
    f.write_text(content)
    r = CliRunner().invoke(cli, ["overlay", "add", str(f), "--key", "code", "--value", "value", "--label", "B"],
                           obj={"config": config})
    assert r.exit_code == 1 and msg in r.output and "bad.csv" in r.output


def test_ward_overlay(config, tmp_path):
    from hotspots.bundle import load_boundary
    from hotspots.overlays import add_overlay, overlay_layer, remove_overlay
    wards = list(load_boundary(config, "ward")["code"])
    f = _write(tmp_path, [(w, i) for i, w in enumerate(wards)], "w.csv")
    ov = add_overlay(config, f, "code", "value", "Ward thing", geography="ward")
    try:
        assert not ov.unknown_codes and not ov.missing_codes
        assert len(overlay_layer(config, ov.id)) == 4
    finally:
        remove_overlay(config, ov.id)
