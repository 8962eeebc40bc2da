"""Issue 12 item 1: a force extract with UK dates, local offence names and Home Office codes mapped to the
police.uk categories (the original kept as a sub-category), typed extras, and reports that add up."""
from __future__ import annotations

import json
import sqlite3

import pytest

from force_extract import extract_config, write_extract
from hotspots.config import load_config
from hotspots.errors import ConfigError
from hotspots.ingest import ingest_paths
from synthetic_bundle import lsoa_code


def test_force_extract_of_302_rows_ingests_under_police_categories(gridtown, tmp_path):
    """The issue's scenario: 302 rows, `25/06/2018 18:15`, local names and codes in odd case and spacing."""
    b, _ = gridtown
    config = extract_config(b)
    rows = write_extract(tmp_path / "force.csv")
    (s,) = ingest_paths(config, [tmp_path / "force.csv"], "extract")
    assert (s.rows_read, s.accepted, s.duplicates, s.rejected) == (302, 302, 0, 0)
    con = sqlite3.connect(config.db_path)
    got = con.execute("SELECT crime_id, category, subcategory, date, time, lsoa21, attrs FROM incidents_geocoded "
                      "ORDER BY crime_id").fetchall()
    con.close()
    assert [g[0] for g in got] == [f"extract:{i}" for i in rows["incident_id"]]
    assert [g[1] for g in got] == rows["category"].tolist()
    assert [g[2] for g in got] == [o.strip() for o in rows["offence"]]
    assert [g[3] for g in got] == rows["when"].dt.strftime("%Y-%m-%d").tolist()
    assert [g[4] for g in got] == rows["when"].dt.strftime("%H:%M").tolist()
    assert got[0][3:5] == ("2018-06-25", "18:15")
    assert all(g[5] and g[5].startswith(lsoa_code(0, 0)[:5]) for g in got)
    # typed extras: the flag is a JSON boolean, the band and beat text
    attrs = [json.loads(g[6]) for g in got]
    assert [a["weapon_flag"] for a in attrs] == rows["weapon"].tolist()
    assert [a["victim_age_band"] for a in attrs] == rows["victim_age_band"].tolist()
    assert {type(a["weapon_flag"]) for a in attrs} == {bool}
    # the same file again: every row a duplicate, and the report still adds up
    (again,) = ingest_paths(config, [tmp_path / "force.csv"], "extract")
    assert (again.rows_read, again.accepted, again.duplicates, again.rejected) == (302, 0, 302, 0)


def test_unmapped_offence_rejected_with_row_column_and_known_names(gridtown, tmp_path):
    b, _ = gridtown
    config = extract_config(b)
    rows = write_extract(tmp_path / "force.csv", n=20)
    rows.loc[4, "offence"] = "Cheque fraud"
    rows.loc[9, "weapon_flag"] = "maybe"
    rows[["incident_id", "date", "offence", "easting", "northing", "victim_age_band", "weapon_flag", "beat"]].to_csv(
        tmp_path / "force.csv", index=False)
    (s,) = ingest_paths(config, [tmp_path / "force.csv"], "extract")
    assert (s.rows_read, s.accepted, s.duplicates, s.rejected) == (20, 18, 0, 2)
    con = sqlite3.connect(config.db_path)
    rej = con.execute("SELECT row_no, column_name, reason FROM rejects ORDER BY row_no").fetchall()
    con.close()
    assert [r[:2] for r in rej] == [(5, "offence"), (10, "weapon_flag")]
    assert "offence not in [extract.categories]" in rej[0][2] and "violence with injury" in rej[0][2] \
        and "8n" in rej[0][2] and 'unmapped = "keep"' in rej[0][2]
    assert rej[1][2] == "weapon_flag must be true/false (also yes/no, y/n, 1/0) ([extract.extras] declares it bool)"


def test_unmapped_keep_stores_the_offence_as_its_own_category(gridtown, tmp_path):
    b, _ = gridtown
    config = extract_config(b, unmapped="keep")
    rows = write_extract(tmp_path / "force.csv", n=10)
    rows.loc[3, "offence"] = "Cheque fraud"
    rows.drop(columns=["category", "when", "hour", "weekday", "month", "weapon"]).to_csv(tmp_path / "f.csv",
                                                                                          index=False)
    (s,) = ingest_paths(config, [tmp_path / "f.csv"], "extract")
    assert (s.accepted, s.rejected) == (10, 0)
    con = sqlite3.connect(config.db_path)
    assert con.execute("SELECT category, subcategory FROM incidents_geocoded WHERE crime_id = 'extract:WM00003'"
                       ).fetchone() == ("cheque-fraud", None)
    con.close()


def test_cli_ingests_the_force_extract_and_exits_0(gridtown, tmp_path):
    from click.testing import CliRunner

    from hotspots.cli import cli as main
    b, _ = gridtown
    config = extract_config(b)
    write_extract(tmp_path / "force.csv")
    env = {**b.env(), "HOTSPOTS_CONFIG": str(config.source)}
    res = CliRunner().invoke(main, ["ingest", "--format", "extract", str(tmp_path / "force.csv")], env=env)
    assert res.exit_code == 0, res.output
    assert "302" in res.output and "error" not in res.output.lower()


def test_a_file_of_only_unmapped_offences_exits_1(gridtown, tmp_path):
    from click.testing import CliRunner

    from hotspots.cli import cli as main
    b, _ = gridtown
    config = extract_config(b)
    rows = write_extract(tmp_path / "force.csv", n=5)
    rows.assign(offence="Cheque fraud").drop(columns=["category", "when", "hour", "weekday", "month", "weapon"]
                                             ).to_csv(tmp_path / "bad.csv", index=False)
    env = {**b.env(), "HOTSPOTS_CONFIG": str(config.source)}
    res = CliRunner().invoke(main, ["ingest", "--format", "extract", str(tmp_path / "bad.csv")], env=env)
    assert res.exit_code == 1, res.output
    assert "every row (5) was rejected" in res.output


@pytest.mark.parametrize("table, message", [
    ('[extract.categories]\n"Violence with injury" = "violence"\n', "not a police.uk category"),
    ('[extract.categories]\n"8N" = "violent-crime"\n" 8n " = "burglary"\n', "mapped twice"),
    ('[extract]\nunmapped = "drop"\n', "unmapped must be"),
    ('[extract.extras]\nweapon_flag = "boolean"\n', "has type 'boolean'"),
])
def test_bad_category_and_extras_config_refused(gridtown, table, message):
    b, _ = gridtown
    path = b.config_path.with_name("bad.toml")
    path.write_text(b.config_path.read_text(encoding="utf-8") + "\n" + table, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_config(path, env={})


def test_a_v2_store_read_by_a_server_is_migrated_first(gridtown):
    """A server started on an older store (no ingest since the upgrade) reads through read-only connections:
    the first one migrates the store, so queries naming the sub-category work."""
    import sqlite3

    from hotspots import store
    from test_ingest import V2_INCIDENTS
    _, config = gridtown
    config.db_path.parent.mkdir(parents=True, exist_ok=True)
    old = sqlite3.connect(config.db_path)
    old.executescript(V2_INCIDENTS)
    old.close()
    assert store.distinct_values(config.db_path, ["subcategory", "beat"]) == {"subcategory": [], "beat": []}
    total, rows = store.incidents(config.db_path, [], None, None, None, 10, 0)
    assert total == 1 and rows[0]["subcategory"] is None and rows[0]["extras"] == {}
    con = sqlite3.connect(config.db_path)
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(store.SCHEMA_VERSION),)
    con.close()
