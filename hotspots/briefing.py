"""The briefing pack: an A4 PDF (and a PNG of the map for slides) that people can brief from (issue 13).

Why here and why this way: the pack is rendered on the server with matplotlib (no browser, no internet),
from the *published* layers only (``pipeline.build_layer`` / ``pipeline.panel`` / ``pipeline.comparison``),
so a viewer's pack carries exactly the protected, suppressed figures the viewer's map shows and nothing
else. Pages: (1) title, filters in words, date, protective marking, organisation and the Gi* map with its
legend, north arrow and scale bar; then, when the period has enough time steps, (2) the emerging-hot-spot
map (ArcGIS's 17 outcomes, legend in plain words) and (3) the trend map; the top-10 hot spots with wards
and places, the change table (with its significance when the change layer publishes one); parameters and
method in plain words and one attribution block. The marking is printed at the top and bottom of every
page. A period too short for the time maps leaves them out and says why in one line
(``Briefing.time_notes``).
"""
from __future__ import annotations

import io
import math
import re
import textwrap
from dataclasses import dataclass, field, replace
from functools import partial
from datetime import datetime, timezone
from typing import Any, Iterable

import numpy as np
import shapely
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch, Rectangle
from matplotlib.path import Path as MplPath

from . import pipeline
from .config import Config
from .errors import AnalysisError, HotspotsError
from .export import POLICE_NOTE
from .places import place_names
from .publish import Published
from .request import Audience, LayerRequest

A4 = (8.27, 11.69)  # inches, portrait
SLIDE = (16, 9)  # inches, 16:9 (1920 × 1080 at 120 dpi)
MARKINGS = ("OFFICIAL", "OFFICIAL-SENSITIVE")
TOP_N = 10
#: columns of the published change rows that carry a significance, when the change layer publishes one
CHANGE_SIGNIFICANCE = (("change_p", "p"), ("change_label", "Significance"), ("significance", "Significance"))
HATCH = "////"
FONT = {"pdf.fonttype": 3, "font.family": "DejaVu Sans"}  # Type 3 subsets: text extractable, half the time of Type 42


@dataclass(frozen=True)
class MapPage:
    """One more map page: a published layer drawn with its legend in plain words."""

    heading: str
    layer: Published
    legend: list[tuple[str, str, str]]  # (colour, label, plain words)
    explain: str
    note: str


@dataclass(frozen=True)
class Briefing:
    """What the pack says, before it is drawn (the tests read it; the renderers draw only this)."""

    title: str
    subtitle: str
    date: str
    marking: str
    organisation: str
    audience: Audience
    gi: Published
    wards: Published | None
    legend: list[tuple[str, str, str]]  # (colour, label, plain words)
    top_header: tuple[str, ...]
    top_rows: list[tuple[str, ...]]
    top_note: str
    change_sentence: str
    change_header: tuple[str, ...]
    change_rows: list[tuple[str, ...]]
    method: list[str]
    attribution: list[str]
    #: the emerging-hot-spot and trend pages, when the period has enough time steps
    time_maps: list[MapPage] = field(default_factory=list)
    #: one line per time map left out, saying why ("Emerging hot spots need 10 or more months; ...")
    time_notes: list[str] = field(default_factory=list)


def check_marking(marking: str) -> str:
    m = (marking or "").strip().upper()
    if m not in MARKINGS:
        raise HotspotsError(f"marking must be one of {', '.join(MARKINGS)}, got {marking[:40]!r}", column="marking")
    return m


def _cell(v: Any) -> str:
    """A published figure as printed: labels such as "<5" as they are, numbers without spurious decimals."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, str):
        return v
    if isinstance(v, (int, np.integer)) or (isinstance(v, float) and float(v).is_integer()):
        return f"{int(v):,}"
    return f"{float(v):.2f}"


def _signed(v: Any) -> str:
    s = _cell(v)
    if isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(float(v)) and float(v) > 0:
        return "+" + s
    return s.replace("-", "−", 1) if s.startswith("-") else s


def compose(config: Config, req: LayerRequest, audience: Audience, *, marking: str | None = None,
            organisation: str | None = None, now: datetime | None = None) -> Briefing:
    """The briefing's content from the published Gi* layer, panel and comparison for ``audience``."""
    req = replace(req, layer="gistar")
    gi = pipeline.build_layer(config, req, audience)
    panel = pipeline.panel(config, req, audience)
    try:
        wards = pipeline.build_layer(config, replace(req, layer="wards"), audience)
    except HotspotsError:
        wards = None
    places = place_names(config, gi.role)
    legend = legend_items(gi.legend)
    if "suppressed" in gi.frame and bool(np.any(gi.frame["suppressed"].to_numpy(bool))):
        n = int(gi.frame["suppressed"].to_numpy(bool).sum())
        legend.append(("hatch", f"Hatched: small number suppressed ({n:,} {'area' if n == 1 else 'areas'})",
                       "a small number (shown as <5), or hidden to protect one; the class is still shown"))
    top_rows = []
    for r in panel["top"]:
        top_rows.append((r["name"] if r["name"] != r["code"] else r["code"], r["code"],
                         places.get(r["code"]) or (r.get("ward") or ""), _cell(r["count"]),
                         "–" if r.get("z") is None else f"{r['z']:.2f}", r["class"]))
    sentence, ch_header, ch_rows = _change(config, req, audience)
    method = [panel["title"] + "."] + ([panel["moran_text"]] if panel.get("moran_text") else [])
    method += [gi.legend.get("explain", "") and gi.legend["explain"] + "."]
    method += panel["messages"]
    method += [f"Classes: {gi.legend.get('note', '')}." if gi.legend.get("note") else ""]
    if panel.get("vintages"):
        method.append("Data: " + "; ".join(v["vintage"] for v in panel["vintages"]) + ".")
    time_maps, time_notes = _time_maps(config, req, audience)
    method += time_notes
    subtitle = (f"{panel['messages'][0]}" if panel["messages"] else "")
    when = (now or datetime.now(timezone.utc)).strftime("%d %B %Y %H:%M UTC")
    org = organisation if organisation is not None else config.area_name
    return Briefing(
        title=panel["title"], subtitle=subtitle, date=when,
        marking=check_marking(marking or config.marking), organisation=org, audience=audience, gi=gi,
        wards=wards, legend=legend,
        top_header=("Area", "Code", "Place (ward, part of ward)", "Incidents", "Gi* z", "Class"),
        top_rows=top_rows,
        top_note=("Strongest first. Gi* scores the neighbourhood: an area with few incidents ranks high when "
                  "its neighbours have many." if top_rows else "No area is a significant Gi* hot spot with "
                  "these settings."),
        change_sentence=sentence, change_header=ch_header, change_rows=ch_rows,
        method=[m for m in method if m], attribution=[*merge_attributions(config.attributions()), POLICE_NOTE],
        time_maps=time_maps, time_notes=time_notes)


def legend_items(legend: dict) -> list[tuple[str, str, str]]:
    """(colour, "label (n areas)", plain words) of every class that some area has."""
    return [(i["colour"], f"{i['label']} ({i['n']:,} {'area' if i['n'] == 1 else 'areas'})", i.get("plain", ""))
            for i in legend["items"] if i.get("n")]


def _time_maps(config: Config, req: LayerRequest, audience: Audience) -> tuple[list[MapPage], list[str]]:
    """The emerging-hot-spot and trend layers of the request's period, as published for ``audience`` (viewers:
    computed from the protected cube; no count column is published), and a line for each one left out."""
    from .emerging import MIN_STEPS
    from .kinds_time import time_steps
    from .trend import MIN_MK_STEPS
    n = len(time_steps(req.month_from, req.month_to, req.step)[0])
    pages, notes = [], []
    for kind, need, words in (("emerging", MIN_STEPS, "Emerging hot spots"), ("trend", MIN_MK_STEPS, "Trends")):
        if n < need:
            notes.append(f"{words} need {need} or more {req.step}s; this period has {n}.")
            continue
        try:
            layer = pipeline.build_layer(config, replace(req, layer=kind), audience)
        except AnalysisError as exc:
            notes.append(f"No {words.lower()} map: {exc.message}.")
            continue
        heading = ("Emerging hot spots: how each area's hot or cold spot changed over the period" if kind == "emerging"
                   else "Trend per area: rising, falling or steady over the period")
        pages.append(MapPage(heading, layer, legend_items(layer.legend), layer.legend.get("explain", ""),
                             layer.legend.get("note", "")))
    return pages, notes


_YEAR_END = re.compile(r"^(.*\bdatabase right) (\d{4})\.$")


def merge_attributions(lines: list[str]) -> list[str]:
    """One line per licence statement: "... database right 2011." and "... database right 2021." become
    "... database right 2011, 2021." (the print view's complaint: the ONS attribution four times)."""
    out: list[str] = []
    years: dict[str, list[str]] = {}
    for ln in lines:
        m = _YEAR_END.match(ln)
        if not m:
            out.append(ln)
            continue
        if m.group(1) not in years:
            years[m.group(1)] = []
            out.append(m.group(1))
        years[m.group(1)].append(m.group(2))
    return [f"{ln} {', '.join(sorted(set(years[ln])))}." if ln in years else ln for ln in out]


def _change(config: Config, req: LayerRequest, audience: Audience) -> tuple[str, tuple, list]:
    """The comparison with the previous period of the same length: sentence and the ten largest rises."""
    try:
        comp = pipeline.comparison(config, req, audience)
    except HotspotsError as exc:
        return f"No period comparison: {exc.message}", (), []
    if not isinstance(comp.get("total_before"), (int, np.integer)) or comp["total_before"]:
        rows = comp["rows"][:TOP_N]
    else:
        rows = []  # an empty baseline: the sentence says so; a table of "+n" rises would mislead
    sig = [(k, h) for k, h in CHANGE_SIGNIFICANCE if any(k in r for r in rows)]
    header = ("Area", "Ward", "Before", "After", "Change") + tuple(h for _, h in sig)
    out = [(r.get("name") or r["code"], r.get("ward_name") or "", _cell(r.get("count_before")),
            _cell(r.get("count_after")), _signed(r.get("change")), *[_cell(r.get(k)) for k, _ in sig])
           for r in rows]
    return comp["sentence"], header, out


# -- drawing --------------------------------------------------------------------------------------------

def _paths(geom) -> list[MplPath]:
    out = []
    for poly in getattr(geom, "geoms", [geom]):
        if poly.is_empty or poly.geom_type != "Polygon":
            continue
        verts, codes = [], []
        for ring in [poly.exterior, *poly.interiors]:
            xy = np.asarray(ring.coords)[:, :2]
            verts.append(xy)
            codes += [MplPath.MOVETO] + [MplPath.LINETO] * (len(xy) - 2) + [MplPath.CLOSEPOLY]
        out.append(MplPath(np.concatenate(verts), codes))
    return out


def _draw_map(ax, layer: Published, wards: Published | None) -> None:
    """A published layer's map in EPSG:27700 (metres), hatched suppressed areas, ward outlines and names,
    north arrow, scale bar."""
    f = layer.frame
    patches, colours, hatched = [], [], []
    sup = f["suppressed"].to_numpy(bool) if "suppressed" in f else np.zeros(len(f), bool)
    for geom, fill, s in zip(f.geometry, f["fill"], sup):
        for p in _paths(geom):
            patches.append(PathPatch(p))
            colours.append(fill)
            if s:
                hatched.append(PathPatch(p))
    ax.add_collection(PatchCollection(patches, facecolor=colours, edgecolor="#ffffff", linewidth=0.25))
    if hatched:
        ax.add_collection(PatchCollection(hatched, facecolor="none", edgecolor="#555555", linewidth=0, hatch=HATCH))
    if wards is not None:
        wp = [PathPatch(p) for g in wards.frame.geometry for p in _paths(g)]
        ax.add_collection(PatchCollection(wp, facecolor="none", edgecolor="#222222", linewidth=0.8))
        for name, g in zip(wards.frame["name"], wards.frame.geometry):
            pt = g.representative_point()
            ax.text(pt.x, pt.y, name, fontsize=5.5, ha="center", va="center", color="#111111",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.6})
    x0, y0, x1, y1 = shapely.total_bounds(f.geometry.to_numpy())
    pad = 0.04 * max(x1 - x0, y1 - y0)
    ax.set_xlim(x0 - pad, x1 + pad)
    ax.set_ylim(y0 - pad, y1 + pad)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    _north_arrow(ax)
    _scale_bar(ax, x0 - pad, y0 - pad, x1 - x0 + 2 * pad)


def _north_arrow(ax) -> None:
    # EPSG:27700 grid north is within about a degree of true north across England
    ax.annotate("N", xy=(0.95, 0.96), xytext=(0.95, 0.86), xycoords="axes fraction", ha="center", va="center",
                fontsize=11, fontweight="bold", arrowprops={"arrowstyle": "-|>", "color": "black", "lw": 1.5})


def _scale_bar(ax, x: float, y: float, width: float) -> None:
    """A bar of a round length near a fifth of the map's width, in the bottom-left corner."""
    target = width / 5
    step = 10 ** math.floor(math.log10(target))
    length = max(m * step for m in (1, 2, 5) if m * step <= target)
    bx, by = x + width * 0.03, y + width * 0.03
    ax.add_patch(Rectangle((bx, by), length, width * 0.008, facecolor="black", edgecolor="black"))
    ax.add_patch(Rectangle((bx, by), length / 2, width * 0.008, facecolor="white", edgecolor="black", lw=0.6))
    words = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    ax.text(bx + length / 2, by + width * 0.018, words, ha="center", va="bottom", fontsize=7)


def _draw_legend(fig: Figure, title: str, items: list[tuple[str, str, str]], x: float, y: float, width: float,
                 line: float, columns: int = 1) -> float:
    """The legend, plain words under each class; ``columns`` side by side (a long legend on an A4 page)."""
    fig.text(x, y, title, fontsize=9, fontweight="bold", va="top")
    y -= line * 1.3
    per = math.ceil(len(items) / columns) if items else 0
    low = y
    for c in range(columns):
        cx = x + c * width / columns
        low = min(low, _legend_column(fig, items[c * per:(c + 1) * per], cx, y, width / columns, line))
    return low


def _legend_column(fig: Figure, items: list[tuple[str, str, str]], x: float, y: float, width: float,
                   line: float) -> float:
    for colour, label, plain in items:
        sw = Rectangle((x, y - line * 0.75), 0.025, line * 0.75, transform=fig.transFigure,
                       facecolor="white" if colour == "hatch" else colour, edgecolor="#555555", lw=0.5,
                       hatch=HATCH if colour == "hatch" else None)
        fig.patches.append(sw)
        fig.text(x + 0.035, y, label, fontsize=7.5, va="top")
        if plain:
            for ln in textwrap.wrap(plain, int(width * 150)):
                y -= line * 0.8
                fig.text(x + 0.035, y, ln, fontsize=6, va="top", color="#444444")
        y -= line * 1.05
    return y


def _frame(fig: Figure, b: Briefing, page: int, pages: int) -> None:
    """Marking top and bottom, organisation and date in the footer."""
    for yy, va in ((0.985, "top"), (0.012, "bottom")):
        fig.text(0.5, yy, b.marking, ha="center", va=va, fontsize=10, fontweight="bold", color="#000000")
    fig.text(0.06, 0.035, f"{b.organisation} · produced {b.date}", fontsize=6.5, color="#333333")
    fig.text(0.94, 0.035, f"page {page} of {pages}", fontsize=6.5, color="#333333", ha="right")


def _table(fig: Figure, header: tuple, rows: list, x: float, y: float, widths: list[float], line: float) -> float:
    for cx, h in zip(np.cumsum([x] + widths[:-1]), header):
        fig.text(cx, y, h, fontsize=7.5, fontweight="bold", va="top")
    y -= line * 1.2
    for i, row in enumerate(rows):
        if i % 2 == 0:
            fig.patches.append(Rectangle((x - 0.005, y - line * 0.95), sum(widths) + 0.01, line * 1.05,
                                         transform=fig.transFigure, facecolor="#f0f0f0", edgecolor="none"))
        for cx, w, v in zip(np.cumsum([x] + widths[:-1]), widths, row):
            text = v if len(v) <= int(w * 160) else v[: int(w * 160) - 1] + "…"
            fig.text(cx, y, text, fontsize=6.5, va="top")
        y -= line * 1.15
    return y


def _paragraphs(fig: Figure, texts: Iterable[str], x: float, y: float, width_chars: int, line: float,
                size: float = 8) -> float:
    for t in texts:
        for ln in textwrap.wrap(t, width_chars):
            fig.text(x, y, ln, fontsize=size, va="top")
            y -= line
        y -= line * 0.4
    return y


def _page_map(b: Briefing) -> Figure:
    fig = Figure(figsize=A4)
    fig.text(0.06, 0.95, textwrap.shorten(b.title, 95), fontsize=13, fontweight="bold", va="top")
    _paragraphs(fig, [b.subtitle], 0.06, 0.925, 110, 0.014, size=8)
    fig.text(0.06, 0.885, f"{b.organisation} · {b.date} · for: "
             f"{'viewers (protected figures, small numbers suppressed)' if b.audience is Audience.VIEWER else 'analysts (exact figures: do not publish)'}",
             fontsize=7.5, va="top", color="#333333")
    ax = fig.add_axes((0.06, 0.33, 0.88, 0.54))
    _draw_map(ax, b.gi, b.wards)
    _draw_legend(fig, b.gi.legend.get("title", "Legend"), b.legend, 0.06, 0.31, 0.88, 0.016)
    return fig


def _page_time_map(m: MapPage, b: Briefing) -> Figure:
    """An emerging-hot-spot or trend map: heading, what a class means, the map, the legend in plain words."""
    fig = Figure(figsize=A4)
    fig.text(0.06, 0.95, textwrap.shorten(m.heading, 95), fontsize=11, fontweight="bold", va="top")
    y = _paragraphs(fig, [textwrap.shorten(m.layer.title, 140), m.explain + "." if m.explain else ""],
                    0.06, 0.925, 118, 0.013, size=7.5)
    top = min(y, 0.88)
    ax = fig.add_axes((0.06, 0.36, 0.88, top - 0.37))
    _draw_map(ax, m.layer, b.wards)
    y = _draw_legend(fig, m.layer.legend.get("title", "Legend"), m.legend, 0.06, 0.34, 0.88, 0.0145,
                     columns=2 if len(m.legend) > 5 else 1)
    _paragraphs(fig, [m.note], 0.06, y - 0.005, 125, 0.011, size=6)
    return fig


def _page_tables(b: Briefing) -> Figure:
    fig = Figure(figsize=A4)
    fig.text(0.06, 0.95, f"Top {TOP_N} hot spots", fontsize=12, fontweight="bold", va="top")
    y = _paragraphs(fig, [b.top_note], 0.06, 0.925, 120, 0.013, size=7.5)
    if b.top_rows:
        y = _table(fig, b.top_header, b.top_rows, 0.06, y - 0.005, [0.14, 0.09, 0.34, 0.08, 0.06, 0.15], 0.016)
    y -= 0.03
    fig.text(0.06, y, "Change against the previous period", fontsize=12, fontweight="bold", va="top")
    y = _paragraphs(fig, [b.change_sentence], 0.06, y - 0.025, 120, 0.013, size=7.5)
    if b.change_rows:
        n = len(b.change_header)
        widths = [0.22, 0.22, 0.09, 0.09, 0.09] + [0.12] * (n - 5)
        _paragraphs(fig, ["The largest rises, largest first (suppressed changes last)."], 0.06, y, 120, 0.013, 7)
        _table(fig, b.change_header, b.change_rows, 0.06, y - 0.02, widths, 0.016)
    return fig


def _page_method(b: Briefing) -> Figure:
    fig = Figure(figsize=A4)
    fig.text(0.06, 0.95, "Parameters and method in plain words", fontsize=12, fontweight="bold", va="top")
    y = _paragraphs(fig, b.method, 0.06, 0.92, 118, 0.0135, size=7.5)
    y -= 0.02
    fig.text(0.06, y, "Sources and attribution", fontsize=10, fontweight="bold", va="top")
    _paragraphs(fig, b.attribution, 0.06, y - 0.022, 125, 0.012, size=6.5)
    return fig


def briefing_pdf(b: Briefing) -> bytes:
    """The pack as A4 PDF pages."""
    import matplotlib
    buf = io.BytesIO()
    pages = [_page_map, *[partial(_page_time_map, m) for m in b.time_maps], _page_tables, _page_method]
    with matplotlib.rc_context(FONT):
        with PdfPages(buf, metadata={"Title": b.title, "Subject": b.marking, "Author": b.organisation,
                                     "Creator": "hotspots briefing"}) as pdf:
            for i, make in enumerate(pages, 1):
                fig = make(b)
                _frame(fig, b, i, len(pages))
                FigureCanvasAgg(fig)
                pdf.savefig(fig)
    return buf.getvalue()


def briefing_png(b: Briefing, dpi: int = 120) -> bytes:
    """The map alone for slides (16:9): title, legend, north arrow, scale bar, marking, short attribution."""
    import matplotlib
    with matplotlib.rc_context(FONT):
        fig = Figure(figsize=SLIDE)
        FigureCanvasAgg(fig)
        fig.text(0.5, 0.985, b.marking, ha="center", va="top", fontsize=11, fontweight="bold")
        fig.text(0.03, 0.94, textwrap.shorten(b.title, 110), fontsize=14, fontweight="bold", va="top")
        fig.text(0.03, 0.895, f"{b.organisation} · {b.date}", fontsize=9, va="top", color="#333333")
        ax = fig.add_axes((0.03, 0.07, 0.58, 0.8))
        _draw_map(ax, b.gi, b.wards)
        _draw_legend(fig, b.gi.legend.get("title", "Legend"), b.legend, 0.64, 0.86, 0.33, 0.03)
        fig.text(0.03, 0.02, "Contains OS data © Crown copyright and database right; ONS, MHCLG, data.police.uk "
                 "(Open Government Licence v3.0). " + POLICE_NOTE, fontsize=6.5, color="#333333")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def briefing_filters(args: dict) -> dict:
    """The layer parameters of a briefing request (the briefing's own options removed)."""
    return {k: v for k, v in args.items() if k not in ("marking", "organisation", "audience", "show")}


__all__ = ["Briefing", "MapPage", "compose", "legend_items", "briefing_pdf", "briefing_png", "check_marking", "MARKINGS", "merge_attributions",
           "briefing_filters"]
