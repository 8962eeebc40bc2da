"""Map palettes stay distinguishable under the common colour-vision deficiencies, and legends carry plain words.

The simulation is colorspacious's (Machado, Oliveira & Fernandes 2009, full severity: protanopia,
deuteranopia, tritanopia), an independent implementation; the distance is its CAM02-UCS delta E, where about
1 is a just-noticeable difference on a flat patch and map classes want a good deal more."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from hotspots import maps

colorspacious = pytest.importorskip("colorspacious")

CVD = ["protanomaly", "deuteranomaly", "tritanomaly"]
#: categorical palettes (every class must differ from every other) and ordered ones (neighbours must differ)
CATEGORICAL = {"gi": [maps.GI_COLOURS[k] for k in (3, 2, 1, 0, -1, -2, -3)], "lisa": list(maps.LISA_CLASSES.values())}
ORDERED = {"change": maps.CHANGE, "viridis10": maps.VIRIDIS10,
           **{f"ylorrd{k}": v for k, v in maps.YLORRD.items()}, **{f"pubugn{k}": v for k, v in maps.PUBUGN.items()}}


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])


def _seen(palette: list[str], cvd: str) -> list[np.ndarray]:
    space = {"name": "sRGB1+CVD", "cvd_type": cvd, "severity": 100}
    return [np.clip(colorspacious.cspace_convert(_rgb(c), space, "sRGB1"), 0, 1) for c in palette]


def _de(a: np.ndarray, b: np.ndarray) -> float:
    return float(colorspacious.deltaE(a, b, input_space="sRGB1"))


@pytest.mark.parametrize("cvd", CVD)
@pytest.mark.parametrize("name", list(CATEGORICAL))
def test_categorical_classes_stay_apart(name, cvd):
    seen = _seen(CATEGORICAL[name], cvd)
    worst = min((_de(a, b), i, j) for (i, a), (j, b) in itertools.combinations(enumerate(seen), 2))
    assert worst[0] >= 12, f"{name} under {cvd}: classes {worst[1]} and {worst[2]} differ by only {worst[0]:.1f}"


@pytest.mark.parametrize("cvd", CVD)
@pytest.mark.parametrize("name", list(ORDERED))
def test_neighbouring_classes_stay_apart(name, cvd):
    seen = _seen(ORDERED[name], cvd)
    worst = min(_de(seen[i], seen[i + 1]) for i in range(len(seen) - 1))
    assert worst >= 5, f"{name} under {cvd}: neighbouring classes differ by only {worst:.1f}"


def test_hot_and_cold_need_a_pattern_without_colour():
    """Why cold classes are dotted on the map: the darkest hot and cold colours have about the same
    lightness, so without colour vision (or on a grey-scale print) only a pattern tells them apart."""
    lab = [colorspacious.cspace_convert(_rgb(maps.GI_COLOURS[k]), "sRGB1", "CIELab") for k in (3, -3)]
    assert abs(lab[0][0] - lab[1][0]) < 10


def test_gi_legend_speaks_plain_words_first():
    st = maps.style_gi([3, 2, 1, 0, -1, -2, -3, float("nan")])
    items = st.legend["items"]
    assert [i["label"] for i in items[:7]] == [maps.GI_CLASSES[k][0] for k in (3, 2, 1, 0, -1, -2, -3)]
    assert items[0]["plain"] == ("Hot spot, 99 %: this area and its neighbours together have far more incidents "
                                 "than chance would give")
    assert items[3]["plain"].startswith("Not significant")
    assert items[6]["plain"].startswith("Cold spot, 99 %")
    assert all({"label", "colour", "n", "plain"} <= set(i) for i in items)
    assert items[-1]["label"] == "No data" and items[-1]["n"] == 1 and items[-1]["plain"]
    assert st.legend["explain"].startswith("Gi* scores the neighbourhood")


def test_other_legends_have_plain_words():
    lisa = maps.style_lisa(["High-High", "Low-Low", "Not significant"]).legend
    assert all(i.get("plain") for i in lisa["items"]) and "explain" in lisa
    change = maps.style_change([-5, -1, 0, 2, 9]).legend
    assert change["items"][3]["plain"] == "The same number as before"
    assert all(i.get("plain") for i in change["items"])
    dec = maps.style_deciles([1, 5, 10], title="IMD").legend
    assert dec["items"][0]["plain"] == "Most deprived 10 % of areas in England"
    assert dec["items"][1]["plain"] == "Among the 10-20 % most deprived areas in England"
