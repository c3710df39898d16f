"""The demo cohort's transient elastography is as accurate and as repeatable as
published, and follows the clinic's pathway.

Liver stiffness separates >= F3 with an AUROC of 0.80 (Eddowes et al., Gastroenterology
2019) to 0.85 (Mozes et al., Gut 2022) and cirrhosis with 0.89 (Eddowes 2019); two
examinations of one patient agree with an ICC of 0.98 (Fraquelli et al., Gut 2007); CAP
separates >= S2 with 0.754 in NAFLD (Petroff et al., Lancet Gastroenterol Hepatol 2021).
The generator's spreads are calibrated to those figures
(:mod:`analytics.synthetic.elastography`); these tests check them on a demo-sized cohort.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from analytics.synthetic import elastography as E
from analytics.synthetic.disease import PatientDisease, imaging_phenotype

#: half-width of the accepted band around a published AUROC (as the labs' FIB-4 band:
#: ~2 standard errors on the demo cohort and of the order of the published intervals)
AUROC_BAND = 0.04
#: sampling error of a biopsy reading, SD in stages (:mod:`analytics.synthetic.labs`)
BIOPSY_SD = 0.29


@pytest.fixture(scope="module")
def visits(labs_only) -> pd.DataFrame:
    """Every visit of the labs-only demo cohort: labs.csv joined to the truth (stage,
    fat fraction, the examination as drawn, failed ones included)."""
    truth = labs_only.truth()
    rows = []
    for p in truth["patients"]:
        d = PatientDisease(p["stage0"], p["progression_per_year"], p["fat_fraction_max_pct"],
                           p["healthy_liver_hu"], p["spleen_hu_unenhanced"],
                           p["age_at_baseline_years"], {})
        for v in p["visits"]:
            exam = v.get("elastography")
            rows.append({"patient_id": p["patient_id"], "date": v["date"],
                         "time_years": v["time_years"], "stage": v["latent_stage"],
                         "fat_pct": imaging_phenotype(v["latent_stage"], d).fat_fraction_pct,
                         "examined": exam is not None,
                         "failed": exam is not None and exam["lsm_kpa"] is None,
                         "referred": p["vcte_referred"], "lsm_offset": p["lsm_offset"],
                         "truth_bmi": p["bmi_kg_m2"], "truth_diabetes": p["diabetes"]})
    labs = pd.read_csv(labs_only.labs_csv)
    out = pd.DataFrame(rows).merge(labs, on=["patient_id", "date"], validate="1:1")
    return out.sort_values(["patient_id", "time_years"]).reset_index(drop=True)


def _first_valid(visits: pd.DataFrame) -> pd.DataFrame:
    return visits[visits["lsm_kpa"].notna()].groupby("patient_id").head(1)


def test_liver_stiffness_separates_advanced_fibrosis_and_cirrhosis_as_published(visits):
    first = _first_valid(visits)
    reading = first["stage"] + np.random.default_rng(17).normal(0.0, BIOPSY_SD, len(first))
    advanced = reading >= 3.0
    assert 250 < advanced.sum() < len(first) - 250
    assert roc_auc_score(advanced, first["lsm_kpa"]) == pytest.approx(
        E.PUBLISHED_LSM_AUROC_F3, abs=AUROC_BAND)
    exams = visits[visits["lsm_kpa"].notna()]
    cirrhosis = exams["stage"] >= 4.0 - 1e-9
    assert cirrhosis.sum() > 300
    assert roc_auc_score(cirrhosis, exams["lsm_kpa"]) == pytest.approx(
        E.PUBLISHED_LSM_AUROC_F4, abs=AUROC_BAND)


def test_two_examinations_of_one_patient_agree_with_the_published_icc(visits):
    """Each first examination repeated by a second operator (same visit, fresh error):
    one-way ICC of the log stiffness over the pairs."""
    first = _first_valid(visits)
    rng = np.random.default_rng(5)
    healthy = PatientDisease(0.0, 0.0, 20.0, 58.0, 47.0, 60.0, {})
    pairs = np.array([[np.log(E.examine(s, healthy, E.ElastographyTraits(30.0, 0, o, True),
                                        rng)["lsm_kpa"]) for _ in range(2)]
                      for s, o in zip(first["stage"], first["lsm_offset"], strict=True)])
    means = pairs.mean(axis=1)
    msb = 2.0 * means.var(ddof=1)
    msw = ((pairs - means[:, None]) ** 2).sum() / len(pairs)
    assert (msb - msw) / (msb + msw) == pytest.approx(E.PUBLISHED_LSM_ICC, abs=0.01)


def test_cap_separates_moderate_steatosis_as_published_in_nafld(visits):
    first = _first_valid(visits)
    moderate = first["fat_pct"] >= E.PDFF_GRADE_PCT[1]
    assert 200 < moderate.sum() < len(first) - 200
    assert roc_auc_score(moderate, first["cap_db_m"]) == pytest.approx(
        E.PUBLISHED_CAP_AUROC_S2, abs=AUROC_BAND)
    assert first["cap_db_m"].between(*E.CAP_RANGE_DB_M).all()
    assert visits["lsm_kpa"].dropna().between(*E.LSM_RANGE_KPA).all()


def test_no_examination_at_a_visit_whose_fib4_is_below_the_referral_cut_off(visits):
    v = visits.dropna(subset=["ast_u_l", "alt_u_l", "platelets_10e9_l"])
    fib4 = v["age_years"] * v["ast_u_l"] / (v["platelets_10e9_l"] * np.sqrt(v["alt_u_l"]))
    examined = v["lsm_kpa"].notna()
    assert examined.sum() > 2000
    assert (fib4[examined] >= E.FIB4_REFERRAL).all()
    # stiffness and CAP come from one examination: both or neither
    assert (visits["lsm_kpa"].notna() == visits["cap_db_m"].notna()).all()
    assert not visits.loc[visits["failed"], "lsm_kpa"].notna().any()


def test_examinations_repeat_after_one_to_three_years_by_the_last_stiffness(visits):
    exams = visits[visits["examined"]]
    checked = 0
    for _, g in exams.groupby("patient_id"):
        t = g["time_years"].to_numpy()
        last = g["lsm_kpa"].to_numpy()
        for k in range(1, len(g)):
            prev = None if np.isnan(last[k - 1]) else float(last[k - 1])
            assert t[k] - t[k - 1] >= E.repeat_interval_years(prev) - 1e-6
            checked += 1
    assert checked > 1000
    assert E.repeat_interval_years(None) == 1.0
    assert [E.repeat_interval_years(x) for x in (5.0, 7.9, 8.0, 11.9, 12.0, 30.0)] == [
        3.0, 3.0, 2.0, 2.0, 1.0, 1.0]


def test_some_patients_are_never_examined_and_some_examinations_fail(visits):
    per_patient = visits.groupby("patient_id").agg(examined=("examined", "any"),
                                                   referred=("referred", "first"))
    assert not per_patient.loc[~per_patient["referred"], "examined"].any()
    assert per_patient["referred"].mean() == pytest.approx(1.0 - E.NEVER_REFERRED, abs=0.02)
    # patients whose FIB-4 never reaches 1.3 are never examined either
    assert 0.55 < per_patient["examined"].mean() < 0.85
    exams = visits[visits["examined"]]
    assert exams["failed"].mean() == pytest.approx(E.FAILED_EXAMINATION, abs=0.02)


def test_every_visit_carries_the_patients_bmi_and_diabetes_at_nafld_clinic_prevalences(visits):
    assert visits[["bmi_kg_m2", "diabetes"]].notna().all().all()
    assert (visits["bmi_kg_m2"] == visits["truth_bmi"]).all()
    assert (visits["diabetes"] == visits["truth_diabetes"]).all()
    patients = visits.groupby("patient_id").first()
    assert set(patients["diabetes"]) == {0, 1}
    # 33 % with type 2 diabetes, median BMI 30 (Mozes et al. 2022)
    assert patients["diabetes"].mean() == pytest.approx(0.33, abs=0.03)
    assert patients["bmi_kg_m2"].median() == pytest.approx(30.0, abs=0.6)
    advanced = patients["stage"] >= 3.0
    assert patients.loc[advanced, "diabetes"].mean() > patients.loc[~advanced,
                                                                    "diabetes"].mean()


def test_typical_stiffness_passes_through_the_stage_knots():
    assert [round(E.typical_lsm_kpa(s), 6) for s in E.LSM_STAGE_KNOTS] == list(
        E.LSM_STAGE_KPA)
    assert E.typical_lsm_kpa(2.5) == pytest.approx(np.sqrt(8.0 * 11.0))
