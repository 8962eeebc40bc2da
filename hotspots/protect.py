"""The protected table: what every viewer-visible figure is computed from (issue 14).

Why: a statistic computed from exact counts gives the counts back. Gi* z-scores are linear in the counts, so
a least-squares solve over a few weight specifications recovered every suppressed Wolverhampton count; and
differencing overlapping queries (categories, periods, wards minus their LSOAs) recovers the rest. So for
viewers nothing is computed from exact counts: it is computed from this table, and the most any attack on
viewer outputs can recover is this table.

The table has one cell per (area, month, category) of each base geography, like a Census table. Each
non-zero cell gets a published value from a keyed hash of the cell's identity (ONS's cell-key method, with
the cell key taken from the cell's identity rather than from record keys: our cells are fixed, so the same
cell always gets the same value, and repeating or differencing queries gives back the same noise, not the
count):

* a cell with 0 incidents stays 0 (both small-number rules publish zeros);
* a cell with 1..``max_suppressed`` incidents (1-4 under the default rule, 1-7 under the hospital rule) gets
  a value drawn from a fixed distribution on the same range, **independent of its true count**: the most an
  attacker can learn about such a cell, by any algebra over any number of requests, is that it is small;
* a larger cell gets its count plus a small noise from a fixed table (never falling into the small range),
  so that sums over different geographies (a grid against the LSOAs) cannot be differenced into a small cell.

Every published figure for a wider cell (several months, several categories, a ward) is a **sum of these
cells**, never a separately counted total, so differencing two published figures only ever yields
combinations of protected cells. A viewer ward is the sum of its best-fit LSOAs' protected cells.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .config import Config
from .disclosure import DisclosureRule

#: environment variable holding the perturbation key (else derived from the instance's secret key)
KEY_ENV = "HOTSPOTS_DISCLOSURE_KEY"
#: the small range's published value: P(j) proportional to RATIO**(j-1) on 1..max_suppressed (a truncated
#: geometric distribution close to that of small monthly crime counts per area and category)
SMALL_RATIO = 0.5
#: noise added to larger cells, per rule: (values, probabilities). The hospital rule, which rounds to 5, gets
#: a uniform noise of the same width as its rounding.
NOISE = {"default": ((-2, -1, 0, 1, 2), (0.05, 0.20, 0.50, 0.20, 0.05)),
         "hospital": ((-2, -1, 0, 1, 2), (0.20, 0.20, 0.20, 0.20, 0.20))}
METHOD_VERSION = "cellkey-1"
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_U53 = 1.0 / 9007199254740992.0


def perturbation_key(config: Config, env: dict[str, str] | None = None) -> bytes:
    """The secret that makes the noise unpredictable: ``HOTSPOTS_DISCLOSURE_KEY``, else an HMAC of the
    instance's secret key (so it is as private as the session key and survives restarts)."""
    env = os.environ if env is None else env
    value = env.get(KEY_ENV)
    if not value:
        from .users import secret_key
        value = secret_key(config, env)
    return hmac.new(value.encode("utf-8"), b"hotspots-disclosure-cellkey-v1", hashlib.sha256).digest()


def _hash64(key: bytes, kind: str, values: Sequence[str]) -> np.ndarray:
    out = np.empty(len(values), dtype=np.uint64)
    for i, v in enumerate(values):
        d = hashlib.blake2b(f"{kind}|{v}".encode("utf-8"), digest_size=8, key=key[:64]).digest()
        out[i] = np.frombuffer(d, dtype="<u8")[0]
    return out


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, vectorised (uint64 arithmetic wraps as intended)."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _uniform(h: np.ndarray) -> np.ndarray:
    return (h >> np.uint64(11)).astype(np.float64) * _U53


def small_distribution(rule: DisclosureRule) -> np.ndarray:
    """P(value = j) for j = 1..max_suppressed."""
    m = rule.max_suppressed
    p = SMALL_RATIO ** np.arange(m, dtype=float)
    return p / p.sum()


def noise_table(rule: DisclosureRule) -> tuple[np.ndarray, np.ndarray]:
    values, probs = NOISE.get(rule.name, NOISE["hospital"] if rule.round_to > 1 else NOISE["default"])
    return np.asarray(values, dtype=np.int64), np.asarray(probs, dtype=float)


def protect_values(exact: np.ndarray, cell_hash: np.ndarray, rule: DisclosureRule) -> np.ndarray:
    """Published values of cells with ``exact`` counts and identity hashes ``cell_hash`` (see module doc)."""
    exact = np.asarray(exact, dtype=np.int64)
    m = rule.max_suppressed
    if m < 1 and rule.round_to <= 1:  # the "none" rule: nothing to protect
        return exact.copy()
    u_small = _uniform(_mix(cell_hash ^ np.uint64(1)))
    u_noise = _uniform(_mix(cell_hash ^ np.uint64(2)))
    out = exact.copy()
    if m >= 1:
        cdf = np.cumsum(small_distribution(rule))
        small = (exact >= 1) & (exact <= m)
        out[small] = 1 + np.minimum(np.searchsorted(cdf, u_small[small], side="right"), m - 1)
    values, probs = noise_table(rule)
    big = exact > m
    d = values[np.minimum(np.searchsorted(np.cumsum(probs), u_noise[big], side="right"), len(values) - 1)]
    out[big] = np.maximum(exact[big] + d, m + 1)
    return out


@dataclass(frozen=True)
class BaseTable:
    """The cells of one base geography: non-zero (area, month, category) counts, exact and protected.

    ``codes`` lists the areas (index = ``area_idx``); zero cells are not stored. ``protected`` is None for
    an exact-only table (analysts)."""

    role: str
    codes: tuple[str, ...]
    months: tuple[str, ...]
    categories: tuple[str, ...]
    area_idx: np.ndarray
    month_idx: np.ndarray
    cat_idx: np.ndarray
    exact: np.ndarray
    protected: np.ndarray | None = None
    rule: DisclosureRule | None = None
    _code_pos: dict = field(default_factory=dict, repr=False, compare=False)

    def select(self, categories: Sequence[str], month_from: str | None, month_to: str | None) -> np.ndarray:
        """Mask of the cells in the categories (all when empty) and the period."""
        mask = np.ones(len(self.exact), dtype=bool)
        wanted = set(categories)
        # no category: every police category (a partner source, ``src:NAME[/cat]``, only when named; naming
        # ``src:NAME`` selects all its categories)
        keep = np.array([(c in wanted or c.split("/", 1)[0] in wanted) if wanted else not c.startswith("src:")
                         for c in self.categories], dtype=bool)
        mask &= keep[self.cat_idx] if len(keep) else False
        if month_from or month_to:
            lo, hi = month_from or "0000-00", month_to or "9999-99"
            ok = np.array([lo <= m <= hi for m in self.months], dtype=bool)
            mask &= ok[self.month_idx] if len(ok) else False
        return mask

    def values(self, protected: bool) -> np.ndarray:
        if protected:
            if self.protected is None:
                raise ValueError("this base table has no protected values")
            return self.protected
        return self.exact

    def totals(self, codes: Sequence[str], categories: Sequence[str], month_from: str | None, month_to: str | None,
               *, protected: bool) -> np.ndarray:
        """Sum of the cells per area, in the order of ``codes`` (areas with no cell: 0)."""
        mask = self.select(categories, month_from, month_to)
        sums = np.bincount(self.area_idx[mask], weights=self.values(protected)[mask], minlength=len(self.codes))
        return self._reorder(sums, codes)

    def by_month(self, codes: Sequence[str], categories: Sequence[str], months: Sequence[str], *,
                 protected: bool) -> np.ndarray:
        """An (areas × months) matrix of cell sums, zero-filled (the space-time cube's rows)."""
        pos = {m: i for i, m in enumerate(months)}
        col = np.array([pos.get(m, -1) for m in self.months], dtype=np.int64)
        mask = self.select(categories, None, None)
        if len(col):
            mask &= col[self.month_idx] >= 0
        else:
            mask &= False
        n_a = len(self.codes)
        flat = self.area_idx[mask] * len(months) + col[self.month_idx[mask]]
        sums = np.bincount(flat, weights=self.values(protected)[mask], minlength=n_a * len(months))
        out = sums.reshape(n_a, len(months))
        idx = self._positions(codes)
        res = np.zeros((len(codes), len(months)))
        ok = idx >= 0
        res[ok] = out[idx[ok]]
        return res.round().astype(np.int64)

    def _positions(self, codes: Sequence[str]) -> np.ndarray:
        if not self._code_pos:
            self._code_pos.update({c: i for i, c in enumerate(self.codes)})
        return np.array([self._code_pos.get(c, -1) for c in codes], dtype=np.int64)

    def _reorder(self, sums: np.ndarray, codes: Sequence[str]) -> np.ndarray:
        idx = self._positions(codes)
        out = np.zeros(len(codes), dtype=np.int64)
        ok = idx >= 0
        out[ok] = np.rint(sums[idx[ok]]).astype(np.int64)
        return out


def build_base(cells: pd.DataFrame, role: str, rule: DisclosureRule | None, key: bytes | None,
               subset: str = "", category_rules: Mapping[str, DisclosureRule] | None = None) -> BaseTable:
    """A base table from ``cells`` (columns code, month, category, n: non-zero counts); protected when a
    rule and key are given. ``subset`` names a filter the cells were counted under (``--where``): it is
    part of every cell's identity, so a filtered cell gets its own noise and differencing two filters (or
    a filter and the whole) gives back noise, never the exact count of the rest. The cells of a category in
    ``category_rules`` (a partner source) are protected under that source's own rule."""
    cells = cells[cells["n"] > 0]
    codes, area_idx = np.unique(cells["code"].to_numpy(dtype=object).astype(str), return_inverse=True)
    months, month_idx = np.unique(cells["month"].to_numpy(dtype=object).astype(str), return_inverse=True)
    cats, cat_idx = np.unique(cells["category"].to_numpy(dtype=object).astype(str), return_inverse=True)
    return build_base_indexed(list(codes), list(months), list(cats), area_idx, month_idx, cat_idx,
                              cells["n"].to_numpy(dtype=np.int64), role, rule, key, subset, category_rules)


def build_base_indexed(codes: Sequence[str], months: Sequence[str], cats: Sequence[str], area_idx: np.ndarray,
                       month_idx: np.ndarray, cat_idx: np.ndarray, exact: np.ndarray, role: str,
                       rule: DisclosureRule | None, key: bytes | None, subset: str = "",
                       category_rules: Mapping[str, DisclosureRule] | None = None) -> BaseTable:
    """:func:`build_base` from cells already indexed: ``codes``, ``months`` and ``cats`` sorted and unique, one
    cell per (area, month, category) with ``exact`` > 0 (what counting by numpy gives without making a string
    per incident). The protected values are those :func:`build_base` gives for the same cells."""
    exact = np.asarray(exact, dtype=np.int64)
    protected = None
    if rule is not None and key is not None:
        ident = f"role|{role}" + (f"|where|{subset}" if subset else "")  # unfiltered cells: unchanged keys
        role_key = hashlib.blake2b(ident.encode(), digest_size=32, key=key[:64]).digest()
        h = _mix(_hash64(role_key, "area", list(codes))[area_idx])
        h = _mix(h ^ _hash64(role_key, "month", list(months))[month_idx])
        h = _mix(h ^ _hash64(role_key, "category", list(cats))[cat_idx])
        protected = protect_values(exact, h, rule)
        for cat_rule in {r.name: r for r in (category_rules or {}).values()}.values():
            own = np.array([(category_rules or {}).get(c) is not None and category_rules[c].name == cat_rule.name
                            for c in cats], dtype=bool)[cat_idx]
            if own.any():
                protected[own] = protect_values(exact[own], h[own], cat_rule)
    return BaseTable(role=role, codes=tuple(map(str, codes)), months=tuple(map(str, months)),
                     categories=tuple(map(str, cats)),
                     area_idx=np.asarray(area_idx, dtype=np.int64), month_idx=np.asarray(month_idx, dtype=np.int64),
                     cat_idx=np.asarray(cat_idx, dtype=np.int64), exact=exact, protected=protected, rule=rule)


#: above this many possible (area, month, category) cells, counting sorts instead of keeping a counter per cell
BINCOUNT_MAX_CELLS = 20_000_000


def count_indexed(codes: Sequence[str], months: Sequence[str], cats: Sequence[str], area_idx: np.ndarray,
                  month_idx: np.ndarray, cat_idx: np.ndarray) -> tuple:
    """Incidents given as indices (−1 area: not in any) counted into cells: (codes, months, categories,
    area_idx, month_idx, cat_idx, n) with only the used labels, sorted, ready for :func:`build_base_indexed`."""
    a, m, c = (np.asarray(v, dtype=np.int64) for v in (area_idx, month_idx, cat_idx))
    keep = (a >= 0) & (m >= 0) & (c >= 0)
    a, m, c = a[keep], m[keep], c[keep]
    out = []
    for labels, idx in ((codes, a), (months, m), (cats, c)):  # the used labels in sorted order, and the remap
        used = np.flatnonzero(np.bincount(idx, minlength=len(labels)))
        names = np.asarray([labels[i] for i in used.tolist()], dtype=object).astype(str)
        order = np.argsort(names, kind="stable")
        remap = np.empty(len(labels), dtype=np.int64)
        remap[used[order]] = np.arange(len(used))
        out.append((names[order].tolist(), remap[idx]))
    (cl, ai), (ml, mi), (kl, ki) = out
    nm, nk = max(len(ml), 1), max(len(kl), 1)
    flat = (ai * nm + mi) * nk + ki
    space = max(len(cl), 1) * nm * nk
    if space <= BINCOUNT_MAX_CELLS:  # a count per possible cell: one pass, no sort
        counts = np.bincount(flat, minlength=space)
        cell = np.flatnonzero(counts)
        n = counts[cell]
    else:
        cell, n = np.unique(flat, return_counts=True)
    return cl, ml, kl, cell // (nm * nk), (cell // nk) % nm, cell % nk, n


def sum_tables(tables: Sequence[BaseTable], role: str) -> BaseTable:
    """The cell-by-cell sum of base tables of one geography (disjoint subsets of the incidents): exact and
    protected values both summed, so every figure of the sum is a sum of protected cells."""
    parts = [pd.DataFrame({"code": np.asarray(t.codes, dtype=object)[t.area_idx],
                           "month": np.asarray(t.months, dtype=object)[t.month_idx],
                           "category": np.asarray(t.categories, dtype=object)[t.cat_idx],
                           "exact": t.exact, "protected": t.protected}) for t in tables if len(t.exact)]
    if not parts:
        return build_base(pd.DataFrame({"code": [], "month": [], "category": [], "n": []}), role,
                          tables[0].rule if tables else None, None)
    cells = pd.concat(parts).groupby(["code", "month", "category"], as_index=False)[["exact", "protected"]].sum()
    codes, area_idx = np.unique(cells["code"].to_numpy(dtype=object).astype(str), return_inverse=True)
    months, month_idx = np.unique(cells["month"].to_numpy(dtype=object).astype(str), return_inverse=True)
    cats, cat_idx = np.unique(cells["category"].to_numpy(dtype=object).astype(str), return_inverse=True)
    return BaseTable(role=role, codes=tuple(map(str, codes)), months=tuple(map(str, months)),
                     categories=tuple(map(str, cats)), area_idx=area_idx.astype(np.int64),
                     month_idx=month_idx.astype(np.int64), cat_idx=cat_idx.astype(np.int64),
                     exact=cells["exact"].to_numpy(dtype=np.int64), protected=cells["protected"].to_numpy(dtype=np.int64),
                     rule=tables[0].rule)


def method_metadata(rule: DisclosureRule) -> dict:
    """What exports record about the protection (beside the small-number rule)."""
    values, probs = noise_table(rule)
    return {"method": "cell-key perturbation of (area, month, category) cells; every published figure and "
                      "statistic is computed from the perturbed cells",
            "version": METHOD_VERSION,
            "small_cells": f"1-{rule.max_suppressed} replaced by a draw independent of the true count"
            if rule.max_suppressed else "none",
            "noise": {int(v): float(p) for v, p in zip(values, probs)},
            "reference": "docs/disclosure.md"}
