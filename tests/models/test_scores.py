"""Clinical scores against hand computations from each score's original definition.

Every expected value below is worked out step by step in the comments from the published
formula (natural logs unless log10 is written), and asserted to 1e-6.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analytics.models.scores import (
    CLINICAL_SCORES,
    albi,
    albi_grade,
    apri,
    compute_scores,
    fib4,
    mayo_pbc,
    meld,
    meld_na,
)

TOL = 1e-6


def frame(**cols) -> pd.DataFrame:
    """One row per list element; scalars are repeated on every row."""
    n = max((len(v) for v in cols.values() if isinstance(v, list)), default=1)
    return pd.DataFrame({k: v if isinstance(v, list) else [v] * n for k, v in cols.items()})


# ----------------------------------------------------------------------------- MELD
def test_meld_and_meld_na_worked_example():
    # Creatinine 2.7 mg/dL, bilirubin 1.5 mg/dL, INR 1.1, Na 135 mmol/L, no dialysis
    # (the example of the thecalculator.co OPTN MELD calculator page).
    # 0.957 ln 2.7 = 0.957 x 0.993251773 = 0.950541947
    # 0.378 ln 1.5 = 0.378 x 0.405465108 = 0.153265811
    # 1.120 ln 1.1 = 1.120 x 0.095310180 = 0.106747401
    # sum + 0.643 = 1.853555159 -> x10 = 18.53555159 -> OPTN: round to 1 decimal, x10 = 19
    df = frame(creatinine_mg_dl=2.7, bilirubin_mg_dl=1.5, inr=1.1, sodium_mmol_l=135.0)
    assert meld(df)[0] == 19
    assert meld(df, rounded=False)[0] == pytest.approx(18.53555159, abs=TOL)
    # MELD(i) = 19 > 11 -> 19 + 1.32 x (137-135) - 0.033 x 19 x 2 = 19 + 2.64 - 1.254
    # = 20.386 -> 20
    assert meld_na(df)[0] == 20
    # unrounded: 18.53555159 + 2.64 - 0.033 x 18.53555159 x 2 = 19.95220519
    assert meld_na(df, rounded=False)[0] == pytest.approx(19.95220519, abs=TOL)


def test_meld_lower_bounds_set_labs_below_one_to_one():
    # bilirubin 0.5, INR 0.9, creatinine 0.7 all become 1.0: ln 1 = 0 -> 10 x 0.643 = 6.43
    # -> 6; MELD(i) = 6 <= 11 so MELD-Na = MELD(i) whatever the sodium (140 -> 137 anyway)
    df = frame(creatinine_mg_dl=0.7, bilirubin_mg_dl=0.5, inr=0.9, sodium_mmol_l=140.0)
    assert meld(df)[0] == 6
    assert meld(df, rounded=False)[0] == pytest.approx(6.43, abs=TOL)
    assert meld_na(df)[0] == 6


@pytest.mark.parametrize("creatinine, dialysis", [
    (5.2, 0),       # above the cap: 4.0
    (1.0, 1),       # dialysis twice in the prior week: 4.0 whatever was measured
    (np.nan, "yes"),  # on dialysis, creatinine not recorded: still 4.0
], ids=["capped_at_4", "dialysis_sets_4", "dialysis_without_creatinine"])
def test_meld_creatinine_cap_and_dialysis(creatinine, dialysis):
    # creatinine 4.0, bilirubin 10, INR 2.5:
    # 0.957 ln 4 = 0.957 x 1.386294361 = 1.326683704
    # 0.378 ln 10 = 0.378 x 2.302585093 = 0.870377165
    # 1.120 ln 2.5 = 1.120 x 0.916290732 = 1.026245620
    # + 0.643 = 3.866306489 -> 38.66306489 -> 39
    df = frame(creatinine_mg_dl=creatinine, bilirubin_mg_dl=10.0, inr=2.5,
               sodium_mmol_l=120.0, dialysis=dialysis)
    assert meld(df, rounded=False)[0] == pytest.approx(38.66306489, abs=TOL)
    assert meld(df)[0] == 39
    # Na 120 -> bounded to 125, gap 12: 39 + 1.32 x 12 - 0.033 x 39 x 12
    # = 39 + 15.84 - 15.444 = 39.396 -> 39
    assert meld_na(df)[0] == 39


def test_meld_is_capped_at_40():
    # creatinine 4, bilirubin 30, INR 4:
    # 1.326683704 + 0.378 x 3.401197382 + 1.120 x 1.386294361 + 0.643
    # = 1.326683704 + 1.285652610 + 1.552649684 + 0.643 = 4.807985998 -> 48.08 -> cap 40
    df = frame(creatinine_mg_dl=4.0, bilirubin_mg_dl=30.0, inr=4.0, sodium_mmol_l=130.0)
    assert meld(df, rounded=False)[0] == 40
    assert meld(df)[0] == 40
    assert meld_na(df)[0] == 40


def test_meld_na_applies_only_above_meld_11():
    # creatinine 1.6, bilirubin 1, INR 1: 10 x (0.957 x 0.470003629 + 0.643) = 10.9279 -> 11
    # (not > 11: sodium not applied); creatinine 1.7: 10 x (0.957 x 0.530628251 + 0.643)
    # = 11.5081 -> 12 > 11: 12 + 1.32 x 7 - 0.033 x 12 x 7 = 12 + 9.24 - 2.772 = 18.468 -> 18
    df = frame(creatinine_mg_dl=[1.6, 1.7], bilirubin_mg_dl=1.0, inr=1.0, sodium_mmol_l=130.0)
    assert meld(df).tolist() == [11, 12]
    assert meld_na(df).tolist() == [11, 18]


def test_meld_sodium_bounds_137():
    # Na 150 -> 137: gap 0, MELD-Na = MELD(i) = 19 (worked example labs)
    df = frame(creatinine_mg_dl=2.7, bilirubin_mg_dl=1.5, inr=1.1, sodium_mmol_l=150.0)
    assert meld_na(df)[0] == 19


# ----------------------------------------------------------------------------- FIB-4, APRI
def test_fib4_hand_computed():
    # age 50, AST 40, ALT 36, platelets 200: 50 x 40 / (200 x sqrt 36) = 2000 / 1200
    df = frame(age_years=50.0, ast_u_l=40.0, alt_u_l=36.0, platelets_10e9_l=200.0)
    assert fib4(df)[0] == pytest.approx(2000 / 1200, abs=TOL)
    assert fib4(df)[0] == pytest.approx(1.666666667, abs=TOL)


def test_apri_hand_computed_and_site_uln():
    # AST 80, platelets 100: (80 / 40) / 100 x 100 = 2.0; with ULN 35: 80/35 = 2.285714286
    df = frame(ast_u_l=80.0, platelets_10e9_l=100.0)
    assert apri(df)[0] == pytest.approx(2.0, abs=TOL)
    assert apri(df, ast_uln_u_l=35.0)[0] == pytest.approx(2.285714286, abs=TOL)


def test_apri_rejects_a_non_positive_uln():
    with pytest.raises(ValueError, match="ast_uln_u_l must be a positive"):
        apri(frame(ast_u_l=80.0, platelets_10e9_l=100.0), ast_uln_u_l=0)


# ----------------------------------------------------------------------------- ALBI
def test_albi_unit_conversion_and_grades():
    # bilirubin 1.0 mg/dL = 17.1 umol/L, albumin 4.0 g/dL = 40 g/L:
    #   0.66 x log10 17.1 - 0.085 x 40 = 0.66 x 1.232996111 - 3.4 = -2.586222567 -> grade 2
    # bilirubin 0.5 mg/dL = 8.55 umol/L, albumin 4.5 g/dL = 45 g/L:
    #   0.66 x 0.931966115 - 3.825 = -3.209902364 -> grade 1 (<= -2.60)
    # bilirubin 3.0 mg/dL = 51.3 umol/L, albumin 2.8 g/dL = 28 g/L:
    #   0.66 x 1.710117365 - 2.38 = -1.251322539 -> grade 3 (> -1.39)
    df = frame(bilirubin_mg_dl=[1.0, 0.5, 3.0], albumin_g_dl=[4.0, 4.5, 2.8])
    np.testing.assert_allclose(albi(df), [-2.586222567, -3.209902364, -1.251322539],
                               atol=TOL)
    assert albi_grade(df).tolist() == [2.0, 1.0, 3.0]


def test_albi_grade_cut_points_are_inclusive():
    # choose bilirubin so that ALBI lands just on either side of -2.60 with albumin 40 g/L:
    # 0.66 log10(b) = 0.80 -> b = 10^(0.8/0.66) umol/L; a hair less is <= -2.60 -> grade 1
    b_exact = 10 ** (0.8 / 0.66) / 17.1
    df = frame(bilirubin_mg_dl=[b_exact * 0.999, b_exact * 1.001], albumin_g_dl=4.0)
    assert albi_grade(df).tolist() == [1.0, 2.0]


# ----------------------------------------------------------------------------- Mayo PBC
def test_mayo_pbc_hand_computed():
    # bilirubin 2.0 mg/dL, albumin 3.5 g/dL, age 55, PT 11.5 s, edema 0.5:
    #   0.871 ln 2   = 0.871 x 0.693147181 =  0.603731194
    #  -2.53 ln 3.5  = -2.53 x 1.252762968 = -3.169490309
    #   0.039 x 55   =  2.145
    #   2.38 ln 11.5 = 2.38 x 2.442347035  =  5.812785943
    #   0.859 x 0.5  =  0.4295
    #   R = 5.821526828
    df = frame(bilirubin_mg_dl=2.0, albumin_g_dl=3.5, age_years=55.0, prothrombin_s=11.5,
               edema=0.5)
    assert mayo_pbc(df)[0] == pytest.approx(5.821526828, abs=TOL)


def test_mayo_pbc_edema_defaults_to_zero():
    # same labs, edema column absent or missing: 5.821526828 - 0.4295 = 5.392026828
    labs = dict(bilirubin_mg_dl=2.0, albumin_g_dl=3.5, age_years=55.0, prothrombin_s=11.5)
    assert mayo_pbc(frame(**labs))[0] == pytest.approx(5.392026828, abs=TOL)
    assert mayo_pbc(frame(**labs, edema=np.nan))[0] == pytest.approx(5.392026828, abs=TOL)


# ----------------------------------------------------------------------------- missing data
@pytest.mark.parametrize("name", list(CLINICAL_SCORES))
def test_each_score_is_nan_when_a_required_lab_is_missing(name):
    full = frame(bilirubin_mg_dl=2.0, albumin_g_dl=3.5, inr=1.3, prothrombin_s=12.0,
                 creatinine_mg_dl=1.1, sodium_mmol_l=133.0, platelets_10e9_l=120.0,
                 ast_u_l=60.0, alt_u_l=45.0, age_years=58.0,
                 # inputs of the elastography and metabolic scores
                 lsm_kpa=14.0, cap_db_m=300.0, bmi_kg_m2=31.0, diabetes=1, sex="M")
    score = CLINICAL_SCORES[name]
    assert np.isfinite(score.fn(full)[0])
    for col in score.required_columns:
        missing = full.assign(**{col: np.nan})
        assert math.isnan(score.fn(missing)[0]), f"{name} without {col}"
        dropped = full.drop(columns=[col])
        assert math.isnan(score.fn(dropped)[0]), f"{name} with {col} absent"


@pytest.mark.parametrize("bad", [0.0, -1.0], ids=["zero", "negative"])
def test_non_positive_labs_give_nan_not_infinity(bad):
    df = frame(bilirubin_mg_dl=bad, albumin_g_dl=3.5, inr=1.2, creatinine_mg_dl=1.0,
               age_years=50.0, prothrombin_s=12.0, sodium_mmol_l=135.0)
    assert math.isnan(meld(df)[0])
    assert math.isnan(albi(df)[0])
    assert math.isnan(mayo_pbc(df)[0])
    assert math.isnan(fib4(frame(age_years=50.0, ast_u_l=40.0, alt_u_l=36.0,
                                 platelets_10e9_l=bad))[0])


def test_compute_scores_is_vectorised_and_aligned():
    df = pd.DataFrame({
        "creatinine_mg_dl": [2.7, np.nan], "bilirubin_mg_dl": [1.5, 1.0], "inr": [1.1, 1.0],
        "sodium_mmol_l": [135.0, 140.0], "albumin_g_dl": [np.nan, 4.0],
    }, index=[10, 20])
    out = compute_scores(df)
    assert list(out.columns) == list(CLINICAL_SCORES)
    assert list(out.index) == [10, 20]
    assert out.loc[10, "meld"] == 19 and math.isnan(out.loc[20, "meld"])
    assert math.isnan(out.loc[10, "albi"])
    assert out.loc[20, "albi"] == pytest.approx(-2.586222567, abs=TOL)
    assert out.dtypes.eq("float64").all()


def test_compute_scores_rejects_unknown_names():
    with pytest.raises(KeyError, match="unknown clinical score"):
        compute_scores(frame(inr=1.0), ["meld", "child_pugh"])


def test_child_pugh_points_and_class_at_the_published_cut_offs():
    from analytics.models.scores import child_pugh, child_pugh_class

    df = pd.DataFrame({
        # best in every part: 5 points; the upper edges of the 2-point bands (bilirubin 3,
        # albumin 2.8, INR 2.3) with mild ascites and grade 1-2 encephalopathy: 10; the
        # worst: 15; a missing clinical grade is never taken as "none"
        "bilirubin_mg_dl": [1.0, 3.0, 3.5, 1.0, 2.0],
        "albumin_g_dl": [3.6, 2.8, 2.7, 3.6, 3.5],
        "inr": [1.6, 2.3, 2.4, 1.0, 1.7],
        "ascites_grade": [0, 1, 2, None, 0],
        "encephalopathy_grade": [0, 1, 2, 0, 0],
    })
    points = child_pugh(df)
    assert points.iloc[:3].tolist() == [5.0, 10.0, 15.0]
    assert np.isnan(points.iloc[3])
    # bilirubin 2.0 (2) + albumin 3.5 (2) + INR 1.7 (2) + none (1) + none (1) = 8: class B
    assert points.iloc[4] == 8.0
    assert [child_pugh_class(p) for p in (5, 6, 7, 9, 10, 15)] == ["A", "A", "B", "B", "C",
                                                                   "C"]
    assert child_pugh_class(float("nan")) is None
    # without the grade columns at all, no score
    assert child_pugh(df.drop(columns=["ascites_grade"])).isna().all()
