"""Map styling: palettes, classes, legends, and the Folium map shell (engine side; no Flask).

Why here: the colour of an area, the class it falls in and the legend line that explains it are decided
once, in Python, and travel with the data (``_class``/``_fill`` properties and a ``legend`` object), so the
web map, the printable view and every download show the same classes. The browser only paints.

Palettes are colour-blind safe: ColorBrewer RdBu for Gi* (hot in reds, cold in blues, not significant in
neutral grey), GeoDa's LISA cluster colours, ColorBrewer YlOrRd for counts and rates, viridis for IMD
deciles (decile 1 = most deprived = darkest) and ColorBrewer RdBu (reversed) for change between periods.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .stats import GI_LABELS, LABEL_NO_NEIGHBOURS, LABEL_NOT_SIGNIFICANT, LISA_QUADRANTS

NO_DATA = "#bdbdbd"
NOT_SIGNIFICANT = "#e0e0e0"

#: ArcGIS Gi_Bin (-3..3) -> colour.
GI_COLOURS: dict[int, str] = {3: "#b2182b", 2: "#d6604d", 1: "#f4a582", 0: NOT_SIGNIFICANT, -1: "#92c5de",
                              -2: "#4393c3", -3: "#2166ac"}
#: ArcGIS Gi_Bin (-3..3) -> (label, colour); the labels are the engine's (``hotspots.stats.GI_LABELS``), so a
#: download's ``class_label`` and ``gi_label`` columns agree.
GI_CLASSES: dict[int, tuple[str, str]] = {b: (GI_LABELS[b], c) for b, c in GI_COLOURS.items()}
#: GeoDa's LISA cluster map colours; islands in dark grey.
LISA_CLASSES: dict[str, str] = {
    LISA_QUADRANTS[1]: "#ff0000",  # High-High
    LISA_QUADRANTS[3]: "#0000ff",  # Low-Low
    LISA_QUADRANTS[2]: "#a7adf9",  # Low-High
    LISA_QUADRANTS[4]: "#f4ada8",  # High-Low
    LABEL_NOT_SIGNIFICANT: NOT_SIGNIFICANT,
    LABEL_NO_NEIGHBOURS: "#737373",
}
YLORRD = {3: ["#ffeda0", "#feb24c", "#f03b20"],
          4: ["#ffffb2", "#fecc5c", "#fd8d3c", "#e31a1c"],
          5: ["#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026"],
          6: ["#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#f03b20", "#bd0026"],
          7: ["#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#b10026"]}
PUBUGN = {3: ["#ece2f0", "#a6bddb", "#1c9099"],
          4: ["#f6eff7", "#bdc9e1", "#67a9cf", "#02818a"],
          5: ["#f6eff7", "#bdc9e1", "#67a9cf", "#1c9099", "#016c59"],
          6: ["#f6eff7", "#d0d1e6", "#a6bddb", "#67a9cf", "#1c9099", "#016c59"],
          7: ["#f6eff7", "#d0d1e6", "#a6bddb", "#67a9cf", "#3690c0", "#02818a", "#016450"]}
#: viridis in 10 steps, decile 1 (most deprived) first.
VIRIDIS10 = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58",
             "#b5de2b", "#fde725"]
#: change between periods: decreases in blues, increases in reds, no change in grey.
CHANGE = ["#2166ac", "#67a9cf", "#d1e5f0", "#f0f0f0", "#fddbc7", "#ef8a62", "#b2182b"]

#: plain-words descriptions of the legend classes (``items[i]["plain"]``): what a class means to a reader
#: who is not a statistician; the statistical label stays in ``label``.
GI_PLAIN: dict[int, str] = {
    3: "Hot spot, 99 %: this area and its neighbours together have far more incidents than chance would give",
    2: "Hot spot, 95 %: this area and its neighbours together have clearly more incidents than chance would give",
    1: "Hot spot, 90 %: this area and its neighbours together have more incidents than chance would give "
       "(weaker evidence)",
    0: "Not significant: no clear cluster of high or low numbers here",
    -1: "Cold spot, 90 %: this area and its neighbours together have fewer incidents than chance would give "
        "(weaker evidence)",
    -2: "Cold spot, 95 %: this area and its neighbours together have clearly fewer incidents than chance would give",
    -3: "Cold spot, 99 %: this area and its neighbours together have far fewer incidents than chance would give",
}
GI_EXPLAIN = ("Gi* scores the neighbourhood: an area with few incidents ranks high when its neighbours have many")
LISA_PLAIN: dict[str, str] = {
    "High-High": "High among high: a high area surrounded by high areas (a cluster)",
    "Low-Low": "Low among low: a low area surrounded by low areas",
    "Low-High": "Low among high: a low area next to high areas (an outlier)",
    "High-Low": "High among low: a high area next to low areas (an outlier)",
    "Not significant": "Not significant: no clear pattern with its neighbours",
    "No neighbours": "No neighbours: an island, not tested",
}
LISA_EXPLAIN = "Local Moran's I compares each area with the average of its neighbours"
PLAIN_NO_DATA = "No data for this area"
#: what the web layer's "Suppressed (small number)" class means (the hatched class on count/rate maps).
SUPPRESSED_PLAIN = "Hidden to protect privacy: too few incidents to publish (not the same as \"not significant\")"

SCHEMES = {"quantiles": "Quantiles", "fisherjenks": "FisherJenks", "equalinterval": "EqualInterval",
           "naturalbreaks": "NaturalBreaks"}


@dataclass
class Styled:
    """Class index and fill colour per area, and the legend that explains them."""

    classes: np.ndarray  # int, -1 = no data
    fills: list[str]
    legend: dict[str, Any] = field(default_factory=dict)


def _legend(title: str, items: list[tuple[str, str]], classes: np.ndarray, note: str = "",
            plain: Sequence[str] | None = None, explain: str = "") -> dict:
    """The legend object the map, print view and downloads share. ``plain`` (one per item) says in
    everyday words what the class means, for readers who are not statisticians; ``label`` keeps the
    statistical name (it is also the ``class_label`` of the areas); ``explain`` is one line on how the
    statistic ranks areas."""
    counts = [int((classes == i).sum()) for i in range(len(items))]
    out: dict[str, Any] = {"title": title, "items": [{"label": lab, "colour": col, "n": n}
                                                     for (lab, col), n in zip(items, counts)], "note": note}
    if plain is not None:
        for item, words in zip(out["items"], plain):
            item["plain"] = words
    if explain:
        out["explain"] = explain
    nodata = int((classes < 0).sum())
    if nodata:
        out["items"].append({"label": "No data", "colour": NO_DATA, "n": nodata, "plain": PLAIN_NO_DATA})
    return out


def _fills(classes: np.ndarray, colours: Sequence[str]) -> list[str]:
    return [colours[c] if c >= 0 else NO_DATA for c in classes]


def style_gi(bins: Sequence, title: str = "Getis-Ord Gi* hot and cold spots", note: str = "") -> Styled:
    """The conventional 7 Gi* classes (99/95/90 % hot, not significant, 90/95/99 % cold); NaN -> no data."""
    order = [3, 2, 1, 0, -1, -2, -3]
    b = pd.to_numeric(pd.Series(bins), errors="coerce").to_numpy(dtype=float)
    idx = np.array([order.index(int(v)) if np.isfinite(v) else -1 for v in b], dtype=int)
    items = [GI_CLASSES[k] for k in order]
    return Styled(idx, _fills(idx, [c for _, c in items]),
                  _legend(title, items, idx, note, plain=[GI_PLAIN[k] for k in order], explain=GI_EXPLAIN))


def style_lisa(labels: Sequence[str], title: str = "Local Moran's I (LISA) clusters", note: str = "") -> Styled:
    names = list(LISA_CLASSES)
    idx = np.array([names.index(v) if v in LISA_CLASSES else -1 for v in labels], dtype=int)
    items = list(LISA_CLASSES.items())
    return Styled(idx, _fills(idx, [c for _, c in items]),
                  _legend(title, items, idx, note, plain=[LISA_PLAIN[k] for k in names], explain=LISA_EXPLAIN))


def _fmt(v: float, decimals: int) -> str:
    return f"{v:,.{decimals}f}"


def classify(values: Sequence, scheme: str = "quantiles", k: int = 5, *, integer: bool = False,
             title: str = "", palette: dict[int, list[str]] | None = None, note: str = "") -> Styled:
    """Sequential choropleth classes with mapclassify (quantiles, Fisher-Jenks, equal interval, natural breaks).

    Duplicate break points (many tied counts) are merged, so a class is never empty by construction;
    missing values are "No data"."""
    import mapclassify
    palette = palette or YLORRD
    if scheme not in SCHEMES:
        from .errors import HotspotsError
        raise HotspotsError(f"unknown classification {scheme!r} (use one of: {', '.join(SCHEMES)})",
                            column="classes")
    y = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(y)
    idx = np.full(len(y), -1, dtype=int)
    if not ok.any():
        return Styled(idx, _fills(idx, []), _legend(title, [], idx, note))
    yy = y[ok]
    distinct = np.unique(yy)
    k = int(max(1, min(k, 7, len(distinct))))
    if len(distinct) <= k:
        bins = distinct
    else:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c = getattr(mapclassify, SCHEMES[scheme])(yy, k=k)
        bins = np.unique(np.asarray(c.bins, dtype=float))
    if integer:
        bins = np.unique(np.floor(bins))
    bins[-1] = max(bins[-1], yy.max())
    idx[ok] = np.searchsorted(bins, yy, side="left")
    colours = palette[max(3, len(bins))][-len(bins):] if len(bins) < 3 else palette[len(bins)]
    dec = 0 if integer else (1 if yy.max() >= 10 else 2)
    items, lo = [], None
    for i, hi in enumerate(bins):
        if integer:
            a = math.floor(yy.min()) if lo is None else math.floor(lo) + 1
            b = math.floor(hi)
            label = _fmt(b, 0) if a >= b else f"{_fmt(a, 0)} – {_fmt(b, 0)}"
        else:
            label = (f"≤ {_fmt(hi, dec)}" if lo is None else f"{_fmt(lo, dec)} – {_fmt(hi, dec)}")
        items.append((label, colours[i]))
        lo = hi
    return Styled(idx, _fills(idx, colours), _legend(title, items, idx, note or f"Classes: {scheme}"))


def style_deciles(deciles: Sequence, title: str, note: str = "Decile 1 = most deprived 10% of areas in England") -> Styled:
    d = pd.to_numeric(pd.Series(deciles), errors="coerce").to_numpy(dtype=float)
    idx = np.array([int(v) - 1 if np.isfinite(v) and 1 <= v <= 10 else -1 for v in d], dtype=int)
    items = [(f"{i} {'(most deprived)' if i == 1 else '(least deprived)' if i == 10 else ''}".strip(),
              VIRIDIS10[i - 1]) for i in range(1, 11)]
    plain = ["Most deprived 10 % of areas in England" if i == 1 else "Least deprived 10 % of areas in England"
             if i == 10 else f"Among the {10 * (i - 1)}-{10 * i} % most deprived areas in England" for i in range(1, 11)]
    return Styled(idx, _fills(idx, VIRIDIS10), _legend(title, items, idx, note, plain=plain))


def style_change(change: Sequence, title: str = "Change in count", note: str = "") -> Styled:
    """Diverging classes for a change in count: three sizes of decrease, no change, three of increase."""
    v = pd.to_numeric(pd.Series(change), errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(v)
    nz = np.abs(v[ok & (v != 0)])
    t1 = float(max(1, math.ceil(np.quantile(nz, 1 / 3)))) if len(nz) else 1.0
    t2 = float(max(t1 + 1, math.ceil(np.quantile(nz, 2 / 3)))) if len(nz) else 2.0
    idx = np.full(len(v), -1, dtype=int)
    for i, x in enumerate(v):
        if not np.isfinite(x):
            continue
        a = abs(x)
        size = 0 if a <= t1 else (1 if a <= t2 else 2)
        idx[i] = 3 if x == 0 else (2 - size if x < 0 else 4 + size)
    i1, i2 = int(t1), int(t2)

    def span(a: int, b: int) -> str:
        return f"{a}" if a == b else f"{a} to {b}"
    plain = [f"Far fewer incidents than before (more than {i2} fewer)",
             f"Fewer incidents than before ({span(i1 + 1, i2)} fewer)",
             f"Slightly fewer incidents than before ({span(1, i1)} fewer)", "The same number as before",
             f"Slightly more incidents than before ({span(1, i1)} more)",
             f"More incidents than before ({span(i1 + 1, i2)} more)",
             f"Far more incidents than before (more than {i2} more)"]
    items = [(f"Down more than {i2}", CHANGE[0]), (f"Down {span(i1 + 1, i2)}", CHANGE[1]),
             (f"Down {span(1, i1)}", CHANGE[2]), ("No change", CHANGE[3]), (f"Up {span(1, i1)}", CHANGE[4]),
             (f"Up {span(i1 + 1, i2)}", CHANGE[5]), (f"Up more than {i2}", CHANGE[6])]
    return Styled(idx, _fills(idx, CHANGE), _legend(title, items, idx, note, plain=plain))


# -- Folium shell ------------------------------------------------------------------------------------

def build_map(*, centre: tuple[float, float], zoom: int, leaflet_js: str, leaflet_css: str,
              tiles: str = "none", tiles_attribution: str = "", height: str = "100%"):
    """A Folium map that loads Leaflet from ``leaflet_js``/``leaflet_css`` (served by the app) instead of
    a CDN, with no jQuery/Bootstrap/Font Awesome (nothing on the page needs them). ``tiles`` is a URL
    template or "none": with none the map has a plain background and stays readable offline."""
    import folium
    m = folium.Map(location=list(centre), zoom_start=zoom, tiles=None, control_scale=True,
                   height=height, width="100%", zoom_snap=0.25)
    m.default_js = [("leaflet", leaflet_js)]
    m.default_css = [("leaflet_css", leaflet_css)]
    if tiles and tiles.lower() != "none":
        folium.TileLayer(tiles=tiles, attr=tiles_attribution or "Basemap", name="Basemap",
                         max_zoom=19, control=False).add_to(m)
    return m


def map_parts(m) -> dict[str, str]:
    """The rendered header, body and script of a Folium map, for embedding in a page template."""
    root = m.get_root()
    root.render()
    return {"header": root.header.render(), "html": root.html.render(), "script": root.script.render(),
            "name": m.get_name()}
