"""SHAP explanations: one patient's trajectory and cohort-level SHAP, beside KernelSHAP.

1. One patient's 10 visits explained (``explain`` on their 10 model-matrix rows) for the
   Cox (exact linear SHAP) and GBM (exact TreeSHAP) models. Target <= 100 ms.
2. Cohort-level SHAP for 10k visit rows. Target <= 10 s.
3. Baseline: ``shap.KernelExplainer`` on the same model output and the same rows, with a
   small budget (``nsamples``, 20-row k-means background). It is run on a few rows only
   and its per-row cost is multiplied out to 10 visits and 10k rows (stated as an
   extrapolation). Its values are also compared with the exact ones (max abs error).

    .venv/bin/python benchmarks/explain.py [--rows 10000] [--kernel-rows 5] [--nsamples 200]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from analytics.explain import explain
from analytics.models.endpoint import resolve_events
from analytics.models.landmark import build_landmark_data
from analytics.models.predict import LandmarkModel
from analytics.models.settings import ModelSettings
from benchmarks.harness import format_seconds, measure
from tests.models.sim import simulate_cohort


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--kernel-rows", type=int, default=5)
    ap.add_argument("--nsamples", type=int, default=200)
    a = ap.parse_args()
    import shap

    cohort, _ = simulate_cohort(1500, seed=2, follow_up=8.0, transplant_rate=0.02)
    data = build_landmark_data(cohort, resolve_events(cohort.outcomes, "decompensation"))
    rows = data.rows
    big = rows.sample(n=a.rows, replace=len(rows) < a.rows, random_state=0)
    counts = rows["patient"].value_counts()
    pid = counts.index[counts >= 10][0]
    patient = rows[rows["patient"] == pid].head(10)
    print(f"cohort: {len(rows)} landmark rows; explaining {len(patient)} visits and "
          f"{len(big)} rows")
    for kind in ("cox", "gbm"):
        model = LandmarkModel(ModelSettings(kind=kind), intervals=False).fit(data)
        Xp, Xb = model.matrix(patient), model.matrix(big)
        one = measure(lambda m=model, x=Xp: explain(m, x), repeat=20, warmup=2)
        many = measure(lambda m=model, x=Xb: explain(m, x), repeat=3, warmup=1)
        exact = explain(model, Xb.head(a.kernel_rows))
        cols = model.features

        def f(arr: np.ndarray, m=model, cols=cols) -> np.ndarray:
            return m.log_hazard(pd.DataFrame(arr, columns=cols))

        bg = shap.kmeans(model.background_[cols].to_numpy(), 20)
        kern = shap.KernelExplainer(f, bg)
        xs = Xb.head(a.kernel_rows).to_numpy()
        kt = measure(lambda k=kern, x=xs: k.shap_values(x, nsamples=a.nsamples, silent=True),
                     repeat=1, warmup=0)
        kvals = np.asarray(kern.shap_values(xs, nsamples=a.nsamples, silent=True))
        per_row = kt.median / a.kernel_rows
        err = float(np.abs(kvals - exact.values).max())
        print(f"{kind}: 10 visits {format_seconds(one.median)} (target 100 ms) | "
              f"{len(big)} rows {format_seconds(many.median)} (target 10 s)")
        print(f"  baseline shap.KernelExplainer (nsamples={a.nsamples}, 20-row k-means "
              f"background): {format_seconds(per_row)} per row measured on "
              f"{a.kernel_rows} rows -> 10 visits ~{format_seconds(10 * per_row)}, "
              f"{len(big)} rows ~{format_seconds(len(big) * per_row)} (extrapolated); "
              f"{per_row * len(big) / many.median:.0f}x slower; max |error| vs exact "
              f"{err:.3g} (its background is a summary, not the training sample)")


if __name__ == "__main__":
    main()
