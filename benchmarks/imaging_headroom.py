"""How far any imaging could take the default model on a synthetic cohort: the labs-only
model given, instead of the imaging, what imaging could at best tell it, exactly.

On a built demo home (``hepatrack demo``; its ``sample_cohort/truth.json`` holds each
patient's latent state), the default landmark model's own landmark rows are
cross-validated (patient-grouped folds, the default model's seed) as:

- the default model (labs and the imaging biomarkers), and the labs-only model (the
  same model with every imaging column left out, as the demo's imaging comparison does);
  the baseline of every line below;
- the labs-only model plus, at each landmark, the true fibrosis stage; the true portal
  term (``portal_pressure_z`` x ``smoothstep(1.5, 4, stage)``, the part of the hazard
  the labs do not see); both; the true log hazard of the endpoint itself.

Each added column enters as one centred number (no history statistics). Every line gives
Harrell's C pooled within landmark times (the model's headline C-index) over all
patients and over the rows of patients with a scan so far, and the share of the
labs-only model's gap to the oracle (the true log hazard as a marker on the same rows)
that it closes: (C - labs only) / (oracle - labs only). The folds are the same for every
line (the rows and the seed are), so the lines differ only by their columns.

    .venv/bin/python benchmarks/imaging_headroom.py --home /tmp/demo27 [--repeats 1]
        [--penalizer 0.01] [--json]

With ``--repeats 2`` (the default model's setting) the first two lines are the demo's
"with imaging" and "without" figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analytics.cohort import build_cohort  # noqa: E402
from analytics.config import load_settings  # noqa: E402
from analytics.models.crossval import oof_predictions, true_log_hazard  # noqa: E402
from analytics.models.endpoint import resolve_events  # noqa: E402
from analytics.models.imaging_comparison import (  # noqa: E402
    discrimination,
    imaging_bases,
    scan_rows,
    without_imaging,
)
from analytics.models.landmark import LandmarkData, build_landmark_data  # noqa: E402
from analytics.models.settings import ModelSettings  # noqa: E402
from analytics.models.training import Truth, load_truth, truth_for_cohort  # noqa: E402
from analytics.store import open_store  # noqa: E402
from analytics.synthetic.disease import MAX_STAGE, PORTAL_KNOTS  # noqa: E402
from analytics.synthetic.fields import smoothstep  # noqa: E402
from analytics.usecases.demo import SAMPLE_DIR  # noqa: E402
from benchmarks.harness import demo_home  # noqa: E402

#: the oracle's marker name in the frame
ORACLE = "oracle"


def true_state(data: LandmarkData, truth: Truth) -> pd.DataFrame:
    """The true stage, portal term and endpoint log hazard at each landmark row."""
    par = [truth.params.get(p) for p in data.rows["patient"]]
    if any(p is None for p in par):
        raise SystemExit("truth.json lacks the latent state of some patients: a demo home "
                         "built by this version of the generator is needed")
    t = data.rows["landmark"].to_numpy(float)
    stage = np.clip([p["stage0"] for p in par] + np.array(
        [p["progression_per_year"] for p in par]) * t, 0.0, MAX_STAGE)
    z = np.array([p["portal_pressure_z"] for p in par])
    return pd.DataFrame({"true_stage": stage,
                         "true_portal_term": z * smoothstep(*PORTAL_KNOTS, stage),
                         "true_log_hazard": true_log_hazard(data, truth)},
                        index=data.rows.index)


def with_columns(lean: LandmarkData, extra: pd.DataFrame) -> LandmarkData:
    """The labs-only rows plus ``extra``'s columns, each one model column (centred, no
    history statistics: entered as scan-history columns without statistics)."""
    spec = dataclasses.replace(
        lean.spec, numeric=[*lean.spec.numeric, *extra.columns],
        imaging=[*lean.spec.imaging, *extra.columns], imaging_stats=(), scan_change=())
    return dataclasses.replace(lean, rows=pd.concat([lean.rows, extra], axis=1), spec=spec)


#: knot percentiles of a restricted cubic spline with 4 knots (Harrell, Regression
#: Modeling Strategies, 2nd ed., section 2.4.6: the default for 4 knots)
RCS_KNOT_PERCENTILES = (5.0, 35.0, 65.0, 95.0)


def rcs_terms(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """The non-linear terms of a restricted cubic spline (linear beyond the end knots),
    one column per inner knot, scaled by the squared knot span (Harrell 2015, eq. 2.25)."""
    t = np.asarray(knots, float)
    k = len(t)

    def cube(u: np.ndarray) -> np.ndarray:
        return np.maximum(u, 0.0) ** 3

    cols = [(cube(x - t[j]) - cube(x - t[k - 2]) * (t[k - 1] - t[j]) / (t[k - 1] - t[k - 2])
             + cube(x - t[k - 1]) * (t[k - 2] - t[j]) / (t[k - 1] - t[k - 2]))
            / (t[k - 1] - t[0]) ** 2 for j in range(k - 2)]
    return np.column_stack(cols)


def with_spline(data: LandmarkData, feature: str) -> LandmarkData:
    """The default model's rows plus the non-linear spline terms of imaging ``feature``
    (knots at :data:`RCS_KNOT_PERCENTILES` of its values over the landmark rows, which
    read no outcome): scan-history columns like the feature's own, missing before the
    first scan (so 0 in the design), with a constant measured flag the design drops."""
    x = data.rows[feature].to_numpy(float)
    knots = np.nanpercentile(x, RCS_KNOT_PERCENTILES)
    terms = rcs_terms(np.nan_to_num(x, nan=knots[0]), knots)
    names = [f"{feature}_rcs{j + 1}" for j in range(terms.shape[1])]
    extra = pd.DataFrame(np.where(np.isnan(x)[:, None], np.nan, terms), columns=names,
                         index=data.rows.index)
    for n in names:
        extra[f"{n}_measured"] = 0.0
    spec = dataclasses.replace(data.spec, numeric=[*data.spec.numeric, *names],
                               imaging=[*data.spec.imaging, *names])
    return dataclasses.replace(data, rows=pd.concat([data.rows, extra], axis=1), spec=spec)


def run(home: Path, cv: ModelSettings, spline: str | None = None) -> dict:
    """C-index of each line over all patients and the scanned (module docstring)."""
    settings = load_settings(home)
    store = open_store(settings)
    try:
        cohort = build_cohort(store)
        truth = truth_for_cohort(load_truth(home / SAMPLE_DIR / "truth.json"), store, cohort)
    finally:
        store.dispose()
    data = build_landmark_data(cohort, resolve_events(cohort.outcomes, None),
                               cv.landmark_settings())
    bases = imaging_bases(data.spec)
    lean = without_imaging(data, bases)
    state = true_state(data, truth)
    lines = {
        "the imaging biomarkers (the default model)": data,
        "nothing (labs only)": lean,
        "the true fibrosis stage at the landmark": with_columns(lean, state[["true_stage"]]),
        "the true portal term": with_columns(lean, state[["true_portal_term"]]),
        "both, exactly": with_columns(lean, state[["true_stage", "true_portal_term"]]),
        "the oracle's own true log hazard": with_columns(lean, state[["true_log_hazard"]]),
    }
    if spline:
        lines[f"the imaging biomarkers, {spline} as a restricted cubic spline"] = \
            with_spline(data, spline)
    hs = [float(h) for h in data.settings.horizons]
    h_max = data.settings.horizon_max
    has_scan = scan_rows(data.rows, bases)
    per_repeat: dict[str, list[dict]] = {}
    seconds = {}
    for name, d in lines.items():
        t0 = time.perf_counter()
        per_repeat[name] = oof_predictions(d, cv)
        seconds[name] = round(time.perf_counter() - t0, 1)
    out: dict = {"home": str(home), "folds": cv.folds, "repeats": cv.repeats,
                 "params": dict(cv.params), "n_landmark_rows": len(data.rows),
                 "imaging_features": bases, "seconds": seconds, "subsets": {}}
    for key, rows in (("all", np.ones(len(data.rows), bool)), ("with_scans", has_scan)):
        c = {name: [] for name in (*lines, ORACLE)}
        for r in range(cv.repeats):
            fr = per_repeat["nothing (labs only)"][r][["landmark", "duration", "code"]].copy()
            preds = {}
            for i, name in enumerate(lines):
                for h in hs:
                    fr[f"m{i}_{h:g}"] = per_repeat[name][r][f"cs_risk_{h:g}"].to_numpy()
                preds[name] = lambda h, i=i: f"m{i}_{h:g}"
            fr[ORACLE] = state["true_log_hazard"].to_numpy()
            preds[ORACLE] = lambda _h: ORACLE
            res = discrimination(fr[rows], hs, h_max, preds)
            for name in c:
                c[name].append(res[name]["c_index"])
        mean = {name: float(np.mean(v)) for name, v in c.items()}
        labs, oracle = mean["nothing (labs only)"], mean[ORACLE]
        out["subsets"][key] = {
            "patients": int(data.rows.loc[rows, "patient"].nunique()),
            "c_index": mean,
            "gap_closed": {name: (v - labs) / (oracle - labs) for name, v in mean.items()
                           if name != ORACLE}}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=None,
                    help="a built demo home (read only; default: a 300-patient one built "
                         "first)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--penalizer", type=float, default=None,
                    help="ridge penalty of the Cox models (default: the model's own)")
    ap.add_argument("--spline", default=None, metavar="FEATURE",
                    help="also the default model with this imaging feature as a restricted "
                         "cubic spline (4 knots)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    params = {} if a.penalizer is None else {"penalizer": a.penalizer}
    cv = ModelSettings(kind="cox", folds=a.folds, repeats=a.repeats, n_bootstrap=0,
                       params=params)
    if a.home is None:
        with tempfile.TemporaryDirectory(prefix="hepatrack-bench-headroom-") as tmp:
            res = run(demo_home(Path(tmp)), cv, a.spline)
    else:
        res = run(a.home, cv, a.spline)
    if a.json:
        print(json.dumps(res, indent=2))
        return
    a_, s_ = res["subsets"]["all"], res["subsets"]["with_scans"]
    print(f"{res['folds']} folds x {res['repeats']} repeats, {res['n_landmark_rows']} "
          f"landmark rows; patients all {a_['patients']}, with scans {s_['patients']}; "
          f"oracle {a_['c_index'][ORACLE]:.3f} / {s_['c_index'][ORACLE]:.3f}")
    for name in a_["gap_closed"]:
        print(f"case labs-only model plus {name}: C-index {a_['c_index'][name]:.3f} / "
              f"{s_['c_index'][name]:.3f}, gap closed {a_['gap_closed'][name]:.0%} / "
              f"{s_['gap_closed'][name]:.0%} (all / with scans; {res['seconds'][name]} s)")


if __name__ == "__main__":
    main()
