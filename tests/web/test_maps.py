"""hotspots.maps: classes, colours and legends decided once in Python."""
from __future__ import annotations

import numpy as np

from hotspots import maps


def test_gi_classes_conventional_colours():
    st = maps.style_gi([3, 2, 1, 0, -1, -2, -3, np.nan])
    labels = [i["label"] for i in st.legend["items"]]
    assert labels[:7] == ["Hot spot 99% confidence", "Hot spot 95% confidence", "Hot spot 90% confidence",
                          "Not significant", "Cold spot 90% confidence", "Cold spot 95% confidence",
                          "Cold spot 99% confidence"]
    assert labels[-1] == "No data"
    assert st.fills[3] == maps.NOT_SIGNIFICANT and st.fills[7] == maps.NO_DATA
    assert all(i["n"] == 1 for i in st.legend["items"])


def test_lisa_geoda_colours_and_islands():
    st = maps.style_lisa(["High-High", "Low-Low", "No neighbours", "Not significant"])
    assert st.fills == ["#ff0000", "#0000ff", maps.LISA_CLASSES["No neighbours"], maps.NOT_SIGNIFICANT]


def test_integer_classes_have_integer_labels_and_no_empty_duplicates():
    st = maps.classify([0, 0, 0, 1, 1, 2, 3, 5, 8, 13, 0, 0], "quantiles", 5, integer=True, title="Count")
    labels = [i["label"] for i in st.legend["items"]]
    assert len(labels) == len(set(labels))
    assert labels[0] == "0" and labels[-1].endswith("13")
    assert sum(i["n"] for i in st.legend["items"]) == 12


def test_fisher_jenks_and_missing_values():
    st = maps.classify([1.5, 2.5, np.nan, 10.0, 11.0, 30.0], "fisherjenks", 3)
    assert st.classes[2] == -1 and st.legend["items"][-1]["label"] == "No data"


def test_deciles_most_deprived_darkest():
    st = maps.style_deciles([1, 10, None], "IMD")
    assert st.fills[0] == maps.VIRIDIS10[0] and st.fills[1] == maps.VIRIDIS10[9] and st.fills[2] == maps.NO_DATA


def test_change_is_diverging_and_zero_is_neutral():
    st = maps.style_change([-10, -1, 0, 1, 10])
    assert st.fills[2] == maps.CHANGE[3]
    assert st.fills[0] in maps.CHANGE[:3] and st.fills[4] in maps.CHANGE[4:]


def test_folium_shell_has_no_cdn():
    m = maps.build_map(centre=(52.6, -2.1), zoom=12, leaflet_js="/s/leaflet.js", leaflet_css="/s/leaflet.css")
    parts = maps.map_parts(m)
    assert "https://" not in parts["header"] + parts["html"] + parts["script"]
    m2 = maps.build_map(centre=(52.6, -2.1), zoom=12, leaflet_js="/s/l.js", leaflet_css="/s/l.css",
                        tiles="https://tile.example/{z}/{x}/{y}.png", tiles_attribution="© OSM")
    assert "tile.example" in maps.map_parts(m2)["script"]
