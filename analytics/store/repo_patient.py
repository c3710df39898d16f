"""Read-side repository for one patient: detail, series and feature values.

Conventions (identity, shifted dates, years, baseline) are those of
:mod:`analytics.store.repo`, which re-exports everything here.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from analytics.errors import StoreError
from analytics.store._repo_util import (
    CENSORED,
    as_datetime,
    baseline_of,
    dates_baseline,
    patient_row,
    shift_date,
    shift_days_of,
    view_birth_year,
    years_between,
)
from analytics.store.db import Store
from analytics.store.schema import (
    CohortImport,
    Feature,
    IdentityMap,
    Mask,
    Outcome,
    Patient,
    Series,
    Study,
    Visit,
)

SERIES_COLUMNS: tuple[str, ...] = (
    "series_uid", "study_uid", "study_date", "time_years", "modality", "description",
    "contrast_phase", "n_instances", "n_slices", "rows", "columns", "spacing_mm", "status",
    "status_reason", "n_masks", "mask_formats", "n_features",
)
FEATURE_COLUMNS: tuple[str, ...] = (
    "name", "value", "unit", "extractor_version", "computed_at", "flags",
)


@dataclass(frozen=True)
class OutcomeInfo:
    """How follow-up ended for one patient.

    Attributes
    ----------
    event
        Event name (``death``, ``transplant``, ``decompensation``, ``hcc``...) or
        ``"censored"``.
    time_years
        Years from the patient's baseline to the event or censoring.
    date
        Date of the event or censoring (real when identified, else shifted); may be None.
    """

    event: str
    time_years: float
    date: dt.date | None

    @property
    def is_event(self) -> bool:
        return self.event != CENSORED


@dataclass(frozen=True)
class PatientDetail:
    """Everything stored about one patient, as one view (identified or pseudonymised).

    ``patient_name``, ``patient_id`` and ``birth_date`` are None unless ``identified``;
    every date is real when ``identified`` and shifted otherwise. ``birth_year`` is that
    of ``birth_date`` when identified (never the shifted year beside the real date), else
    the stored, shifted year.
    """

    pseudonym: str
    identified: bool
    sex: str | None
    birth_year: int | None
    baseline_date: dt.date | None
    patient_name: str | None = None
    patient_id: str | None = None
    birth_date: dt.date | None = None
    studies: pd.DataFrame = field(default_factory=pd.DataFrame)
    series: pd.DataFrame = field(default_factory=pd.DataFrame)
    visits: pd.DataFrame = field(default_factory=pd.DataFrame)
    biomarkers: pd.DataFrame = field(default_factory=pd.DataFrame)
    outcome: OutcomeInfo | None = None



def _missing_reason(value: float | None, flags: dict | None) -> str | None:
    if value is not None:
        return None
    reason = (flags or {}).get("reason")
    return str(reason)[:300] if reason else "not computed"


def series_for_patient(store: Store, pseudonym: str, *, identified: bool = False
                       ) -> pd.DataFrame:
    """All series of one patient, oldest study first.

    Parameters
    ----------
    store
        The open store.
    pseudonym
        The patient's pseudonym.
    identified
        True gives real study dates; False the stored (shifted) ones.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SERIES_COLUMNS`. ``time_years`` is years from the patient's
        baseline; ``spacing_mm`` is ``[x, y, z]``; ``mask_formats`` lists the formats of the
        series' masks (``seg``, ``rtstruct``, ``nifti``, ``auto``); ``n_features`` counts
        stored feature values over all extractor versions.

    Raises
    ------
    StoreError
        If no patient has this pseudonym.
    """
    with store.session() as s:
        patient = patient_row(s, pseudonym)
        return _series_frame(s, patient, identified)


def _series_frame(s: Any, patient: Patient, identified: bool) -> pd.DataFrame:
    shift = shift_days_of(s, patient.id) if identified else 0
    rows = s.execute(
        select(Series, Study.study_uid, Study.study_date)
        .join(Study, Series.study_id == Study.id)
        .where(Study.patient_id == patient.id)
        .order_by(Study.study_date, Study.id, Series.id)).all()
    ids = [r.Series.id for r in rows]
    masks: dict[int, list[str]] = defaultdict(list)
    n_features: dict[int, int] = {}
    if ids:
        for m in s.execute(select(Mask.series_id, Mask.format, Mask.automatic)
                           .where(Mask.series_id.in_(ids)).order_by(Mask.id)).all():
            masks[m.series_id].append("automatic" if m.automatic else m.format)
        n_features = dict(s.execute(
            select(Feature.series_id, func.count(Feature.id))
            .where(Feature.series_id.in_(ids)).group_by(Feature.series_id)).all())
    visit_dates = [r.visit_date for r in s.execute(
        select(Visit.visit_date).where(Visit.patient_id == patient.id)).all()]
    base = baseline_of(patient.baseline_date, [r.study_date for r in rows
                                               if r.Series.status != "invalid"] + visit_dates,
                       [r.study_date for r in rows])
    records = []
    for r in rows:
        se: Series = r.Series
        records.append({
            "series_uid": se.series_uid, "study_uid": r.study_uid,
            "study_date": shift_date(r.study_date, shift, identified),
            "time_years": years_between(r.study_date, base), "modality": se.modality,
            "description": se.description, "contrast_phase": se.contrast_phase,
            "n_instances": se.n_instances, "n_slices": se.n_slices, "rows": se.rows,
            "columns": se.columns, "spacing_mm": se.spacing_mm, "status": se.status,
            "status_reason": se.status_reason, "n_masks": len(masks.get(se.id, [])),
            "mask_formats": masks.get(se.id, []), "n_features": n_features.get(se.id, 0),
        })
    df = pd.DataFrame.from_records(records, columns=list(SERIES_COLUMNS))
    df["study_date"] = as_datetime(df["study_date"].tolist())
    df["time_years"] = df["time_years"].astype("float64")
    return df


def features_for_series(store: Store, series_uid: str, *, latest_only: bool = True
                        ) -> pd.DataFrame:
    """The biomarker values stored for one series.

    Parameters
    ----------
    store
        The open store.
    series_uid
        The (de-identified) SeriesInstanceUID.
    latest_only
        True keeps, per feature name, only the most recently computed value (the newest
        extractor run); False returns every stored version.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`FEATURE_COLUMNS`, sorted by name (then newest first).

    Raises
    ------
    StoreError
        If no series has this UID.
    """
    with store.session() as s:
        series_id = s.execute(select(Series.id).where(Series.series_uid == series_uid)).scalar()
        if series_id is None:
            raise StoreError(f"series {series_uid!r}: not in the store")
        rows = s.execute(select(Feature.name, Feature.value, Feature.unit,
                                Feature.extractor_version, Feature.computed_at, Feature.flags)
                         .where(Feature.series_id == series_id)
                         .order_by(Feature.name, Feature.computed_at.desc(),
                                   Feature.id.desc())).all()
    df = pd.DataFrame([tuple(r) for r in rows], columns=list(FEATURE_COLUMNS))
    if latest_only:
        df = df.drop_duplicates("name", keep="first").reset_index(drop=True)
    df["value"] = df["value"].astype("float64")
    return df


def _studies_frame(studies: list[Any], shift: int, identified: bool,
                   base: dt.date | None) -> pd.DataFrame:
    """The patient's studies with their time on the patient's axis."""
    studies_df = pd.DataFrame(
        [(r.study_uid, shift_date(r.study_date, shift, identified), years_between(r.study_date, base),
          r.description, int(r.n_series)) for r in studies],
        columns=["study_uid", "study_date", "time_years", "description", "n_series"])
    studies_df["study_date"] = as_datetime(studies_df["study_date"].tolist())
    studies_df["time_years"] = studies_df["time_years"].astype("float64")
    return studies_df


def _import_day(imported_at: dt.datetime | None, shift: int,
                identified: bool) -> dt.date | None:
    """The day a visit was imported as a view shows it: the real day when identified, else
    moved by the patient's date shift like the stored visit dates (so the import day does
    not reveal the shift of a visit imported on the day it happened)."""
    if imported_at is None:
        return None
    day = imported_at.date()
    return day if identified else day + dt.timedelta(days=int(shift))


def _visit_rows(s: Any, patient_id: int, identified: bool) -> tuple[list[Any], int]:
    """The patient's visits with their import's file name and time, and the days that
    move an import day in a pseudonymised view (the patient's date shift; 0 otherwise)."""
    visits = s.execute(select(Visit.time_years, Visit.visit_date, Visit.source, Visit.values,
                              CohortImport.file_name, CohortImport.imported_at)
                       .outerjoin(CohortImport, Visit.import_id == CohortImport.id)
                       .where(Visit.patient_id == patient_id)
                       .order_by(Visit.time_years, Visit.source)).all()
    shift = (0 if identified or not any(r.imported_at for r in visits)
             else shift_days_of(s, patient_id))
    return visits, shift


def _visits_frame(visits: list[Any], shift: int, identified: bool,
                  import_shift: int = 0) -> pd.DataFrame:
    """The patient's visits, one column per imported value, after ``source``, the visits
    file's name (``source_file``, None unless identified or when not recorded) and the
    day of its import (``imported_on``, None when not recorded; ``import_shift`` moves it
    in a pseudonymised view)."""
    value_names: list[str] = []
    for r in visits:
        value_names += [k for k in (r.values or {}) if k not in value_names]
    visits_df = pd.DataFrame(
        [{"time_years": float(r.time_years),
          "visit_date": shift_date(r.visit_date, shift, identified), "source": r.source,
          "source_file": r.file_name if identified else None,
          "imported_on": _import_day(r.imported_at, import_shift, identified),
          **(r.values or {})} for r in visits],
        columns=["time_years", "visit_date", "source", "source_file", "imported_on",
                 *value_names])
    visits_df["visit_date"] = as_datetime(visits_df["visit_date"].tolist())
    visits_df["imported_on"] = as_datetime(visits_df["imported_on"].tolist())
    return visits_df


def _biomarker_frame(feats: list[Any], shift: int, identified: bool,
                     base: dt.date | None) -> pd.DataFrame:
    """Biomarkers in long format, the latest extractor run per series and name."""
    bio = pd.DataFrame(
        [(r.series_uid, shift_date(r.study_date, shift, identified), years_between(r.study_date, base),
          r.modality, r.contrast_phase, r.name, r.value, r.unit,
          _missing_reason(r.value, r.flags)) for r in feats],
        columns=["series_uid", "study_date", "time_years", "modality", "contrast_phase",
                 "name", "value", "unit", "reason"])
    # rows are newest-first within (series, name): keep the latest extractor run
    bio = bio.drop_duplicates(["series_uid", "name"], keep="first").reset_index(drop=True)
    bio["study_date"] = as_datetime(bio["study_date"].tolist())
    bio["value"] = bio["value"].astype("float64")
    bio["time_years"] = bio["time_years"].astype("float64")
    return bio


def patient_detail(store: Store, pseudonym: str, *, identified: bool) -> PatientDetail:
    """One patient's identity (when allowed), studies, series, visits, biomarkers, outcome.

    Parameters
    ----------
    store
        The open store.
    pseudonym
        The patient's pseudonym.
    identified
        True reads ``identity_map`` (name, real id, birth date) and gives real dates;
        False leaves those None and keeps dates shifted.

    Returns
    -------
    PatientDetail
        ``studies``: ``study_uid``, ``study_date``, ``time_years``, ``description``,
        ``n_series``. ``series``: as :func:`series_for_patient`. ``visits``:
        ``time_years``, ``visit_date``, ``source``, ``source_file`` (the visits file's
        name; None unless identified, or when the store did not record it),
        ``imported_on`` (the import's day, shifted when not identified; None when not
        recorded), then one column per imported value
        (labs with units in their names). ``biomarkers`` (long format, latest extractor
        run per series and name): ``series_uid``, ``study_date``, ``time_years``,
        ``modality``, ``contrast_phase``, ``name``, ``value``, ``unit``, ``reason`` (why
        the value is missing, as stored by the extractor; None when there is a value).

    Raises
    ------
    StoreError
        If no patient has this pseudonym.
    """
    with store.session() as s:
        patient = patient_row(s, pseudonym)
        idr = None
        if identified:
            idr = s.execute(select(IdentityMap)
                            .where(IdentityMap.patient_id == patient.id)).scalar()
        shift = idr.date_shift_days if idr is not None else 0
        series = _series_frame(s, patient, identified)
        studies = s.execute(
            select(Study.study_uid, Study.study_date, Study.description,
                   func.count(Series.id).label("n_series"),
                   dates_baseline().label("for_baseline"))
            .outerjoin(Series, Series.study_id == Study.id)
            .where(Study.patient_id == patient.id)
            .group_by(Study.id, Study.study_uid, Study.study_date, Study.description)
            .order_by(Study.study_date, Study.id)).all()
        visits, import_shift = _visit_rows(s, patient.id, identified)
        out = s.execute(select(Outcome).where(Outcome.patient_id == patient.id)).scalar()
        feats = s.execute(
            select(Series.series_uid, Study.study_date, Series.modality,
                   Series.contrast_phase, Feature.name, Feature.value, Feature.unit,
                   Feature.flags, Feature.computed_at, Feature.id)
            .join(Series, Feature.series_id == Series.id)
            .join(Study, Series.study_id == Study.id)
            .where(Study.patient_id == patient.id)
            .order_by(Study.study_date, Series.id, Feature.name,
                      Feature.computed_at.desc(), Feature.id.desc())).all()

    base = baseline_of(patient.baseline_date, [r.study_date for r in studies if r.for_baseline]
                       + [r.visit_date for r in visits], [r.study_date for r in studies])
    studies_df = _studies_frame(studies, shift, identified, base)
    visits_df = _visits_frame(visits, shift, identified, import_shift)
    bio = _biomarker_frame(feats, shift, identified, base)

    outcome = None
    if out is not None:
        outcome = OutcomeInfo(event=out.event, time_years=float(out.time_years),
                              date=shift_date(out.outcome_date, shift, identified))
    return PatientDetail(
        pseudonym=patient.pseudonym, identified=identified, sex=patient.sex,
        birth_year=view_birth_year(patient.birth_year, idr and idr.birth_date, identified),
        baseline_date=shift_date(patient.baseline_date, shift, identified),
        patient_name=idr.patient_name if idr else None,
        patient_id=idr.real_patient_id if idr else None,
        birth_date=idr.birth_date if idr else None,
        studies=studies_df, series=series, visits=visits_df, biomarkers=bio,
        outcome=outcome,
    )
