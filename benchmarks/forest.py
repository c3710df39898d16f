"""Random survival forest: train, score and explain a 10,000-row landmark set.

Case: the RSF (``analytics.models.estimators.RSF``: xgboost random-forest mode on the Cox
partial likelihood, one forest per cause) through ``LandmarkModel``: fit on 10,000
stacked landmark rows of the simulated cohort (decompensation, with death and transplant
as competing causes), the cumulative incidence at every horizon for the same rows, and
exact TreeSHAP (xgboost ``pred_contribs``) of every row. Target: all three <= 60 s.

Baseline, in the same process: the forest it replaced, scikit-survival's
``RandomSurvivalForest`` (100 trees, 15 rows per leaf, sqrt(p) features, one per cause;
its code is kept below as :class:`SksurvRSF`) through the same ``LandmarkModel``,
explained by the model-agnostic permutation-sampling SHAP of the risk at the horizon
(2 feature orders x 10 background rows, competing causes included) it used. It refused
more than 5,000 training rows (each leaf keeps a cumulative hazard over every distinct
time), so it is trained on ``--baseline-rows`` rows and explains ``--baseline-explain``
rows; its 10,000-row figures are extrapolated linearly in rows and marked as lower bounds
(its fit grows faster, and a row's SHAP costs more on a bigger forest). The case is also
timed at the baseline's size. The baseline's fits take minutes: the script takes about
10 minutes on a loaded 2-core machine.

    .venv/bin/python benchmarks/forest.py [--rows 10000] [--baseline-rows 500,1000]
        [--baseline-explain 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from analytics.errors import ModelError
from analytics.models import estimators as est_mod
from analytics.models.endpoint import resolve_events
from analytics.models.estimators import SurvivalEstimator
from analytics.models.landmark import LandmarkData, LandmarkSettings, build_landmark_data
from analytics.models.predict import LandmarkModel
from analytics.models.settings import ModelSettings
from benchmarks.harness import format_seconds, measure
from tests.models.sim import simulate_cohort

HORIZONS = (1.0, 2.0, 3.0)
EXPLAIN_HORIZON = 2.0


class SksurvRSF(SurvivalEstimator):
    """The previous ``rsf`` estimator, unchanged: scikit-survival's forest, refusing more
    than ``max_rows`` rows, explained by the base class's permutation sampling."""

    kind = "rsf"
    proportional_hazards = False

    def __init__(self, n_estimators: int = 100, min_samples_leaf: int = 15,
                 max_features: str | float = "sqrt", max_rows: int = 5000,
                 n_jobs: int = 1, random_state: int = 0) -> None:
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.max_rows = max_rows
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _fit(self, x, t, e, groups) -> None:
        from sksurv.ensemble import RandomSurvivalForest
        from sksurv.util import Surv

        if len(t) > self.max_rows:
            raise ModelError(f"rsf: {len(t)} training rows exceed the limit of "
                             f"{self.max_rows}; use --model cox or gbm for this cohort")
        self.forest_ = RandomSurvivalForest(
            n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features, n_jobs=self.n_jobs,
            random_state=self.random_state, low_memory=False,
        ).fit(x, Surv.from_arrays(e, t))

    def _cumulative_hazard(self, x: np.ndarray, times: np.ndarray) -> np.ndarray:
        chf = self.forest_.predict_cumulative_hazard_function(x, return_array=True)
        idx = np.searchsorted(self.forest_.unique_times_, times, side="right") - 1
        padded = np.concatenate([np.zeros((len(chf), 1)), chf], axis=1)
        return padded[:, idx + 1]

    def event_times(self) -> np.ndarray:
        return self.forest_.unique_times_


@contextmanager
def sksurv_rsf() -> Iterator[None]:
    """``--model rsf`` builds the previous scikit-survival forest inside the block."""
    current = est_mod.ESTIMATORS["rsf"]
    est_mod.ESTIMATORS["rsf"] = SksurvRSF
    try:
        yield
    finally:
        est_mod.ESTIMATORS["rsf"] = current


def landmark_set(n_rows: int, seed: int = 1) -> tuple[LandmarkData, np.ndarray]:
    """Landmark data of a simulated cohort with at least ``n_rows`` rows, and the indices
    of its first ``n_rows`` rows (whole patients first, as stacked)."""
    n_patients = max(50, n_rows // 6)
    while True:
        cohort, _ = simulate_cohort(n_patients, seed=seed, follow_up=8.0, visit_every=0.5,
                                    transplant_rate=0.02)
        data = build_landmark_data(cohort, resolve_events(cohort.outcomes, "decompensation"),
                                   LandmarkSettings(horizons=HORIZONS))
        if len(data.rows) >= n_rows:
            return data, np.arange(n_rows)
        n_patients = int(n_patients * 1.3 * n_rows / len(data.rows)) + 1


def fit(data: LandmarkData, rows: np.ndarray) -> LandmarkModel:
    return LandmarkModel(ModelSettings(kind="rsf", horizons=HORIZONS),
                         intervals=False).fit(data, rows)


def score(model: LandmarkModel, X: pd.DataFrame) -> np.ndarray:
    return model.risk(X, list(HORIZONS))


def shap(model: LandmarkModel, X: pd.DataFrame) -> np.ndarray:
    return model.explain(X, horizon=EXPLAIN_HORIZON).values


def case_at(data: LandmarkData, rows: np.ndarray, repeat: int) -> dict[str, float]:
    """Median seconds of fit, score and SHAP of the RSF on ``rows`` (SHAP of every row)."""
    model = fit(data, rows)
    X = model.matrix(data.rows.iloc[rows])
    e = model.explain(X, horizon=EXPLAIN_HORIZON)
    gap = np.abs(e.base_values + e.values.sum(axis=1) - e.output).max()
    print(f"  RSF at {len(rows):,} rows: {X.shape[1]} model columns, causes "
          f"{list(model.estimators_)}, SHAP additivity max |base + sum - output| = "
          f"{gap:.1e} (log hazard)")
    return {"fit": measure(lambda: fit(data, rows), repeat=repeat, warmup=0).median,
            "score": measure(lambda: score(model, X), repeat=repeat, warmup=0).median,
            "shap": measure(lambda: shap(model, X), repeat=repeat, warmup=0).median}


def baseline_at(data: LandmarkData, rows: np.ndarray, n_explain: int) -> dict[str, float]:
    """Seconds of fit and score (all ``rows``) and SHAP (``n_explain`` rows) of the
    scikit-survival forest, once each (a fit takes minutes)."""
    with sksurv_rsf():
        start = time.perf_counter()
        model = fit(data, rows)
        t_fit = time.perf_counter() - start
    X = model.matrix(data.rows.iloc[rows])
    t_score = measure(lambda: score(model, X), repeat=1, warmup=0).median
    t_shap = measure(lambda: shap(model, X.iloc[:n_explain]), repeat=1, warmup=0).median
    return {"fit": t_fit, "score": t_score, "shap_per_row": t_shap / n_explain}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--baseline-rows", default="500,1000",
                    help="two sizes (rows) the scikit-survival forest is trained on")
    ap.add_argument("--baseline-explain", type=int, default=4,
                    help="rows the permutation-sampling explainer explains")
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    n = a.rows
    small, large = (int(s) for s in a.baseline_rows.split(","))
    print(f"machine: {os.cpu_count()} cores, load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    data, rows = landmark_set(n)
    print(f"landmark set: {n:,} of {len(data.rows):,} stacked rows, causes "
          f"{data.rows['cause'].iloc[rows].value_counts().to_dict()}")

    print(f"== case: RSF (xgboost forest, TreeSHAP) at {n:,} rows ==")
    c = case_at(data, rows, a.repeat)
    total = c["fit"] + c["score"] + c["shap"]
    print(f"  fit {format_seconds(c['fit'])} | score {format_seconds(c['score'])} | "
          f"TreeSHAP of {n:,} rows {format_seconds(c['shap'])} | total "
          f"{format_seconds(total)} (target 60 s)")

    print(f"== baseline: scikit-survival RSF, permutation SHAP, at {small:,} and "
          f"{large:,} rows ==")
    b_small = baseline_at(data, np.arange(small), a.baseline_explain)
    b = baseline_at(data, np.arange(large), a.baseline_explain)
    growth = np.log(b["fit"] / b_small["fit"]) / np.log(large / small)
    for size, r in ((small, b_small), (large, b)):
        print(f"  {size:,} rows: fit {format_seconds(r['fit'])} | score "
              f"{format_seconds(r['score'])} | permutation SHAP "
              f"{format_seconds(r['shap_per_row'])} per row")
    # lower bounds: linear in rows, although the fit grew as n^growth here and a row's
    # SHAP costs more on a bigger forest (more leaves, more distinct times)
    fit_n = b["fit"] * n / large
    score_n = b["score"] * n / large
    shap_n = b["shap_per_row"] * n
    print(f"  extrapolated to {n:,} rows (it refuses more than 5,000), linearly, so at "
          f"least: fit {format_seconds(fit_n)} (measured growth n^{growth:.2f}) | score "
          f"{format_seconds(score_n)} | SHAP {format_seconds(shap_n)} ({shap_n / 3600:.1f} h) "
          f"| total {format_seconds(fit_n + score_n + shap_n)}")

    print(f"== the same work at the baseline's size ({large:,} rows, same process) ==")
    cs = case_at(data, np.arange(large), a.repeat)
    for part, base in (("fit", b["fit"]), ("score", b["score"]),
                       ("shap", b["shap_per_row"] * large)):
        label = "SHAP of every row" if part == "shap" else part
        extra = " (baseline extrapolated from per-row)" if part == "shap" else ""
        print(f"  {label}: case RSF xgboost {format_seconds(cs[part])} | baseline "
              f"scikit-survival {format_seconds(base)}{extra} | {base / cs[part]:.1f}x faster")
    print(f"case at {n:,} rows: {format_seconds(total)} | baseline extrapolated (at least): "
          f"{format_seconds(fit_n + score_n + shap_n)} | "
          f"{(fit_n + score_n + shap_n) / total:.0f}x faster")
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
