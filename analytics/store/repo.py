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
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from analytics.store._repo_util import (
    CENSORED,
    DAYS_PER_YEAR,
    as_datetime,
    baseline_of,
    count_occasions,
    dates_baseline,
    shift_date,
    view_birth_year,
    years_between,
)
from analytics.store.db import Store
from analytics.store.repo_patient import (
    FEATURE_COLUMNS,
    SERIES_COLUMNS,
    OutcomeInfo,
    PatientDetail,
    features_for_series,
    patient_detail,
    series_for_patient,
)
from analytics.store.schema import (
    Feature,
    IdentityMap,
    Instance,
    ModelRecord,
    Outcome,
    Patient,
    Series,
    Study,
    Visit,
)

__all__ = [
    "CENSORED", "DAYS_PER_YEAR", "FEATURE_COLUMNS", "IDENTITY_COLUMNS", "KEY_BIOMARKERS",
    "PATIENT_COLUMNS", "SERIES_COLUMNS", "OutcomeInfo", "PatientDetail", "cohort_summary",
    "cohort_timeline", "describe_store", "features_for_series", "list_patients",
    "patient_detail", "series_for_patient",
]


#: biomarkers shown as "latest value" columns in the cohort list, when present in the store
KEY_BIOMARKERS: tuple[str, ...] = (
    "liver_volume_ml",
    "spleen_volume_ml",
    "liver_hu_mean",
    "liver_spleen_hu_diff",
    "liver_surface_nodularity",
    "liver_pdff_median_pct",
    "liver_mre_stiffness_median_kpa",
    "us_hepatorenal_index",
)

PATIENT_COLUMNS: tuple[str, ...] = (
    "pseudonym", "sex", "birth_year", "n_studies", "n_series", "first_scan", "last_scan",
    "n_visits", "event", "follow_up_years", "outcome_date",
)
IDENTITY_COLUMNS: tuple[str, ...] = ("patient_name", "patient_id", "birth_date")

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
                   func.count(Series.id).label("n_series"),
                   dates_baseline().label("for_baseline"))
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

    records = [_patient_record(p, identity.get(p.id), studies_of.get(p.id, []),
                               visits_of.get(p.id, []), outcomes.get(p.id),
                               latest.get(p.id, {}), present, identified)
               for p in patients]
    return _patient_frame(records, present, identified)


def _patient_record(p: Any, idr: Any, st_rows: list[Any],
                    v_rows: list[tuple[float, dt.date | None]], out: Any,
                    latest: dict[str, float], present: list[str],
                    identified: bool) -> dict[str, Any]:
    """One row of :func:`list_patients` from the patient's rows."""
    shift = idr.date_shift_days if idr is not None else 0
    dates = [r.study_date for r in st_rows]
    known = [d for d in dates if d is not None]
    valid = [r.study_date for r in st_rows if r.for_baseline]  # time zero: not invalid
    baseline = baseline_of(p.baseline_date, valid + [d for _, d in v_rows], dates)
    rec: dict[str, Any] = {
        "pseudonym": p.pseudonym,
        "sex": p.sex,
        "birth_year": view_birth_year(p.birth_year, idr.birth_date if idr else None,
                                      identified),
        "n_studies": len(st_rows),
        "n_series": int(sum(r.n_series for r in st_rows)),
        "first_scan": shift_date(min(known), shift, identified) if known else None,
        "last_scan": shift_date(max(known), shift, identified) if known else None,
        "n_visits": count_occasions(dates, v_rows, baseline),
        "event": out.event if out else None,
        "follow_up_years": float(out.time_years) if out else None,
        "outcome_date": shift_date(out.outcome_date, shift, identified) if out else None,
    }
    if identified:
        rec["patient_name"] = idr.patient_name if idr else None
        rec["patient_id"] = idr.real_patient_id if idr else None
        rec["birth_date"] = idr.birth_date if idr else None
    for name in present:
        rec[name] = latest.get(name)
    return rec


def _patient_frame(records: list[dict[str, Any]], present: list[str],
                   identified: bool) -> pd.DataFrame:
    """The records of :func:`list_patients` as a frame with its documented columns and
    dtypes."""
    columns = list(PATIENT_COLUMNS)
    if identified:
        columns[1:1] = IDENTITY_COLUMNS
    columns += present
    df = pd.DataFrame.from_records(records, columns=columns)
    for col in ("first_scan", "last_scan", "outcome_date") + (
            ("birth_date",) if identified else ()):
        df[col] = as_datetime(df[col].tolist())
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
        studies = s.execute(select(Study.patient_id, Study.study_date,
                                   dates_baseline().label("for_baseline"))
                            .where(Study.patient_id.is_not(None))).all()
        visits = s.execute(select(Visit.patient_id, Visit.time_years, Visit.visit_date)).all()
        outcomes = s.execute(select(Outcome.patient_id, Outcome.time_years,
                                    Outcome.event)).all()
    dates_of: dict[int, list[dt.date]] = defaultdict(list)
    base_dates: dict[int, list[dt.date]] = defaultdict(list)
    for r in studies:
        if r.study_date is not None:
            dates_of[r.patient_id].append(r.study_date)
            if r.for_baseline:
                base_dates[r.patient_id].append(r.study_date)
    visit_dates: dict[int, list[dt.date]] = defaultdict(list)
    for r in visits:
        if r.visit_date is not None:
            visit_dates[r.patient_id].append(r.visit_date)
    names = {p.id: p.pseudonym for p in patients}
    base = {p.id: baseline_of(p.baseline_date, base_dates[p.id] + visit_dates[p.id],
                              dates_of[p.id])
            for p in patients}
    rows: list[tuple[str, str, float, str | None]] = []
    for pid, dates in dates_of.items():
        for d in dates:
            rows.append((names[pid], "scan", years_between(d, base[pid]), None))  # type: ignore[arg-type]
    rows += [(names[r.patient_id], "visit", float(r.time_years), None) for r in visits
             if r.time_years is not None]
    rows += [(names[r.patient_id], "outcome", float(r.time_years), r.event) for r in outcomes]
    df = pd.DataFrame(rows, columns=["pseudonym", "kind", "time_years", "event"])
    df["time_years"] = df["time_years"].astype("float64")
    return df.sort_values(["pseudonym", "time_years", "kind"], ignore_index=True)


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
