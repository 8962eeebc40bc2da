"""Partner sources: counts per area and month from other agencies (A&E assaults, admissions, youth-offending
cohorts, missing episodes), stored beside the police incidents and analysed like them (issue 12).

Why counts and not incidents: hospitals, councils and schools share aggregates per LSOA or ward and month,
never records. A source is stored as cells (area, month, category, n) and enters the base table of
:mod:`hotspots.aggregate` as categories named ``src:NAME`` (or ``src:NAME/<category>`` when the file has a
category column; ``src:NAME`` selects them all), so counts, rates, Gi*, LISA, emerging, change and every
other layer kind run on a source unchanged, and viewers get its cells protected under the source's own
disclosure rule (``hospital``: 1-7 suppressed, others rounded to 5).

A file given on LSOA 2011 is converted to LSOA 2021 by best fit (each 2011 LSOA's counts go to the 2021
LSOA holding the largest share of it: the bundle's LSOA11→LSOA21 lookup, else the boundaries' overlap),
which the source records and the comparison note repeats.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .config import Config
from .disclosure import DisclosureRule, _strictness, get_rule
from .errors import AnalysisError, HotspotsError, IngestError, NotFoundError
from .request import check_month

#: the category prefix that marks a source's cells in the base table
PREFIX = "src:"
#: the police incidents, as a source name for the comparison
POLICE = "police"
#: geography a file is given on -> the base-table role its counts are stored on
STORED_ON = {"lsoa21": "lsoa21", "lsoa11": "lsoa21", "ward": "ward"}
#: request geography of each stored role
LEVEL_OF = {"lsoa21": "lsoa", "ward": "ward"}
DISCLOSURE_RULES = ("default", "hospital")
#: where a source places a count (police data: where the incident happened)
PLACES = {"incident": "where the incident happened", "residence": "where the person lives",
          "unknown": "an unstated place (incident or residence)"}
NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
WHOLE = re.compile(r"^[+-]?\d+$")
DATE = re.compile(r"^(\d{4}-\d{2})(-\d{2})?([T ][0-9:.]+Z?)?$")
#: code columns recognised when --code is not given, per geography
CODE_COLUMNS = {"lsoa21": ("lsoa21cd", "lsoa_code", "lsoa", "code", "area_code"),
                "lsoa11": ("lsoa11cd", "lsoa_code", "lsoa", "code", "area_code"),
                "ward": ("wd23cd", "wd24cd", "wd25cd", "ward_code", "ward", "code", "area_code")}
GEOGRAPHY_WORDS = {"lsoa21": "LSOA 2021", "lsoa11": "LSOA 2011", "ward": "ward (current)"}


@dataclass
class SourceReport:
    """What ``add_source`` read, kept and refused: read = accepted + duplicates + rejected."""

    name: str
    path: str
    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    months: tuple[str, ...] = ()
    areas: int = 0
    total: int = 0
    conversion: str | None = None
    rejects: list[dict] = field(default_factory=list)

    @property
    def adds_up(self) -> bool:
        return self.read == self.accepted + self.duplicates + self.rejected


def slug(name: str, category: str | None = None) -> str:
    """The base-table category of a source (``src:hospital``) or of one of its categories."""
    from .categories import slugify
    return f"{PREFIX}{name}" + (f"/{slugify(category)}" if category else "")


def is_source(category: str) -> bool:
    return category.startswith(PREFIX)


def source_name(category: str) -> str:
    return category[len(PREFIX):].split("/", 1)[0]


def check_name(name: str) -> str:
    if not NAME.match(name or "") or name == POLICE:
        raise HotspotsError(f"source name {name[:40]!r} must be lower-case letters, digits and '-', starting with a "
                            f"letter (at most 40), and not {POLICE!r}", column="name")
    return name


# -- reading a file ---------------------------------------------------------------------------------------

def _period(value: str) -> str:
    """YYYY-MM, or a date (YYYY-MM-DD, optionally with a time) as its month; HotspotsError otherwise."""
    m = DATE.match(value.strip())
    if not m:
        raise HotspotsError(f"period {value[:30]!r} is not a month (YYYY-MM) or a date (YYYY-MM-DD)")
    if m.group(2):
        try:
            datetime.strptime(m.group(1) + m.group(2), "%Y-%m-%d")
        except ValueError:
            raise HotspotsError(f"period {value[:30]!r} is not a real date") from None
    return check_month(m.group(1), "period")


def _count(value: str) -> int:
    v = value.strip()
    if not WHOLE.match(v):
        if v in ("*", "<5", "<8", "~", "c", "x"):
            raise HotspotsError(f"count {v!r} is a suppressed value: a source needs the unsuppressed counts "
                                "(hotspots applies the disclosure rule itself)")
        try:
            float(v)
        except ValueError:
            raise HotspotsError(f"count {v[:30]!r} is not a number") from None
        raise HotspotsError(f"count {v[:30]!r} is not a whole number")
    n = int(v)
    if n < 0:
        raise HotspotsError(f"count {n} is negative")
    return n


def _code_column(headers: list[str], geography: str, given: str | None, path: Path) -> str:
    if given:
        if given not in headers:
            raise IngestError(f"no column {given!r} (have: {', '.join(headers)})", path=path, column=given)
        return given
    low = {h.strip().lower(): h for h in headers}
    for cand in CODE_COLUMNS[geography]:
        if cand in low:
            return low[cand]
    raise IngestError(f"no area code column found for {GEOGRAPHY_WORDS[geography]} (looked for "
                      f"{', '.join(CODE_COLUMNS[geography])}); name it with --code (have: {', '.join(headers)})",
                      path=path, column="code")


def lsoa11_best_fit(config: Config) -> tuple[dict[str, str], str]:
    """LSOA 2011 code -> the LSOA 2021 code holding the largest share of it, and how it was found: the
    bundle's LSOA11→LSOA21 lookup table when configured, else the overlap of the two boundary layers."""
    from .bundle import load_boundary, load_table
    for ds in config.datasets.values():
        if ds.kind == "table" and ds.role == "lookup":
            t = load_table(config, ds.key)
            if {"LSOA11CD", "LSOA21CD"} <= set(t.columns):
                share = "share_of_lsoa11" if "share_of_lsoa11" in t.columns else None
                if share:
                    t = t.assign(_s=t[share].astype(float)).sort_values(["LSOA11CD", "_s", "LSOA21CD"],
                                                                        ascending=[True, False, True])
                best = t.drop_duplicates("LSOA11CD")
                return (dict(zip(best["LSOA11CD"], best["LSOA21CD"])),
                        f"LSOA 2011 converted to LSOA 2021 by best fit with the bundle's lookup {ds.path} "
                        f"({ds.vintage or ds.key}): each 2011 LSOA's counts go to the 2021 LSOA holding the "
                        "largest share of it, so a split 2011 LSOA's counts all land in one of its parts")
    from .aggregate import _best_fit
    bf = _best_fit(load_boundary(config, "lsoa11"), load_boundary(config, "lsoa21"))  # "ward_code": the 2021 LSOA
    return ({r.code: r.ward_code for r in bf.itertuples() if isinstance(r.ward_code, str)},
            "LSOA 2011 converted to LSOA 2021 by best fit of the boundaries (largest area overlap; no lookup "
            "table configured): a split 2011 LSOA's counts all land in one of its parts")


def read_source(config: Config, name: str, path: Path, geography: str, period_col: str, count_col: str,
                category_col: str | None = None, code_col: str | None = None):
    """Parse a source file into stored cells and a report; nothing is written here."""
    from .bundle import load_boundary
    if geography not in STORED_ON:
        raise HotspotsError(f"geography must be one of {', '.join(STORED_ON)}, got {geography!r}", column="geography")
    path = Path(path)
    if not path.is_file():
        raise IngestError("no such file", path=path)
    report = SourceReport(name, str(path))
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=path) from None
    reader = csv.DictReader(text.splitlines())
    headers = list(reader.fieldnames or [])
    if not headers:
        raise IngestError("the file is empty (no header row)", path=path)
    code_col = _code_column(headers, geography, code_col, path)
    for col in (period_col, count_col) + ((category_col,) if category_col else ()):
        if col not in headers:
            raise IngestError(f"no column {col!r} (have: {', '.join(headers)})", path=path, column=col)
    known = set(load_boundary(config, geography)["code"])
    convert, report.conversion = lsoa11_best_fit(config) if geography == "lsoa11" else (None, None)
    seen: dict[tuple, tuple[int, int]] = {}
    cells: dict[tuple, int] = {}
    rejects: list[tuple] = []
    for row_no, row in enumerate(reader, start=1):
        report.read += 1
        raw = json.dumps(row, ensure_ascii=False)
        code = (row.get(code_col) or "").strip()
        column, problem, parsed = code_col, None, None
        if code not in known:
            problem = (f"{code[:20]!r} is not a {GEOGRAPHY_WORDS[geography]} code of the configured area"
                       if code else "the area code is empty")
        else:
            try:
                column = period_col
                month = _period(row.get(period_col) or "")
                column = count_col
                n = _count(row.get(count_col) or "")
                category = (row.get(category_col) or "").strip() if category_col else ""
                column = category_col
                if category_col and not category:
                    raise HotspotsError("the category is empty")
                parsed = (code, month, category, n)
            except HotspotsError as exc:
                problem = exc.reason
        if problem is not None:
            report.rejected += 1
            rejects.append((row_no, column, "rejected", problem, raw))
            continue
        key = parsed[:3]
        if key in seen:
            first, first_n = seen[key]
            if first_n == parsed[3]:
                report.duplicates += 1
                rejects.append((row_no, None, "duplicate", f"repeats row {first} (same area, period, category "
                                                           "and count): counted once", raw))
            else:
                report.rejected += 1
                rejects.append((row_no, count_col, "rejected", f"row {first} already gives {first_n} for this "
                                                               f"area, period and category, this row {parsed[3]}",
                                raw))
            continue
        seen[key] = (row_no, parsed[3])
        report.accepted += 1
        stored = convert[code] if convert is not None else code
        ckey = (stored, parsed[1], slug(name, parsed[2] or None))
        cells[ckey] = cells.get(ckey, 0) + parsed[3]
    report.months = tuple(sorted({k[1] for k in cells}))
    report.areas = len({k[0] for k in cells})
    report.total = int(sum(cells.values()))
    report.rejects = [{"row": r[0], "column": r[1], "kind": r[2], "reason": r[3]} for r in rejects]
    return [(*k, v) for k, v in sorted(cells.items())], rejects, report


def add_source(config: Config, name: str, path: Path, geography: str, period_col: str, count_col: str, *,
               category_col: str | None = None, code_col: str | None = None, disclosure: str = "default",
               title: str | None = None, provenance: str | None = None, place: str = "unknown",
               analysts_only: bool = False, replace: bool = False) -> SourceReport:
    """Read a source file and store it as ``name`` (see module doc). Raises IngestError, storing nothing,
    when every row is refused or the name is taken (unless ``replace``)."""
    from . import store
    check_name(name)
    if disclosure not in DISCLOSURE_RULES:
        raise HotspotsError(f"disclosure must be one of {', '.join(DISCLOSURE_RULES)}, got {disclosure!r}",
                            column="disclosure")
    if place not in PLACES:
        raise HotspotsError(f"place must be one of {', '.join(PLACES)}, got {place!r}", column="place")
    if not replace and any(s["name"] == name for s in store.sources(config.db_path)):
        raise HotspotsError(f"a source named {name!r} exists: remove it first (hotspots source remove {name}) or "
                            "pass --replace", column="name")
    cells, rejects, report = read_source(config, name, path, geography, period_col, count_col, category_col,
                                         code_col)
    if report.accepted == 0:
        first = report.rejects[0] if report.rejects else None
        where = f"; first: row {first['row']}, {first['column'] or 'row'}: {first['reason']}" if first else ""
        raise IngestError(f"nothing stored: all {report.read} rows refused ({report.rejected} rejected, "
                          f"{report.duplicates} duplicates){where}", path=path)
    meta = {"name": name, "title": title or name, "geography": geography, "stored_geography": STORED_ON[geography],
            "disclosure": disclosure, "provenance": provenance or f"file {Path(path).name}",
            "path": str(path), "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
            "added_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "has_categories": int(bool(category_col)), "conversion": report.conversion, "place": place,
            "viewers": int(not analysts_only),
            "rows_read": report.read,
            "accepted": report.accepted, "duplicates": report.duplicates, "rejected": report.rejected}
    store.save_source(config.db_path, meta, cells, rejects, replace=replace)
    return report


# -- what the pipeline asks ----------------------------------------------------------------------------------

def list_sources(config: Config) -> list[dict]:
    """Stored sources (cached per data version: every request's catalogue reads them)."""
    from . import store
    from .cache import cached
    return cached(config, ("sources",), lambda: store.sources(config.db_path))


def get_source(config: Config, name: str) -> dict:
    for s in list_sources(config):
        if s["name"] == name:
            return s
    known = ", ".join(s["name"] for s in list_sources(config)) or "none"
    raise NotFoundError(f"unknown source {name!r} (have: {known})", column="source")


def catalog_categories(config: Config) -> tuple[str, ...]:
    """Every category a request may name for the sources: ``src:NAME`` and its sub-categories."""
    out: list[str] = []
    for s in list_sources(config):
        out.append(slug(s["name"]))
        out += [c for c in s["categories"] if c != slug(s["name"])]
    return tuple(out)


def category_groups(config: Config) -> dict[str, str]:
    """Category slug -> its source's title (the map groups a source's categories under it)."""
    return {c: s["title"] for s in list_sources(config) for c in (slug(s["name"]), *s["categories"])}


#: base-table role -> the stored geographies of the sources it holds (a ward sums its best-fit LSOAs)
ROLE_HOLDS = {"lsoa21": ("lsoa21",), "ward": ("ward", "lsoa21")}


def cell_rules(config: Config, role: str) -> dict[str, DisclosureRule]:
    """Category -> disclosure rule of every source cell in the base table of ``role`` (protected table)."""
    return {c: get_rule(s["disclosure"]) for s in list_sources(config)
            if s["stored_geography"] in ROLE_HOLDS.get(role, ()) for c in s["categories"]}


def cells(config: Config, role: str) -> list[tuple[str, str, str, int]]:
    """The sources' base cells of ``role`` as (code, month, category, n): a ward table holds the ward
    sources and the LSOA 2021 sources summed to best-fit wards (the wards the viewer map sums too)."""
    from . import store
    out = [(code, month, cat, n) for _, code, month, cat, n in store.source_cells(config.db_path, role)
           if role in ROLE_HOLDS]
    if role == "ward":
        lsoa = store.source_cells(config.db_path, "lsoa21")
        if lsoa:
            from .aggregate import best_fit_wards
            bf = best_fit_wards(config, "lsoa21").set_index("code")["ward_code"]
            summed: dict[tuple, int] = {}
            for _, code, month, cat, n in lsoa:
                ward = bf.get(code)
                if isinstance(ward, str):
                    summed[(ward, month, cat)] = summed.get((ward, month, cat), 0) + int(n)
            out += [(*k, v) for k, v in summed.items()]
    return out


def category_entries(config: Config, audience) -> list[dict]:
    """The sources' categories for the map's category list, grouped under the source's title: the whole
    source first, then its categories, with totals as ``audience`` may see them (viewers: sums of the
    protected cells; the caller applies the small-number rule)."""
    from .aggregate import base_table
    from .categories import category_label
    from .request import Audience
    out = []
    for s in list_sources(config):
        protected = audience is Audience.VIEWER
        if protected and not s["viewers"]:
            continue  # an analysts-only source is not listed for viewers
        base = base_table(config, s["stored_geography"], audience)
        for c in (slug(s["name"]), *[c for c in s["categories"] if c != slug(s["name"])]):
            total = int(base.totals(base.codes, [c], None, None, protected=protected).sum())
            out.append({"slug": c, "label": s["title"] if c == slug(s["name"]) else category_label(c).split(": ", 1)[1],
                        "count": total, "group": s["title"]})
    return out


def rule_for(config: Config, categories, base: DisclosureRule) -> DisclosureRule:
    """The display rule of a layer on ``categories``: the strictest of ``base`` and the sources' rules."""
    rules = [base] + [get_rule(get_source(config, source_name(c))["disclosure"]) for c in categories
                      if is_source(c)]
    return max(rules, key=_strictness)


def check_categories(config: Config, categories, role: str, audience=None) -> list[str]:
    """The source categories among ``categories``, checked: known, seen by ``audience`` (a source added
    ``--analysts-only`` is refused to viewers), and stored on ``role`` (a ward source is only offered by
    ward). Raises NotFoundError / ForbiddenError / AnalysisError naming the fix."""
    from .errors import ForbiddenError
    from .request import Audience
    src = [c for c in categories if is_source(c)]
    for c in src:
        s = get_source(config, source_name(c))
        if audience is Audience.VIEWER and not s["viewers"]:
            raise ForbiddenError(f"source {s['title']!r} is for analysts: sign in with an analyst account",
                                 column="category")
        if c != slug(s["name"]) and c not in s["categories"]:
            raise NotFoundError(f"unknown category {c!r} of source {s['name']!r} (have: "
                                f"{', '.join(s['categories'])})", column="category")
        if s["stored_geography"] not in ROLE_HOLDS.get(role, ()):
            levels = " or ".join(LEVEL_OF[r] for r, held in ROLE_HOLDS.items() if s["stored_geography"] in held)
            raise AnalysisError(f"source {s['name']!r} is counted per {GEOGRAPHY_WORDS[s['stored_geography']]}, so "
                                f"it can only be mapped with geography={levels}", column="geography")
    if src and len(src) != len(categories) and role == "ward":
        police = [c for c in categories if not is_source(c)]
        if any(get_source(config, source_name(c))["stored_geography"] == "ward" for c in src) and police:
            raise AnalysisError("a ward-level source cannot be added to police categories: choose one",
                                column="category")
    return src


def ward_only(config: Config, categories) -> bool:
    """True when every category is of a source stored per ward (counted from its own ward cells)."""
    return bool(categories) and all(is_source(c) and get_source(config, source_name(c))["stored_geography"] == "ward"
                                    for c in categories)


def describe(config: Config, categories) -> dict:
    """What a layer on ``categories`` counts, for notes: a source's title, geography, provenance, place
    counted, conversion."""
    src = sorted({source_name(c) for c in categories if is_source(c)})
    return {"sources": [{k: get_source(config, n)[k] for k in ("name", "title", "geography", "disclosure",
                                                                "provenance", "conversion", "place")} for n in src]}
