"""Statistical disclosure control for every viewer-level output (map, tooltips, legend counts, API, downloads).

Two rules ship (``RULES``); a configuration may define others with :func:`rule_from_mapping`:

* ``default`` (ONS / local-authority practice): 0 is shown as 0, counts 1-4 are shown as ``<5``, other
  counts exactly;
* ``hospital`` (NHS Digital HES/ECDS methodology): 0 is shown as 0, counts 1-7 are shown as ``*``, other
  counts are rounded to the nearest 5.

Primary suppression hides the small counts. Secondary (complementary) suppression stops them being worked
out from what is published beside them: group totals (e.g. ward totals of LSOA counts), the grand (city)
total, rates that are a count divided by a published population, and two-period comparisons.

How totals are published (the choice the issue asks us to document): **totals are computed from the
true, unsuppressed counts and then passed through the same rule** (a total of 1-4 is itself suppressed;
under a rounding rule it is rounded). They are therefore the real figures, consistent with the data,
and back-calculation is made impossible by auditing the published table:

    the attacker is assumed to know every published value (as an interval when it is rounded), that a
    primary-suppressed cell lies in 1..max_suppressed, that a secondary-suppressed cell is at least
    ``min_count`` and (because the algorithm is public) no larger than the smallest non-zero published
    cell of its group, and every published total. For each group with a published total the feasible
    range of every cell is computed exactly (one linear equality with interval bounds), and for the
    grand total the same is done one level up over the group totals. A group may never have exactly one
    suppressed cell, and no primary-suppressed cell may have a feasible range of a single value. While
    either happens, the smallest non-zero published cell of that group is suppressed too (secondary);
    when there is none left, the group's total is suppressed instead (and then the grand total).

These rules apply to published count TABLES. What protects exact counts from statistics and differencing is
that every viewer figure is computed from the protected table of :mod:`hotspots.protect` (a z-score computed
from exact counts can be solved back to them: see docs/disclosure.md); which columns are published, and which
are blanked on a suppressed row, is declared per layer kind (``hotspots.layers.LayerKind``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import ConfigError, HotspotsError

RULE_VERSION = "1"

PUBLISHED, PRIMARY, SECONDARY = 0, 1, 2


@dataclass(frozen=True)
class DisclosureRule:
    """A small-number rule. ``min_count`` is the smallest count shown (5: counts 1-4 are suppressed);
    ``max_suppressed`` is ``min_count - 1``; ``round_to`` rounds every shown count (and total) to the
    nearest multiple (0: no rounding); ``label`` replaces a primary-suppressed count,
    ``secondary_label`` a count suppressed only to protect another one."""

    name: str
    min_count: int = 5
    max_suppressed: int = 4
    round_to: int = 0
    label: str = "<5"
    secondary_label: str = "*"
    secondary: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        if self.min_count < 1:
            raise ConfigError(f"disclosure rule {self.name!r}: min_count must be at least 1")
        if self.max_suppressed != self.min_count - 1:
            raise ConfigError(f"disclosure rule {self.name!r}: max_suppressed ({self.max_suppressed}) must be "
                              f"min_count - 1 ({self.min_count - 1})")
        if self.round_to < 0:
            raise ConfigError(f"disclosure rule {self.name!r}: round_to must be 0 (none) or positive")
        if not self.label or not self.secondary_label:
            raise ConfigError(f"disclosure rule {self.name!r}: labels must not be empty")

    @property
    def suppresses_anything(self) -> bool:
        return self.max_suppressed >= 1 or self.round_to > 1

    def round(self, value: int) -> int:
        """Round a shown count to the nearest ``round_to`` (halves cannot occur for odd ``round_to``)."""
        k = self.round_to
        if k <= 1:
            return int(value)
        return int((int(value) + k // 2) // k * k)

    def published_interval(self, shown: int) -> tuple[float, float]:
        """The true values a published (unsuppressed) figure may stand for."""
        k = self.round_to
        if shown == 0:
            return 0.0, 0.0
        if k <= 1:
            return float(shown), float(shown)
        return float(max(shown - k // 2, self.min_count)), float(shown + (k - k // 2) - 1)


RULES: dict[str, DisclosureRule] = {
    "default": DisclosureRule(
        "default", min_count=5, max_suppressed=4, round_to=0, label="<5", secondary_label="*",
        description="0 shown as 0; counts 1-4 shown as '<5'; '*' marks a count suppressed so that a '<5' "
                    "cannot be worked out from a published total (secondary suppression)"),
    "hospital": DisclosureRule(
        "hospital", min_count=8, max_suppressed=7, round_to=5, label="*", secondary_label="*",
        description="NHS Digital HES/ECDS rule: 0 shown as 0; counts 1-7 shown as '*'; other counts and "
                    "totals rounded to the nearest 5; secondary suppression as for the default rule"),
    "none": DisclosureRule(
        "none", min_count=1, max_suppressed=0, round_to=0, label="<1", secondary_label="*", secondary=False,
        description="no disclosure control (analysts only)"),
}


def get_rule(rule: str | DisclosureRule | None) -> DisclosureRule:
    """A rule by name (``default`` when None); unknown names raise ConfigError listing the known ones."""
    if isinstance(rule, DisclosureRule):
        return rule
    name = rule or "default"
    try:
        return RULES[name]
    except KeyError:
        raise ConfigError(f"unknown disclosure rule {name!r} (known: {', '.join(RULES)})",
                          column="disclosure") from None


def rule_from_mapping(spec: Mapping[str, Any]) -> DisclosureRule:
    """A rule from a config table, e.g. ``{rule = "hospital"}`` or ``{name = "ten", min_count = 10}``."""
    spec = dict(spec)
    if set(spec) <= {"rule"}:
        return get_rule(spec.get("rule"))
    base = get_rule(spec.pop("rule", None) or "default")
    known = set(DisclosureRule.__dataclass_fields__)
    unknown = set(spec) - known
    if unknown:
        raise ConfigError(f"[disclosure] has unknown keys: {', '.join(sorted(unknown))}", column="disclosure")
    if "min_count" in spec and "max_suppressed" not in spec:
        spec["max_suppressed"] = int(spec["min_count"]) - 1
    if "min_count" in spec and "label" not in spec:
        spec["label"] = f"<{int(spec['min_count'])}"
    values = {**asdict(base), "name": "custom", "description": "", **spec}
    return DisclosureRule(**values)


def rule_metadata(rule: str | DisclosureRule | None) -> dict[str, Any]:
    """What export metadata records about the rule (GeoJSON ``metadata``, CSV ``.metadata.json``)."""
    r = get_rule(rule)
    return {
        "disclosure_rule": r.name,
        "disclosure_rule_version": RULE_VERSION,
        "disclosure": {
            "rule": r.name, "version": RULE_VERSION, "min_count": r.min_count,
            "suppressed_range": [1, r.max_suppressed] if r.max_suppressed else [],
            "round_to": r.round_to, "label": r.label, "secondary_label": r.secondary_label,
            "secondary_suppression": r.secondary,
            "totals": "true totals passed through the same rule; the published table is audited so that no "
                      "suppressed count can be recovered from published totals",
            "description": r.description,
            "note": "viewer statistics are computed from the protected table; suppressed areas show only their class",
        },
    }


# ------------------------------------------------------------------------------------------ the audit
def _others_sum(a: np.ndarray) -> np.ndarray:
    """For each i, the sum of a[j] for j != i (infinities handled without inf - inf)."""
    inf = np.isinf(a)
    finite_sum = a[~inf].sum()
    n_inf = int(inf.sum())
    out = finite_sum - np.where(inf, 0.0, a)
    others_inf = n_inf - inf.astype(int)
    return np.where(others_inf > 0, np.inf, out)


def feasible_ranges(lo: np.ndarray, hi: np.ndarray, t_lo: float, t_hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact range of each x_i given lo <= x <= hi and t_lo <= sum(x) <= t_hi (integers, one equality)."""
    lo = np.asarray(lo, float)
    hi = np.asarray(hi, float)
    r_lo = np.maximum(lo, t_lo - _others_sum(hi))
    r_hi = np.minimum(hi, t_hi - _others_sum(lo))
    return r_lo, r_hi


@dataclass
class _Table:
    """One count column being protected: cells, optional groups, group totals and the grand total."""

    rule: DisclosureRule
    values: np.ndarray  # int64 true counts
    group_idx: np.ndarray  # int index of each cell's group (0 when there are no groups)
    n_groups: int
    group_totals_published: bool
    total_published: bool
    status: np.ndarray = field(init=False)
    g_values: np.ndarray = field(init=False)
    g_status: np.ndarray = field(init=False)
    g_hint: np.ndarray = field(init=False)  # group total suppressed as "next smallest" (attacker knows a bound)
    g_demoted: np.ndarray = field(init=False)  # a small (primary) group total shown as the secondary label
    t_value: int = field(init=False)
    t_status: int = field(init=False)

    def __post_init__(self) -> None:
        r = self.rule
        self.status = np.where((self.values >= 1) & (self.values <= r.max_suppressed), PRIMARY, PUBLISHED)
        self.g_values = np.bincount(self.group_idx, weights=self.values, minlength=self.n_groups).astype(np.int64)
        self.g_status = np.where((self.g_values >= 1) & (self.g_values <= r.max_suppressed), PRIMARY, PUBLISHED)
        self.g_hint = np.zeros(self.n_groups, dtype=bool)
        self.g_demoted = np.zeros(self.n_groups, dtype=bool)
        self.t_value = int(self.values.sum())
        self.t_status = PRIMARY if 1 <= self.t_value <= r.max_suppressed else PUBLISHED
        if not self.total_published:
            self.t_status = -1

    # bounds an attacker can derive ------------------------------------------------------------
    def _bounds(self, values: np.ndarray, status: np.ndarray,
                hint: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per cell: a published value's interval; 1..max_suppressed for a primary label; for a secondary
        label at least min_count and, where it was chosen as the next smallest (``hint``), at most the
        smallest non-zero published value beside it."""
        r = self.rule
        lo = np.empty(len(values))
        hi = np.empty(len(values))
        pub = status == PUBLISHED
        for i in np.flatnonzero(pub):
            lo[i], hi[i] = r.published_interval(r.round(values[i]))
        prim = status == PRIMARY
        lo[prim], hi[prim] = 1.0, float(r.max_suppressed)
        sec = status == SECONDARY
        pub_nz = pub & (values > 0)
        sec_hi = max(hi[pub_nz].min(), float(r.min_count)) if pub_nz.any() else np.inf
        hinted = sec if hint is None else sec & hint
        lo[sec], hi[sec] = float(r.min_count), np.inf
        hi[hinted] = sec_hi
        return lo, hi

    def _total_interval(self, value: int, status: int) -> tuple[float, float] | None:
        """What an attacker knows of a total: its published interval, or 1..max_suppressed when it shows
        the primary label (a small total still bounds its cells); None when hidden otherwise."""
        if status == PRIMARY:
            return 1.0, float(self.rule.max_suppressed)
        if status != PUBLISHED:
            return None
        return self.rule.published_interval(self.rule.round(value))

    def _group_cell_bounds(self, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx = np.flatnonzero(self.group_idx == g)
        lo, hi = self._bounds(self.values[idx], self.status[idx])
        return idx, lo, hi

    def _group_total_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Attacker's bounds on each group total: its published interval, or its label's range
        intersected with the range its cells allow."""
        lo = np.empty(self.n_groups)
        hi = np.empty(self.n_groups)
        pub_total_lo, pub_total_hi = self._bounds(self.g_values, self.g_status, self.g_hint)
        for g in range(self.n_groups):
            _, clo, chi = self._group_cell_bounds(g)
            c_lo, c_hi = clo.sum(), chi.sum()
            if self.g_status[g] == PUBLISHED:
                lo[g], hi[g] = pub_total_lo[g], pub_total_hi[g]
            elif self.g_demoted[g]:  # a small total shown as "*": only "at least 1" is known
                lo[g], hi[g] = max(1.0, c_lo), c_hi
            else:
                lo[g], hi[g] = max(pub_total_lo[g], c_lo), min(pub_total_hi[g], c_hi)
        return lo, hi

    # suppression steps -------------------------------------------------------------------------
    def _suppress_next_cell(self, idx: np.ndarray) -> bool:
        cand = idx[(self.status[idx] == PUBLISHED) & (self.values[idx] > 0)]
        if not len(cand):
            return False
        # Smallest non-zero published cell; ties by position, so the result is deterministic.
        pick = cand[np.lexsort((cand, self.values[cand]))[0]]
        self.status[pick] = SECONDARY
        return True

    def _suppress_next_group(self) -> bool:
        """Suppress the smallest non-zero published group total whose cells do not already give it away;
        if every candidate's cells are all published, suppress the smallest one and its smallest cell."""
        cand = np.flatnonzero((self.g_status == PUBLISHED) & (self.g_values > 0))
        if not len(cand):
            return False
        opaque = np.array([bool((self.status[self.group_idx == g] != PUBLISHED).any()) for g in cand])
        pool = cand[opaque] if opaque.any() else cand
        pick = pool[np.lexsort((pool, self.g_values[pool]))[0]]
        self.g_status[pick] = SECONDARY
        self.g_hint[pick] = bool(opaque.all())  # "next smallest" only when chosen from all candidates
        if not opaque.any():
            self._suppress_next_cell(np.flatnonzero(self.group_idx == pick))
        return True

    def _group_at_risk(self, idx: np.ndarray, lo: np.ndarray, hi: np.ndarray, t_lo: float, t_hi: float,
                       total_is_published: bool) -> bool:
        st = self.status[idx]
        sup = st != PUBLISHED
        if not sup.any():
            return False
        if total_is_published and sup.sum() == 1:
            return True
        r_lo, r_hi = feasible_ranges(lo, hi, t_lo, t_hi)
        return bool(((st == PRIMARY) & (r_lo >= r_hi)).any())

    def protect(self) -> None:
        if not self.rule.secondary or self.rule.max_suppressed < 1:
            return
        for _ in range(10 * (len(self.values) + self.n_groups + 2)):
            if not self._step():
                return
        raise HotspotsError("secondary suppression did not converge")  # pragma: no cover

    def _step(self) -> bool:
        """One round of the audit; True if something more was suppressed."""
        # The grand total constrains the group totals (or, with no groups, the cells directly).
        city = self._total_interval(self.t_value, self.t_status)
        if not self.group_totals_published:
            # No groups: the grand total is the only total.
            if city is None:
                return False
            idx, lo, hi = self._group_cell_bounds(0)
            if self._group_at_risk(idx, lo, hi, city[0], city[1], self.t_status == PUBLISHED):
                if self._suppress_next_cell(idx):
                    return True
                self.t_status = SECONDARY  # hidden (a small total: shown as the secondary label)
                return True
            return False
        g_lo, g_hi = self._group_total_bounds()
        if city is not None:
            gr_lo, gr_hi = feasible_ranges(g_lo, g_hi, city[0], city[1])
        else:
            gr_lo, gr_hi = g_lo, g_hi
        widen_city = False
        for g in range(self.n_groups):
            idx, lo, hi = self._group_cell_bounds(g)
            published = self.g_status[g] == PUBLISHED
            if published:
                t_lo, t_hi = self._total_interval(self.g_values[g], PUBLISHED)
            else:
                # hidden total: the grand total (if published) and its own label (1..max for a small
                # total shown as the primary label) still bound it
                t_lo, t_hi = (gr_lo[g], gr_hi[g]) if city is not None else (g_lo[g], g_hi[g])
                if city is None and not np.isfinite(t_hi) and not self.g_status[g] == PRIMARY:
                    continue
            if self._group_at_risk(idx, lo, hi, t_lo, t_hi, published):
                if self._suppress_next_cell(idx):
                    return True
                if published:
                    self.g_status[g] = SECONDARY
                    return True
                if self.g_status[g] == PRIMARY and not self.g_demoted[g]:
                    self.g_status[g] = SECONDARY  # its "<5" label pins the cells: show "*" instead
                    self.g_demoted[g] = True
                    return True
                widen_city = True
        if city is None:
            return False
        st = self.g_status
        sup = st != PUBLISHED
        literal = self.t_status == PUBLISHED and sup.sum() == 1  # one hidden group beside a published total
        at_risk = widen_city or literal or bool(((st == PRIMARY) & (gr_lo >= gr_hi)).any())
        if sup.any() and at_risk:
            if self._suppress_next_group():
                return True
            self.t_status = SECONDARY
            return True
        return False

    # display -------------------------------------------------------------------------------------
    def display(self, value: int, status: int) -> Any:
        if status == PRIMARY:
            return self.rule.label
        if status == SECONDARY:
            return self.rule.secondary_label
        return self.rule.round(value)


def _protect_column(values: Sequence, groups: Sequence | None, rule: DisclosureRule, total: bool,
                    group_totals: bool = True) -> tuple[_Table, list]:
    vals = pd.to_numeric(pd.Series(values), errors="coerce")
    if vals.isna().any() or (vals < 0).any() or (vals != np.floor(vals)).any():
        raise HotspotsError("disclosure control needs non-negative whole counts")
    v = vals.to_numpy(dtype=np.int64)
    if groups is None:
        gidx, labels, n = np.zeros(len(v), dtype=np.int64), [None], 1
        group_totals = False
    else:
        codes, uniques = pd.factorize(pd.Series(groups).astype(object).where(pd.notna(groups), "(none)"),
                                      sort=True)
        gidx, labels, n = codes.astype(np.int64), list(uniques), max(len(uniques), 1)
    t = _Table(rule, v, gidx, n, group_totals, total)
    t.protect()
    return t, labels


# ------------------------------------------------------------------------------------- public API
@dataclass
class Suppressed:
    """A protected table: the cells, the group totals and the grand total as they may be published."""

    frame: pd.DataFrame
    group_totals: pd.DataFrame | None
    totals: dict[str, Any]
    rule: DisclosureRule


def suppress_table(frame: pd.DataFrame, count_cols: str | Sequence[str], rule: str | DisclosureRule | None = None,
                   group_col: str | None = None, total: bool = True,
                   derived: Mapping[str, str] | None = None) -> Suppressed:
    """Protect ``count_cols`` of ``frame`` (see :func:`suppress`) and return the publishable group totals
    (one row per group: group, each count column and ``<col>_suppressed``) and grand totals too."""
    rule = get_rule(rule)
    cols = [count_cols] if isinstance(count_cols, str) else list(count_cols)
    for c in cols:
        if c not in frame.columns:
            raise HotspotsError(f"no column {c!r} to protect", column=c)
    if group_col is not None and group_col not in frame.columns:
        raise HotspotsError(f"no group column {group_col!r}", column=group_col)
    out = frame.copy()
    any_sup = np.zeros(len(frame), dtype=bool)
    groups_out: dict[str, Any] = {}
    totals: dict[str, Any] = {}
    if derived is None:
        derived = {"rate_per_1000": "count"} if "rate_per_1000" in frame.columns and "count" in cols else {}
    for c in cols:
        t, labels = _protect_column(frame[c].to_numpy(), None if group_col is None else frame[group_col].to_numpy(),
                                    rule, total)
        shown = [t.display(v, s) for v, s in zip(t.values, t.status)]
        sup = t.status != PUBLISHED
        out[c] = pd.Series(shown, index=frame.index, dtype=object)
        out[f"{c}_suppressed"] = sup
        any_sup |= sup
        for dcol, src in derived.items():
            if src != c or dcol not in out.columns:
                continue
            d = pd.to_numeric(frame[dcol], errors="coerce").to_numpy(dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                shown_num = np.array([t.rule.round(v) for v in t.values], dtype=float)
                scale = np.where(t.values > 0, shown_num / np.maximum(t.values, 1), 1.0)
            vals = np.where(sup, np.nan, d * scale)
            out[dcol] = pd.Series([None if np.isnan(x) else float(x) for x in vals], index=frame.index,
                                  dtype=object)
        if group_col is not None:
            groups_out[c] = [t.display(v, s) for v, s in zip(t.g_values, t.g_status)]
            groups_out[f"{c}_suppressed"] = [bool(s != PUBLISHED) for s in t.g_status]
        totals[c] = None if t.t_status < 0 else t.display(t.t_value, t.t_status)
        totals[f"{c}_suppressed"] = bool(t.t_status > PUBLISHED)
    if len(cols) == 1:
        out = out.rename(columns={f"{cols[0]}_suppressed": "suppressed"})
    else:
        out["suppressed"] = any_sup
    gt = None
    if group_col is not None:
        gt = pd.DataFrame({group_col: labels, **groups_out})
        if len(cols) == 1:
            gt = gt.rename(columns={f"{cols[0]}_suppressed": "suppressed"})
    if len(cols) == 1:
        totals["suppressed"] = totals.pop(f"{cols[0]}_suppressed")
    out.attrs = dict(frame.attrs)
    out.attrs["disclosure"] = {**rule_metadata(rule)["disclosure"], "totals": totals,
                               "group_col": group_col,
                               "group_totals": None if gt is None else gt.to_dict(orient="records")}
    return Suppressed(out, gt, totals, rule)


def suppress(frame: pd.DataFrame, count_cols: str | Sequence[str], rule: str | DisclosureRule | None = None,
             group_col: str | None = None, total: bool = True,
             derived: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The viewer-level version of ``frame``: each count column holds display values (int, or the
    rule's label as a string) and a boolean column says which are suppressed (``suppressed`` for one
    count column; ``<col>_suppressed`` per column plus ``suppressed`` = any, for several).

    ``group_col`` names the grouping whose totals are published beside the cells (e.g. ``ward_code``
    when ward totals are shown with LSOA counts); ``total`` says the grand total is published. Derived
    columns (``derived``: column -> count column; by default ``rate_per_1000`` from ``count``) are blanked
    (None) where the count is suppressed and recomputed from the rounded count under a rounding rule, so
    a rate times the published population does not give the count back.

    The publishable totals are in ``result.attrs["disclosure"]["totals"]`` and ``["group_totals"]``
    (or use :func:`suppress_table`)."""
    return suppress_table(frame, count_cols, rule, group_col, total, derived).frame


def suppress_value(value: int, rule: str | DisclosureRule | None = None) -> Any:
    """Primary rule for one stand-alone figure (a legend count, a single total)."""
    r = get_rule(rule)
    value = int(value)
    if 1 <= value <= r.max_suppressed:
        return r.label
    return r.round(value)


def suppress_change(frame_a: pd.DataFrame, frame_b: pd.DataFrame, rule: str | DisclosureRule | None = None, *,
                    key: str = "code", count_col: str = "count", group_col: str | None = None,
                    total: bool = True, nested: bool = False) -> pd.DataFrame:
    """Two periods side by side: ``count_a``, ``count_b`` and ``change`` (b - a) per ``key``.

    Each period is protected as its own map is (same ``group_col``/``total``), so the comparison shows
    exactly what the two maps show. The change is suppressed whenever either count is, so a published
    change plus one published count never gives back the other. With ``nested=True`` (period b contains
    period a, e.g. year to date), the change is itself a count of the extra months: it gets the primary
    rule too, and when it is suppressed the later count is suppressed as well (and vice versa), so that
    b - a cannot be formed from published figures."""
    r = get_rule(rule)
    keep = [key] + ([group_col] if group_col else [])
    a = frame_a[keep + [count_col]].rename(columns={count_col: "count_a"})
    b = frame_b[[key, count_col]].rename(columns={count_col: "count_b"})
    m = a.merge(b, on=key, how="outer", sort=False)
    if group_col and m[group_col].isna().any():
        extra = frame_b[[key, group_col]].drop_duplicates(key).set_index(key)[group_col]
        m[group_col] = m[group_col].fillna(m[key].map(extra))
    m[["count_a", "count_b"]] = m[["count_a", "count_b"]].fillna(0).astype("int64")
    pa_ = suppress_table(m, "count_a", r, group_col, total)
    pb_ = suppress_table(m, "count_b", r, group_col, total)
    sup_a = pa_.frame["suppressed"].to_numpy().copy()
    sup_b = pb_.frame["suppressed"].to_numpy().copy()
    shown_a = pa_.frame["count_a"].to_numpy(dtype=object).copy()
    shown_b = pb_.frame["count_b"].to_numpy(dtype=object).copy()
    diff = (m["count_b"] - m["count_a"]).to_numpy()
    sup_c = sup_a | sup_b
    if nested:
        if (diff < 0).any():
            raise HotspotsError("nested periods: the later period has fewer incidents than the earlier one")
        small = (diff >= 1) & (diff <= r.max_suppressed)
        # b = a + d: a small d with a and b both published would be disclosed, so hide b; and a hidden
        # count on one side with the other published and d published would give it back, so hide d.
        newly = small & ~sup_b
        shown_b[newly] = r.secondary_label
        sup_b = sup_b | small
        sup_c = sup_a | sup_b | small
    out = pd.DataFrame({key: m[key].to_numpy()})
    if group_col:
        out[group_col] = m[group_col].to_numpy()
    out["count_a"] = shown_a
    out["count_b"] = shown_b
    change_shown = np.array([r.round(b_) - r.round(a_) if r.round_to > 1 else int(d)
                             for a_, b_, d in zip(m["count_a"], m["count_b"], diff)], dtype=object)
    change_shown[sup_c] = r.secondary_label
    out["change"] = change_shown
    out["count_a_suppressed"] = sup_a
    out["count_b_suppressed"] = sup_b
    out["change_suppressed"] = sup_c
    out["suppressed"] = sup_a | sup_b | sup_c
    out.attrs["disclosure"] = {**rule_metadata(r)["disclosure"], "nested": nested,
                               "totals": {"count_a": pa_.totals, "count_b": pb_.totals}}
    return out


# ------------------------------------------------------------------------------------ configuration
def _strictness(r: DisclosureRule) -> tuple[int, int]:
    return (r.max_suppressed, r.round_to)


def config_rule(config: Any) -> DisclosureRule:
    """The ``[disclosure]`` rule of a configuration (``default`` when the table is absent)."""
    spec = getattr(config, "disclosure", None) or {"rule": "default"}
    if isinstance(spec, (str, DisclosureRule)):
        return get_rule(spec)
    return rule_from_mapping(spec)


def effective_rule(config: Any, kinds: Iterable[str] = ("incidents",)) -> DisclosureRule:
    """The rule for a layer built from datasets of ``kinds``: the strictest of the ``[disclosure]`` rule
    and every such dataset's own ``disclosure`` rule (incidents of all datasets share one store, so a
    crime layer must satisfy the strictest rule among them)."""
    best = config_rule(config)
    for ds in (getattr(config, "datasets", None) or {}).values():
        if ds.kind in kinds and getattr(ds, "disclosure", ""):
            r = get_rule(ds.disclosure)
            if _strictness(r) > _strictness(best):
                best = r
    return best
