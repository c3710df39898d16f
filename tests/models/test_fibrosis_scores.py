"""Elastography and metabolic scores against hand computations from their publications.

Every expected value is worked out step by step in the comments from the published
formula (natural logs), and asserted to 1e-6. Rows on either side of each published
cut-off are built by solving the formula for the one input that is varied.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analytics.cohort import cohort_from_frames
from analytics.models.fibrosis_scores import (
    AGILE_3PLUS_CUTOFFS,
    AGILE_4_CUTOFFS,
    BAVENO_VII_LSM_BANDS,
    FAST_CUTOFFS,
    NFS_CUTOFFS,
    agile_3plus,
    agile_4,
    baveno_vii_lsm_band,
    baveno_vii_lsm_category,
    fast,
    nfs,
    rule_zone,
)
from analytics.models.scores import CLINICAL_SCORES, available_scores, compute_scores

TOL = 1e-6
OUT, GREY, IN = -1.0, 0.0, 1.0


def frame(**cols) -> pd.DataFrame:
    """One row per list element; scalars are repeated on every row."""
    n = max((len(v) for v in cols.values() if isinstance(v, list)), default=1)
    return pd.DataFrame({k: v if isinstance(v, list) else [v] * n for k, v in cols.items()})


def logit(p: float) -> float:
    return math.log(p / (1 - p))


# ----------------------------------------------------------------------------- FAST
def test_fast_hand_computed():
    # FAST = e^x / (1 + e^x), x = -1.65 + 1.07 ln LSM + 2.66e-8 CAP^3 - 63.3 / AST
    # LSM 8, CAP 250, AST 40:
    #   1.07 ln 8 = 1.07 x 2.079441542 = 2.225002450
    #   2.66e-8 x 250^3 = 2.66e-8 x 15,625,000 = 0.415625
    #   63.3 / 40 = 1.5825
    #   x = -1.65 + 2.225002450 + 0.415625 - 1.5825 = -0.591872550
    #   FAST = 1 / (1 + e^0.591872550) = 1 / (1 + 1.807370...) = 0.356205320
    # LSM 5, CAP 220, AST 25:
    #   1.07 ln 5 = 1.07 x 1.609437912 = 1.722098566
    #   2.66e-8 x 220^3 = 2.66e-8 x 10,648,000 = 0.2832368
    #   63.3 / 25 = 2.532
    #   x = -1.65 + 1.722098566 + 0.2832368 - 2.532 = -2.176664634 -> FAST 0.101865672
    # LSM 15, CAP 330, AST 60:
    #   1.07 ln 15 = 1.07 x 2.708050201 = 2.897613715
    #   2.66e-8 x 330^3 = 2.66e-8 x 35,937,000 = 0.9559242
    #   63.3 / 60 = 1.055
    #   x = -1.65 + 2.897613715 + 0.9559242 - 1.055 = 1.148537915 -> FAST 0.759243760
    df = frame(lsm_kpa=[8.0, 5.0, 15.0], cap_db_m=[250.0, 220.0, 330.0],
               ast_u_l=[40.0, 25.0, 60.0])
    np.testing.assert_allclose(fast(df), [0.356205320, 0.101865672, 0.759243760], atol=TOL)
    # 0.356 is just above the rule-out cut-off 0.35: indeterminate; 0.10 out; 0.76 in
    assert rule_zone(fast(df), FAST_CUTOFFS).tolist() == [GREY, OUT, IN]


def test_fast_either_side_of_the_published_cut_offs():
    # CAP 250, AST 40: x = 1.07 ln LSM - 1.65 + 0.415625 - 1.5825 = 1.07 ln LSM - 2.816875,
    # so the LSM at which FAST = p is exp((logit(p) + 2.816875) / 1.07):
    # p = 0.35 -> 7.80 kPa, p = 0.67 -> 26.96 kPa
    at = [math.exp((logit(p) + 2.816875) / 1.07) for p in (0.35, 0.67)]
    df = frame(lsm_kpa=[at[0] * 0.99, at[0] * 1.01, at[1] * 0.99, at[1] * 1.01],
               cap_db_m=250.0, ast_u_l=40.0)
    score = fast(df)
    assert score[0] < 0.35 < score[1] and score[2] < 0.67 < score[3]
    assert rule_zone(score, FAST_CUTOFFS).tolist() == [OUT, GREY, GREY, IN]


# ----------------------------------------------------------------------------- Agile
AGILE_ROWS = dict(lsm_kpa=[12.0, 6.0], ast_u_l=[40.0, 30.0], alt_u_l=[50.0, 40.0],
                  platelets_10e9_l=[180.0, 250.0], diabetes=[1, 0], sex=["M", "F"],
                  age_years=[55.0, 45.0])


def test_agile_3plus_hand_computed():
    # x = -3.92368 + 2.29714 ln LSM - 0.00902 PLT - 0.98633 ALT/AST + 1.08636 DM
    #     - 0.38581 male + 0.03018 age;  Agile 3+ = 1 / (1 + e^-x)
    # Row 1 (man, diabetes, 55 y, LSM 12, AST 40, ALT 50, PLT 180):
    #   2.29714 ln 12 = 2.29714 x 2.484906650 = 5.708178461
    #   -0.00902 x 180 = -1.6236;  -0.98633 x 50/40 = -1.2329125
    #   +1.08636 (diabetes) - 0.38581 (male) + 0.03018 x 55 = +1.6599
    #   x = -3.92368 + 5.708178461 - 1.6236 - 1.2329125 + 1.08636 - 0.38581 + 1.6599
    #     = 1.288435961 -> 0.783882342 (>= 0.679: rule-in)
    # Row 2 (woman, no diabetes, 45 y, LSM 6, AST 30, ALT 40, PLT 250):
    #   2.29714 ln 6 = 2.29714 x 1.791759469 = 4.115922347
    #   -0.00902 x 250 = -2.255;  -0.98633 x 40/30 = -1.315106667;  0.03018 x 45 = 1.3581
    #   x = -3.92368 + 4.115922347 - 2.255 - 1.315106667 + 1.3581 = -2.019764320
    #     -> 0.117143363 (< 0.451: rule-out)
    df = frame(**AGILE_ROWS)
    np.testing.assert_allclose(agile_3plus(df), [0.783882342, 0.117143363], atol=TOL)
    assert rule_zone(agile_3plus(df), AGILE_3PLUS_CUTOFFS).tolist() == [IN, OUT]


def test_agile_4_hand_computed():
    # x = 7.50139 - 15.42498 / sqrt(LSM) - 0.01378 PLT - 1.41149 ALT/AST - 0.53281 male
    #     + 0.41741 DM;  Agile 4 = 1 / (1 + e^-x)
    # Row 1 (man, diabetes, LSM 12, AST 40, ALT 50, PLT 180):
    #   15.42498 / sqrt 12 = 15.42498 / 3.464101615 = 4.452808178
    #   -0.01378 x 180 = -2.4804;  -1.41149 x 50/40 = -1.7643625
    #   x = 7.50139 - 4.452808178 - 2.4804 - 1.7643625 - 0.53281 + 0.41741 = -1.311580678
    #     -> 0.212222460 (< 0.251: rule-out)
    # Row 3 (woman, diabetes, LSM 25, AST 60, ALT 40, PLT 110):
    #   15.42498 / 5 = 3.084996;  -0.01378 x 110 = -1.5158;  -1.41149 x 40/60 = -0.940993333
    #   x = 7.50139 - 3.084996 - 1.5158 - 0.940993333 + 0.41741 = 2.377010667
    #     -> 0.915057369 (>= 0.565: rule-in)
    df = frame(lsm_kpa=[12.0, 25.0], ast_u_l=[40.0, 60.0], alt_u_l=[50.0, 40.0],
               platelets_10e9_l=[180.0, 110.0], diabetes=[1, 1], sex=["M", "F"])
    np.testing.assert_allclose(agile_4(df), [0.212222460, 0.915057369], atol=TOL)
    assert rule_zone(agile_4(df), AGILE_4_CUTOFFS).tolist() == [OUT, IN]


def test_agile_scores_either_side_of_the_published_cut_offs():
    # Man with diabetes, 55 y, AST 40, ALT 50, PLT 180 (row 1 above), LSM varied.
    # Agile 3+: x = 2.29714 ln LSM + (-3.92368 - 1.6236 - 1.2329125 + 1.08636 - 0.38581
    #   + 1.6599) = 2.29714 ln LSM - 4.4197425 -> LSM = exp((logit(p) + 4.4197425) / 2.29714)
    #   p = 0.451 -> 6.29 kPa, p = 0.679 -> 9.49 kPa
    # Agile 4: x = 3.1414275 - 15.42498 / sqrt(LSM)  (7.50139 - 2.4804 - 1.7643625 - 0.53281
    #   + 0.41741) -> LSM = (15.42498 / (3.1414275 - logit(p)))^2
    #   p = 0.251 -> 13.27 kPa, p = 0.565 -> 28.68 kPa
    def rows(lsm: list[float]) -> pd.DataFrame:
        return frame(lsm_kpa=lsm, ast_u_l=40.0, alt_u_l=50.0, platelets_10e9_l=180.0,
                     diabetes=1, sex="M", age_years=55.0)

    a3 = [math.exp((logit(p) + 4.4197425) / 2.29714) for p in (0.451, 0.679)]
    s3 = agile_3plus(rows([a3[0] * 0.99, a3[0] * 1.01, a3[1] * 0.99, a3[1] * 1.01]))
    assert s3[0] < 0.451 < s3[1] and s3[2] < 0.679 < s3[3]
    assert rule_zone(s3, AGILE_3PLUS_CUTOFFS).tolist() == [OUT, GREY, GREY, IN]
    a4 = [(15.42498 / (3.1414275 - logit(p))) ** 2 for p in (0.251, 0.565)]
    s4 = agile_4(rows([a4[0] * 0.99, a4[0] * 1.01, a4[1] * 0.99, a4[1] * 1.01]))
    assert s4[0] < 0.251 < s4[1] and s4[2] < 0.565 < s4[3]
    assert rule_zone(s4, AGILE_4_CUTOFFS).tolist() == [OUT, GREY, GREY, IN]


def test_agile_sex_and_diabetes_codes_follow_the_publication():
    # Agile 4 row 1 as a woman: x = -1.311580678 + 0.53281 = -0.778770678 -> 0.314584894
    # and without diabetes: x = -1.311580678 - 0.41741 = -1.728990678 -> 0.150716729
    base = {k: v[0] for k, v in AGILE_ROWS.items()}
    woman = frame(**{**base, "sex": "female"})
    no_dm = frame(**{**base, "diabetes": "no"})
    assert agile_4(woman)[0] == pytest.approx(1 / (1 + math.exp(0.778770678)), abs=TOL)
    assert agile_4(no_dm)[0] == pytest.approx(1 / (1 + math.exp(1.728990678)), abs=TOL)
    # Agile 3+ row 1 as a woman: x = 1.288435961 + 0.38581 = 1.674245961
    assert agile_3plus(woman)[0] == pytest.approx(1 / (1 + math.exp(-1.674245961)),
                                                  abs=TOL)


# ----------------------------------------------------------------------------- NFS
def test_nfs_hand_computed():
    # NFS = -1.675 + 0.037 age + 0.094 BMI + 1.13 IFG/DM + 0.99 AST/ALT - 0.013 PLT
    #       - 0.66 albumin (g/dL)
    # 50 y, BMI 32, diabetes, AST 40, ALT 50, PLT 200, albumin 4.2 g/dL:
    #   -1.675 + 1.85 + 3.008 + 1.13 + 0.792 - 2.6 - 2.772 = -0.267  (indeterminate)
    # 38 y, BMI 26, no diabetes, AST 25, ALT 40, PLT 280, albumin 4.6:
    #   -1.675 + 1.406 + 2.444 + 0 + 0.61875 - 3.64 - 3.036 = -3.88225  (< -1.455: absent)
    # 66 y, BMI 35, diabetes, AST 60, ALT 40, PLT 110, albumin 3.4:
    #   -1.675 + 2.442 + 3.29 + 1.13 + 1.485 - 1.43 - 2.244 = 2.998  (> 0.676: present)
    df = frame(age_years=[50.0, 38.0, 66.0], bmi_kg_m2=[32.0, 26.0, 35.0],
               diabetes=[1, 0, 1], ast_u_l=[40.0, 25.0, 60.0], alt_u_l=[50.0, 40.0, 40.0],
               platelets_10e9_l=[200.0, 280.0, 110.0], albumin_g_dl=[4.2, 4.6, 3.4])
    np.testing.assert_allclose(nfs(df), [-0.267, -3.88225, 2.998], atol=TOL)
    assert rule_zone(nfs(df), NFS_CUTOFFS).tolist() == [GREY, OUT, IN]


def test_nfs_either_side_of_the_published_cut_offs():
    # first row above with platelets varied: NFS = 2.333 - 0.013 PLT
    # (-1.675 + 1.85 + 3.008 + 1.13 + 0.792 - 2.772 = 2.333), so NFS = c at
    # PLT = (2.333 - c) / 0.013: -1.455 -> 291.38, 0.676 -> 127.46 x 10^9/L
    at = [(2.333 - c) / 0.013 for c in (-1.455, 0.676)]
    df = frame(age_years=50.0, bmi_kg_m2=32.0, diabetes=1, ast_u_l=40.0, alt_u_l=50.0,
               albumin_g_dl=4.2,
               platelets_10e9_l=[at[0] * 1.01, at[0] * 0.99, at[1] * 1.01, at[1] * 0.99])
    score = nfs(df)
    assert score[0] < -1.455 < score[1] and score[2] < 0.676 < score[3]
    assert rule_zone(score, NFS_CUTOFFS).tolist() == [OUT, GREY, GREY, IN]


def test_nfs_albumin_in_g_per_l_is_converted_by_the_cohort_import():
    # the formula takes g/dL; a visits file with albumin_g_l = 42 is imported as
    # albumin_g_dl = 4.2, so NFS is the first row of test_nfs_hand_computed: -0.267
    visits = pd.DataFrame({"patient_id": ["A"], "time": [0.0], "age_years": [50.0],
                           "bmi_kg_m2": [32.0], "diabetes": ["yes"], "ast_u_l": [40.0],
                           "alt_u_l": [50.0], "platelets_10e9_l": [200.0],
                           "albumin_g_l": [42.0]})
    outcomes = pd.DataFrame({"patient_id": ["A"], "time": [2.0], "event": ["censored"]})
    cohort = cohort_from_frames(visits, outcomes, with_scores=True)
    assert cohort.visits["albumin_g_dl"][0] == pytest.approx(4.2)
    assert cohort.visits["nfs"][0] == pytest.approx(-0.267, abs=TOL)


# ----------------------------------------------------------------------------- cut-offs
@pytest.mark.parametrize("cutoffs, at_rule_out, at_rule_in", [
    (FAST_CUTOFFS, OUT, IN),          # <= 0.35 out, >= 0.67 in
    (AGILE_3PLUS_CUTOFFS, GREY, IN),  # < 0.451 out, >= 0.679 in
    (AGILE_4_CUTOFFS, GREY, IN),      # < 0.251 out, >= 0.565 in
    (NFS_CUTOFFS, GREY, GREY),        # < -1.455 absent, > 0.676 present
], ids=["fast", "agile_3plus", "agile_4", "nfs"])
def test_a_score_exactly_at_a_cut_off_lands_as_published(cutoffs, at_rule_out, at_rule_in):
    score = pd.Series([cutoffs.rule_out, cutoffs.rule_in, np.nan])
    zone = rule_zone(score, cutoffs)
    assert zone[0] == at_rule_out and zone[1] == at_rule_in and math.isnan(zone[2])


# ----------------------------------------------------------------------------- Baveno VII
def test_baveno_bands_at_and_around_the_cut_offs():
    # < 10 | 10-15 (15 included: "> 15 kPa highly suggestive", CSPH out at "<= 15") |
    # > 15 to < 20 | 20 to < 25 ("< 20 kPa" spares endoscopy) | >= 25 ("rule-in CSPH")
    lsm = [1.5, 9.99, 10.0, 14.99, 15.0, 15.01, 19.99, 20.0, 24.99, 25.0, 75.0]
    codes = [0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4]
    assert baveno_vii_lsm_band(frame(lsm_kpa=lsm)).tolist() == codes


def test_baveno_band_is_an_ordered_category_with_published_meanings():
    cat = baveno_vii_lsm_category(frame(lsm_kpa=[8.0, 30.0, np.nan]))
    assert cat.cat.ordered
    assert list(cat.cat.categories) == ["< 10 kPa", "10-15 kPa", "> 15 to < 20 kPa",
                                        "20 to < 25 kPa", ">= 25 kPa"]
    assert cat[0] == "< 10 kPa" and cat[1] == ">= 25 kPa" and pd.isna(cat[2])
    assert cat[0] < cat[1]
    assert [b.code for b in BAVENO_VII_LSM_BANDS] == [0, 1, 2, 3, 4]
    assert "cACLD ruled out" in BAVENO_VII_LSM_BANDS[0].meaning
    assert "CSPH ruled in" in BAVENO_VII_LSM_BANDS[4].meaning


# ----------------------------------------------------------------------------- missing
FULL = dict(lsm_kpa=12.0, cap_db_m=300.0, ast_u_l=40.0, alt_u_l=50.0,
            platelets_10e9_l=180.0, diabetes=1, sex="M", age_years=55.0, bmi_kg_m2=31.0,
            albumin_g_dl=4.0)
NEW_SCORES = ["fast", "agile_3plus", "agile_4", "nfs", "baveno_vii_lsm_band"]


@pytest.mark.parametrize("col, bad", [
    ("lsm_kpa", 1.4), ("lsm_kpa", 75.1),      # outside the FibroScan range 1.5-75 kPa
    ("cap_db_m", 99.0), ("cap_db_m", 401.0),  # outside the CAP range 100-400 dB/m
    ("diabetes", "unknown"), ("diabetes", 2),  # neither yes nor no
    ("sex", "O"), ("sex", "U"),               # Agile has only male and female
    ("bmi_kg_m2", 0.0), ("ast_u_l", -5.0),
])
def test_implausible_inputs_give_nan_not_a_number(col, bad):
    out = compute_scores(frame(**{**FULL, col: bad}), NEW_SCORES)
    for name in NEW_SCORES:
        if col in CLINICAL_SCORES[name].required_columns:
            assert math.isnan(out.loc[0, name]), f"{name} with {col}={bad!r}"
        else:
            assert np.isfinite(out.loc[0, name]), f"{name} does not use {col}"


@pytest.mark.parametrize("name", NEW_SCORES)
def test_missing_inputs_give_nan_not_zero(name):
    full = frame(**FULL)
    assert np.isfinite(CLINICAL_SCORES[name].fn(full)[0])
    for col in CLINICAL_SCORES[name].required_columns:
        assert math.isnan(CLINICAL_SCORES[name].fn(full.assign(**{col: None}))[0]), col
        assert math.isnan(CLINICAL_SCORES[name].fn(full.drop(columns=[col]))[0]), col


def test_available_scores_lists_only_scores_whose_inputs_are_present():
    labs = ["bilirubin_mg_dl", "albumin_g_dl", "platelets_10e9_l", "ast_u_l", "alt_u_l",
            "age_years", "sex"]
    assert available_scores(labs) == ["fib4", "apri", "albi", "albi_grade"]
    assert available_scores([*labs, "lsm_kpa"]) == ["fib4", "apri", "albi", "albi_grade",
                                                    "baveno_vii_lsm_band"]
    assert available_scores([*labs, "lsm_kpa", "cap_db_m", "diabetes", "bmi_kg_m2"]) == [
        "fib4", "apri", "albi", "albi_grade", "fast", "agile_3plus", "agile_4", "nfs",
        "baveno_vii_lsm_band"]
