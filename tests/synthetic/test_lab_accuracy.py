"""The generator's labs are as accurate as published, and its spleen as telling.

FIB-4 separates advanced fibrosis (>= F3) in biopsied NAFLD with an AUROC of 0.76 (Han et
al., Gut Liver 2022;16:952-63); the generator's lab response spread is calibrated to it
(:mod:`analytics.synthetic.labs`). Visit noise is the published within-subject
biological variation (Ricos et al. 1999). The spleen enlarges with the portal pressure,
which raises the hazards, so a larger spleen goes with a higher true hazard, also among
patients at the same stage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from analytics.synthetic.labs import (
    PUBLISHED_FIB4_AUROC_F3,
    WITHIN_SUBJECT_CV,
    LabBaseline,
    LabResponse,
    labs_at,
)

#: half-width of the accepted band around the published AUROC: its 95 % interval in the
#: meta-analysis is of this order, and ~2 standard errors of an AUROC on 2,000 patients
FIB4_BAND = 0.04


def _first_visits(manifest) -> pd.DataFrame:
    """Each patient's first visit: latent stage, age and labs (rows with a lab missing
    dropped)."""
    truth = manifest.truth()
    first = pd.DataFrame([{"patient_id": p["patient_id"], "date": p["visits"][0]["date"],
                           "stage": p["visits"][0]["latent_stage"],
                           "portal_pressure_z": p["portal_pressure_z"]}
                          for p in truth["patients"]])
    labs = pd.read_csv(manifest.labs_csv)
    return first.merge(labs, on=["patient_id", "date"]).dropna(
        subset=["ast_u_l", "alt_u_l", "platelets_10e9_l"])


def test_first_visit_fib4_separates_advanced_fibrosis_as_published(labs_only):
    v = _first_visits(labs_only)
    fib4 = v["age_years"] * v["ast_u_l"] / (v["platelets_10e9_l"] * np.sqrt(v["alt_u_l"]))
    advanced = v["stage"] >= 3.0
    assert 300 < advanced.sum() < len(v) - 300
    auroc = roc_auc_score(advanced, fib4)
    assert auroc == pytest.approx(PUBLISHED_FIB4_AUROC_F3, abs=FIB4_BAND)
    # the platelet count alone no longer separates advanced fibrosis almost perfectly
    assert roc_auc_score(advanced, -v["platelets_10e9_l"]) < 0.86


@pytest.mark.parametrize(("lab", "key"), [
    ("platelets_10e9_l", "platelets"), ("ast_u_l", "ast"), ("alt_u_l", "alt"),
    ("bilirubin_mg_dl", "bilirubin"), ("creatinine_mg_dl", "creatinine")])
def test_visit_noise_is_the_published_within_subject_variation(lab, key):
    """At a fixed stage and response, the log of a lab spreads with the published CVI
    (reporting precision adds a little: bilirubin is reported to 0.1 mg/dL)."""
    base = LabBaseline(platelets=250.0, bilirubin=2.0, albumin=4.3, inr=1.0, alt=60.0,
                       ast=60.0, creatinine=1.5, sodium=140.0)
    rng = np.random.default_rng(3)
    x = np.log([labs_at(1.0, base, rng)[lab] for _ in range(4000)])
    assert x.std() == pytest.approx(WITHIN_SUBJECT_CV[key], rel=0.08)


def test_a_patient_lab_response_scales_the_stage_effect_only():
    """Platelets fall 0.6 x response at F4 (capped at 90 %); at stage 0 nothing moves.
    Counts are reported as integers, so the expected values carry 1.5 of rounding."""
    base = LabBaseline.draw(np.random.default_rng(0), "F")
    typical = labs_at(4.0, base, np.random.default_rng(1))
    weak = labs_at(4.0, base, np.random.default_rng(1), LabResponse(platelets=0.5))
    strong = labs_at(4.0, base, np.random.default_rng(1), LabResponse(platelets=3.0))
    assert weak["platelets_10e9_l"] == pytest.approx(typical["platelets_10e9_l"] * 0.7 / 0.4,
                                                     abs=1.5)
    assert strong["platelets_10e9_l"] == pytest.approx(typical["platelets_10e9_l"] * 0.1 / 0.4,
                                                       abs=1.5)
    healthy = labs_at(0.0, base, np.random.default_rng(1))
    assert labs_at(0.0, base, np.random.default_rng(1), LabResponse(3.0, 3.0, 3.0)) == healthy


def test_spleen_volume_rises_with_the_true_hazard_also_at_one_stage(labs_only):
    """First imported scan: spleen volume against the true log hazard of decompensation
    (Spearman), over all scanned patients and among those at stage 3-4, where the stage
    explains little and the portal pressure (which the labs do not see) the rest."""
    rows = []
    for p in labs_only.truth()["patients"]:
        scan = next((v for v in p["visits"] if "measurements" in v), None)
        if scan is not None:
            rows.append({"spleen": scan["measurements"]["spleen_volume_ml"],
                         "hazard": scan["true_log_hazard"], "stage": scan["latent_stage"],
                         "z": p["portal_pressure_z"]})
    df = pd.DataFrame(rows)
    assert len(df) > 500
    assert df["spleen"].corr(df["hazard"], method="spearman") > 0.5
    late = df[df["stage"] >= 3.0]
    assert len(late) > 150
    assert late["spleen"].corr(late["hazard"], method="spearman") > 0.3
    assert late["spleen"].corr(late["z"], method="spearman") > 0.3
