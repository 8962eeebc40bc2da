"""Regressions of the disclosure audit found by the property tests: a small total shown with the primary
label ("<5" = 1..4) still bounds its cells, so it must not pin them down."""
from __future__ import annotations

import pandas as pd

from hotspots.disclosure import suppress_table


def _frame(counts, groups=None):
    d = {"code": [f"E{i:02d}" for i in range(len(counts))], "count": counts}
    if groups:
        d["ward_code"] = groups
    return pd.DataFrame(d)


def test_small_group_total_does_not_pin_its_cells():
    # four cells of 1 in one ward: "<5" for the ward would tell every cell is exactly 1
    res = suppress_table(_frame([1, 1, 1, 1], ["W0"] * 4), "count", "default", group_col="ward_code", total=False)
    assert list(res.frame["count"]) == ["<5"] * 4
    assert res.group_totals["count"].tolist() == ["*"]


def test_small_city_total_does_not_pin_its_cells():
    res = suppress_table(_frame([1, 1, 1, 1]), "count", "default", total=True)
    assert res.totals["count"] == "*" and res.totals["suppressed"] is True


def test_small_total_that_leaves_room_keeps_its_label():
    res = suppress_table(_frame([1, 2, 0]), "count", "default", total=True)
    assert res.totals["count"] == "<5"
