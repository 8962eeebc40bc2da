"""A force's own incident extract as forces have them (issue 12): UK dates with times, local offence names
and Home Office codes, and extra columns (victim age band, weapon flag, beat), placed in gridtown.

``write_extract`` writes the CSV and returns the rows as a DataFrame (what the tests compare against);
``extract_config`` appends the matching ``[extract]`` section to gridtown's TOML and loads it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from synthetic_bundle import CELL, N, X0, Y0, lsoa_code

#: local offence names and codes (as written in the extract, odd case and spacing included) -> police.uk slug
OFFENCES = {"Violence with injury": "violent-crime", "VIOLENCE  WITHOUT injury": "violent-crime",
            "Stalking and harassment": "violent-crime", "Residential burglary": "burglary",
            "theft from motor vehicle": "vehicle-crime", "8N": "violent-crime", "105/1": "violent-crime",
            "28e": "burglary"}
#: the mapping as the config writes it (canonical case and spacing)
CATEGORY_TABLE = {"Violence with injury": "violent-crime", "Violence without injury": "Violence and sexual offences",
                  "Stalking and harassment": "violent-crime", "Residential burglary": "burglary",
                  "Theft from motor vehicle": "vehicle-crime", "8N": "violent-crime", "105/1": "violent-crime",
                  "28E": "burglary"}
AGE_BANDS = ("0-17", "18-24", "25-34", "35+")


def write_extract(path: Path, n: int = 302, year: int = 2018, months: tuple[int, ...] = (6,), seed: int = 7,
                  first: str | None = "25/06/2018 18:15") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = list(OFFENCES)
    rows = []
    for k in range(n):
        i, j = rng.integers(0, N, size=2)
        e = X0 + (j + rng.uniform(0.05, 0.95)) * CELL
        nn = Y0 + (i + rng.uniform(0.05, 0.95)) * CELL
        month = int(rng.choice(months))
        day, hour, minute = int(rng.integers(1, 29)), int(rng.integers(0, 24)), int(rng.integers(0, 60))
        when = f"{day:02d}/{month:02d}/{year} {hour:02d}:{minute:02d}"
        if k == 0 and first:
            when = first
        rows.append({"incident_id": f"WM{k:05d}", "date": when, "offence": names[k % len(names)],
                     "easting": round(e, 1), "northing": round(nn, 1),
                     "victim_age_band": AGE_BANDS[int(rng.integers(0, len(AGE_BANDS)))],
                     "weapon_flag": "Y" if rng.random() < 0.2 else "N", "beat": f"B{int(rng.integers(1, 7))}"})
    frame = pd.DataFrame(rows)
    frame.to_csv(path, index=False)
    stamp = pd.to_datetime(frame["date"], format="%d/%m/%Y %H:%M")
    i = ((frame["northing"] - Y0) // CELL).astype(int)
    j = ((frame["easting"] - X0) // CELL).astype(int)
    return frame.assign(category=frame["offence"].map(OFFENCES), when=stamp, hour=stamp.dt.hour,
                        lsoa21=[lsoa_code(a, b) for a, b in zip(i, j)],
                        weekday=stamp.dt.day_of_week, month=stamp.dt.strftime("%Y-%m"),
                        weapon=frame["weapon_flag"].eq("Y"))


EXTRACT_TOML = """
[extract]
id = "incident_id"
date = "date"
date_format = "%d/%m/%Y %H:%M"
category = "offence"
easting = "easting"
northing = "northing"
{unmapped}
[extract.extras]
victim_age_band = "text"
weapon_flag = "bool"
beat = "text"

[extract.categories]
{categories}
"""


#: the columns written to the CSV (the rest of ``write_extract``'s frame is what the tests expect)
CSV_COLUMNS = ["incident_id", "date", "offence", "easting", "northing", "victim_age_band", "weapon_flag", "beat"]


def ingested_extract(tmp_path, n: int = 302, year: int = 2024, months: tuple[int, ...] = (1, 2, 3)):
    """gridtown with the force extract ingested: (config, the extract's rows)."""
    from hotspots.bundle import install_bundle
    from hotspots.ingest import ingest_paths
    from synthetic_bundle import build
    b = build(tmp_path)
    config = extract_config(b)
    install_bundle(config)
    rows = write_extract(tmp_path / "force.csv", n=n, year=year, months=months, first=None)
    (s,) = ingest_paths(config, [tmp_path / "force.csv"], "extract")
    assert (s.accepted, s.rejected) == (n, 0)
    return b, config, rows


def extract_config(bundle, *, unmapped: str | None = None, **overrides):
    """gridtown's configuration with the force extract's ``[extract]`` section."""
    from hotspots.config import load_config
    text = bundle.config_path.read_text(encoding="utf-8")
    cats = "\n".join(f'"{k}" = "{v}"' for k, v in CATEGORY_TABLE.items())
    extra = EXTRACT_TOML.format(categories=cats, unmapped=f'unmapped = "{unmapped}"' if unmapped else "")
    path = bundle.config_path.with_name("force.toml")
    path.write_text(text + extra, encoding="utf-8")
    return load_config(path, env={}, data_dir=bundle.data_dir, instance_dir=bundle.instance_dir,
                       bundle=bundle.root / "bundle", **overrides)
