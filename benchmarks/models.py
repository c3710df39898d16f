"""Survival models: fit time by size, and one patient's trajectory with explanations.

1. Fit time of the penalised Cox (lifelines) and the gradient-boosted Cox (xgboost) on
   1k, 10k and 100k stacked patient-visit rows (30 features, 10 rows per patient,
   proportional hazards with a known linear predictor), beside scikit-survival's
   ``GradientBoostingSurvivalAnalysis`` (Cox loss) fitted in the same run on the same
   rows. Its cost grows about quadratically with rows, so it is capped at ``--sksurv-cap``
   rows and its time at larger sizes is extrapolated (n^2), and said so.
   Targets: xgboost at 100k rows <= 10 s on 2 cores.
2. One patient with 10 visits: history features, risk, interval and SHAP at every visit
   (``patient_trajectory``) for Cox and GBM models trained on a 400-patient cohort.
   Target: <= 100 ms.

    .venv/bin/python benchmarks/models.py [--sizes 1000,10000,100000] [--sksurv-cap 2000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from analytics.models.estimators import CoxPH, GBMCox
from benchmarks.harness import compare, format_seconds, measure

N_FEATURES = 30


def ph_rows(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """``n`` stacked rows (10 per patient) from a Cox model with a known predictor."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, N_FEATURES)),
                     columns=[f"f{i}" for i in range(N_FEATURES)])
    beta = np.zeros(N_FEATURES)
    beta[:6] = [0.8, -0.6, 0.5, 0.4, -0.3, 0.2]
    t = rng.exponential(1 / (0.15 * np.exp(X.to_numpy() @ beta)))
    c = rng.uniform(0, 3, n)
    y = pd.DataFrame({"duration": np.minimum(t, c), "event": t <= c})
    return X, y, np.arange(n) // 10


def sksurv_fit(X: pd.DataFrame, y: pd.DataFrame) -> None:
    from sksurv.ensemble import GradientBoostingSurvivalAnalysis
    from sksurv.util import Surv

    GradientBoostingSurvivalAnalysis(loss="coxph", n_estimators=100, max_depth=3,
                                     learning_rate=0.1, random_state=0).fit(
        X.to_numpy(), Surv.from_arrays(y["event"].to_numpy(), y["duration"].to_numpy()))


def bench_fit(sizes: list[int], cap: int) -> None:
    print("== fit time by stacked patient-visit rows (30 features) ==")
    base_n = min(cap, sizes[0])
    Xb, yb, _ = ph_rows(base_n)
    base = measure(lambda: sksurv_fit(Xb, yb), repeat=1, warmup=0)
    print(f"baseline sksurv GradientBoostingSurvivalAnalysis (100 trees, depth 3) at "
          f"{base_n} rows: {format_seconds(base.median)}")
    for n in sizes:
        X, y, g = ph_rows(n)
        rep = 3 if n <= 10_000 else 1
        for name, fn in [
            ("Cox (lifelines, ridge, clustered variance)",
             lambda X=X, y=y, g=g: CoxPH().fit(X, y, groups=g)),
            ("GBM xgboost survival:cox, 1 thread (default)",
             lambda X=X, y=y, g=g: GBMCox(n_jobs=1).fit(X, y, groups=g)),
            ("GBM xgboost survival:cox, 2 threads",
             lambda X=X, y=y, g=g: GBMCox(n_jobs=2).fit(X, y, groups=g)),
        ]:
            t = measure(fn, repeat=rep, warmup=0)
            extra = ""
            if "GBM" in name:
                est = base.median * (n / base_n) ** 2
                kind = "measured" if n == base_n else "extrapolated n^2"
                extra = f" | sksurv GBSA {kind}: {format_seconds(est)} ({est / t.median:.0f}x)"
            print(f"{n:>7} rows  {name}: {format_seconds(t.median)}{extra}")
    if sizes[0] <= cap:
        X, y, g = ph_rows(sizes[0])
        compare("xgboost GBMCox fit", lambda: GBMCox().fit(X, y, groups=g),
                "sksurv GradientBoostingSurvivalAnalysis fit", lambda: sksurv_fit(X, y),
                repeat=2, warmup=0, units=(sizes[0], "rows"))


def bench_trajectory(n_patients: int = 400) -> None:
    from analytics.explain import patient_trajectory
    from analytics.models.endpoint import resolve_events
    from analytics.models.landmark import build_landmark_data
    from analytics.models.predict import LandmarkModel
    from analytics.models.registry import RegisteredModel
    from analytics.models.settings import ModelSettings
    from tests.models.sim import simulate_cohort

    print("== one patient's trajectory (10 visits): risk + interval + SHAP per visit ==")
    cohort, _ = simulate_cohort(n_patients, seed=1, follow_up=8.0, visit_every=0.5,
                                transplant_rate=0.02)
    data = build_landmark_data(cohort, resolve_events(cohort.outcomes, "decompensation"))
    counts = cohort.visits["patient"].value_counts()
    pid = counts.index[counts >= 10][0]
    visits = cohort.visits[cohort.visits["patient"] == pid].head(10)
    for kind in ("cox", "gbm"):  # GBM: 20 bootstrap refits (the default) for intervals
        fitted = LandmarkModel(ModelSettings(kind=kind, interval_refits=20)).fit(data)
        model = RegisteredModel(fitted, f"bench-{kind}")
        t = measure(lambda m=model: patient_trajectory(m, visits, pid).to_json(), repeat=10,
                    warmup=2)
        print(f"{kind}: {format_seconds(t.median)} per 10-visit trajectory "
              f"(target 100 ms; GBM includes 20 bootstrap boosters for the interval)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--sksurv-cap", type=int, default=2000)
    a = ap.parse_args()
    bench_fit([int(s) for s in a.sizes.split(",")], a.sksurv_cap)
    bench_trajectory()


if __name__ == "__main__":
    main()
