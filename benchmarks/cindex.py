"""Harrell's C and training validation: the sort-based C-index against scikit-survival.

1. One landmark group of ``--rows`` rows (10 % events, tied times and risks):
   :func:`analytics.models.concordance.harrell_counts` against scikit-survival's
   ``concordance_index_censored`` (the same counts, checked before timing).
2. A clinical score's patient-bootstrap 95% interval of the pooled within-landmark C
   (``--patients`` patients, ``--bootstrap`` replicates): ``baselines.marker_c_index_ci``
   (one sorted structure reweighted per replicate; the process cache cleared before each
   run) against the earlier path, which resampled the rows and called scikit-survival per
   landmark group per replicate (the same interval, checked before timing).
3. td-AUC and Uno's C of the same group: :mod:`analytics.models.ipcw` against
   scikit-survival's ``cumulative_dynamic_auc`` and ``concordance_index_ipcw`` (the same
   values, checked before timing).
4. With ``--train``: ``cross_validate`` (folds, bootstrap, baselines) on a simulated
   cohort, against the same call with the earlier C-index and baseline interval patched
   back in.

    .venv/bin/python benchmarks/cindex.py [--rows 30000] [--patients 2000]
        [--bootstrap 200] [--train 600]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from benchmarks.harness import compare


def sksurv_harrell_c(time, cause, risk) -> tuple[float, int, int]:
    """The earlier ``validation.harrell_c``: scikit-survival's loop over the events."""
    from sksurv.metrics import concordance_index_censored

    event = np.asarray(cause) == 1
    if event.sum() == 0 or len(time) < 2:
        return float("nan"), 0, 0
    try:
        c, conc, disc, tied, _ = concordance_index_censored(event, np.asarray(time, float),
                                                            np.asarray(risk, float))
    except ValueError:
        return float("nan"), 0, 0
    return float(c), int(2 * conc + tied), int(2 * (conc + disc + tied))


def resampled_marker_c(fr: pd.DataFrame) -> dict[str, float]:
    """The earlier bootstrap statistic: per landmark group, on the resampled rows."""
    num = den = 0
    for _, g in fr.groupby("landmark", sort=False):
        _, a, b = sksurv_harrell_c(g["duration"].to_numpy(), g["code"].to_numpy(),
                                   g["score"].to_numpy())
        num, den = num + a, den + b
    return {"c_index": num / den if den else float("nan")}


def one_group(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.round(rng.exponential(3.0, n), 2)
    e = rng.random(n) < 0.1
    r = np.round(rng.normal(size=n) - 0.2 * t, 3)
    return t, e, r


def landmark_frame(n_patients: int, seed: int = 1) -> pd.DataFrame:
    """Stacked landmark rows (landmarks 0-4 y, yearly) with a marker that predicts."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(5):
        alive = rng.random(n_patients) < 1 - 0.12 * s
        p = np.flatnonzero(alive)
        hazard = rng.normal(size=len(p))
        t = rng.exponential(np.exp(-hazard) * 4)
        c = rng.uniform(0, 5, len(p))
        rows.append(pd.DataFrame({
            "patient": [f"P{i:05d}" for i in p], "landmark": float(s),
            "duration": np.round(np.minimum(t, c), 2),
            "code": np.where(t <= c, 1, 0), "score": np.round(hazard + rng.normal(0, 1,
                                                                                 len(p)), 1)}))
    return pd.concat(rows, ignore_index=True)


@contextlib.contextmanager
def earlier_path() -> Iterator[None]:
    """Patch the earlier C-index and baseline interval back into validation, crossval and
    baselines."""
    from analytics.models import baselines, crossval, imaging_comparison, validation

    def old_marker_ci(frame, n_bootstrap, seed):
        return crossval.bootstrap_ci([frame], resampled_marker_c, n_bootstrap, seed)

    def old_counts(time, event, risk):
        _, a, b = sksurv_harrell_c(time, np.asarray(event).astype(int), risk)
        return a, b

    saved = (validation.harrell_c, crossval.harrell_c, baselines.harrell_c,
             crossval.marker_c_index_ci, imaging_comparison.concordance_counts)
    validation.harrell_c = crossval.harrell_c = baselines.harrell_c = sksurv_harrell_c
    crossval.marker_c_index_ci = old_marker_ci
    imaging_comparison.concordance_counts = old_counts
    try:
        yield
    finally:
        (validation.harrell_c, crossval.harrell_c, baselines.harrell_c,
         crossval.marker_c_index_ci, imaging_comparison.concordance_counts) = saved


def bench_ipcw(t: np.ndarray, e: np.ndarray, r: np.ndarray, repeat: int) -> None:
    """td-AUC and Uno's C of one landmark group: ``analytics.models.ipcw`` against
    scikit-survival (the same values, checked before timing)."""
    from sksurv.metrics import concordance_index_ipcw, cumulative_dynamic_auc
    from sksurv.util import Surv

    from analytics.models import ipcw

    t = t + 0.01  # positive times, as the validation wrappers pass them
    s = Surv.from_arrays(e, t)
    h, tau = 2.0, 3.0
    want_auc = cumulative_dynamic_auc(s, s, r, [h])[0][0]
    assert abs(ipcw.cumulative_dynamic_auc(t, e, r, h) - want_auc) < 1e-12, "td-AUC differs"
    want_uno = concordance_index_ipcw(s, s, r, tau=tau)[0]
    assert abs(ipcw.uno_concordance(t, e, r, tau) - want_uno) < 1e-12, "Uno's C differs"
    print(f"== td-AUC and Uno's C, one landmark group of {len(t):,} rows ==")
    compare("vectorised td-AUC (ipcw.cumulative_dynamic_auc)",
            lambda: ipcw.cumulative_dynamic_auc(t, e, r, h),
            "scikit-survival cumulative_dynamic_auc",
            lambda: cumulative_dynamic_auc(s, s, r, [h]), repeat=repeat, warmup=1,
            units=(len(t), "rows"))
    compare("sorted-pairs Uno's C (ipcw.uno_concordance)",
            lambda: ipcw.uno_concordance(t, e, r, tau),
            "scikit-survival concordance_index_ipcw",
            lambda: concordance_index_ipcw(s, s, r, tau=tau), repeat=repeat, warmup=1,
            units=(len(t), "rows"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=30_000)
    ap.add_argument("--patients", type=int, default=2_000)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--train", type=int, default=0,
                    help="also cross-validate a simulated cohort of this many patients")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()

    from analytics.models import baselines, crossval
    from analytics.models.concordance import harrell_counts
    from analytics.models.validation import harrell_c

    t, e, r = one_group(a.rows)
    cause = e.astype(int)
    assert harrell_c(t, cause, r) == sksurv_harrell_c(t, cause, r), "C-index differs"
    print(f"== Harrell's C, one landmark group of {a.rows:,} rows, {e.sum():,} events ==")
    compare("sort-based harrell_counts", lambda: harrell_counts(t, e, r),
            "scikit-survival concordance_index_censored",
            lambda: sksurv_harrell_c(t, cause, r),
            repeat=a.repeat, warmup=1, units=(a.rows, "rows"))

    bench_ipcw(t, e, r, a.repeat)

    fr = landmark_frame(a.patients)
    old = crossval.bootstrap_ci([fr], resampled_marker_c, a.bootstrap, 7)
    baselines._marker_ci_cache.clear()
    assert baselines.marker_c_index_ci(fr, a.bootstrap, 7) == old, "interval differs"
    print(f"== clinical score bootstrap interval: {a.patients:,} patients, {len(fr):,} "
          f"landmark rows, {a.bootstrap} replicates ==")

    def new_ci():
        baselines._marker_ci_cache.clear()
        baselines.marker_c_index_ci(fr, a.bootstrap, 7)

    compare("reweighted sorted pairs (marker_c_index_ci, uncached)", new_ci,
            "resampled rows, scikit-survival per landmark group",
            lambda: crossval.bootstrap_ci([fr], resampled_marker_c, a.bootstrap, 7),
            repeat=a.repeat, warmup=0, units=(a.bootstrap, "replicates"))
    compare("marker_c_index_ci, cached (another model on the same cohort)",
            lambda: baselines.marker_c_index_ci(fr, a.bootstrap, 7),
            "resampled rows, scikit-survival per landmark group",
            lambda: crossval.bootstrap_ci([fr], resampled_marker_c, a.bootstrap, 7),
            repeat=a.repeat, warmup=0)

    if a.train:
        from analytics.models.endpoint import resolve_events
        from analytics.models.landmark import build_landmark_data
        from analytics.models.settings import ModelSettings
        from tests.models.sim import simulate_cohort

        cohort, _ = simulate_cohort(a.train, seed=2)
        data = build_landmark_data(cohort, resolve_events(cohort.outcomes, "decompensation"))
        ms = ModelSettings(kind="cox", folds=5, repeats=1, n_bootstrap=a.bootstrap, seed=3)
        print(f"== cross_validate: {a.train} patients, {len(data.rows):,} landmark rows, "
              f"5 folds, {a.bootstrap} replicates, clinical baselines ==")

        def new_cv():
            baselines._marker_ci_cache.clear()
            return crossval.cross_validate(data, ms, imaging_comparison=False)

        def old_cv():
            with earlier_path():
                return crossval.cross_validate(data, ms, imaging_comparison=False)

        got, want = new_cv(), old_cv()
        assert got["cv"]["c_index"] == want["cv"]["c_index"]
        assert all(got["baselines"][k]["ci"] == want["baselines"][k]["ci"]
                   for k in want["baselines"]), "baseline intervals differ"
        compare("cross_validate (sorted C-index, reweighted baseline intervals)", new_cv,
                "cross_validate (scikit-survival C-index, resampled baseline intervals)",
                old_cv, repeat=1, warmup=0)


if __name__ == "__main__":
    main()
