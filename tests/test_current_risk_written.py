"""The current risk kept in the store is the model's cohort risk, written by training,
``predict --all`` and the dashboard's cohort risk (one patient's, after an upload: that
patient's row of it); a new model starts with none of the previous model's values.

The truth is ``analytics.usecases.overview.cohort_risk`` on the same model and cohort
(itself checked against the model's own scoring in tests/test_overview.py).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analytics.audit import Actor
from analytics.cohort import build_cohort
from analytics.models.registry import load_model
from analytics.models.settings import ModelSettings
from analytics.store import repo
from analytics.store.current_risk import read_current_risk
from analytics.usecases.context import Context
from analytics.usecases.models import PredictRequest, TrainRequest, predict, train
from analytics.usecases.overview import cohort_risk
from tests import dashboard_data

RESEARCHER = Actor("ana.res", "researcher", "s2")


#: fixture: the template home's facts, settings and an open store on a private copy
home = dashboard_data.opened_copy


def _same_as_cohort_risk(store, settings, model_id: str, horizon: float) -> None:
    expected = cohort_risk(load_model(store, settings, model_id), build_cohort(store).visits,
                           horizon, intervals=False).set_index("pseudonym")
    got = read_current_risk(store, model_id, horizon)
    assert sorted(got) == sorted(expected.index)
    for p, row in got.items():
        want = expected.loc[p]
        if np.isfinite(want["risk"]):
            assert math.isclose(row.risk, want["risk"], rel_tol=1e-12), p
            assert row.reason is None
        else:
            assert row.risk is None and row.reason == want["reason"], p
        prev = want["previous_risk"]
        assert (row.previous_risk is None) if not np.isfinite(prev) else math.isclose(
            row.previous_risk, prev, rel_tol=1e-12)
        assert math.isclose(row.risk_time_years, want["risk_time"], rel_tol=1e-12)
        as_of = want["risk_date"]
        assert row.as_of == (None if pd.isna(as_of) else as_of.date())


def test_predict_all_writes_the_cohort_risk_at_its_horizon(home):
    t, settings, store = home
    assert read_current_risk(store, t.model_id, 2.0) == {}
    predict(Context.cli(store, settings), PredictRequest(horizon=2.0))
    _same_as_cohort_risk(store, settings, t.model_id, 2.0)
    # one patient's prediction is not the cohort's: nothing else written
    predict(Context.cli(store, settings),
            PredictRequest(patients=[sorted(t.pseudonyms.values())[0]], horizon=1.0))
    assert read_current_risk(store, t.model_id, 1.0) == {}


def test_training_writes_the_new_models_risk_and_never_shows_the_previous_one(home):
    t, settings, store = home
    predict(Context.cli(store, settings), PredictRequest(horizon=2.0))
    res = train(Context(RESEARCHER, store, settings), TrainRequest(
        build_cohort(store), ModelSettings(kind="cox", horizons=(1.0, 2.0), folds=2,
                                           repeats=1, n_bootstrap=0)))
    new = res["model_id"]
    for horizon in (1.0, 2.0):
        _same_as_cohort_risk(store, settings, new, horizon)
    # the list by the new model's risk carries its values, not the previous model's
    q = repo.PatientQuery(sort="risk", risk_model=new, risk_horizon=2.0)
    rows = repo.find_patients(store, q, identified=False).set_index("pseudonym")
    mine = read_current_risk(store, new, 2.0)
    old = read_current_risk(store, t.model_id, 2.0)
    for p, r in mine.items():
        if r.risk is not None:
            assert rows.loc[p, "risk"] == r.risk
    assert any(old[p].risk != mine[p].risk for p in mine if mine[p].risk is not None)
    # highest first, the unscored last
    shown = rows["risk"].to_numpy()
    known = shown[~np.isnan(shown)]
    assert (np.diff(known) <= 0).all() and np.isnan(shown[len(known):]).all()


def test_one_patients_record_is_the_cohort_risk_of_that_patient_and_keeps_the_others(home):
    t, settings, store = home
    predict(Context.cli(store, settings), PredictRequest(horizon=2.0))
    before = read_current_risk(store, t.model_id, 2.0)
    patient = t.imaging[1]
    # what the Ingest page asks for after the patient's new scan
    predict(Context.cli(store, settings),
            PredictRequest(patients=[patient], horizon=1.0, record_current=True))
    model = load_model(store, settings, t.model_id)
    # the truth: the whole cohort's risk (the Cohort page's), this patient's row, at
    # every horizon of the model (not only the one predicted)
    visits = build_cohort(store).visits
    for h in model.horizons:
        want = cohort_risk(model, visits, h, intervals=False).set_index("pseudonym").loc[patient]
        got = read_current_risk(store, t.model_id, h)
        assert math.isclose(got[patient].risk, want["risk"], rel_tol=1e-12), h
        assert math.isclose(got[patient].previous_risk, want["previous_risk"], rel_tol=1e-12)
        assert got[patient].as_of == want["risk_date"].date()
        if h != 2.0:
            assert list(got) == [patient]  # nobody else scored at this horizon
    after = read_current_risk(store, t.model_id, 2.0)
    assert {p: r for p, r in after.items() if p != patient} == {
        p: r for p, r in before.items() if p != patient}
