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

from typing import Any

from sqlalchemy import func, select

from analytics.store._repo_util import (
    CENSORED,
    DAYS_PER_YEAR,
)
from analytics.store.db import Store
from analytics.store.patient_list import (
    IDENTITY_COLUMNS,
    KEY_BIOMARKERS,
    PATIENT_COLUMNS,
    RISING_AT,
    RISK_COLUMNS,
    SORT_COLUMNS,
    PatientQuery,
    cohort_timeline,
    count_patients,
    find_names,
    find_patients,
    find_pseudonyms,
    list_patients,
)
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
    "PATIENT_COLUMNS", "RISING_AT", "RISK_COLUMNS", "SERIES_COLUMNS", "SORT_COLUMNS", "OutcomeInfo", "PatientDetail", "PatientQuery",
    "cohort_summary", "cohort_timeline", "count_patients", "describe_store", "features_for_series",
    "find_names", "find_patients", "find_pseudonyms", "list_patients", "patient_detail", "series_for_patient",
]


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
