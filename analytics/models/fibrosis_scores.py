"""Non-invasive fibrosis scores that need elastography or metabolic inputs.

FAST, Agile 3+, Agile 4, the NAFLD fibrosis score and the Baveno VII "rule of five"
band of liver stiffness, vectorised over a visits DataFrame like the scores of
:mod:`analytics.models.scores` (which registers them in ``CLINICAL_SCORES``).

Input columns (units in the names):

- ``lsm_kpa``: liver stiffness by vibration-controlled transient elastography
  (FibroScan), kPa. FAST and Agile were fitted on this device only; a stiffness from
  MR elastography (``mre_kpa``) or shear-wave elastography is not interchangeable. A
  value outside the device's measuring range, 1.5-75 kPa, is not a transient
  elastography reading (most likely another unit or method) and gives NaN.
- ``cap_db_m``: controlled attenuation parameter, dB/m; FibroScan reports 100-400 dB/m,
  a value outside gives NaN.
- ``ast_u_l``, ``alt_u_l`` (U/L), ``platelets_10e9_l`` (10^9/L), ``albumin_g_dl``
  (g/dL), ``age_years``: the cohort CSV columns. Non-positive values give NaN.
- ``bmi_kg_m2``: body-mass index, kg/m^2 (non-positive gives NaN).
- ``diabetes``: 1/0 (also yes/no, true/false). Missing or any other value gives NaN,
  never "no": Agile moves by 0.4-1.1 logit units on it and NFS by 1.13.
- ``sex``: ``M``/``F`` as the cohort import stores it (``male``/``female`` accepted).
  Agile was fitted on men and women only, so another or unknown sex gives NaN.

Published decision cut-offs are in :data:`FAST_CUTOFFS`, :data:`AGILE_3PLUS_CUTOFFS`,
:data:`AGILE_4_CUTOFFS` and :data:`NFS_CUTOFFS`; :func:`rule_zone` applies them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analytics.models.score_inputs import binary, male, positive, within

__all__ = [
    "AGILE_3PLUS_CUTOFFS",
    "AGILE_4_CUTOFFS",
    "BAVENO_VII_LSM_BANDS",
    "CAP_RANGE_DB_M",
    "FAST_CUTOFFS",
    "INDETERMINATE",
    "LSM_RANGE_KPA",
    "NFS_CUTOFFS",
    "RULED_IN",
    "RULED_OUT",
    "BavenoBand",
    "CutOffs",
    "agile_3plus",
    "agile_4",
    "baveno_vii_lsm_band",
    "baveno_vii_lsm_category",
    "fast",
    "nfs",
    "rule_zone",
]

#: measuring range of liver stiffness by FibroScan (Echosens), kPa: the device reports
#: no value outside it
LSM_RANGE_KPA = (1.5, 75.0)
#: range in which FibroScan reports the controlled attenuation parameter, dB/m (CAP
#: introduced by Sasso M et al. Ultrasound Med Biol 2010;36:1825-35)
CAP_RANGE_DB_M = (100.0, 400.0)


@dataclass(frozen=True)
class CutOffs:
    """A published dual cut-off: rule-out below, rule-in above, indeterminate between.

    Attributes
    ----------
    rule_out, rule_in
        The two thresholds on the score's scale.
    rule_out_inclusive
        True when a score equal to ``rule_out`` is ruled out (``<=``), False for ``<``.
    rule_in_inclusive
        True when a score equal to ``rule_in`` is ruled in (``>=``), False for ``>``.
    target
        What is ruled out or in.
    source
        Where the thresholds and their inclusiveness are published.
    """

    rule_out: float
    rule_in: float
    rule_out_inclusive: bool
    rule_in_inclusive: bool
    target: str
    source: str


FAST_CUTOFFS = CutOffs(
    0.35, 0.67, True, True, "fibrotic NASH (NASH, NAS >= 4, F >= 2)",
    "Newsome PN et al. Lancet Gastroenterol Hepatol 2020;5:362-73: rule-out <= 0.35 "
    "(sensitivity 0.90), rule-in >= 0.67 (specificity 0.90)")
AGILE_3PLUS_CUTOFFS = CutOffs(
    0.451, 0.679, False, True, "advanced fibrosis (F >= 3)",
    "Sanyal AJ et al. J Hepatol 2023;78:247-59: rule-out < 0.451, rule-in >= 0.679")
AGILE_4_CUTOFFS = CutOffs(
    0.251, 0.565, False, True, "cirrhosis (F4)",
    "Sanyal AJ et al. J Hepatol 2023;78:247-59: rule-out < 0.251, rule-in >= 0.565")
NFS_CUTOFFS = CutOffs(
    -1.455, 0.676, False, False, "advanced fibrosis (F3-F4)",
    "Angulo P et al. Hepatology 2007;45:846-54: absence below -1.455, presence above 0.676")

#: codes returned by :func:`rule_zone`
RULED_OUT, INDETERMINATE, RULED_IN = -1.0, 0.0, 1.0


def rule_zone(score: pd.Series, cutoffs: CutOffs) -> pd.Series:
    """Which side of a published dual cut-off each score is on.

    Returns
    -------
    pandas.Series
        -1.0 ruled out, 0.0 indeterminate, 1.0 ruled in; NaN where the score is NaN.
    """
    out_ = score <= cutoffs.rule_out if cutoffs.rule_out_inclusive else score < cutoffs.rule_out
    in_ = score >= cutoffs.rule_in if cutoffs.rule_in_inclusive else score > cutoffs.rule_in
    zone = pd.Series(INDETERMINATE, index=score.index)
    zone = zone.mask(out_, RULED_OUT).mask(in_, RULED_IN)
    return zone.where(score.notna())


def _logistic(logit: pd.Series) -> pd.Series:
    return 1.0 / (1.0 + np.exp(-logit))


def _lsm(df: pd.DataFrame) -> pd.Series:
    return within(df, "lsm_kpa", *LSM_RANGE_KPA)


# --------------------------------------------------------------------------- FAST
def fast(df: pd.DataFrame) -> pd.Series:
    """FibroScan-AST (FAST) score of Newsome et al. (Lancet Gastroenterol Hepatol
    2020;5:362-73).

    ``FAST = e^x / (1 + e^x)`` with ``x = -1.65 + 1.07 ln(LSM kPa)
    + 2.66e-8 CAP(dB/m)^3 - 63.3 / AST(U/L)``: the probability of fibrotic NASH (NASH
    with NAS >= 4 and F >= 2). Rule-out <= 0.35, rule-in >= 0.67
    (:data:`FAST_CUTOFFS`).

    Parameters
    ----------
    df
        Visits with ``lsm_kpa``, ``cap_db_m`` and ``ast_u_l``.

    Returns
    -------
    pandas.Series
        FAST (probability, 0-1), NaN where an input is missing or outside its range.
    """
    cap = within(df, "cap_db_m", *CAP_RANGE_DB_M)
    x = -1.65 + 1.07 * np.log(_lsm(df)) + 2.66e-8 * cap**3 - 63.3 / positive(df, "ast_u_l")
    return _logistic(x)


# --------------------------------------------------------------------------- Agile
def _agile_common(df: pd.DataFrame) -> tuple[pd.Series, ...]:
    # AAR^-1 of the publication: the inverse of the AST/ALT ratio, i.e. ALT/AST
    inverse_aar = positive(df, "alt_u_l") / positive(df, "ast_u_l")
    return (_lsm(df), positive(df, "platelets_10e9_l"), inverse_aar,
            binary(df, "diabetes"), male(df))


def agile_3plus(df: pd.DataFrame) -> pd.Series:
    """Agile 3+ of Sanyal et al. (J Hepatol 2023;78:247-59): probability of advanced
    fibrosis (F >= 3) in NAFLD.

    ``Agile 3+ = e^x / (1 + e^x)`` with ``x = -3.92368 + 2.29714 ln(LSM kPa)
    - 0.00902 platelets(10^9/L) - 0.98633 AAR^-1 + 1.08636 diabetes - 0.38581 sex
    + 0.03018 age(years)``, where ``AAR = AST/ALT`` (so ``AAR^-1 = ALT/AST``), diabetes
    yes = 1 / no = 0 and sex male = 1 / female = 0. Rule-out < 0.451, rule-in >= 0.679
    (:data:`AGILE_3PLUS_CUTOFFS`).

    Returns
    -------
    pandas.Series
        Agile 3+ (probability, 0-1), NaN where an input is missing or implausible.
    """
    lsm, plt, inverse_aar, diabetes, sex = _agile_common(df)
    x = (-3.92368 + 2.29714 * np.log(lsm) - 0.00902 * plt - 0.98633 * inverse_aar
         + 1.08636 * diabetes - 0.38581 * sex + 0.03018 * positive(df, "age_years"))
    return _logistic(x)


def agile_4(df: pd.DataFrame) -> pd.Series:
    """Agile 4 of Sanyal et al. (J Hepatol 2023;78:247-59): probability of cirrhosis
    (F4) in NAFLD; no age term.

    ``Agile 4 = e^x / (1 + e^x)`` with ``x = 7.50139 - 15.42498 / sqrt(LSM kPa)
    - 0.01378 platelets(10^9/L) - 1.41149 AAR^-1 - 0.53281 sex + 0.41741 diabetes``,
    with ``AAR^-1 = ALT/AST``, sex male = 1 / female = 0 and diabetes yes = 1 / no = 0.
    Rule-out < 0.251, rule-in >= 0.565 (:data:`AGILE_4_CUTOFFS`).

    Returns
    -------
    pandas.Series
        Agile 4 (probability, 0-1), NaN where an input is missing or implausible.
    """
    lsm, plt, inverse_aar, diabetes, sex = _agile_common(df)
    x = (7.50139 - 15.42498 / np.sqrt(lsm) - 0.01378 * plt - 1.41149 * inverse_aar
         - 0.53281 * sex + 0.41741 * diabetes)
    return _logistic(x)


# --------------------------------------------------------------------------- NFS
def nfs(df: pd.DataFrame) -> pd.Series:
    """NAFLD fibrosis score of Angulo et al. (Hepatology 2007;45:846-54).

    ``NFS = -1.675 + 0.037 age(years) + 0.094 BMI(kg/m^2) + 1.13 IFG/diabetes
    + 0.99 AST/ALT - 0.013 platelets(10^9/L) - 0.66 albumin(g/dL)``. Albumin is in g/dL
    in the formula and in the ``albumin_g_dl`` column (the cohort import divides an
    ``albumin_g_l`` column by 10), so it is used as stored. The IFG/diabetes term
    (impaired fasting glucose or diabetes, yes = 1) is read from ``diabetes``: a
    patient with impaired fasting glucose recorded as ``diabetes = 0`` scores 1.13
    lower. Below -1.455 advanced fibrosis is absent, above 0.676 present
    (:data:`NFS_CUTOFFS`).

    Returns
    -------
    pandas.Series
        NFS (dimensionless), NaN where an input is missing or implausible.
    """
    return (-1.675 + 0.037 * positive(df, "age_years") + 0.094 * positive(df, "bmi_kg_m2")
            + 1.13 * binary(df, "diabetes")
            + 0.99 * positive(df, "ast_u_l") / positive(df, "alt_u_l")
            - 0.013 * positive(df, "platelets_10e9_l")
            - 0.66 * positive(df, "albumin_g_dl"))


# --------------------------------------------------------------------------- Baveno VII
@dataclass(frozen=True)
class BavenoBand:
    """One band of the Baveno VII rule of five for transient elastography.

    A stiffness ``s`` is in the band when ``low <= s < high`` (``low < s <= high`` for
    the 10-15 kPa band, whose upper bound is inclusive because Baveno VII calls values
    *above* 15 kPa highly suggestive of cACLD and rules CSPH out at *<= 15* kPa).
    """

    code: int
    label: str
    low: float
    high: float
    meaning: str


#: Baveno VII (de Franchis et al. 2022): liver stiffness by transient elastography of
#: 10-15-20-25 kPa denotes progressively higher relative risks of decompensation and
#: liver-related death, whatever the aetiology ("rule of five"). The meanings are the
#: consensus statements that use each cut-off; the CSPH statements hold for viral,
#: alcohol-related and non-obese (BMI < 30) NASH-related cACLD.
BAVENO_VII_LSM_BANDS: tuple[BavenoBand, ...] = (
    BavenoBand(0, "< 10 kPa", 0.0, 10.0,
               "cACLD ruled out in the absence of other clinical or imaging signs; "
               "lowest risk of decompensation and liver-related death"),
    BavenoBand(1, "10-15 kPa", 10.0, 15.0,
               "suggestive of cACLD, needs further tests to confirm; with platelets "
               ">= 150 x 10^9/L CSPH is ruled out"),
    BavenoBand(2, "> 15 to < 20 kPa", 15.0, 20.0,
               "highly suggestive of cACLD; with platelets < 110 x 10^9/L the risk of "
               "CSPH is at least 60% (ANTICIPATE model)"),
    BavenoBand(3, "20 to < 25 kPa", 20.0, 25.0,
               "highly suggestive of cACLD; with platelets < 150 x 10^9/L the risk of "
               "CSPH is at least 60%; screening endoscopy can no longer be spared by "
               "the < 20 kPa and platelets > 150 x 10^9/L rule"),
    BavenoBand(4, ">= 25 kPa", 25.0, float("inf"),
               "CSPH ruled in (specificity and positive predictive value > 90%): at "
               "risk of endoscopic signs of portal hypertension and of decompensation; "
               "highest risk band"),
)


def baveno_vii_lsm_band(df: pd.DataFrame) -> pd.Series:
    """Baveno VII "rule of five" band of liver stiffness (de Franchis et al., J Hepatol
    2022;76:959-74), as an ordered code.

    Cut-offs 10, 15, 20 and 25 kPa of transient elastography (``lsm_kpa``): code 0
    ``< 10``, 1 ``10-15`` (15 included), 2 ``> 15 to < 20``, 3 ``20 to < 25``, 4
    ``>= 25`` kPa. The meaning of each code is in :data:`BAVENO_VII_LSM_BANDS`; higher
    codes are higher relative risks of decompensation and liver-related death.

    Returns
    -------
    pandas.Series
        Band code 0-4 as float (a category, not a measurement), NaN where ``lsm_kpa``
        is missing or outside the device range 1.5-75 kPa.
    """
    lsm = _lsm(df)
    code = pd.Series(0.0, index=df.index)
    code = (code.mask(lsm >= 10.0, 1.0).mask(lsm > 15.0, 2.0).mask(lsm >= 20.0, 3.0)
            .mask(lsm >= 25.0, 4.0))
    return code.where(lsm.notna())


def baveno_vii_lsm_category(df: pd.DataFrame) -> pd.Series:
    """The band of :func:`baveno_vii_lsm_band` as an ordered categorical of its labels.

    Returns
    -------
    pandas.Series
        Ordered categorical (``"< 10 kPa"`` < ... < ``">= 25 kPa"``), NaN where the band
        is NaN.
    """
    labels = [b.label for b in BAVENO_VII_LSM_BANDS]
    codes = baveno_vii_lsm_band(df).fillna(-1).astype(int)
    cat = pd.Categorical.from_codes(codes, categories=labels, ordered=True)
    return pd.Series(cat, index=df.index)
