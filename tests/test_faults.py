"""Faults: kill -9 during an ingest, two concurrent ingests, a corrupt bundle file.

Everything runs against the synthetic city of ``tests/synthetic_bundle.py`` (sixteen 500 m square LSOAs in
four wards, GeoJSON in EPSG:4326, plus a population table) and its config TOML in a temporary folder,
selected through HOTSPOTS_CONFIG / HOTSPOTS_DATA_DIR / HOTSPOTS_INSTANCE_DIR. Ingests run as real
`hotspots ingest` subprocesses.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hotspots.bundle import dataset_files, install_bundle, verify_bundle
from hotspots.config import load_config
from hotspots.errors import BundleError
from synthetic_bundle import CELL, X0, Y0, build

HOTSPOTS = [sys.executable, "-c", "from hotspots.cli import main; main()"]
E0, N0, SIDE = X0, Y0, CELL * 2  # the synthetic city spans E0..E0 + 2·SIDE, N0..N0 + 2·SIDE
N_BIG = 300_000  # big enough that the store transaction lasts about a second

def make_env(root: Path) -> dict[str, str]:
    """The synthetic city's bundle and config under ``root``, installed; returns the environment selecting them."""
    root.mkdir(parents=True, exist_ok=True)
    env = build(root).env()
    install_bundle(load_config(env=env))
    return env


def make_police_csv(path: Path, n: int, seed: int, id_prefix: str = "c", n_dup: int | None = None,
                    n_bad: int | None = None) -> tuple[Path, int]:
    """A police.uk archive CSV with ``n`` rows: unique crimes, some repeated Crime IDs and some rows with
    blank coordinates. Returns (path, number of distinct valid crimes it should store)."""
    from hotspots.geocode import bng_to_lonlat
    rng = np.random.default_rng(seed)
    n_dup = n // 100 if n_dup is None else n_dup
    n_bad = n // 500 if n_bad is None else n_bad
    n_unique = n - n_dup
    e = rng.uniform(E0 - 300, E0 + 2 * SIDE + 300, n_unique)  # some fall outside the area: kept, flagged
    nn = rng.uniform(N0 - 300, N0 + 2 * SIDE + 300, n_unique)
    lon, lat = bng_to_lonlat(e, nn)
    ids = np.char.add(f"{id_prefix}{seed}-", np.arange(n_unique).astype(str))
    df = pd.DataFrame({
        "Crime ID": ids, "Month": "2018-06", "Reported by": "Synthetic Police", "Falls within": "Synthetic Police",
        "Longitude": np.round(lon, 6).astype(str), "Latitude": np.round(lat, 6).astype(str),
        "Location": "On or near Somewhere", "LSOA code": "", "LSOA name": "",
        "Crime type": rng.choice(["Violence and sexual offences", "Burglary", "Robbery"], n_unique),
        "Last outcome category": "Under investigation", "Context": ""})
    bad = rng.choice(n_unique, n_bad, replace=False)
    df.loc[bad, ["Longitude", "Latitude"]] = ""
    valid = np.ones(n_unique, dtype=bool)
    valid[bad] = False
    dup_src = rng.choice(np.flatnonzero(valid), n_dup, replace=True)
    df = pd.concat([df, df.iloc[dup_src]], ignore_index=True)
    df.to_csv(path, index=False)
    return path, int(valid.sum())


def run_ingest(env: dict[str, str], *files: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen(HOTSPOTS + ["ingest", *map(str, files)], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def db_path(env) -> Path:
    return Path(env["HOTSPOTS_INSTANCE_DIR"]) / "hotspots.db"


def check_store(env) -> tuple[int, int]:
    """Integrity ok and no duplicate crimes; returns (incidents, finished ingests)."""
    con = sqlite3.connect(db_path(env))
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n, distinct = con.execute("SELECT COUNT(*), COUNT(DISTINCT crime_id) FROM incidents").fetchone()
        assert n == distinct, "duplicate crimes in the store"
        unfinished = con.execute("SELECT COUNT(*) FROM ingests WHERE finished_at IS NULL").fetchone()[0]
        assert unfinished == 0, "an ingest row without its rows is visible"
        orphans = con.execute("SELECT COUNT(*) FROM incidents WHERE ingest_id NOT IN (SELECT id FROM ingests)"
                              ).fetchone()[0]
        assert orphans == 0
        ingests = con.execute("SELECT COUNT(*) FROM ingests").fetchone()[0]
        return n, ingests
    finally:
        con.close()


def writer_busy(path: Path) -> bool:
    """True while another connection holds the write lock (i.e. is inside a transaction)."""
    if not path.exists():
        return False
    con = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        con.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    return make_env(tmp_path_factory.mktemp("faults"))


# ------------------------------------------------------------------------------------ (a) kill -9
@pytest.mark.slow
def test_kill_9_during_ingest_then_rerun(tmp_path):
    env = make_env(tmp_path / "k")
    big, expected = make_police_csv(tmp_path / "big.csv", N_BIG, seed=7)
    db = db_path(env)
    killed_inside = False
    for attempt, extra_delay in enumerate((0.0, 0.15)):
        proc = run_ingest(env, big)
        held_since = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if writer_busy(db):
                held_since = held_since or time.monotonic()
                # The short area-names transaction takes milliseconds; the incidents one about a second.
                if time.monotonic() - held_since > 0.08 + extra_delay:
                    os.kill(proc.pid, signal.SIGKILL)
                    killed_inside = True
                    break
            else:
                held_since = None
            time.sleep(0.02)
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
        if proc.returncode != -signal.SIGKILL:
            pytest.fail(f"ingest finished before it could be killed (rc {proc.returncode}); make the file larger")
        n, ingests = check_store(env)
        assert (n, ingests) == (0, 0), "a killed ingest left part of its file in the store"
    assert killed_inside
    # Re-run: completes, with no duplicates and nothing lost.
    proc = run_ingest(env, big)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    n, ingests = check_store(env)
    assert (n, ingests) == (expected, 1)
    con = sqlite3.connect(db)
    rejects = con.execute("SELECT COUNT(*) FROM rejects").fetchone()[0]
    dup, acc = con.execute("SELECT duplicates, accepted FROM ingests").fetchone()
    con.close()
    assert rejects == N_BIG // 500 and acc == expected and dup == N_BIG // 100


# ------------------------------------------------------------------------------ (b) two at once
def test_two_concurrent_ingests(tmp_path):
    env = make_env(tmp_path / "c")
    a, na = make_police_csv(tmp_path / "a.csv", 20_000, seed=1, id_prefix="a")
    b, nb = make_police_csv(tmp_path / "b.csv", 20_000, seed=2, id_prefix="b")
    c, nc = make_police_csv(tmp_path / "c.csv", 15_000, seed=3, id_prefix="c")
    # Different files, and the same file (c) in both processes, starting on a store that does not exist yet.
    p1 = run_ingest(env, a, c)
    p2 = run_ingest(env, b, c)
    for p in (p1, p2):
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    n, ingests = check_store(env)
    assert n == na + nb + nc
    assert ingests == 4
    con = sqlite3.connect(db_path(env))
    per_ingest = con.execute("SELECT path, SUM(accepted), SUM(duplicates) FROM ingests GROUP BY path").fetchall()
    con.close()
    by_path = {Path(p).name: (acc, dup) for p, acc, dup in per_ingest}
    assert by_path["a.csv"][0] == na and by_path["b.csv"][0] == nb
    assert by_path["c.csv"][0] == nc  # one of the two stored c, the other found only duplicates


# ------------------------------------------------------------------------------ (c) corrupt bundle
def test_corrupt_bundle_file_is_detected(env, tmp_path):
    from click.testing import CliRunner

    from hotspots.cli import cli
    config = load_config(env=env)
    verify_bundle(config)  # installed and intact
    assert CliRunner().invoke(cli, ["data", "status"], env=env, obj={}).exit_code == 0
    target = config.data_dir / "boundaries" / "lsoa21.geojson"
    original = target.read_bytes()
    try:
        # Same size, one byte changed (a checksum, not a size check, must catch it).
        mutated = bytearray(original)
        pos = original.index(b"Gridtown 0") + len("Gridtown ")
        mutated[pos] = ord("9")
        target.write_bytes(bytes(mutated))
        time.sleep(0.01)
        with pytest.raises(BundleError) as exc:
            verify_bundle(config)
        assert "lsoa21.geojson" in exc.value.message and "corrupt" in exc.value.message
        with pytest.raises(BundleError, match="lsoa21.geojson"):
            dataset_files(config, "lsoa21")
        r = CliRunner().invoke(cli, ["data", "status"], env=env, obj={})
        assert r.exit_code == 1 and "lsoa21.geojson" in r.output and "corrupt" in r.output
        # Truncated.
        target.write_bytes(original[: len(original) // 2])
        with pytest.raises(BundleError, match="lsoa21.geojson"):
            dataset_files(config, "lsoa21")
        # Missing.
        target.unlink()
        with pytest.raises(BundleError, match="lsoa21.geojson"):
            verify_bundle(config)
        r = CliRunner().invoke(cli, ["data", "status"], env=env, obj={})
        assert r.exit_code == 1 and "missing" in r.output
        # And an ingest refuses to run on the broken bundle, naming the file.
        small, _ = make_police_csv(tmp_path / "small.csv", 100, seed=9)
        p = run_ingest(env, small)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 1 and "lsoa21.geojson" in err
    finally:
        target.write_bytes(original)
    verify_bundle(config)
