"""A hospital-style partner source, built by the tests: under-25 assault admissions per LSOA, month and
age band, as an NHS trust would share them (small numbers, mostly 0-6; a few neighbourhoods high).

The real-bundle version puts the high counts in Heath Town's six LSOAs (the needs assessment's finding: most
under-25 hospital admissions for assault in the West Midlands, yet 15th in police data); the Gridtown version
in the north-east corner, away from the planted police hot spot in the south-west.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

AGE_BANDS = ("0-17", "18-24")
#: Heath Town ward (2023) and its LSOA 2021 codes (the bundle's best-fit lookup)
HEATH_TOWN = "E05014848"
HEATH_TOWN_LSOAS = ("E01010471", "E01010472", "E01010473", "E01010475", "E01010476", "E01010477")


def hospital_counts(codes, months, hot, seed: int = 2018) -> list[dict]:
    """One row per (LSOA, month, age band): Poisson counts, mean 0.9 (capped at 6), or 5 in ``hot`` areas."""
    rng = np.random.default_rng(seed)
    rows = []
    for code in codes:
        for month in months:
            for band in AGE_BANDS:
                n = int(rng.poisson(5.0)) + 2 if code in hot else min(int(rng.poisson(0.9)), 6)
                rows.append({"LSOA21CD": code, "period": month, "age_band": band, "admissions": n})
    return rows


def write_csv(path: Path, rows: list[dict], fields=("LSOA21CD", "period", "age_band", "admissions")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def gridtown_hospital(tmp: Path, months=tuple(f"2023-{m:02d}" for m in range(4, 13)) + ("2024-01", "2024-02", "2024-03")
                      ) -> tuple[Path, list[dict]]:
    from synthetic_bundle import N, lsoa_code
    codes = [lsoa_code(i, j) for i in range(N) for j in range(N)]
    hot = {lsoa_code(i, j) for i in (2, 3) for j in (2, 3)}
    rows = hospital_counts(codes, months, hot)
    return write_csv(tmp / "hospital.csv", rows), rows


def wolverhampton_hospital(tmp: Path, codes, months=tuple(f"2018-{m:02d}" for m in range(1, 13))):
    rows = hospital_counts(sorted(codes), months, set(HEATH_TOWN_LSOAS))
    return write_csv(tmp / "wolverhampton_hospital.csv", rows), rows
