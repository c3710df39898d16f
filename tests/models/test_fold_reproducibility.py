"""Two homes holding the same cohort put every patient in the same fold and report the
same figures, whatever pseudonyms their secrets give (analytics/models/patient_order.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pandas as pd
import pytest

from analytics.cli import main
from analytics.cohort_types import CohortTable
from analytics.models.crossval import compare_imaging, cross_validate, oof_predictions
from analytics.models.endpoint import resolve_events
from analytics.models.landmark import build_landmark_data
from analytics.models.patient_order import patient_order_keys
from tests.models.imaging_compare_sim import IMAGING, SETTINGS, simulate_imaging_cohort

SMALL = dataclasses.replace(SETTINGS, n_bootstrap=20)


def _renamed(cohort: CohortTable, salt: str) -> tuple[CohortTable, dict[str, str]]:
    """The same cohort under other pseudonyms (a keyed hash, as another home's secret
    would give), rows sorted by the new names as the store returns them."""
    names = {p: "HT-" + hashlib.sha256((salt + p).encode()).hexdigest()[:16].upper()
             for p in cohort.outcomes["patient"]}
    visits = cohort.visits.assign(patient=cohort.visits["patient"].map(names)).sort_values(
        ["patient", "time"], kind="stable", ignore_index=True)
    outcomes = cohort.outcomes.assign(patient=cohort.outcomes["patient"].map(names)
                                      ).sort_values("patient", ignore_index=True)
    return dataclasses.replace(cohort, visits=visits, outcomes=outcomes), names


def _data(cohort):
    return build_landmark_data(cohort, resolve_events(cohort.outcomes, None),
                               SMALL.landmark_settings())


@pytest.fixture(scope="module")
def two_homes():
    cohort, _truth = simulate_imaging_cohort(n_patients=150, seed=3)
    a, names_a = _renamed(cohort, "home-a")
    b, names_b = _renamed(cohort, "home-b")
    return cohort, (a, names_a), (b, names_b)


def test_the_order_key_reads_the_record_not_the_pseudonym(two_homes):
    cohort, (a, names_a), (b, names_b) = two_homes
    ka = patient_order_keys(a.visits, a.outcomes)
    kb = patient_order_keys(b.visits, b.outcomes)
    for p in cohort.outcomes["patient"]:
        assert ka[names_a[p]] == kb[names_b[p]]
    assert ka.nunique() == len(ka) == 150
    # a record that changes (one lab value) changes its key
    v = a.visits.copy()
    row = v.index[v["patient"] == names_a[cohort.outcomes["patient"].iloc[0]]][0]
    v.loc[row, "bilirubin_mg_dl"] = v.loc[row, "bilirubin_mg_dl"] + 0.1
    changed = patient_order_keys(v, a.outcomes)
    assert (changed != ka).sum() == 1


def test_two_homes_deal_every_patient_into_the_same_fold(two_homes):
    _cohort, (a, names_a), (b, names_b) = two_homes
    assert set(names_a.values()).isdisjoint(names_b.values())
    fa = oof_predictions(_data(a), SMALL)
    fb = oof_predictions(_data(b), SMALL)
    back_a = {v: k for k, v in names_a.items()}
    back_b = {v: k for k, v in names_b.items()}
    for ra, rb in zip(fa, fb, strict=True):
        fold_a = ra.groupby(ra["patient"].map(back_a))["fold"].first()
        fold_b = rb.groupby(rb["patient"].map(back_b))["fold"].first()
        pd.testing.assert_series_equal(fold_a, fold_b)
        assert fold_a.nunique() == SMALL.folds
        # and every out-of-fold risk is the same
        pd.testing.assert_series_equal(ra["risk_1"].reset_index(drop=True),
                                       rb["risk_1"].reset_index(drop=True),
                                       check_exact=False, rtol=1e-9)


def test_two_homes_report_the_same_figures_and_intervals(two_homes):
    _cohort, (a, _na), (b, _nb) = two_homes
    res = []
    for c in (a, b):
        data = _data(c)
        out = cross_validate(data, SMALL)
        frames = oof_predictions(data, SMALL)
        out["imaging"] = compare_imaging(data, frames, SMALL)
        res.append(json.loads(json.dumps(out, default=str)))
    assert res[0]["imaging"]["status"] == "compared"
    assert _close(res[0], res[1])


def _close(x, y) -> bool:
    """Nested JSON values equal, numbers to a relative 1e-9."""
    if isinstance(x, dict):
        assert x.keys() == y.keys()
        return all(_close(x[k], y[k]) for k in x)
    if isinstance(x, list):
        assert len(x) == len(y)
        return all(_close(a, b) for a, b in zip(x, y, strict=True))
    if isinstance(x, float):
        assert x == pytest.approx(y, rel=1e-9, abs=1e-12, nan_ok=True)
        return True
    assert x == y
    return True


def test_two_homes_built_from_the_same_csvs_train_to_the_same_figures(tmp_path, capsys):
    """End to end: ``import-cohort`` into two homes (two site secrets, two sets of
    pseudonyms), ``train --json`` in each: the same C-index, td-AUC, intervals, clinical
    baselines and imaging comparison."""
    cohort, _truth = simulate_imaging_cohort(n_patients=120, seed=0)
    v = cohort.visits.rename(columns={"patient": "patient_id"})
    v[["patient_id", "time", "bilirubin_mg_dl", "albumin_g_dl", "age_years", "sex",
       IMAGING]].to_csv(tmp_path / "visits.csv", index=False)
    cohort.outcomes.rename(columns={"patient": "patient_id", "duration": "time"}).to_csv(
        tmp_path / "outcomes.csv", index=False)
    outs = []
    for name in ("a", "b"):
        home = str(tmp_path / name)
        assert main(["--home", home, "import-cohort", "--visits", str(tmp_path / "visits.csv"),
                     "--outcomes", str(tmp_path / "outcomes.csv")]) == 0
        capsys.readouterr()
        assert main(["--home", home, "train", "--cv", "3", "--repeats", "2", "--bootstrap",
                     "20", "--json"]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    a, b = outs
    assert (tmp_path / "a" / "site_secret.key").read_bytes() != \
        (tmp_path / "b" / "site_secret.key").read_bytes()
    for key in ("cv", "baselines", "imaging_comparison"):
        assert _close(a[key], b[key]), key
    assert a["cv"]["c_index"] > 0.5
