"""Published clinical scores of liver disease, vectorised over a visits DataFrame.

Every function takes a DataFrame whose lab columns follow the cohort CSV contract
(``bilirubin_mg_dl``, ``albumin_g_dl``, ``inr``, ``prothrombin_s``, ``creatinine_mg_dl``,
``sodium_mmol_l``, ``platelets_10e9_l``, ``ast_u_l``, ``alt_u_l``, ``age_years``) and
returns a float Series aligned with its index. A score is NaN on a row where one of its
required labs is missing, or is zero or negative (a log or a division of such a value has
no clinical meaning; it is a data error that the cohort import reports). A required column
absent from the frame gives NaN on every row.

Two optional modifiers are read when present:

- ``dialysis``: truthy (1, True, "yes") when the patient had dialysis at least twice in the
  prior week or 24 h of CVVHD (OPTN policy 9.1.D); MELD then uses creatinine 4.0 mg/dL.
  Missing means no dialysis.
- ``edema``: the Mayo PBC edema score, 0 (none), 0.5 (edema without diuretics or
  resolved by them) or 1 (edema despite diuretics). Missing means 0 (Dickson 1989 has no
  missing category); this biases the score low for patients with unrecorded edema.

Scores that need elastography or metabolic inputs (FAST, Agile 3+, Agile 4, the NAFLD
fibrosis score and the Baveno VII band of liver stiffness) live in
:mod:`analytics.models.fibrosis_scores` and are registered here too; their input columns
(``lsm_kpa``, ``cap_db_m``, ``bmi_kg_m2``, ``diabetes`` ...) are described there.

Formulas and their sources are in each function's docstring and in
:data:`CLINICAL_SCORES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analytics import vocabulary
from analytics.models.fibrosis_scores import (
    agile_3plus,
    agile_4,
    baveno_vii_lsm_band,
    fast,
    nfs,
)
from analytics.models.score_inputs import flag, positive

__all__ = [
    "BILIRUBIN_UMOL_PER_MG_DL",
    "CLINICAL_SCORES",
    "ScoreDef",
    "agile_3plus",
    "agile_4",
    "albi",
    "albi_grade",
    "apri",
    "available_scores",
    "baveno_vii_lsm_band",
    "child_pugh",
    "child_pugh_class",
    "compute_scores",
    "fast",
    "fib4",
    "mayo_pbc",
    "meld",
    "meld_na",
    "nfs",
]

#: 1 mg/dL total bilirubin = 17.1 umol/L (molar mass 584.7 g/mol; the factor used by
#: clinical laboratories and by Johnson et al. 2015 for the ALBI conversion)
BILIRUBIN_UMOL_PER_MG_DL = 17.1
#: AST upper limit of normal used by APRI when the site gives none (Wai et al. 2003 used
#: each laboratory's ULN; 40 U/L is the common default of published calculators)
DEFAULT_AST_ULN_U_L = 40.0
MELD_MAX = 40
ALBI_GRADE_CUTS = (-2.60, -1.39)


def _round_half_up(x: pd.Series) -> pd.Series:
    # numpy rounds half to even; the OPTN rule is the usual half-up rounding
    return np.floor(x + 0.5)


def _meld_i(df: pd.DataFrame, *, rounded: bool) -> pd.Series:
    bili = positive(df, "bilirubin_mg_dl").clip(lower=1.0)
    inr = positive(df, "inr").clip(lower=1.0)
    creat = positive(df, "creatinine_mg_dl").clip(lower=1.0, upper=4.0)
    # OPTN: dialysis twice in the prior week counts as creatinine 4.0, measured or not
    creat = creat.mask(flag(df, "dialysis"), 4.0)
    raw = 10.0 * (0.957 * np.log(creat) + 0.378 * np.log(bili) + 1.120 * np.log(inr) + 0.643)
    return _round_half_up(raw) if rounded else raw


def meld(df: pd.DataFrame, *, rounded: bool = True) -> pd.Series:
    """MELD as defined by OPTN/UNOS policy 9.1.D (before MELD-Na), Kamath et al. 2001.

    ``MELD(i) = 10 x (0.957 ln(creatinine mg/dL) + 0.378 ln(bilirubin mg/dL)
    + 1.120 ln(INR) + 0.643)``, i.e. 9.57 ln creat + 3.78 ln bili + 11.2 ln INR + 6.43.
    OPTN bounds: bilirubin, creatinine and INR below 1.0 are set to 1.0; creatinine above
    4.0 mg/dL, or dialysis twice in the prior week (``dialysis`` column), gives 4.0.
    OPTN rounds the bracket to one decimal then multiplies by 10, which is rounding the
    score to an integer (half up); the maximum is 40.

    Parameters
    ----------
    df
        Visits with ``bilirubin_mg_dl``, ``inr``, ``creatinine_mg_dl`` (optional
        ``dialysis``).
    rounded
        True (default) follows OPTN and returns integers; False returns the unrounded
        score (still bounded and capped at 40) for use as a continuous covariate.

    Returns
    -------
    pandas.Series
        MELD (points, 6-40), NaN where a lab is missing or not positive.
    """
    return _meld_i(df, rounded=rounded).clip(upper=MELD_MAX)


def meld_na(df: pd.DataFrame, *, rounded: bool = True) -> pd.Series:
    """MELD-Na of Kim et al. (N Engl J Med 2008;359:1018-26), OPTN policy since 2016.

    For MELD(i) > 11: ``MELD(i) + 1.32 (137 - Na) - 0.033 MELD(i) (137 - Na)`` with
    sodium bounded to 125-137 mmol/L; otherwise MELD(i). MELD(i) is the rounded OPTN MELD
    (see :func:`meld`); the result is rounded to an integer (half up) and capped at 40.

    Parameters
    ----------
    df
        Visits with the MELD labs and ``sodium_mmol_l``.
    rounded
        As in :func:`meld`: False keeps MELD(i) and the result unrounded.

    Returns
    -------
    pandas.Series
        MELD-Na (points, 6-40), NaN where a lab is missing or not positive.
    """
    m = _meld_i(df, rounded=rounded)
    gap = 137.0 - positive(df, "sodium_mmol_l").clip(lower=125.0, upper=137.0)
    adjusted = m + 1.32 * gap - 0.033 * m * gap
    if rounded:
        adjusted = _round_half_up(adjusted)
    out = adjusted.where(m > 11, m).where(gap.notna())
    return out.clip(upper=MELD_MAX)


def fib4(df: pd.DataFrame) -> pd.Series:
    """FIB-4 of Sterling et al. (Hepatology 2006;43:1317-25).

    ``age (years) x AST (U/L) / (platelets (10^9/L) x sqrt(ALT (U/L)))``; published
    cut-offs 1.45 and 3.25 for advanced fibrosis.

    Returns
    -------
    pandas.Series
        FIB-4 (dimensionless), NaN where an input is missing or not positive.
    """
    age, ast = positive(df, "age_years"), positive(df, "ast_u_l")
    plt, alt = positive(df, "platelets_10e9_l"), positive(df, "alt_u_l")
    return age * ast / (plt * np.sqrt(alt))


def apri(df: pd.DataFrame, *, ast_uln_u_l: float = DEFAULT_AST_ULN_U_L) -> pd.Series:
    """AST-to-platelet ratio index of Wai et al. (Hepatology 2003;38:518-26).

    ``(AST / ULN) / platelets (10^9/L) x 100``.

    Parameters
    ----------
    df
        Visits with ``ast_u_l`` and ``platelets_10e9_l``.
    ast_uln_u_l
        The laboratory's AST upper limit of normal in U/L (default 40 U/L; pass the
        site's own ULN when known, as the original paper did).

    Returns
    -------
    pandas.Series
        APRI (dimensionless), NaN where an input is missing or not positive.
    """
    if not ast_uln_u_l > 0:
        raise ValueError(f"ast_uln_u_l must be a positive number of U/L, got {ast_uln_u_l!r}")
    return (positive(df, "ast_u_l") / ast_uln_u_l) / positive(df, "platelets_10e9_l") * 100.0


def albi(df: pd.DataFrame) -> pd.Series:
    """Albumin-bilirubin score of Johnson et al. (J Clin Oncol 2015;33:550-8).

    ``0.66 log10(bilirubin umol/L) - 0.085 albumin (g/L)``, with bilirubin converted from
    mg/dL by x17.1 and albumin from g/dL by x10.

    Returns
    -------
    pandas.Series
        ALBI (dimensionless; lower is better), NaN where an input is missing.
    """
    bili_umol = positive(df, "bilirubin_mg_dl") * BILIRUBIN_UMOL_PER_MG_DL
    albumin_g_l = positive(df, "albumin_g_dl") * 10.0
    return 0.66 * np.log10(bili_umol) - 0.085 * albumin_g_l


def albi_grade(df: pd.DataFrame) -> pd.Series:
    """ALBI grade (Johnson et al. 2015): 1 if ALBI <= -2.60, 2 if <= -1.39, else 3.

    Returns
    -------
    pandas.Series
        Grade 1, 2 or 3 as float, NaN where ALBI is NaN.
    """
    score = albi(df)
    grade = pd.Series(3.0, index=df.index)
    grade = grade.mask(score <= ALBI_GRADE_CUTS[1], 2.0).mask(score <= ALBI_GRADE_CUTS[0], 1.0)
    return grade.where(score.notna())


#: Child-Pugh grade columns: 0 none, 1 mild (ascites) / grade 1-2 (encephalopathy),
#: 2 moderate-severe / grade 3-4; not part of the lab contract, read when present
CHILD_PUGH_GRADES = ("ascites_grade", "encephalopathy_grade")
CHILD_PUGH_CLASS_CUTS = ((6, "A"), (9, "B"), (15, "C"))


def _points(values: pd.Series, cut1: float, cut2: float, *, low_is_worse: bool = False
            ) -> pd.Series:
    """1, 2 or 3 points: beyond ``cut1`` 2, beyond ``cut2`` 3 (NaN stays NaN)."""
    if low_is_worse:
        pts = pd.Series(1.0, index=values.index).mask(values <= cut1, 2.0).mask(
            values < cut2, 3.0)
    else:
        pts = pd.Series(1.0, index=values.index).mask(values >= cut1, 2.0).mask(
            values > cut2, 3.0)
    return pts.where(values.notna())


def child_pugh(df: pd.DataFrame) -> pd.Series:
    """Child-Pugh score (Pugh RNH et al., Br J Surg 1973;60:646-9), 5-15 points.

    Bilirubin < 2 / 2-3 / > 3 mg/dL, albumin > 3.5 / 2.8-3.5 / < 2.8 g/dL, INR < 1.7 /
    1.7-2.3 / > 2.3, ascites none / mild / moderate-severe and hepatic encephalopathy
    none / grade 1-2 / grade 3-4 give 1, 2 or 3 points each; the two clinical grades come
    from :data:`CHILD_PUGH_GRADES` (0, 1, 2).

    Returns
    -------
    pandas.Series
        Points (5-15), NaN where a lab or a clinical grade is missing: the grades are never
        assumed to be "none".
    """
    total = (_points(positive(df, "bilirubin_mg_dl"), 2.0, 3.0)
             + _points(positive(df, "albumin_g_dl"), 3.5, 2.8, low_is_worse=True)
             + _points(positive(df, "inr"), 1.7, 2.3))
    for name in CHILD_PUGH_GRADES:
        grade = (pd.to_numeric(df[name], errors="coerce") if name in df.columns
                 else pd.Series(np.nan, index=df.index))
        total = total + (grade.where(grade.isin([0, 1, 2])) + 1.0)
    return total


def child_pugh_class(points: float) -> str | None:
    """Child-Pugh class of a score: A (5-6), B (7-9), C (10-15); None for NaN."""
    if not np.isfinite(points):
        return None
    return next(c for hi, c in CHILD_PUGH_CLASS_CUTS if points <= hi)


def mayo_pbc(df: pd.DataFrame) -> pd.Series:
    """Mayo risk score for primary biliary cholangitis (Dickson et al., Hepatology 1989;10:1-7).

    ``R = 0.871 ln(bilirubin mg/dL) - 2.53 ln(albumin g/dL) + 0.039 age (years)
    + 2.38 ln(prothrombin time s) + 0.859 edema`` with prothrombin time from
    ``prothrombin_s`` and edema from ``edema`` (0, 0.5, 1; 0 when missing).

    Returns
    -------
    pandas.Series
        R (dimensionless), NaN where a lab is missing or not positive.
    """
    if "edema" in df.columns:
        edema = pd.to_numeric(df["edema"], errors="coerce").fillna(0.0)
    else:
        edema = pd.Series(0.0, index=df.index)
    return (0.871 * np.log(positive(df, "bilirubin_mg_dl"))
            - 2.53 * np.log(positive(df, "albumin_g_dl"))
            + 0.039 * positive(df, "age_years")
            + 2.38 * np.log(positive(df, "prothrombin_s"))
            + 0.859 * edema)


@dataclass(frozen=True)
class ScoreDef:
    """One clinical score: how to compute it and what it needs.

    Attributes
    ----------
    fn
        ``fn(df) -> Series`` aligned with ``df.index``.
    required_columns
        Input columns that must be present for a non-NaN value.
    label
        Human label.
    unit
        Unit of the value (``"points"``, ``"1"`` for dimensionless, ``"grade"``,
        ``"probability"``, ``"band"`` for an ordered category code).
    reference
        Publication that defines the formula.
    """

    fn: Callable[[pd.DataFrame], pd.Series]
    required_columns: tuple[str, ...]
    label: str
    unit: str
    reference: str


_MELD_LABS = ("bilirubin_mg_dl", "inr", "creatinine_mg_dl")
_AGILE_INPUTS = ("lsm_kpa", "ast_u_l", "alt_u_l", "platelets_10e9_l", "diabetes", "sex")

def _shown(name: str) -> tuple[str, str]:
    """Label and unit of score ``name`` (the vocabulary's)."""
    return vocabulary.label(name), vocabulary.unit(name)


CLINICAL_SCORES: dict[str, ScoreDef] = {
    "meld": ScoreDef(
        meld, _MELD_LABS, *_shown("meld"),
        "Kamath PS et al. Hepatology 2001;33:464-70; OPTN policy 9.1.D bounds and rounding"),
    "meld_na": ScoreDef(
        meld_na, (*_MELD_LABS, "sodium_mmol_l"), *_shown("meld_na"),
        "Kim WR et al. N Engl J Med 2008;359:1018-26; OPTN policy 9.1.D (2016)"),
    "fib4": ScoreDef(
        fib4, ("age_years", "ast_u_l", "alt_u_l", "platelets_10e9_l"), *_shown("fib4"),
        "Sterling RK et al. Hepatology 2006;43:1317-25"),
    "apri": ScoreDef(
        apri, ("ast_u_l", "platelets_10e9_l"), *_shown("apri"),
        "Wai CT et al. Hepatology 2003;38:518-26 (AST ULN 40 U/L)"),
    "albi": ScoreDef(
        albi, ("bilirubin_mg_dl", "albumin_g_dl"), *_shown("albi"),
        "Johnson PJ et al. J Clin Oncol 2015;33:550-8"),
    "albi_grade": ScoreDef(
        albi_grade, ("bilirubin_mg_dl", "albumin_g_dl"), *_shown("albi_grade"),
        "Johnson PJ et al. J Clin Oncol 2015;33:550-8"),
    "mayo_pbc": ScoreDef(
        mayo_pbc, ("bilirubin_mg_dl", "albumin_g_dl", "age_years", "prothrombin_s"),
        *_shown("mayo_pbc"), "Dickson ER et al. Hepatology 1989;10:1-7"),
    "fast": ScoreDef(
        fast, ("lsm_kpa", "cap_db_m", "ast_u_l"), *_shown("fast"),
        "Newsome PN et al. Lancet Gastroenterol Hepatol 2020;5:362-73"),
    "agile_3plus": ScoreDef(
        agile_3plus, (*_AGILE_INPUTS, "age_years"), *_shown("agile_3plus"),
        "Sanyal AJ et al. J Hepatol 2023;78:247-59"),
    "agile_4": ScoreDef(
        agile_4, _AGILE_INPUTS, *_shown("agile_4"),
        "Sanyal AJ et al. J Hepatol 2023;78:247-59"),
    "nfs": ScoreDef(
        nfs, ("age_years", "bmi_kg_m2", "diabetes", "ast_u_l", "alt_u_l",
              "platelets_10e9_l", "albumin_g_dl"), *_shown("nfs"),
        "Angulo P et al. Hepatology 2007;45:846-54"),
    "baveno_vii_lsm_band": ScoreDef(
        baveno_vii_lsm_band, ("lsm_kpa",), *_shown("baveno_vii_lsm_band"),
        "de Franchis R et al. J Hepatol 2022;76:959-74 (Baveno VII rule of five)"),
}


def available_scores(columns: Iterable[str]) -> list[str]:
    """Keys of :data:`CLINICAL_SCORES` whose required input columns are all in ``columns``.

    A score whose inputs the cohort does not have at all is not computed (it would be
    NaN on every row); one whose inputs are present but partly missing is.
    """
    have = set(columns)
    return [n for n, d in CLINICAL_SCORES.items() if set(d.required_columns) <= have]


def compute_scores(df: pd.DataFrame, names: list[str] | None = None) -> pd.DataFrame:
    """Every clinical score (or those in ``names``) for every row of ``df``.

    Parameters
    ----------
    df
        Visits with lab columns named as in the cohort CSV contract.
    names
        Keys of :data:`CLINICAL_SCORES` to compute; default all, in that order.

    Returns
    -------
    pandas.DataFrame
        One float column per score, index aligned with ``df``; NaN where the score's labs
        are missing.

    Raises
    ------
    KeyError
        If a name is not in :data:`CLINICAL_SCORES`.
    """
    chosen = list(CLINICAL_SCORES) if names is None else names
    unknown = [n for n in chosen if n not in CLINICAL_SCORES]
    if unknown:
        raise KeyError(f"unknown clinical score(s) {unknown}; known: {list(CLINICAL_SCORES)}")
    return pd.DataFrame({n: CLINICAL_SCORES[n].fn(df).astype("float64") for n in chosen},
                        index=df.index)
