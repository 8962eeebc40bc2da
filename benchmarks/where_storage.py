"""Benchmark: where to keep an extract's typed extras for ``--where`` filters (issue 12), against a named peer.

(a) ours: typed JSON in ``incidents.attrs`` (what ingest already writes), filtered with ``json_extract`` in the
    base-cell query ``store.count_cells`` runs (area × month × category counts);
(b) peer: a side table ``incident_attrs(name, value, key)`` (WITHOUT ROWID, its primary key as the index), the
    same query with ``key IN (SELECT key FROM incident_attrs WHERE name = ? AND value IN (...))``.

Both on the same synthetic store (three extras per incident: an age band of four values, a 10 % weapon flag, a
beat of 40 values). Reports the cost of writing the side table, the store's size, and each query: no filter, a
broad text filter (half the incidents) and a narrow bool filter (a tenth).

Run::

    python benchmarks/where_storage.py            # 1,000,000 incidents, five repeats (medians)
    python benchmarks/where_storage.py --quick    # 200,000 incidents, one repeat

Prints numbers; it is not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

BANDS = ("0-17", "18-24", "25-34", "35+")
QUERIES = {
    "no filter": ("", "", []),
    "age band 0-17,18-24 (half)": ("json_extract(attrs, ?) IN (?, ?)",
                                   "name = 'victim_age_band' AND value IN (?, ?)", ["0-17", "18-24"]),
    "weapon flag true (a tenth)": ("json_extract(attrs, ?) IN (?)", "name = 'weapon_flag' AND value IN (?)", [1]),
}


def build(path: Path, n: int) -> tuple[sqlite3.Connection, float, int, int]:
    rng = random.Random(1)
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE incidents (key INTEGER PRIMARY KEY, area INTEGER, month TEXT, cat INTEGER, attrs TEXT)")
    rows, side = [], []
    for k in range(n):
        band, weapon, beat = rng.choice(BANDS), rng.random() < 0.1, f"B{rng.randint(1, 40)}"
        rows.append((k, rng.randint(1, 2000), f"2024-{rng.randint(1, 12):02d}", rng.randint(1, 14),
                     json.dumps({"victim_age_band": band, "weapon_flag": weapon, "beat": beat})))
        side += [("victim_age_band", band, k), ("weapon_flag", int(weapon), k), ("beat", beat, k)]
    con.executemany("INSERT INTO incidents VALUES (?, ?, ?, ?, ?)", rows)
    con.commit()
    before = os.path.getsize(path)
    con.execute("CREATE TABLE incident_attrs (name TEXT, value, key INTEGER, PRIMARY KEY (name, value, key)) "
                "WITHOUT ROWID")
    t = time.perf_counter()
    con.executemany("INSERT INTO incident_attrs VALUES (?, ?, ?)", side)
    con.commit()
    return con, time.perf_counter() - t, before, os.path.getsize(path)


def run(con: sqlite3.Connection, repeats: int) -> None:
    group = " GROUP BY area, month, cat"
    for label, (json_cond, side_cond, values) in QUERIES.items():
        ours = "SELECT area, month, cat, COUNT(*) FROM incidents" + (f" WHERE {json_cond}" if json_cond else "")
        peer = "SELECT area, month, cat, COUNT(*) FROM incidents" + (
            f" WHERE key IN (SELECT key FROM incident_attrs WHERE {side_cond})" if side_cond else "")
        path = ['$."victim_age_band"'] if "age" in label else ['$."weapon_flag"'] if json_cond else []
        times: dict = {}
        candidates = (("typed JSON", ours + group, path + values), ("side table", peer + group, values))
        for name, sql, args in candidates:  # one unmeasured run each: both read from a warm page cache
            con.execute(sql, args).fetchall()
        runs: dict = {name: [] for name, _, _ in candidates}
        for _ in range(repeats):  # interleaved, so a busy moment of the machine hits both
            for name, sql, args in candidates:
                t = time.perf_counter()
                cells = con.execute(sql, args).fetchall()
                runs[name].append(time.perf_counter() - t)
                times[name] = len(cells)
        times = {name: (statistics.median(runs[name]), times[name]) for name in runs}
        (a, ca), (b, cb) = times["typed JSON"], times["side table"]
        assert ca == cb, "the two storages disagree"
        print(f"{label:30s} typed JSON {a:6.2f} s   side table {b:6.2f} s   ({ca:,} cells)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n, repeats = (200_000, 1) if args.quick else (1_000_000, 5)
    with tempfile.TemporaryDirectory() as tmp:
        con, write_s, size_before, size_after = build(Path(tmp) / "store.db", n)
        print(f"{n:,} incidents, three extras each. Side table: written in {write_s:.1f} s, store "
              f"{size_before / 1e6:.0f} MB -> {size_after / 1e6:.0f} MB (+{(size_after / size_before - 1):.0%}); "
              "typed JSON: nothing extra (ingest writes attrs already).")
        run(con, repeats)
        con.close()


if __name__ == "__main__":
    main()
