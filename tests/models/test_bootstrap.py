"""The model's bootstrap intervals by reweighting fixed rows equal the intervals of the
resampled rows on the same patient draws, replicate by replicate."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analytics.models import crossval
from analytics.models.bootstrap import ReweightedMetrics, patient_draws, reweightable
from analytics.models.crossval import (
    _headline,
    bootstrap_ci,
    eval_grid,
    model_bootstrap_ci,
    oof_predictions,
)
from analytics.models.endpoint import resolve_events
from analytics.models.landmark import build_landmark_data
from analytics.models.settings import ModelSettings
from analytics.models.validation import landmark_metrics
from tests.models.sim import simulate_cohort

CV = ModelSettings(kind="cox", folds=3, repeats=2, n_bootstrap=30, seed=5)


@pytest.fixture(scope="module")
def oof():
    cohort = simulate_cohort(90, seed=3, death_rate=0.08)[0]
    data = build_landmark_data(cohort, resolve_events(cohort.outcomes, "decompensation"))
    hs = [float(h) for h in data.settings.horizons]
    h_max = data.settings.horizon_max
    return oof_predictions(data, CV), hs, h_max, eval_grid(h_max, crossval.N_GRID)


def _resampled(frame: pd.DataFrame, pick: np.ndarray, pats: np.ndarray) -> pd.DataFrame:
    """The rows of the patients drawn, a patient drawn twice twice (bootstrap_ci's way)."""
    parts = [frame[frame["patient"] == pats[p]].assign(patient=i) for i, p in enumerate(pick)]
    return pd.concat(parts, ignore_index=True)


def _same(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for k in want:
        a, b = got[k], want[k]
        if isinstance(b, list):
            for x, y in zip(a, b, strict=True):
                assert (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, rel=1e-12,
                                                                               abs=1e-14), k
        else:
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12,
                                                                           abs=1e-14), k


def _tied(frame: pd.DataFrame, hs: list[float], n_grid: int) -> pd.DataFrame:
    """The frame with tied times (some of them 0) and tied risks, where ties matter."""
    out = frame.copy()
    out["duration"] = (out["duration"] * 4).round() / 4
    for c in [*(f"cs_risk_{h:g}" for h in hs), *(f"cs_risk_grid_{i}" for i in range(n_grid))]:
        out[c] = out[c].round(2)
    return out


def test_each_reweighted_replicate_equals_the_metrics_of_the_resampled_rows(oof):
    frames, hs, h_max, grid = oof
    pats = frames[0]["patient"].unique()
    for frame in (frames[0], _tied(frames[1], hs, len(grid))):
        assert (frame["duration"] == 0).any() or frame is frames[0]
        reweighted = ReweightedMetrics(frame, hs, h_max, grid)
        codes = pd.Categorical(frame["patient"], categories=pats).codes
        for pick in patient_draws(len(pats), 6, seed=11):
            weight = np.bincount(pick, minlength=len(pats))[codes].astype(float)
            want = _headline(landmark_metrics(_resampled(frame, pick, pats), hs, h_max, grid,
                                              with_brier=False), hs)
            got = reweighted.headline(weight)
            _same(got, want)
            assert np.isfinite(got["c_index"]) and np.isfinite(got["ibs"])


def test_the_model_interval_equals_the_bootstrap_of_resampled_rows(oof):
    frames, hs, h_max, grid = oof
    tied = [_tied(fr, hs, len(grid)) for fr in frames]
    for fs in (frames, tied):
        want = bootstrap_ci(fs, lambda fr: _headline(
            landmark_metrics(fr, hs, h_max, grid, with_brier=False), hs), CV.n_bootstrap,
            CV.seed)
        got = model_bootstrap_ci(fs, hs, h_max, grid, CV.n_bootstrap, CV.seed)
        _same(got, want)
        assert got["c_index"][0] < got["c_index"][1]
        assert all(math.isnan(v) for v in got[f"calibration_slope_{h_max:g}"])


def test_rows_with_a_missing_risk_are_resampled_instead(oof, monkeypatch):
    frames, hs, h_max, grid = oof
    broken = [fr.copy() for fr in frames]
    broken[0].loc[broken[0].index[0], f"cs_risk_{hs[0]:g}"] = np.nan
    assert not reweightable(broken, hs, len(grid))
    calls = []
    monkeypatch.setattr(crossval, "bootstrap_ci",
                        lambda *a, **k: calls.append(a[2]) or {"c_index": [0.0, 1.0]})
    assert model_bootstrap_ci(broken, hs, h_max, grid, 4, 0) == {"c_index": [0.0, 1.0]}
    assert calls == [4]


def test_weighted_harrell_c_on_four_rows_by_hand():
    # one landmark; rows (time, event, risk): a (1, yes, 0.9), b (2, yes, 0.5),
    # c (3, no, 0.7), d (4, no, 0.1); weights a 2, b 1, c 0, d 1.
    # comparable pairs (earlier event first): a-b, a-c, a-d, b-c, b-d; weighted
    # a-b 2 (concordant), a-d 2 (concordant), b-d 1 (concordant); c drawn 0 times.
    # C = 5 / 5 = 1; with c drawn once: + a-c 2 (concordant), b-c 1 (discordant)
    # C = 7 / 8.
    fr = pd.DataFrame({"patient": list("abcd"), "landmark": 0.0,
                       "duration": [1.0, 2.0, 3.0, 4.0], "code": [1, 1, 0, 0],
                       "cs_risk_1": [0.9, 0.5, 0.7, 0.1]})
    for i in range(2):
        fr[f"cs_risk_grid_{i}"] = fr["cs_risk_1"]
    m = ReweightedMetrics(fr, [1.0], 1.0, np.array([0.5, 1.0]))
    assert m.headline(np.array([2.0, 1.0, 0.0, 1.0]))["c_index"] == 1.0
    assert m.headline(np.array([2.0, 1.0, 1.0, 1.0]))["c_index"] == 7 / 8
