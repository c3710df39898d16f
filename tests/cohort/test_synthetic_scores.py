"""End to end: the synthetic cohort's elastography, BMI and diabetes go through the
import into the cohort table, and the fibrosis scores that need them are computed there
(FAST, Agile 3+, Agile 4, NAFLD fibrosis score, Baveno VII band) wherever their inputs
were measured."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analytics.cohort import build_cohort, import_cohort
from analytics.models.baselines import score_columns
from analytics.models.history_spec import feature_spec
from analytics.models.imaging_comparison import imaging_bases, is_imaging_column
from analytics.models.scores import CLINICAL_SCORES, available_scores, compute_scores
from analytics.synthetic.cohort import CohortConfig, generate_cohort

ELASTOGRAPHY_SCORES = ("fast", "agile_3plus", "agile_4", "nfs", "baveno_vii_lsm_band")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic_scores") / "cohort"
    return generate_cohort(out, CohortConfig(n_patients=60, imaging_patients=0, seed=11))


def test_imported_synthetic_cohort_computes_every_fibrosis_score_where_its_inputs_exist(
        synthetic, store):
    rep = import_cohort(store, synthetic.labs_csv, synthetic.outcomes_csv)
    assert rep.rejected == [] and rep.warnings == []
    visits = build_cohort(store).visits
    for col in ("lsm_kpa", "cap_db_m", "bmi_kg_m2", "diabetes"):
        assert col in visits.columns
    labs = pd.read_csv(synthetic.labs_csv)
    assert visits["lsm_kpa"].notna().sum() == labs["lsm_kpa"].notna().sum() > 20
    assert visits["diabetes"].notna().all() and visits["bmi_kg_m2"].notna().all()

    assert set(ELASTOGRAPHY_SCORES) <= set(available_scores(visits.columns))
    scores = compute_scores(visits, list(ELASTOGRAPHY_SCORES))
    for name in ELASTOGRAPHY_SCORES:
        needed = visits[list(CLINICAL_SCORES[name].required_columns)].notna().all(axis=1)
        assert needed.sum() > 20, name
        assert scores.loc[needed, name].notna().all(), name
        assert scores.loc[~needed, name].isna().all(), name
    # the validation's baselines see them too (from the same columns of landmark rows)
    assert set(ELASTOGRAPHY_SCORES) <= set(score_columns(visits).columns)


def test_fast_of_an_imported_examination_is_the_published_formula(synthetic, store):
    """FAST = e^x / (1 + e^x), x = -1.65 + 1.07 ln(LSM) + 2.66e-8 CAP^3 - 63.3 / AST
    (Newsome et al. 2020), by hand on one imported examination."""
    import_cohort(store, synthetic.labs_csv, synthetic.outcomes_csv)
    visits = build_cohort(store).visits
    row = visits.dropna(subset=["lsm_kpa", "cap_db_m", "ast_u_l"]).iloc[0]
    x = (-1.65 + 1.07 * math.log(row["lsm_kpa"]) + 2.66e-8 * row["cap_db_m"] ** 3
         - 63.3 / row["ast_u_l"])
    got = compute_scores(visits.loc[[row.name]], ["fast"])["fast"].iloc[0]
    assert got == pytest.approx(math.exp(x) / (1.0 + math.exp(x)), rel=1e-9)


def test_elastography_stays_in_the_model_without_imaging(synthetic, store):
    """Stiffness and CAP are clinical columns (a bedside measurement of the clinic's
    pathway, not a scan series): model features in both arms of "what imaging adds"."""
    import_cohort(store, synthetic.labs_csv, synthetic.outcomes_csv)
    cohort = build_cohort(store)
    spec = feature_spec(cohort)
    for col in ("lsm_kpa", "cap_db_m", "bmi_kg_m2"):
        assert cohort.feature_meta[col]["kind"] != "imaging"
        assert col in spec.numeric and col not in spec.imaging
        assert not is_imaging_column(col, spec)
    assert "diabetes" in (*spec.numeric, *spec.categorical)
    assert not {"lsm_kpa", "cap_db_m", "bmi_kg_m2", "diabetes"} & set(imaging_bases(spec))
