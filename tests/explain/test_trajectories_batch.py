"""Every patient scored together gives each patient's trajectory exactly as scored alone."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from analytics.errors import ModelError
from analytics.explain import (
    patient_trajectories,
    patient_trajectories_json,
    patient_trajectory,
)
from analytics.explain.rows import descending_order, previous_rows
from analytics.explain.trajectory import _dates_at
from tests import dashboard_data


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    from analytics.cohort import build_cohort
    from analytics.models.registry import load_model

    t = dashboard_data.template(tmp_path_factory)
    dest = tmp_path_factory.mktemp("pbatch") / "home"
    with dashboard_data.open_copy(t, dest) as (settings, store):
        yield load_model(store, settings), build_cohort(store)


@pytest.fixture(scope="module")
def gbm_model(loaded):
    """A gradient-boosted endpoint model with death competing (fitted in memory)."""
    from analytics.models.endpoint import resolve_events
    from analytics.models.landmark import LandmarkSettings, build_landmark_data
    from analytics.models.predict import LandmarkModel
    from analytics.models.registry import RegisteredModel
    from analytics.models.settings import ModelSettings

    _m, cohort = loaded
    events = resolve_events(cohort.outcomes, "decompensation")
    data = build_landmark_data(cohort, events, LandmarkSettings(horizons=(1.0, 3.0)))
    ms = ModelSettings(kind="gbm", horizons=(1.0, 3.0), interval_refits=3)
    return RegisteredModel(LandmarkModel(ms).fit(data), "gbm-in-memory")


def assert_same(got, want, where="") -> None:
    """Equal JSON: the same keys, lists and texts, numbers to 1e-9 (relative)."""
    if isinstance(want, dict):
        assert list(got) == list(want), where
        for k in want:
            assert_same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(want, bool):
        assert isinstance(got, float) and ((math.isnan(want) and math.isnan(got))
                                          or got == pytest.approx(want, rel=1e-9, abs=1e-12)
                                          ), where
    else:
        assert got == want, where


@pytest.mark.parametrize(("which", "horizon", "at"), [("active", None, None),
                                                      ("active", 2.0, 1.5),
                                                      ("gbm", 3.0, 0.7)])
def test_patients_scored_together_equal_each_patient_scored_alone(loaded, gbm_model, which,
                                                                   horizon, at):
    model, cohort = loaded
    model = gbm_model if which == "gbm" else model
    patients = sorted(set(cohort.visits["patient"]))[:30]
    together = patient_trajectories(model, cohort.visits, patients, horizon, at)
    assert [t.patient for t in together] == patients
    alone = [patient_trajectory(model, cohort.visits, p, horizon, at) for p in patients]
    assert any(r["risk"] is not None for t in alone for r in t.to_json()["trajectory"])
    for a, b in zip(together, alone, strict=True):
        assert_same(a.to_json(), b.to_json(), a.patient)
        np.testing.assert_allclose(a.in_points.values, b.in_points.values, rtol=1e-9,
                                   atol=1e-12)
        assert a.why(len(a.points) - 1) == b.why(len(b.points) - 1)


def _edge_visits(model, cohort, imaging: list[str]):
    """The cohort's visits plus a one-visit patient and a lab missing at one visit, and
    the patients to score: one visit, a missing lab, with and without scans, in an
    order that puts the one-visit patient right after a patient with many visits. The
    one visit is copied from a patient whose first visit ``model`` can score (which
    patient that is depends on the home's pseudonyms)."""
    visits = cohort.visits.copy()
    others = [p for p in sorted(set(visits["patient"])) if p not in imaging]
    lab = "bilirubin_mg_dl"
    gap = others[1]
    rows = visits.index[(visits["patient"] == gap) & visits[lab].notna()]
    visits.loc[rows[len(rows) // 2], lab] = np.nan
    source = next(p for p in others[2:]
                  if patient_trajectory(model, visits, p).to_json()["trajectory"][0]["risk"]
                  is not None)
    single = visits[visits["patient"] == source].iloc[[0]].assign(patient="HT-ONE-VISIT")
    visits = pd.concat([visits, single], ignore_index=True)
    return visits, [others[0], "HT-ONE-VISIT", gap, *imaging, others[3]], gap, lab


@pytest.mark.parametrize("which", ["active", "gbm"])
def test_batch_equals_alone_for_one_visit_missing_lab_and_scans(loaded, gbm_model, which):
    model, cohort = loaded
    model = gbm_model if which == "gbm" else model
    imaging = [p for p in sorted(set(cohort.visits["patient"]))
               if "series_uid" in cohort.visits
               and cohort.visits.loc[cohort.visits["patient"] == p, "series_uid"].notna().any()]
    assert imaging, "the template has patients with scans"
    visits, patients, gap, lab = _edge_visits(model, cohort, imaging)
    assert visits.loc[visits["patient"] == gap, lab].isna().sum() == \
        cohort.visits.loc[cohort.visits["patient"] == gap, lab].isna().sum() + 1
    together = patient_trajectories(model, visits, patients)
    alone = [patient_trajectory(model, visits, p) for p in patients]
    for a, b in zip(together, alone, strict=True):
        assert_same(a.to_json(), b.to_json(), a.patient)
        np.testing.assert_array_equal(a.change_basis.reference, b.change_basis.reference)
        for i in range(len(a.points)):
            ca, cb = a.contributions(i), b.contributions(i)
            assert [(c.feature, c.value, c.change, c.since, c.text) for c in ca] == \
                [(c.feature, c.value, c.change, c.since, c.text) for c in cb]
            np.testing.assert_allclose([c.shap for c in ca], [c.shap for c in cb], rtol=1e-9,
                                       atol=1e-12)
    one = together[patients.index("HT-ONE-VISIT")]
    rows = one.to_json()["trajectory"]
    assert len(rows) == 1 and rows[0]["risk"] is not None
    # the one visit follows another patient's visits in the batch: no change to show
    assert rows[0]["change"] is None
    assert not any("previous" in c for c in rows[0]["contributions"])
    assert one.change_basis.reference.tolist() == [-1]
    # scan markers (and the series behind them) are each patient's own
    assert [bool(t.points["is_scan"].any()) for t in together] == \
        [p in imaging for p in patients]


def test_every_change_is_since_an_earlier_visit_of_the_same_patient(loaded):
    model, cohort = loaded
    patients = sorted(set(cohort.visits["patient"]))[:12]
    scored = 0
    for t in patient_trajectories(model, cohort.visits, patients):
        rows = t.to_json()["trajectory"]
        times = [r["time"] for r in rows]
        first = next((i for i, r in enumerate(rows) if r["risk"] is not None), None)
        if first is None:  # no visit the model can score: nothing to compare with
            assert all(r["change"] is None for r in rows), t.patient
            continue
        scored += 1
        assert rows[first]["change"] is None, t.patient
        for i, r in enumerate(rows):
            if r["change"] is not None:
                assert r["change"]["since_time"] in times[:i], (t.patient, i)
                j = times.index(r["change"]["since_time"])
                assert rows[j]["risk"] is not None
                assert r["change"]["model_output_change"] == pytest.approx(
                    r["model_output"] - rows[j]["model_output"], abs=1e-12)
        refs = t.change_basis.reference
        assert ((refs == -1) | ((refs >= 0) & (refs < np.arange(len(refs))))).all()
    assert scored >= 6  # most of the template's patients have scorable visits


def test_previous_rows_stay_within_each_patient():
    mask = np.array([True, False, True, True, True, False, True, False])
    start = np.array([0, 0, 0, 3, 3, 3, 6, 6])  # patients of 3, 3 and 2 rows
    assert previous_rows(mask, start).tolist() == [-1, 0, 0, -1, 3, 4, -1, 6]
    assert previous_rows(np.zeros(0, bool), np.zeros(0, np.intp)).tolist() == []


def test_descending_order_breaks_ties_as_pandas():
    rng = np.random.default_rng(0)
    a = np.abs(rng.integers(-3, 4, size=(40, 33))).astype(float)
    got = descending_order(a)
    for row, order in zip(a, got, strict=True):
        want = pd.Series(row).sort_values(ascending=False).index.to_numpy()
        np.testing.assert_array_equal(order, want)


def test_points_of_more_rows_than_one_model_chunk_equal_them_in_parts(loaded, gbm_model):
    """A competing-risk model combines causes in chunks of rows: moving each row's log
    hazard must still meet its own row however many rows are scored at once."""
    from analytics.explain.points import ROWS, base_risk
    from analytics.models.explanation import Explanation

    _m, cohort = loaded
    model = gbm_model.model
    assert len(model.estimators_) > 1, "the model has a competing cause"
    t = patient_trajectories(gbm_model, cohort.visits, sorted(set(cohort.visits["patient"]))[:3])
    matrix = pd.concat([x.matrix for x in t], ignore_index=True)
    expl = Explanation(*(np.concatenate([getattr(x.explanation, f) for x in t])
                         for f in ("values", "base_values", "output")),
                       matrix, t[0].explanation.scale)
    k = -(-(2 * ROWS + 7) // len(matrix))  # > two chunks of rows
    big = pd.concat([matrix] * k, ignore_index=True)
    big_expl = Explanation(np.tile(expl.values, (k, 1)), np.tile(expl.base_values, k),
                           np.tile(expl.output, k), big, expl.scale)
    once = base_risk(model, big, big_expl, 3.0)
    parts = base_risk(model, matrix, expl, 3.0)
    np.testing.assert_allclose(once, np.tile(parts, k), rtol=1e-12, atol=1e-15)


def test_a_patient_without_visits_is_named(loaded):
    model, cohort = loaded
    first = sorted(set(cohort.visits["patient"]))[0]
    with pytest.raises(ModelError, match="patient 'HT-NOBODY': no visits"):
        patient_trajectories(model, cohort.visits, [first, "HT-NOBODY"])


def _dumped(results) -> list[str]:
    """Each patient's JSON as ``hepatrack predict --all --json`` writes it."""
    return [json.dumps(x, default=str, allow_nan=False) for x in results]


@pytest.mark.parametrize(("which", "horizon", "at"), [("active", None, None),
                                                      ("active", 2.0, 1.5),
                                                      ("gbm", 3.0, 0.7)])
def test_cohort_json_is_byte_for_byte_the_json_of_each_patients_trajectory(loaded, gbm_model, which,
                                                                    horizon, at):
    model, cohort = loaded
    model = gbm_model if which == "gbm" else model
    patients = sorted(set(cohort.visits["patient"]))[:30]
    cohort_json = patient_trajectories_json(model, cohort.visits, patients, horizon, at)
    split = [t.to_json() for t in patient_trajectories(model, cohort.visits, patients,
                                                       horizon, at)]
    assert any(r["change"] is not None for res in split for r in res["trajectory"])
    assert _dumped(cohort_json) == _dumped(split)
    # scored alone, the model sums in another order: equal to rounding
    alone = [patient_trajectory(model, cohort.visits, p, horizon, at).to_json()
             for p in patients]
    for got, want in zip(cohort_json, alone, strict=True):
        assert_same(got, want, want["patient"])
    if at is not None:
        assert all(res["at"]["time"] == at for res in cohort_json)


@pytest.mark.parametrize("which", ["active", "gbm"])
def test_cohort_json_equals_alone_for_one_visit_missing_lab_and_scans(loaded, gbm_model, which):
    model, cohort = loaded
    model = gbm_model if which == "gbm" else model
    imaging = [p for p in sorted(set(cohort.visits["patient"]))
               if cohort.visits.loc[cohort.visits["patient"] == p, "series_uid"].notna().any()]
    visits, patients, _gap, _lab = _edge_visits(model, cohort, imaging)
    cohort_json = patient_trajectories_json(model, visits, patients)
    split = [t.to_json() for t in patient_trajectories(model, visits, patients)]
    assert _dumped(cohort_json) == _dumped(split)
    for got, want in zip(cohort_json, [patient_trajectory(model, visits, p).to_json()
                                       for p in patients], strict=True):
        assert_same(got, want, want["patient"])
    one = cohort_json[patients.index("HT-ONE-VISIT")]["trajectory"]
    assert len(one) == 1 and one[0]["change"] is None  # not since the previous patient's visit
    assert patient_trajectories_json(model, visits, []) == []


def test_a_patient_without_visits_is_named_by_the_cohort_json(loaded):
    model, cohort = loaded
    first = sorted(set(cohort.visits["patient"]))[0]
    with pytest.raises(ModelError, match="patient 'HT-NOBODY': no visits"):
        patient_trajectories_json(model, cohort.visits, [first, "HT-NOBODY"])


def test_a_time_between_visits_is_dated_from_the_nearest_visit_in_whole_days():
    visits = pd.DataFrame({"time": [0.0, 1.0, 2.0],
                           "date": pd.to_datetime(["2020-01-01 08:30", "2021-01-01 00:00", None])})
    # 0.5 y is as near to both visits: the first; 0.5 * 365.25 = 182.625 -> 183 days
    # (2020 is a leap year: 1 July is day 182 after 1 January); 1.9 y: 0.9 * 365.25 =
    # 328.725 -> 329 days after 2021-01-01; the undated visit at 2.0 y dates nothing
    assert _dates_at(visits, [0.0, 0.5, 1.0, 1.9]) == ["2020-01-01", "2020-07-02",
                                                        "2021-01-01", "2021-11-26"]
    assert _dates_at(visits.assign(date=pd.NaT), [0.5]) == [None]
    assert _dates_at(visits.drop(columns="date"), [0.5]) == [None]
    # dates as text are read as dates
    text = visits.assign(date=["2020-01-01", "2021-01-01", None])
    assert _dates_at(text, [0.5]) == ["2020-07-02"]
