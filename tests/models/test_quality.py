"""Cross-validated discrimination of the default model on the demo cohort vs the oracle.

The demo configuration (``sample_data/demo.toml``: 300 patients, labs for all) is
generated labs-only (its 16 CT patients would only add imaging columns) and every
number is compared with the oracle C-index: ranking each landmark row by the true log
hazard of the same endpoint (death, decompensation, hcc) at the landmark.

The generator's hazards follow published fibrosis-stage risks (flat from healthy to F0,
steep from F2; analytics/synthetic/disease.py), so the stages that labs cannot see
(below 1.5) no longer separate the oracle's ranking.

Measured (5 folds, 1 repeat; seed 7 is the demo's):

====  =======  ======  ===  =====  ===============  =================
seed  default  oracle  gap  GBM    best score       slope (default)
====  =======  ======  ===  =====  ===============  =================
7     0.657    0.715   .058 0.647  FIB-4 0.648      1.13
11    0.666    0.697   .031 0.626  MELD 0.665       1.42
23    0.642    0.711   .069 0.639  MELD 0.659       0.75
====  =======  ======  ===  =====  ===============  =================

The issue's bar (within 0.03 of the oracle) is not met. Where the gap comes from: the
true hazard formula evaluated at the stage *predicted from the same history by a
regressor trained on the true stage* ranks at 0.690 (seed 7), and a two-covariate Cox
model on that predicted stage and age at 0.690 (seed 23: 0.674; on the true stage 0.707
and 0.705), so 0.025-0.037 is information the labs do not carry (their noise around
personal baselines, and the F1 -> F2 rise in risk that precedes most lab change) and
the rest is the default model's: it has to find the stage in ~30 history columns from
~100 patients with an event. What was tried (seeds 7 / 11 / 23): a ridge penalty of
0.1 instead of 0.5 (0.661 / 0.661 / 0.635), one Cox model per cause summed for the
composite endpoint (0.652 / - / 0.644), the extra history statistics recent mean and
change (0.652 / 0.669 / 0.639), last values only without slopes and worst values
(0.668 / 0.664 / 0.652, but calibration slopes 1.65 / 1.98 / 0.96). None closes the
gap. The assertion below records the present gap so a regression shows.
"""

from __future__ import annotations

import pytest

from analytics.models.crossval import CVSettings, cross_validate
from analytics.models.landmark import build_landmark_data, resolve_events
from analytics.models.training import load_truth


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from pathlib import Path

    from analytics.cohort import cohort_from_frames
    from analytics.synthetic import generate_cohort, load_cohort_config

    root = Path(__file__).resolve().parents[2]
    cfg = load_cohort_config(root / "sample_data" / "demo.toml", imaging_patients=0)
    m = generate_cohort(tmp_path_factory.mktemp("demo") / "cohort", cfg)
    return cohort_from_frames(m.labs_csv, m.outcomes_csv), load_truth(m.truth_json)


def test_default_model_against_the_oracle(demo):
    cohort, truth = demo
    events = resolve_events(cohort.outcomes, None)
    assert events.of_interest == ("death", "decompensation", "hcc")
    data = build_landmark_data(cohort, events)
    res = cross_validate(data, "cox", cv=CVSettings(folds=5, repeats=1, n_bootstrap=0),
                         truth=truth)
    c, oracle = res["cv"]["c_index"], res["oracle_c_index"]
    assert 0.70 < oracle < 0.73
    assert oracle - 0.07 < c < oracle  # see the module docstring: the bar is 0.03
    assert 0.75 < res["cv"]["calibration_slope"] < 1.25
    best_score = max(b["c_index"] for b in res["baselines"].values())
    assert c > best_score - 0.02
