"""The clinical facts an MDT discusses a patient by: name in clinical form, age,
aetiology and the liver scores (MELD, Child-Pugh, ALBI) at the latest visit where their
inputs were measured. Shared by the MDT page and the PDF pack; scores come from
:mod:`analytics.models.scores`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analytics import vocabulary
from analytics.models.scores import CHILD_PUGH_GRADES, albi, albi_grade, child_pugh
from analytics.models.scores import child_pugh_class as _cp_class
from analytics.models.scores import meld as _meld
from analytics.names import clinical_name
from analytics.store.repo_patient import PatientDetail

__all__ = ["AETIOLOGY_COLUMNS", "NO_SERIES", "ClinicalFacts", "clinical_facts",
           "no_series_text"]

#: the key image's place when the patient has no series and no imported imaging value
NO_SERIES = "No complete CT or MR series stored."

#: short names of score inputs in "not computable (no ...)"
_INPUT_NAMES = {"ascites_grade": "ascites grade", "encephalopathy_grade":
                "encephalopathy grade"}
#: visits-file columns read as the patient's aetiology, first present wins
AETIOLOGY_COLUMNS = ("aetiology", "etiology")


@dataclass(frozen=True)
class ClinicalFacts:
    """What the MDT sees first about a patient, each part as shown.

    ``name`` is the clinical form (``"Charles LOPEZ"``) on an identified view, else None;
    the texts say "not recorded" or why a score is not computable instead of a blank.
    """

    name: str | None
    age: str
    aetiology: str
    meld: str
    child_pugh: str
    albi: str

    @property
    def line(self) -> str:
        """``"Age 67 y · aetiology MASLD · MELD 12 (at 1.0 y) · Child-Pugh ... · ALBI ..."``"""
        return " · ".join([f"Age {self.age}", f"aetiology {self.aetiology}",
                           f"MELD {self.meld}", f"Child-Pugh {self.child_pugh}",
                           f"ALBI {self.albi}"])


def _age(detail: PatientDetail, today: dt.date) -> str:
    if detail.birth_date is not None:
        b = detail.birth_date
        years = today.year - b.year - ((today.month, today.day) < (b.month, b.day))
        return f"{years} y"
    v = detail.visits
    if not v.empty and "age_years" in v.columns:
        ages = pd.to_numeric(v["age_years"], errors="coerce")
        ok = ages.notna()
        if ok.any():
            last = v[ok].sort_values("time_years", kind="stable").index[-1]
            return f"{ages[last]:.0f} y at {v.loc[last, 'time_years']:.1f} y"
    if detail.birth_year:
        return f"about {today.year - int(detail.birth_year)} y (born {detail.birth_year})"
    return "not recorded"


def _aetiology(visits: pd.DataFrame) -> str:
    for col in AETIOLOGY_COLUMNS:
        if not visits.empty and col in visits.columns:
            known = visits.sort_values("time_years", kind="stable")[col].dropna()
            known = known[known.astype(str).str.strip() != ""]
            if len(known):
                return str(known.iloc[-1]).strip()
    return "not recorded"


def _latest(visits: pd.DataFrame, score: pd.Series) -> tuple[float, float] | None:
    """(value, time in years) of the latest visit where ``score`` is computable."""
    ok = score.notna().to_numpy()
    if not ok.any():
        return None
    times = visits["time_years"].to_numpy(float)[ok]
    k = int(np.flatnonzero(times == times.max())[-1])
    return float(score.to_numpy(float)[ok][k]), float(times[k])


def _missing(visits: pd.DataFrame, needed: tuple[str, ...]) -> str:
    """``"not computable (no INR, creatinine)"``: the inputs no visit has."""
    absent = [n for n in needed if visits.empty or n not in visits.columns
              or pd.to_numeric(visits[n], errors="coerce").isna().all()]
    if not absent:
        return "not computable (no visit has all its inputs)"
    names = [_INPUT_NAMES.get(n) or vocabulary.label(n) for n in absent]
    return "not computable (no " + ", ".join(names) + ")"


def clinical_facts(detail: PatientDetail, today: dt.date) -> ClinicalFacts:
    """The clinical facts of ``detail`` (age on ``today`` from an identified birth date).

    MELD (Kamath 2001) and ALBI (Johnson 2015) are those of the latest visit with all their
    labs; Child-Pugh (Pugh 1973) also needs the ascites and encephalopathy grades
    (:data:`analytics.models.scores.CHILD_PUGH_GRADES`), which are never assumed absent.
    """
    v = detail.visits.reset_index(drop=True)
    if v.empty:
        scores = {k: pd.Series(dtype=float) for k in ("meld", "cp", "albi", "grade")}
    else:
        scores = {"meld": _meld(v), "cp": child_pugh(v), "albi": albi(v),
                  "grade": albi_grade(v)}
    m = _latest(v, scores["meld"]) if not v.empty else None
    meld_text = (f"{m[0]:.0f} (at {m[1]:.1f} y)" if m
                 else _missing(v, ("bilirubin_mg_dl", "inr", "creatinine_mg_dl")))
    c = _latest(v, scores["cp"]) if not v.empty else None
    cp_text = (f"{_cp_class(c[0])} ({c[0]:.0f} points, at {c[1]:.1f} y)" if c
               else _missing(v, ("bilirubin_mg_dl", "albumin_g_dl", "inr",
                                 *CHILD_PUGH_GRADES)))
    a = _latest(v, scores["albi"]) if not v.empty else None
    if a:
        grade = scores["grade"][scores["albi"].notna()].to_numpy(float)
        times = v["time_years"].to_numpy(float)[scores["albi"].notna().to_numpy()]
        g = grade[int(np.flatnonzero(times == a[1])[-1])]
        albi_text = f"{a[0]:.2f}, grade {g:.0f} (at {a[1]:.1f} y)"
    else:
        albi_text = _missing(v, ("bilirubin_mg_dl", "albumin_g_dl"))
    return ClinicalFacts(
        name=clinical_name(detail.patient_name) if detail.identified else None,
        age=_age(detail, today), aetiology=_aetiology(v), meld=meld_text,
        child_pugh=cp_text, albi=albi_text)


def no_series_text(visits: pd.DataFrame) -> str:
    """What stands in the key image's place for a patient without a stored CT or MR
    series: :data:`NO_SERIES`, or, when the visits file brought imaging values (which the
    risk explanation then names as imported measurements), that they were imported and
    when the latest was measured:
    ``"No CT or MR images stored: imaging values were imported from the cohort file
    (latest 2021-10-16)."``

    Parameters
    ----------
    visits
        The patient's visits (:attr:`PatientDetail.visits`: ``visit_date``,
        ``time_years`` and one column per imported value).
    """
    cols = [c for c in visits.columns if c in vocabulary.IMAGING_COLUMNS]
    if visits.empty or not cols:
        return NO_SERIES
    measured = visits[visits[cols].notna().any(axis=1)]
    if measured.empty:
        return NO_SERIES
    last = measured.iloc[-1]
    date = last.get("visit_date")
    when = (pd.Timestamp(date).date().isoformat() if date is not None and pd.notna(date)
            else f"at {float(last['time_years']):.1f} y")
    return ("No CT or MR images stored: imaging values were imported from the cohort file "
            f"(latest {when}).")
