"""A visit without a score says in one plain sentence what is missing and what to add; the
imaging-only note says whether the model can score a scan without labs."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from analytics.models.assessability import (
    imaging_only_note,
    plain_reason,
    required_inputs,
)
from analytics.models.domain import DomainFinding, TrainingDomain
from analytics.models.history_spec import FeatureSpec

SPEC = FeatureSpec(numeric=["bilirubin_mg_dl", "albumin_g_dl", "inr", "age_years",
                            "spleen_volume_ml"],
                   categorical=["sex"], low_is_worse={"albumin_g_dl": True},
                   imaging=["spleen_volume_ml"])


def _training_rows() -> pd.DataFrame:
    n = 20
    rows = pd.DataFrame({c: np.linspace(1.0, 3.0, n) for c in SPEC.columns})
    rows["sex"] = ["F", "M"] * (n // 2)
    for c in SPEC.columns:  # imaging history: missing before a first scan
        if c.startswith("spleen_volume_ml"):
            rows.loc[: n // 2, c] = np.nan
    rows["modality"] = ["CT"] * n
    rows["contrast_phase"] = ["portal_venous"] * n
    return rows


@pytest.fixture(scope="module")
def domain() -> TrainingDomain:
    return TrainingDomain.from_training(_training_rows(), SPEC)


def test_missing_labs_fold_into_their_clinical_labels_in_one_sentence(domain):
    row = _training_rows().iloc[[-1]].copy()
    for c in ("bilirubin_mg_dl", "bilirubin_mg_dl_slope", "bilirubin_mg_dl_worst",
              "albumin_g_dl", "albumin_g_dl_worst", "inr", "inr_worst"):
        row[c] = np.nan
    (found,) = domain.findings(row)
    assert {f.kind for f in found} == {"missing"}
    assert domain.check(row)[0] == "; ".join(f.text for f in found)  # the CLI's wording
    text = plain_reason(found, SPEC)
    assert text == ("No score for this visit: Bilirubin, Albumin and INR are not on record; "
                    "add them (measured on or before this visit, or up to 90 days after a "
                    "scan).")


def test_missing_age_and_sex_ask_for_the_patients_details(domain):
    row = _training_rows().iloc[[-1]].copy()
    row[["age_years", "sex"]] = np.nan
    (found,) = domain.findings(row)
    assert plain_reason(found, SPEC) == ("No score for this visit: the patient's age and sex "
                                         "are not on record; add them.")
    row = _training_rows().iloc[[-1]].copy()
    row["inr"] = np.nan
    row["sex"] = np.nan
    (found,) = domain.findings(row)
    assert plain_reason(found, SPEC, window_days=30) == (
        "No score for this visit: INR is not on record; add it (measured on or before this "
        "visit, or up to 30 days after a scan) and the patient's sex.")


def test_values_beyond_training_and_unseen_scans_are_named_with_their_units(domain):
    row = _training_rows().iloc[[-1]].copy()
    row["bilirubin_mg_dl"] = 9.0  # range 1-3 mg/dL
    row["bilirubin_mg_dl_worst"] = 9.0  # the same lab: said once
    row["modality"] = "MR"
    (found,) = domain.findings(row)
    assert plain_reason(found, SPEC) == (
        "No score for this visit: Bilirubin 9 mg/dL is outside the values the model was "
        "trained on (1 to 3 mg/dL); the model was not trained on MR scans.")


def test_an_assessable_visit_has_no_reason(domain):
    (found,) = domain.findings(_training_rows().iloc[[-1]])
    assert found == [] and plain_reason(found, SPEC) is None


def test_the_imaging_only_note_names_what_the_model_needs_and_what_imaging_adds(domain):
    model = SimpleNamespace(spec_=SPEC, domain_=domain)
    # slopes exist without a measurement (0 before two values): never asked for
    assert required_inputs(model) == ["bilirubin_mg_dl", "albumin_g_dl", "inr", "age_years",
                                      "sex"]
    assert imaging_only_note(model) == (
        "No imaging-only score: this model was trained with Bilirubin, Albumin and INR at "
        "every visit and has no version without them; once they are added, the scan's "
        "Spleen volume enters the score.")
    no_labs = SimpleNamespace(spec_=SPEC, domain_=TrainingDomain(
        ranges={}, required=["age_years", "sex", "spleen_volume_ml", "n_visits"]))
    assert imaging_only_note(no_labs).startswith("This model scores a scan from its imaging")


def test_a_finding_keeps_the_wording_of_the_command_line():
    f = DomainFinding("level", "sex", "Sex (sex) 'X' not seen in training (levels: F, M)",
                      value="X")
    assert plain_reason([f], SPEC) == ("No score for this visit: Sex X never occurred in the "
                                       "training data.")
