"""The bivariate layer (crime against deprivation, 3×3) on the real Wolverhampton bundle (2018-06)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_briefing import wolves  # noqa: F401  (the module-scoped bundle fixture)

pytestmark = pytest.mark.bundle

IMD = "Index of Multiple Deprivation (IMD) Decile (where 1 is most deprived 10% of LSOAs)"
Q = {"category": "violent-crime", "from": "2018-06", "to": "2018-06"}


def _layer(config, audience, **args):
    from hotspots import pipeline
    return pipeline.build_layer(config, pipeline.parse(config, {**Q, **args}, "bivariate"), audience)


def _tertile(values, floor=None):
    """Independent: the class is 1 + how many of the two tertile points (numpy's linear percentiles) the
    value exceeds."""
    b1, b2 = np.percentile(values, [100 / 3, 200 / 3])
    if floor is not None:
        b1, b2 = max(b1, floor), max(b2, b1, floor)
    return np.array([1 + int(v > b1) + int(v > b2) for v in values])


def test_analyst_classes_equal_an_independent_computation(wolves, real_bundle):  # noqa: F811
    from hotspots.aggregate import area_counts
    from hotspots.kinds_bivariate import GRID
    from hotspots.request import Audience
    r = _layer(wolves, Audience.ANALYST)
    f = r.frame.set_index("code")
    exact = area_counts(wolves, "lsoa", ["violent-crime"], "2018-06", "2018-06").set_index("code")["count"]
    exp_x = pd.Series(_tertile(exact.to_numpy(float)), index=exact.index)
    assert (f["crime_class"] == exp_x.reindex(f.index)).all()
    imd = pd.read_csv(real_bundle / "deprivation" /
                      "File_7_IoD2025_All_Ranks_Scores_Deciles_Population_Denominators_Wolverhampton.csv")
    dec = imd.set_index("LSOA code (2021)")[IMD].reindex(f.index)
    exp_y = np.select([dec <= 3, dec <= 7], [3, 2], 1)
    assert (f["against_class"].to_numpy() == exp_y).all()
    assert [GRID[y - 1][x - 1] for x, y in zip(f["crime_class"], f["against_class"])] == f["fill"].tolist()
    sq = r.legend["bivariate"]
    assert sum(map(sum, sq["n"])) == len(f) == 161
    assert sq["n"][2][2] == int(((f["crime_class"] == 3) & (f["against_class"] == 3)).sum()) > 0
    assert f["place"].str.contains(" ward, ").all()


def test_viewer_classes_come_from_the_protected_counts(wolves):  # noqa: F811
    from hotspots import layers
    from hotspots.request import Audience
    from hotspots import pipeline
    r = _layer(wolves, Audience.VIEWER)
    prot = layers.counts(wolves, pipeline.parse(wolves, Q, "bivariate"), Audience.VIEWER).set_index("code")["count"]
    f = r.frame.set_index("code")
    exp = pd.Series(_tertile(prot.to_numpy(float), floor=4.0), index=prot.index).reindex(f.index)
    assert (f["crime_class"] == exp).all()
    assert (f.loc[prot.reindex(f.index) <= 4, "crime_class"] == 1).all()  # "low" never tells 0 from <5
    shown = [v for v in f["count"] if not isinstance(v, str)]
    assert "<5" in set(f["count"]) and not {1, 2, 3, 4} & set(shown)
    assert f.loc[f["suppressed"], "rate_per_1000"].isna().all()


def test_bivariate_errors(wolves):  # noqa: F811
    from hotspots import pipeline
    from hotspots.errors import AnalysisError, NotFoundError
    from hotspots.request import Audience
    with pytest.raises(NotFoundError, match="unknown 'against'"):
        pipeline.parse(wolves, {**Q, "against": "nonsense"}, "bivariate")
    with pytest.raises(AnalysisError, match="geography=lsoa"):
        _layer(wolves, Audience.ANALYST, geography="ward")
    assert pipeline.parse(wolves, {**Q, "against": "income"}, "gistar").query().get("against") is None
    income = _layer(wolves, Audience.ANALYST, against="income")
    assert "Income" in income.legend["bivariate"]["y"] and income.metadata["parameters"]["against"] == "income"
