"""Hour of day × day of week (issue 12): when in the week incidents happen, for the whole area, a ward, an
LSOA or a set of areas (a hot spot), under the request's categories, period and filter.

Why its own table: the protected table's cells are area × month × category and know no time of day, so a
viewer's grid is protected here the same way (cell-key perturbation, each of the 168 cells keyed by its
identity *and* the question's scope, so two overlapping questions do not difference into exact counts), and
then the small-number display rule is applied cell by cell (a small count in one hour of one weekday in one
area can identify an incident). Viewers ask about the whole area, one ward or one LSOA (finite questions);
sets of areas (a hot spot) are for analysts. Analysts get exact counts.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import pandas as pd

from . import store
from .aggregate import level_role
from .cache import cached
from .config import Config
from .disclosure import effective_rule, suppress_value
from .errors import ForbiddenError, HotspotsError, NotFoundError
from .filters import atoms, compound, key_text, terms
from .request import Audience, LayerRequest

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
HOURS = tuple(range(24))
#: at most this many areas in one question (a hot spot of many LSOAs is fine; the whole area needs none)
MAX_CODES = 500


@dataclass
class HoursTable:
    """The 7 × 24 table (rows Monday..Sunday, columns hours 0..23) and what it was computed from."""

    counts: np.ndarray  # exact (analysts) or protected (viewers) counts, int
    shown: list  # what may be published: ``counts`` as lists, or with the display rule applied per cell
    without_time: int | str  # matching incidents without a time of day (shown under the same rule)
    total: int | str
    scope: str
    computed_from: str
    rule: str | None = None
    notes: list = field(default_factory=list)
    #: viewers: the protected count of matching incidents without a time (before the display rule)
    untimed_protected: int = 0

    @property
    def has_times(self) -> bool:
        return bool(self.counts.sum() > 0)

    def frame(self) -> pd.DataFrame:
        """The published table, one row per weekday, hours as columns ``h00``..``h23``, and its total."""
        out = pd.DataFrame(self.shown, columns=[f"h{h:02d}" for h in HOURS])
        out.insert(0, "weekday", list(WEEKDAYS))
        out["total"] = [self._row_total(i) for i in range(7)]
        return out

    def _row_total(self, i: int):
        value = int(self.counts[i].sum())
        return value if self.rule is None else suppress_value(value, self.rule)

    def to_dict(self) -> dict:
        return {"weekdays": list(WEEKDAYS), "hours": list(HOURS), "counts": self.shown, "total": self.total,
                "without_time": self.without_time, "scope": self.scope, "computed_from": self.computed_from,
                "rule": self.rule, "has_times": self.has_times, "notes": self.notes}


def hour_weekday(config: Config, req: LayerRequest, audience: Audience, geography: str | None = None,
                 codes: Sequence[str] = ()) -> HoursTable:
    """The table for ``req``'s categories, period and filter, over the whole area (``geography`` None) or
    the areas ``codes`` of ``geography`` (lsoa or ward). Cached per data version."""
    role, codes = _scope(config, geography, codes)
    if audience is Audience.VIEWER and len(codes) > 1:
        # arbitrary sets would let differences of many overlapping questions average the noise away
        raise ForbiddenError("a table for a set of areas is for analysts; viewers may ask for the whole area, one "
                             "ward or one LSOA", column="codes")
    key = ("hours", role, codes, req.categories, req.month_from, req.month_to, req.where, audience.value)
    return cached(config, key, lambda: _build(config, req, audience, role, codes))


def _scope(config: Config, geography: str | None, codes: Sequence[str]) -> tuple[str | None, tuple[str, ...]]:
    if geography is None:
        if codes:
            raise HotspotsError("give a geography (lsoa or ward) with the area codes", column="geography")
        return None, ()
    if geography not in ("lsoa", "ward"):
        raise NotFoundError(f"unknown geography {geography[:20]!r} (use lsoa or ward)", column="geography")
    codes = tuple(sorted(set(str(c).strip() for c in codes if str(c).strip())))
    if not codes:
        raise HotspotsError(f"give the {geography} code(s) of the area", column="code")
    if len(codes) > MAX_CODES:
        raise HotspotsError(f"at most {MAX_CODES} areas in one table, got {len(codes)}", column="code")
    role = level_role(geography)
    from .bundle import load_boundary
    known = set(load_boundary(config, role)["code"])
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise NotFoundError(f"unknown {geography} code {', '.join(c[:16] for c in unknown[:5])}", column="code")
    return role, codes


def _build(config: Config, req: LayerRequest, audience: Audience, role: str | None,
           codes: tuple[str, ...]) -> HoursTable:
    cells, untimed = store.hour_weekday(config.db_path, role, list(codes), list(req.categories), req.month_from,
                                        req.month_to, terms(config, req.where))
    exact = np.zeros((7, 24), dtype=np.int64)
    for day, hour, n in cells:
        exact[int(day), int(hour)] = int(n)
    scope = "the whole area" if role is None else f"{len(codes)} {'LSOA' if role == 'lsoa21' else 'ward'}" \
        f"{'s' if len(codes) > 1 else ''}: {', '.join(codes[:10])}{'…' if len(codes) > 10 else ''}"
    notes = []
    if not exact.sum():
        notes.append("no times in this data: the incidents that match have no time of day (police.uk data has "
                     "months only; force extracts with a time column have them)")
    if audience is Audience.ANALYST:
        return HoursTable(exact, exact.tolist(), int(untimed), int(exact.sum()), scope, "exact counts", None, notes)
    rule = effective_rule(config)
    if compound(req.where):  # a sum of the single-value parts' protected tables, as for the maps
        parts = [hour_weekday(config, replace(req, where=part), audience, _geography(role), codes)
                 for part in atoms(req.where)]
        protected = np.sum([p.counts for p in parts], axis=0).astype(np.int64)
        untimed_p = int(sum(p.untimed_protected for p in parts))
    else:
        ident = "|".join([role or "area", ",".join(codes), ",".join(req.categories), req.month_from or "",
                          req.month_to or "", key_text(req.where)])
        protected = _protect(config, exact.ravel(), ident, rule).reshape(7, 24)
        untimed_p = int(_protect(config, np.array([untimed]), ident + "|untimed", rule)[0])
    shown = [[suppress_value(int(v), rule) for v in row] for row in protected]
    notes.append(f"protected counts (cell-key perturbation per weekday-hour cell) with the {rule.name} display rule "
                 "applied to each cell: a small count in one hour of one day can identify an incident")
    table = HoursTable(protected, shown, suppress_value(untimed_p, rule), suppress_value(int(protected.sum()), rule),
                       scope, "protected table", rule.name, notes)
    table.untimed_protected = untimed_p
    return table


def _geography(role: str | None) -> str | None:
    return None if role is None else {"lsoa21": "lsoa", "ward": "ward"}[role]


def _protect(config: Config, exact: np.ndarray, ident: str, rule) -> np.ndarray:
    """Published values of the cells (see hotspots.protect): each cell's key hashes the question's scope and
    the cell's position, so the same question always gets the same values."""
    from .protect import perturbation_key, protect_values
    key = perturbation_key(config)[:64]
    h = np.array([int.from_bytes(hashlib.blake2b(f"hours|{ident}|{i}".encode(), digest_size=8, key=key).digest(),
                                 "little") for i in range(len(exact))], dtype=np.uint64)
    return protect_values(exact, h, rule)
