"""One patient's history features, computed from that patient's rows alone (the Patient
page scores the chosen patient only), equal that patient's rows of the cohort-wide pass to
the last bit, and match the hand-computed slopes, worst values and changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.models.history import history_features
from analytics.models.history_spec import HISTORY_STATS, feature_spec
from tests.models.sim import simulate_cohort
from tests.models.test_landmark import _cohort


def test_one_patients_history_equals_its_rows_of_the_cohort_pass_exactly():
    cohort, _ = simulate_cohort(60, seed=5)
    spec = feature_spec(cohort, stats=HISTORY_STATS)
    v = cohort.visits
    at = (v[["patient", "time"]].rename(columns={"time": "landmark"})
          .assign(landmark=lambda d: d["landmark"] + 0.25).reset_index(drop=True))
    whole = history_features(v, at, spec)
    patients = v["patient"].unique()
    for p in patients[::6]:
        mine = at["patient"] == p
        alone = history_features(v[v["patient"] == p], at[mine], spec)
        pd.testing.assert_frame_equal(alone, whole[mine], check_exact=True)
    assert len(patients[::6]) == 10
    assert {"bilirubin_mg_dl_slope", "bilirubin_mg_dl_mean_1y"} <= set(whole.columns)


def test_one_patients_history_matches_hand_computation():
    c = _cohort()
    spec = feature_spec(c, stats=HISTORY_STATS)
    a = c.visits[c.visits["patient"] == "A"]
    h = history_features(a, pd.DataFrame({"patient": "A", "landmark": [1.5, 2.0]}), spec)
    a15, a2 = h.iloc[0], h.iloc[1]
    # bilirubin 1, 2, 4 at 0, 1, 2 y; platelets 200, 150, 180 (low is worse)
    assert a15["bilirubin_mg_dl_slope"] == pytest.approx(1.0)
    assert a2["bilirubin_mg_dl_slope"] == pytest.approx(1.5)  # OLS of (0,1),(1,2),(2,4)
    assert a2["platelets_10e9_l_slope"] == pytest.approx(-10.0)
    assert a15["bilirubin_mg_dl_worst"] == 2.0 and a2["bilirubin_mg_dl_worst"] == 4.0
    assert a2["platelets_10e9_l_worst"] == 150.0
    assert a2["bilirubin_mg_dl_change"] == pytest.approx(3.0)  # 4 - 1
    assert a15["platelets_10e9_l_change"] == pytest.approx(-50.0)  # 150 - 200
    assert a2["bilirubin_mg_dl_mean_1y"] == pytest.approx(4.0)  # values in (1, 2] y: 4
    assert a15["bilirubin_mg_dl_mean_1y"] == pytest.approx(2.0)  # values in (0.5, 1.5] y
    assert np.isclose(a15["age_years"], 51.5)
