"""Server-side time to switch patient on the dashboard, on a 5,000-patient cohort.

Budget: 300 ms per switch (issue 7). Two figures:

1. ``compare``: the patient page's data and figure work for a patient not opened before,
   as the page does it (cohort table cached and split by patient; the engine's
   trajectory on that patient's rows; store read of the patient; the audit records of
   the view and the prediction (one write);
   the plotly figures of the first paint: risk trajectory and explanation) against the naive baseline that rebuilds the cohort table
   and scores the patient on the whole visits table at every switch.
2. ``AppTest``: the whole script run (app shell, sidebar, patient page, every element
   serialised) after choosing another patient in the patient selector, caches warm,
   printed beside the 300 ms budget.

The cohort (synthetic generator, labs only) is built and a Cox model trained on first use
in ``--home`` (kept for later runs).

    .venv/bin/python benchmarks/dashboard.py [--patients 5000] [--home DIR] [--repeat 7]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import compare, format_seconds

BUDGET_S = 0.300


def build_home(home: Path, n_patients: int) -> None:
    """Generate ``n_patients`` (labs only), import them and train a Cox model."""
    from analytics.auth import create_user
    from analytics.cohort import build_cohort, import_cohort
    from analytics.config import load_settings
    from analytics.models.settings import ModelSettings
    from analytics.models.training import train_model
    from analytics.store import open_store
    from analytics.synthetic import CohortConfig, generate_cohort

    t0 = time.perf_counter()
    m = generate_cohort(home.parent / "synth", CohortConfig(n_patients=n_patients, seed=11,
                                                             imaging_patients=0))
    settings = load_settings(home)
    settings.ensure_home()
    store = open_store(settings)
    import_cohort(store, m.out_dir / "labs.csv", m.out_dir / "outcomes.csv")
    train_model(store, settings, build_cohort(store),
                ModelSettings(kind="cox", horizons=(1.0, 2.0, 3.0), folds=2, repeats=1,
                              n_bootstrap=0))
    create_user(store, "bench.clinician", "clinician", "benchmark-password")
    store.dispose()
    print(f"built {n_patients} patients and a Cox model in {time.perf_counter() - t0:.0f} s")


def patient_switch(store, model, cohort, by_patient, actor, pseudonym: str) -> None:
    """The patient page's work for one newly chosen patient (no Streamlit)."""
    from analytics import audit, viz
    from analytics.explain import patient_trajectory
    from analytics.store import repo
    from analytics.viz.prep import biomarker_summary

    # the view and the prediction drawn with it: one audit write (``dash.patient_views``)
    audit.record_all(store, actor, [
        audit.Event("view_patient", patient=pseudonym),
        audit.Event("predict", patient=pseudonym, model_version=model.model_id,
                    detail={"horizon": 3.0})])
    detail = repo.patient_detail(store, pseudonym, identified=True)
    view = patient_trajectory(model, by_patient[pseudonym], pseudonym, 3.0)
    i = view.latest_index()
    out = detail.outcome
    # the figures of the first paint: the timeline and the change since the last scan are
    # drawn when chosen (pages/patient.py)
    viz.risk_trajectory(view, outcome_event=out.event if out else None,
                        outcome_time=out.time_years if out else None,
                        selected_time=float(view.points["time"].iloc[i]) if i is not None
                        else None)
    if i is not None:
        viz.shap_waterfall(view.waterfall(i))
        view.change_since_scan(i)  # the risk change metric
    biomarker_summary(detail.biomarkers, detail.visits)


def naive_switch(store, model, actor, pseudonym: str) -> None:
    """Baseline: rebuild the cohort table and score on the whole visits table."""
    from analytics import audit
    from analytics.cohort import build_cohort
    from analytics.explain import patient_trajectory
    from analytics.store import repo

    audit.record(store, actor, "view_patient", patient=pseudonym)
    repo.patient_detail(store, pseudonym, identified=True)
    cohort = build_cohort(store)
    patient_trajectory(model, cohort.visits, pseudonym, horizon=3.0).to_json()


def apptest_switch(home: Path, patients: list[str], repeat: int) -> list[float]:
    """Seconds of full script runs after choosing another patient (caches warm)."""
    from streamlit.testing.v1 import AppTest

    from ui.session import VIEWER_KEY, Viewer

    os.environ["HEPATRACK_HOME"] = str(home)
    app = str(Path(__file__).resolve().parents[1] / "app.py")
    at = AppTest.from_file(app, default_timeout=600)
    at.session_state[VIEWER_KEY] = Viewer("bench.clinician", "clinician", "bench")
    at.run()
    at.switch_page("pages/patient.py").run()  # first run: builds the session's cohort cache
    if at.exception:
        raise RuntimeError([e.value for e in at.exception])
    runs = []
    for p in patients[:repeat]:
        at.text_input(key="patient:find").set_value(p)  # the search opens the patient
        t0 = time.perf_counter()
        at.run()
        runs.append(time.perf_counter() - t0)
        if at.exception or at.error:
            raise RuntimeError([e.value for e in at.exception] + [e.value for e in at.error])
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=5000)
    ap.add_argument("--home", type=Path, default=None,
                    help="where the cohort is kept between runs (default: a temp folder)")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    root = args.home or Path(tempfile.mkdtemp(prefix="hepatrack-bench-dashboard-"))
    home = root / "home"
    if not (home / "hepatrack.db").exists():
        build_home(home, args.patients)

    from analytics.audit import Actor
    from analytics.cohort import build_cohort
    from analytics.config import load_settings
    from analytics.models.registry import load_model
    from analytics.store import open_store

    settings = load_settings(home)
    store = open_store(settings)
    model = load_model(store, settings)
    cohort = build_cohort(store)
    by_patient = {str(k): g for k, g in cohort.visits.groupby("patient", sort=False)}
    patients = sorted(by_patient)
    print(f"cohort: {len(patients)} patients, {len(cohort.visits)} visits; model "
          f"{model.model_id}")
    actor = Actor("bench.clinician", "clinician", "bench")
    case_ids = itertools.cycle(patients[::97])
    base_ids = itertools.cycle(patients[1::97])
    compare("dashboard patient switch (session cohort split by patient, figures)",
            lambda: patient_switch(store, model, cohort, by_patient, actor, next(case_ids)),
            "rebuild the cohort table and score on all visits",
            lambda: naive_switch(store, model, actor, next(base_ids)),
            repeat=args.repeat, warmup=1)
    runs = apptest_switch(home, patients[5::131], args.repeat)
    med = statistics.median(runs)
    verdict = "within" if med <= BUDGET_S else "OVER"
    print(f"case AppTest patient switch (whole script run): {format_seconds(med)} median, "
          f"{format_seconds(max(runs))} max over {len(runs)} | budget "
          f"{format_seconds(BUDGET_S)} | {verdict} budget")
    store.dispose()


if __name__ == "__main__":
    main()
