"""Read-side repository: query helpers returning DataFrames and dataclasses.

Pages, reports and exports read the store through these functions only; each one runs a
fixed, small number of set-based queries (never one query per patient), so the cost does
not grow with round trips as the cohort grows.

Conventions
-----------
- Patients are named by ``pseudonym``. Real identifiers (``identity_map``) are read only
  when the caller passes ``identified=True``; with ``identified=False`` no column derived
  from ``identity_map`` is even queried.
- Stored dates are de-identified: ``stored = real + date_shift_days`` (per patient, so every
  interval is kept). Identified views shift them back: ``real = stored - date_shift_days``.
- Years are ``days / 365.25``. A study's ``time_years`` is measured from the patient's
  ``baseline_date`` when set, else from the patient's earliest dated study or visit.
- A *visit* (``n_visits``) is a distinct occasion: a date on which the patient had a scan
  or a visit row; a visit row without a date (and no baseline to place it) counts alone.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from analytics.errors import StoreError
from analytics.store.db import Store
from analytics.store.schema import (
    Feature,
    IdentityMap,
    Instance,
    Mask,
    ModelRecord,
    Outcome,
    Patient,
    Series,
    Study,
    Visit,
)

DAYS_PER_YEAR = 365.25
CENSORED = "censored"

#: biomarkers shown as "latest value" columns in the cohort list, when present in the store
KEY_BIOMARKERS: tuple[str, ...] = (
    "liver_volume_ml",
    "spleen_volume_ml",
    "liver_hu_mean",
    "liver_spleen_hu_diff",
    "liver_surface_nodularity",
)

PATIENT_COLUMNS: tuple[str, ...] = (
    "pseudonym", "sex", "birth_year", "n_studies", "n_series", "first_scan", "last_scan",
    "n_visits", "event", "follow_up_years", "outcome_date",
)
IDENTITY_COLUMNS: tuple[str, ...] = ("patient_name", "patient_id", "birth_date")
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
    every date is real when ``identified`` and shifted otherwise.
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


# --------------------------------------------------------------------------- helpers
def _shift(date: dt.date | None, shift_days: int, identified: bool) -> dt.date | None:
    if date is None or not identified or not shift_days:
        return date
    return date - dt.timedelta(days=int(shift_days))


def _years(later: dt.date | None, earlier: dt.date | None) -> float | None:
    if later is None or earlier is None:
        return None
    return (later - earlier).days / DAYS_PER_YEAR


def _as_datetime(values: list[dt.date | None]) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype="object"))


def _patient_row(s: Any, pseudonym: str) -> Patient:
    patient = s.execute(select(Patient).where(Patient.pseudonym == pseudonym)).scalar()
    if patient is None:
        raise StoreError(f"patient {pseudonym!r}: not in the store",
                         hint="pick a pseudonym from the cohort list")
    return patient


def _baseline(baseline: dt.date | None, dates: list[dt.date | None]) -> dt.date | None:
    """The patient's time origin: stored baseline, else the earliest known date."""
    if baseline is not None:
        return baseline
    known = [d for d in dates if d is not None]
    return min(known) if known else None


def _occasions(study_dates: list[dt.date | None], visit_rows: list[tuple[float, dt.date | None]],
               baseline: dt.date | None) -> int:
    """Distinct visit occasions from scan dates and visit rows (see module docstring)."""
    dated: set[dt.date] = {d for d in study_dates if d is not None}
    undated: set[float] = set()
    for time_years, visit_date in visit_rows:
        if visit_date is None and baseline is not None and time_years is not None:
            visit_date = baseline + dt.timedelta(days=round(time_years * DAYS_PER_YEAR))
        if visit_date is not None:
            dated.add(visit_date)
        else:
            undated.add(round(float(time_years), 6))
    undated_studies = sum(1 for d in study_dates if d is None)
    return len(dated) + len(undated) + undated_studies


def _latest_values(rows: list[Any]) -> dict[int, dict[str, float]]:
    """Per patient, the newest non-null value of each feature name.

    ``rows`` are ``(patient_id, study_date, series_id, computed_at, name, value)``; newest
    means latest study date, then latest series row, then latest computation.
    """
    def order(r: Any) -> tuple:
        computed = r.computed_at
        if computed is not None and computed.tzinfo is None:
            computed = computed.replace(tzinfo=dt.UTC)  # SQLite drops the zone
        return (r.study_date or dt.date.min, r.series_id,
                computed or dt.datetime.min.replace(tzinfo=dt.UTC))

    latest: dict[int, dict[str, float]] = defaultdict(dict)
    for r in sorted(rows, key=order):
        if r.value is not None:
            latest[r.patient_id][r.name] = float(r.value)
    return latest


# --------------------------------------------------------------------------- cohort list
def list_patients(store: Store, *, identified: bool) -> pd.DataFrame:
    """One row per patient with headline counts, dates, outcome and latest biomarkers.

    Parameters
    ----------
    store
        The open store.
    identified
        True for an identified (clinician) view: adds ``patient_name``, ``patient_id``
        (the real one) and ``birth_date`` from ``identity_map`` and gives real dates.
        False reads nothing from ``identity_map``: dates stay shifted.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PATIENT_COLUMNS` (plus :data:`IDENTITY_COLUMNS` after ``pseudonym``
        when identified), then one column per :data:`KEY_BIOMARKERS` name present in the
        ``features`` table (latest non-null value, unit in the name). ``first_scan``,
        ``last_scan`` and ``outcome_date`` are datetime64 (NaT when unknown);
        ``follow_up_years`` is the outcome time in years from baseline. Sorted by pseudonym.
    """
    with store.session() as s:
        patients = s.execute(select(Patient.id, Patient.pseudonym, Patient.sex,
                                    Patient.birth_year, Patient.baseline_date)
                             .order_by(Patient.pseudonym)).all()
        identity = {}
        if identified:
            identity = {r.patient_id: r for r in s.execute(
                select(IdentityMap.patient_id, IdentityMap.real_patient_id,
                       IdentityMap.patient_name, IdentityMap.birth_date,
                       IdentityMap.date_shift_days)).all()}
        studies = s.execute(
            select(Study.patient_id, Study.id, Study.study_date,
                   func.count(Series.id).label("n_series"))
            .outerjoin(Series, Series.study_id == Study.id)
            .group_by(Study.patient_id, Study.id, Study.study_date)).all()
        visits = s.execute(select(Visit.patient_id, Visit.time_years, Visit.visit_date)).all()
        outcomes = {r.patient_id: r for r in s.execute(
            select(Outcome.patient_id, Outcome.time_years, Outcome.outcome_date,
                   Outcome.event)).all()}
        feature_rows = s.execute(
            select(Study.patient_id, Study.study_date, Series.id.label("series_id"),
                   Feature.computed_at, Feature.name, Feature.value)
            .join(Series, Feature.series_id == Series.id)
            .join(Study, Series.study_id == Study.id)
            .where(Feature.name.in_(KEY_BIOMARKERS))).all()

    studies_of: dict[int, list[Any]] = defaultdict(list)
    for r in studies:
        studies_of[r.patient_id].append(r)
    visits_of: dict[int, list[tuple[float, dt.date | None]]] = defaultdict(list)
    for r in visits:
        visits_of[r.patient_id].append((r.time_years, r.visit_date))
    latest = _latest_values(feature_rows)
    present = [n for n in KEY_BIOMARKERS if any(n in v for v in latest.values())]

    records = []
    for p in patients:
        idr = identity.get(p.id)
        shift = idr.date_shift_days if idr is not None else 0
        st_rows = studies_of.get(p.id, [])
        dates = [r.study_date for r in st_rows]
        known = [d for d in dates if d is not None]
        v_rows = visits_of.get(p.id, [])
        baseline = _baseline(p.baseline_date, known + [d for _, d in v_rows])
        out = outcomes.get(p.id)
        rec: dict[str, Any] = {
            "pseudonym": p.pseudonym,
            "sex": p.sex,
            "birth_year": p.birth_year,
            "n_studies": len(st_rows),
            "n_series": int(sum(r.n_series for r in st_rows)),
            "first_scan": _shift(min(known), shift, identified) if known else None,
            "last_scan": _shift(max(known), shift, identified) if known else None,
            "n_visits": _occasions(dates, v_rows, baseline),
            "event": out.event if out else None,
            "follow_up_years": float(out.time_years) if out else None,
            "outcome_date": _shift(out.outcome_date, shift, identified) if out else None,
        }
        if identified:
            rec["patient_name"] = idr.patient_name if idr else None
            rec["patient_id"] = idr.real_patient_id if idr else None
            rec["birth_date"] = idr.birth_date if idr else None
        for name in present:
            rec[name] = latest.get(p.id, {}).get(name)
        records.append(rec)

    columns = list(PATIENT_COLUMNS)
    if identified:
        columns[1:1] = IDENTITY_COLUMNS
    columns += present
    df = pd.DataFrame.from_records(records, columns=columns)
    for col in ("first_scan", "last_scan", "outcome_date") + (
            ("birth_date",) if identified else ()):
        df[col] = _as_datetime(df[col].tolist())
    for col in ("birth_year",):
        df[col] = df[col].astype("Int64")
    for col in ("n_studies", "n_series", "n_visits"):
        df[col] = df[col].astype("int64")
    for col in ["follow_up_years", *present]:
        df[col] = df[col].astype("float64")
    return df


def cohort_timeline(store: Store) -> pd.DataFrame:
    """Every scan, visit and outcome of every patient on the patient's own time axis.

    Only intervals are returned (years from each patient's baseline), which the per-patient
    date shift keeps exactly, so the same table serves identified and pseudonymised views.

    Returns
    -------
    pandas.DataFrame
        Columns ``pseudonym``, ``kind`` (``scan``, ``visit`` or ``outcome``),
        ``time_years`` and ``event`` (outcome rows only). Scans and visits without a
        placeable time are left out. Sorted by pseudonym, time, kind.
    """
    with store.session() as s:
        patients = s.execute(select(Patient.id, Patient.pseudonym,
                                    Patient.baseline_date)).all()
        studies = s.execute(select(Study.patient_id, Study.study_date)).all()
        visits = s.execute(select(Visit.patient_id, Visit.time_years, Visit.visit_date)).all()
        outcomes = s.execute(select(Outcome.patient_id, Outcome.time_years,
                                    Outcome.event)).all()
    dates_of: dict[int, list[dt.date]] = defaultdict(list)
    for r in studies:
        if r.study_date is not None:
            dates_of[r.patient_id].append(r.study_date)
    visit_dates: dict[int, list[dt.date]] = defaultdict(list)
    for r in visits:
        if r.visit_date is not None:
            visit_dates[r.patient_id].append(r.visit_date)
    names = {p.id: p.pseudonym for p in patients}
    base = {p.id: _baseline(p.baseline_date, dates_of[p.id] + visit_dates[p.id])
            for p in patients}
    rows: list[tuple[str, str, float, str | None]] = []
    for pid, dates in dates_of.items():
        for d in dates:
            rows.append((names[pid], "scan", _years(d, base[pid]), None))  # type: ignore[arg-type]
    rows += [(names[r.patient_id], "visit", float(r.time_years), None) for r in visits
             if r.time_years is not None]
    rows += [(names[r.patient_id], "outcome", float(r.time_years), r.event) for r in outcomes]
    df = pd.DataFrame(rows, columns=["pseudonym", "kind", "time_years", "event"])
    df["time_years"] = df["time_years"].astype("float64")
    return df.sort_values(["pseudonym", "time_years", "kind"], ignore_index=True)


# --------------------------------------------------------------------------- one patient
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
        patient = _patient_row(s, pseudonym)
        return _series_frame(s, patient, identified)


def _series_frame(s: Any, patient: Patient, identified: bool) -> pd.DataFrame:
    shift = _shift_days(s, patient.id) if identified else 0
    rows = s.execute(
        select(Series, Study.study_uid, Study.study_date)
        .join(Study, Series.study_id == Study.id)
        .where(Study.patient_id == patient.id)
        .order_by(Study.study_date, Study.id, Series.id)).all()
    ids = [r.Series.id for r in rows]
    masks: dict[int, list[str]] = defaultdict(list)
    n_features: dict[int, int] = {}
    if ids:
        for m in s.execute(select(Mask.series_id, Mask.format)
                           .where(Mask.series_id.in_(ids)).order_by(Mask.id)).all():
            masks[m.series_id].append(m.format)
        n_features = dict(s.execute(
            select(Feature.series_id, func.count(Feature.id))
            .where(Feature.series_id.in_(ids)).group_by(Feature.series_id)).all())
    visit_dates = [r.visit_date for r in s.execute(
        select(Visit.visit_date).where(Visit.patient_id == patient.id)).all()]
    base = _baseline(patient.baseline_date, [r.study_date for r in rows] + visit_dates)
    records = []
    for r in rows:
        se: Series = r.Series
        records.append({
            "series_uid": se.series_uid, "study_uid": r.study_uid,
            "study_date": _shift(r.study_date, shift, identified),
            "time_years": _years(r.study_date, base), "modality": se.modality,
            "description": se.description, "contrast_phase": se.contrast_phase,
            "n_instances": se.n_instances, "n_slices": se.n_slices, "rows": se.rows,
            "columns": se.columns, "spacing_mm": se.spacing_mm, "status": se.status,
            "status_reason": se.status_reason, "n_masks": len(masks.get(se.id, [])),
            "mask_formats": masks.get(se.id, []), "n_features": n_features.get(se.id, 0),
        })
    df = pd.DataFrame.from_records(records, columns=list(SERIES_COLUMNS))
    df["study_date"] = _as_datetime(df["study_date"].tolist())
    df["time_years"] = df["time_years"].astype("float64")
    return df


def _shift_days(s: Any, patient_id: int) -> int:
    shift = s.execute(select(IdentityMap.date_shift_days)
                      .where(IdentityMap.patient_id == patient_id)).scalar()
    return int(shift or 0)


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
        ``time_years``, ``visit_date``, ``source``, then one column per imported value
        (labs with units in their names). ``biomarkers`` (long format, latest extractor
        run per series and name): ``series_uid``, ``study_date``, ``time_years``,
        ``modality``, ``contrast_phase``, ``name``, ``value``, ``unit``.

    Raises
    ------
    StoreError
        If no patient has this pseudonym.
    """
    with store.session() as s:
        patient = _patient_row(s, pseudonym)
        idr = None
        if identified:
            idr = s.execute(select(IdentityMap)
                            .where(IdentityMap.patient_id == patient.id)).scalar()
        shift = idr.date_shift_days if idr is not None else 0
        series = _series_frame(s, patient, identified)
        studies = s.execute(
            select(Study.study_uid, Study.study_date, Study.description,
                   func.count(Series.id).label("n_series"))
            .outerjoin(Series, Series.study_id == Study.id)
            .where(Study.patient_id == patient.id)
            .group_by(Study.id, Study.study_uid, Study.study_date, Study.description)
            .order_by(Study.study_date, Study.id)).all()
        visits = s.execute(select(Visit.time_years, Visit.visit_date, Visit.source,
                                  Visit.values)
                           .where(Visit.patient_id == patient.id)
                           .order_by(Visit.time_years, Visit.source)).all()
        out = s.execute(select(Outcome).where(Outcome.patient_id == patient.id)).scalar()
        feats = s.execute(
            select(Series.series_uid, Study.study_date, Series.modality,
                   Series.contrast_phase, Feature.name, Feature.value, Feature.unit,
                   Feature.computed_at, Feature.id)
            .join(Series, Feature.series_id == Series.id)
            .join(Study, Series.study_id == Study.id)
            .where(Study.patient_id == patient.id)
            .order_by(Study.study_date, Series.id, Feature.name,
                      Feature.computed_at.desc(), Feature.id.desc())).all()

    base = _baseline(patient.baseline_date, [r.study_date for r in studies]
                     + [r.visit_date for r in visits])
    studies_df = pd.DataFrame(
        [(r.study_uid, _shift(r.study_date, shift, identified), _years(r.study_date, base),
          r.description, int(r.n_series)) for r in studies],
        columns=["study_uid", "study_date", "time_years", "description", "n_series"])
    studies_df["study_date"] = _as_datetime(studies_df["study_date"].tolist())
    studies_df["time_years"] = studies_df["time_years"].astype("float64")

    value_names: list[str] = []
    for r in visits:
        value_names += [k for k in (r.values or {}) if k not in value_names]
    visits_df = pd.DataFrame(
        [{"time_years": float(r.time_years),
          "visit_date": _shift(r.visit_date, shift, identified), "source": r.source,
          **(r.values or {})} for r in visits],
        columns=["time_years", "visit_date", "source", *value_names])
    visits_df["visit_date"] = _as_datetime(visits_df["visit_date"].tolist())

    bio = pd.DataFrame(
        [(r.series_uid, _shift(r.study_date, shift, identified), _years(r.study_date, base),
          r.modality, r.contrast_phase, r.name, r.value, r.unit) for r in feats],
        columns=["series_uid", "study_date", "time_years", "modality", "contrast_phase",
                 "name", "value", "unit"])
    # rows are newest-first within (series, name): keep the latest extractor run
    bio = bio.drop_duplicates(["series_uid", "name"], keep="first").reset_index(drop=True)
    bio["study_date"] = _as_datetime(bio["study_date"].tolist())
    bio["value"] = bio["value"].astype("float64")
    bio["time_years"] = bio["time_years"].astype("float64")

    outcome = None
    if out is not None:
        outcome = OutcomeInfo(event=out.event, time_years=float(out.time_years),
                              date=_shift(out.outcome_date, shift, identified))
    return PatientDetail(
        pseudonym=patient.pseudonym, identified=identified, sex=patient.sex,
        birth_year=patient.birth_year,
        baseline_date=_shift(patient.baseline_date, shift, identified),
        patient_name=idr.patient_name if idr else None,
        patient_id=idr.real_patient_id if idr else None,
        birth_date=idr.birth_date if idr else None,
        studies=studies_df, series=series, visits=visits_df, biomarkers=bio,
        outcome=outcome,
    )


# --------------------------------------------------------------------------- headline
def cohort_summary(store: Store) -> dict[str, Any]:
    """Headline counts of what the store holds.

    Returns
    -------
    dict
        ``patients``, ``studies``, ``series``, ``series_by_status`` (``{status: n}``),
        ``instances``, ``series_with_features``, ``feature_values``, ``visits`` (visit
        rows), ``patients_with_outcome``, ``events`` (outcomes other than censored),
        ``events_by_type`` (``{event: n}``, censored included), ``models``,
        ``active_model`` (model_id or None).
    """
    with store.session() as s:
        def count(col: Any) -> int:
            return int(s.execute(select(func.count(col))).scalar() or 0)

        by_status = dict(s.execute(select(Series.status, func.count(Series.id))
                                   .group_by(Series.status)).all())
        by_event = dict(s.execute(select(Outcome.event, func.count(Outcome.id))
                                  .group_by(Outcome.event)).all())
        active = s.execute(select(ModelRecord.model_id).where(ModelRecord.active.is_(True))
                           .order_by(ModelRecord.created_at.desc())).scalars().first()
        summary = {
            "patients": count(Patient.id),
            "studies": count(Study.id),
            "series": count(Series.id),
            "series_by_status": {k: int(v) for k, v in sorted(by_status.items())},
            "instances": count(Instance.id),
            "series_with_features": int(s.execute(
                select(func.count(func.distinct(Feature.series_id)))).scalar() or 0),
            "feature_values": count(Feature.id),
            "visits": count(Visit.id),
            "patients_with_outcome": count(Outcome.id),
            "events_by_type": {k: int(v) for k, v in sorted(by_event.items())},
            "models": count(ModelRecord.id),
            "active_model": active,
        }
    summary["events"] = sum(v for k, v in summary["events_by_type"].items() if k != CENSORED)
    return summary


def describe_store(store: Store) -> str:
    """A one-line, credential-free name of the database in use, for the UI.

    Returns ``"SQLite: /path/hepatrack.db"`` or ``"PostgreSQL: host:port/database"``; a
    user name and password in the URL are never included.
    """
    url = store.engine.url
    if url.get_backend_name() == "sqlite":
        return f"SQLite: {url.database or ':memory:'}"
    name = {"postgresql": "PostgreSQL"}.get(url.get_backend_name(), url.get_backend_name())
    port = f":{url.port}" if url.port else ""
    return f"{name}: {url.host or 'localhost'}{port}/{url.database or ''}"
