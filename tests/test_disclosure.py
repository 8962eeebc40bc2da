"""Disclosure control: primary and secondary suppression, rounding, totals, two-period comparisons."""
from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotspots.disclosure import (RULES, DisclosureRule, get_rule, rule_from_mapping,
                                 rule_metadata, suppress, suppress_change, suppress_table, suppress_value)
from hotspots.errors import ConfigError, HotspotsError

DEFAULT = RULES["default"]
HOSPITAL = RULES["hospital"]


def frame(counts, groups=None, population=None):
    n = len(counts)
    df = pd.DataFrame({"code": [f"E0{i:07d}" for i in range(n)], "count": counts})
    if groups is not None:
        df["ward_code"] = groups
    if population is not None:
        df["population"] = population
        df["rate_per_1000"] = df["count"] / df["population"] * 1000
    return df


# ------------------------------------------------------------------------------------------ rules
def test_rules_shape():
    assert (DEFAULT.min_count, DEFAULT.max_suppressed, DEFAULT.round_to, DEFAULT.label) == (5, 4, 0, "<5")
    assert (HOSPITAL.min_count, HOSPITAL.max_suppressed, HOSPITAL.round_to, HOSPITAL.label) == (8, 7, 5, "*")
    with pytest.raises(ConfigError):
        DisclosureRule("bad", min_count=5, max_suppressed=7)
    with pytest.raises(ConfigError, match="unknown disclosure rule"):
        get_rule("nope")
    ten = rule_from_mapping({"min_count": 10})
    assert (ten.max_suppressed, ten.label, ten.name) == (9, "<10", "custom")
    assert rule_from_mapping({"rule": "hospital"}) is HOSPITAL
    with pytest.raises(ConfigError):
        rule_from_mapping({"min_count": 10, "colour": "red"})


def test_rule_metadata_records_rule():
    meta = rule_metadata("hospital")
    assert meta["disclosure_rule"] == "hospital"
    d = meta["disclosure"]
    assert d["suppressed_range"] == [1, 7] and d["round_to"] == 5 and d["label"] == "*"
    assert "totals" in d and d["version"]


def test_suppress_value():
    assert [suppress_value(v) for v in (0, 1, 4, 5, 17)] == [0, "<5", "<5", 5, 17]
    assert [suppress_value(v, "hospital") for v in (0, 1, 7, 8, 12, 13, 101)] == [0, "*", "*", 10, 10, 15, 100]


# ------------------------------------------------------------------------------------ primary
def test_primary_zero_shown_small_suppressed():
    out = suppress(frame([0, 1, 2, 3, 4, 5, 6, 40]), "count", total=False)
    assert out["count"].tolist() == [0, "<5", "<5", "<5", "<5", 5, 6, 40]
    assert out["suppressed"].tolist() == [False, True, True, True, True, False, False, False]


def test_hospital_rounds_and_suppresses():
    out = suppress(frame([0, 3, 7, 8, 12, 13, 22, 100]), "count", "hospital", total=False)
    assert out["count"].tolist() == [0, "*", "*", 10, 10, 15, 20, 100]


def test_rate_blanked_and_rounded():
    df = frame([2, 30, 12], population=[1000, 1500, 2000])
    out = suppress(df, "count", total=False)
    assert out["rate_per_1000"].iloc[0] is None  # 2/1000 * 1000 would give the count back
    assert out["rate_per_1000"].iloc[1] == pytest.approx(20.0)
    hosp = suppress(df, "count", "hospital", total=False)
    assert hosp["count"].iloc[2] == 10
    assert hosp["rate_per_1000"].iloc[2] == pytest.approx(10 / 2000 * 1000)  # from the rounded count


def test_bad_counts_raise():
    with pytest.raises(HotspotsError):
        suppress(frame([1, -1]), "count")
    with pytest.raises(HotspotsError):
        suppress(frame([1.5, 2]), "count")


# ----------------------------------------------------------------------------------- secondary
def test_single_suppressed_cell_gets_a_partner():
    out = suppress_table(frame([3, 10, 12, 40]), "count")
    assert out.totals["count"] == 65
    assert out.frame["count"].tolist() == ["<5", "*", 12, 40]  # the next smallest non-zero cell


def test_two_ones_are_not_exposed_by_the_total():
    # 1 + 1 = published total - published cells = 2 would force both to 1.
    out = suppress_table(frame([1, 1, 20]), "count")
    shown = out.frame["count"].tolist()
    assert shown[:2] == ["<5", "<5"]
    assert shown[2] == "*" or out.totals["suppressed"]


def test_group_totals_and_city_total():
    res = run([3, 10, 12, 0, 2, 1, 20], ["W1", "W1", "W1", "W2", "W2", "W2", "W3"], DEFAULT)
    gt = res.group_totals.set_index("ward_code")
    assert gt.loc["W2", "count"] == "<5"  # ward total 3 is itself small
    assert res.totals["count"] == 48
    # W1: 3 is primary; W1's total 25 is published, so a second W1 cell is hidden too.
    assert res.frame["count"].tolist()[:3].count("<5") + res.frame["count"].tolist()[:3].count("*") >= 2 or \
        gt.loc["W1", "suppressed"]
    assert_protected(res, DEFAULT)


def test_no_suppression_needed_leaves_everything():
    res = suppress_table(frame([0, 10, 12, 40], groups=["a", "a", "b", "b"]), "count", group_col="ward_code")
    assert not res.frame["suppressed"].any()
    assert res.group_totals["count"].tolist() == [10, 52] and res.totals["count"] == 62


def test_multiple_columns():
    df = pd.DataFrame({"code": list("abc"), "n2017": [3, 20, 30], "n2018": [10, 2, 30]})
    out = suppress(df, ["n2017", "n2018"])
    assert out["n2017_suppressed"].sum() >= 2 and out["n2018_suppressed"].sum() >= 2
    assert out["suppressed"].tolist() == (out["n2017_suppressed"] | out["n2018_suppressed"]).tolist()


def test_attrs_carry_rule_and_totals():
    out = suppress(frame([3, 10, 12]), "count", "hospital")
    d = out.attrs["disclosure"]
    assert d["rule"] == "hospital" and d["totals"]["count"] == 25


# ------------------------------------------------------------------------------------ two periods
def test_change_suppressed_when_either_period_is():
    a = frame([3, 20, 30, 40])
    b = frame([10, 2, 30, 41])
    out = suppress_change(a, b, total=False)
    assert out["change_suppressed"].tolist()[:2] == [True, True]
    assert out["change"].iloc[2] == 0 and out["change"].iloc[3] == 1
    # A published change never sits beside exactly one published count.
    pub_c = ~out["change_suppressed"]
    assert not (pub_c & (out["count_a_suppressed"] ^ out["count_b_suppressed"])).any()


def test_nested_periods_hide_small_differences():
    a = frame([10, 20, 30])
    b = frame([12, 20, 40])  # b includes a: 2 more incidents in the first area
    out = suppress_change(a, b, total=False, nested=True)
    assert out["count_b_suppressed"].iloc[0] and out["change_suppressed"].iloc[0]
    assert out["count_b"].iloc[2] == 40 and out["change"].iloc[2] == 10


# ------------------------------------------------------------------------------------ redaction
def _bounds_from_display(shown, rule, pub_nonzero_hi=None):
    """What an attacker knows about a cell from its display value."""
    if shown == rule.label and rule.label != rule.secondary_label:
        return 1, rule.max_suppressed
    if shown == rule.secondary_label and rule.label != rule.secondary_label:
        return rule.min_count, pub_nonzero_hi if pub_nonzero_hi is not None else 10 ** 9
    if shown == rule.label:  # same label for both kinds: 1 .. anything
        return 1, 10 ** 9
    lo, hi = rule.published_interval(int(shown))
    return int(lo), int(hi)


def assert_protected(res, rule, true_col="count"):
    """Independent audit from the published output alone.

    (1) the literal rule: a group whose total is published never has exactly one unpublished cell (same
    for the grand total over the groups, or over the cells when there are no groups);
    (2) stronger: every primary-suppressed cell could take at least two values consistent with all that is
    published (cell labels, group totals, grand total), so it cannot be worked out."""
    f = res.frame
    shown = f[true_col].tolist()
    truth = res._truth  # set by the test helper below
    groups = f[res._group_col].tolist() if res._group_col else [None] * len(f)
    sup = f["suppressed"].to_numpy()
    gkeys = sorted(set(groups), key=str)
    gshown = {}
    if res.group_totals is not None:
        gshown = dict(zip(res.group_totals[res._group_col], res.group_totals[true_col]))
    t_shown = res.totals[true_col]
    exact = rule.round_to <= 1

    # (1) literal rule
    for g in gkeys:
        idx = [i for i, x in enumerate(groups) if x == g]
        gs = gshown.get(g) if res._group_col else t_shown
        published_total = gs is not None and not isinstance(gs, str)
        if published_total and exact:
            unpublished = [i for i in idx if sup[i]]
            assert len(unpublished) != 1, (g, shown, gs)
            if unpublished:
                assert gs - sum(shown[i] for i in idx if not sup[i]) == sum(truth[i] for i in unpublished)
    if res._group_col and t_shown is not None and not isinstance(t_shown, str) and exact:
        hidden = [g for g in gkeys if isinstance(gshown[g], str)]
        assert len(hidden) != 1, (gshown, t_shown)

    # (2) interval feasibility: for each primary cell, some other value is consistent with everything.
    def cell_bounds(i, g):
        idx = [j for j, x in enumerate(groups) if x == g]
        pub_nz = [int(rule.published_interval(shown[j])[1]) for j in idx if not sup[j] and shown[j] != 0]
        return _bounds_from_display(shown[i], rule, max(min(pub_nz), rule.min_count) if pub_nz else None)

    def feasible(fix_i, fix_v):
        g_ranges = []
        for g in gkeys:
            idx = [i for i, x in enumerate(groups) if x == g]
            lo = hi = 0
            for i in idx:
                if i == fix_i:
                    a = b = fix_v
                else:
                    a, b = cell_bounds(i, g)
                lo += a
                hi += b
            if res._group_col:
                gs = gshown[g]
                if isinstance(gs, str):
                    glo, ghi = (1, rule.max_suppressed) if gs == rule.label and rule.label != rule.secondary_label \
                        else (1, 10 ** 9)
                else:
                    glo, ghi = rule.published_interval(gs)
                lo, hi = max(lo, glo), min(hi, ghi)
                if lo > hi:
                    return False
            g_ranges.append((lo, hi))
        if t_shown is not None and not isinstance(t_shown, str):
            tlo, thi = rule.published_interval(t_shown)
            return sum(a for a, _ in g_ranges) <= thi and sum(b for _, b in g_ranges) >= tlo
        return True

    for i in range(len(f)):
        if sup[i] and 1 <= truth[i] <= rule.max_suppressed:
            assert feasible(i, truth[i]), "the truth must be consistent with the output"
            alternatives = [v for v in range(1, rule.max_suppressed + 1) if v != truth[i] and feasible(i, v)]
            assert alternatives, f"cell {i} (= {truth[i]}) can be worked out: {shown}, groups {gshown}, total {t_shown}"


def run(counts, groups, rule, total=True):
    df = frame(counts, groups)
    res = suppress_table(df, "count", rule, group_col="ward_code" if groups is not None else None, total=total)
    res._truth = list(counts)
    res._group_col = "ward_code" if groups is not None else None
    return res


small_counts = st.lists(st.one_of(st.integers(0, 6), st.integers(0, 40)), min_size=1, max_size=9)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(counts=small_counts, data=st.data())
def test_property_grouped_default_rule(counts, data):
    n_groups = data.draw(st.integers(1, 4))
    groups = [f"W{data.draw(st.integers(0, n_groups - 1))}" for _ in counts]
    total = data.draw(st.booleans())
    res = run(counts, groups, DEFAULT, total)
    assert_protected(res, DEFAULT)
    # Zero is shown as zero, primary cells carry the label, published cells are exact.
    for v, s in zip(counts, res.frame["count"]):
        if v == 0:
            assert s == 0
        elif v <= 4:
            assert s == "<5"
        else:
            assert s in (v, "*")


@settings(max_examples=200, deadline=None)
@given(counts=small_counts)
def test_property_city_total_only(counts):
    res = run(counts, None, DEFAULT, True)
    assert_protected(res, DEFAULT)


@settings(max_examples=150, deadline=None)
@given(counts=st.lists(st.integers(0, 60), min_size=1, max_size=8), data=st.data())
def test_property_hospital_rule(counts, data):
    groups = [f"W{data.draw(st.integers(0, 2))}" for _ in counts]
    res = run(counts, groups, HOSPITAL, True)
    assert_protected(res, HOSPITAL)
    for v, s in zip(counts, res.frame["count"]):
        if v == 0:
            assert s == 0
        elif v <= 7:
            assert s == "*"
        elif s != "*":
            assert s % 5 == 0 and abs(s - v) <= 2


@settings(max_examples=100, deadline=None)
@given(a=st.lists(st.integers(0, 30), min_size=1, max_size=8), data=st.data())
def test_property_change_never_reveals(a, data):
    b = [data.draw(st.integers(0, 30)) for _ in a]
    out = suppress_change(frame(a), frame(b), total=data.draw(st.booleans()))
    for i in range(len(a)):
        ca, cb, ch = out["count_a"].iloc[i], out["count_b"].iloc[i], out["change"].iloc[i]
        if out["count_a_suppressed"].iloc[i] or out["count_b_suppressed"].iloc[i]:
            assert out["change_suppressed"].iloc[i] and isinstance(ch, str)
        else:
            assert ch == cb - ca
