"""The cohort list: one row per patient, read from the per-patient summary.

Conventions (identity, shifted dates, years, baseline, visit occasions) are those of
:mod:`analytics.store.repo`, which re-exports everything here.

Design (50,000 patients and 200,000 series on PostgreSQL or SQLite, a page in well under
a second): what the list shows of a patient's scans and visits (counts, first and last
scan, visit occasions, the latest value of each key biomarker) is kept in
``patient_summary``, written in the same transaction as the rows it summarises
(:mod:`analytics.store.patient_summary`), so the list is one indexed join of
``patients``, ``patient_summary``, ``outcomes`` and, for identified views only,
``identity_map``. Filters (:class:`PatientQuery`), the sort, and the page (``limit`` and
``offset``) all run in that one SQL statement, so a page of 50 costs the same at 50
patients or at 50,000; :func:`count_patients` counts the filtered list in SQL.

The current risk of a model is in the store too (``current_risk``, written whenever the
model's cohort risk is computed: :mod:`analytics.store.current_risk`): a query naming a
model and horizon (:attr:`PatientQuery.risk_model`) gets its risk columns, and can sort
by risk (:data:`SORT_COLUMNS` ``"risk"``), filter on it and page by it in the same one
statement. Only that model's rows are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.sql import ColumnElement

from analytics.errors import StoreError
from analytics.store._repo_util import CENSORED, DAYS_PER_YEAR
from analytics.store.patient_summary import (
    KEY_BIOMARKERS,
    DayNumber,
    baseline_days,
    days,
    everyone,
    time_origin_query,
    tune_for_reports,
    tuples,
)
from analytics.store.schema import (
    CurrentRisk,
    Feature,
    IdentityMap,
    Outcome,
    Patient,
    PatientSummary,
    Series,
    Study,
    Visit,
)

if TYPE_CHECKING:
    from analytics.store.db import Store

__all__ = ["IDENTITY_COLUMNS", "KEY_BIOMARKERS", "PATIENT_COLUMNS", "RISING_AT",
           "RISK_COLUMNS", "SORT_COLUMNS", "PatientQuery", "cohort_timeline", "count_patients",
           "find_names", "find_patients", "find_pseudonyms", "list_patients"]

PATIENT_COLUMNS: tuple[str, ...] = (
    "pseudonym", "sex", "birth_year", "n_studies", "n_series", "first_scan", "last_scan",
    "n_visits", "event", "follow_up_years", "outcome_date",
)
IDENTITY_COLUMNS: tuple[str, ...] = ("patient_name", "patient_id", "birth_date")
#: columns added when a query names a model (:attr:`PatientQuery.risk_model`): its risk
#: at the latest visit and at the one before (fractions, NaN when unknown or not
#: assessable), the latest visit's time (years), the "as of" date (real in identified
#: views) and why the latest visit is not assessable
RISK_COLUMNS: tuple[str, ...] = ("risk", "previous_risk", "risk_time_years", "risk_as_of",
                                 "risk_reason")
#: a rise of the current risk over the previous visit's of at least this (absolute,
#: fraction) counts as rising, as the Cohort page's trend arrow says
RISING_AT = 0.01
#: columns a list can be sorted by in SQL: the pseudonym A to Z, every other largest
#: (newest, longest, most) first with unknown values last, ties by pseudonym
SORT_COLUMNS: tuple[str, ...] = ("pseudonym", "last_scan", "follow_up_years", "n_studies",
                                 "n_visits", "risk")
_EPOCH = np.datetime64("1970-01-01", "D")


@dataclass(frozen=True)
class PatientQuery:
    """Which patients a cohort list returns, in what order, applied in SQL.

    Attributes
    ----------
    search
        Case-insensitive substring of the pseudonym; in identified views also of the
        patient's name or real patient ID (never in pseudonymised views, so a search
        cannot reveal who is behind a pseudonym). Case folding is ASCII-only on SQLite.
    events
        Keep patients whose outcome is one of these event names (``"censored"``
        included when named).
    had_event
        True keeps patients whose follow-up ended in an event other than censoring.
    modality
        Keep patients with at least one series of this modality (``CT``, ``MR``, ``US``...).
    has_scans
        True keeps patients with at least one study; False those with none.
    pseudonyms
        Keep only these patients (a page chosen elsewhere, e.g. by risk).
    after
        Keyset pagination: only pseudonyms sorting after this one.
    sort
        One of :data:`SORT_COLUMNS`: the pseudonym A to Z, or that column largest first
        (unknown last, ties by pseudonym); in identified views ``last_scan`` sorts by the
        real date.
    offset
        Skip this many patients of the sorted list (a page's start).
    limit
        At most this many patients (the first in the sort order, after ``offset``).
    risk_model, risk_horizon
        The model and horizon (years) whose stored current risk the rows carry
        (:data:`RISK_COLUMNS`) and the risk sort and filters use; both or neither.
    risk_at_least
        Keep patients whose current risk is at least this (fraction).
    rising
        Keep patients whose risk rose by at least :data:`RISING_AT` since the visit before.
    not_assessable
        Keep patients whose latest visit could not be scored (out of the model's domain).
    """

    search: str | None = None
    events: tuple[str, ...] | None = None
    had_event: bool = False
    modality: str | None = None
    has_scans: bool | None = None
    pseudonyms: tuple[str, ...] | None = None
    after: str | None = None
    sort: str = "pseudonym"
    offset: int = 0
    limit: int | None = None
    risk_model: str | None = None
    risk_horizon: float | None = None
    risk_at_least: float | None = None
    rising: bool = False
    not_assessable: bool = False

    @property
    def filters_risk(self) -> bool:
        """True when a filter keeps patients by their stored current risk."""
        return self.risk_at_least is not None or self.rising or self.not_assessable

    @property
    def uses_risk(self) -> bool:
        """True when the query reads the stored current risk."""
        return self.risk_model is not None


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
    return find_patients(store, PatientQuery(), identified=identified)


def find_patients(store: Store, query: PatientQuery, *, identified: bool) -> pd.DataFrame:
    """The rows of :func:`list_patients` for the patients ``query`` selects.

    Parameters
    ----------
    store
        The open store.
    query
        The filters, the sort and the page (see :class:`PatientQuery`).
    identified
        As in :func:`list_patients`; also decides which columns ``query.search`` reads.

    Returns
    -------
    pandas.DataFrame
        As :func:`list_patients` (the same columns, including every key biomarker column
        present in the store), only the selected patients, in ``query.sort`` order.

    Raises
    ------
    StoreError
        If ``query.limit`` is below 1, ``query.offset`` below 0 or ``query.sort`` unknown.
    """
    _check(query)
    with store.session() as s:
        conn = s.connection()
        tune_for_reports(conn)
        rows = tuples(conn, _page(_row_query(identified, query), query, identified))
        measured = conn.execute(select(*[
            exists().where(Feature.name == n, Feature.value.is_not(None)).label(n)
            for n in KEY_BIOMARKERS])).one()
    # columns of every key biomarker measured in the store, whatever the filter keeps
    present = [n for n, hit in zip(KEY_BIOMARKERS, measured, strict=True) if hit]
    return _frame(rows, present, identified, query.uses_risk)


def find_pseudonyms(store: Store, query: PatientQuery, *, identified: bool) -> list[str]:
    """The pseudonyms of :func:`find_patients` (same filters, order and page), without
    reading the rows: what a sort done elsewhere (by risk) starts from.

    Raises
    ------
    StoreError
        As :func:`find_patients`.
    """
    _check(query)
    base = _joined(select(_S.pseudonym).select_from(_S), query, identified)
    with store.session() as s:
        return [r[0] for r in tuples(s.connection(), _page(base, query, identified))]


def find_names(store: Store, query: PatientQuery, *, identified: bool) -> pd.DataFrame:
    """What a patient picker shows of :func:`find_patients` (same filters, order and
    page): the pseudonym and, in identified views only, ``patient_name`` and
    ``patient_id`` (the real one). One narrow query: no counts, dates or biomarkers.

    Raises
    ------
    StoreError
        As :func:`find_patients`.
    """
    _check(query)
    columns: list[Any] = [_S.pseudonym]
    base = select(_S.pseudonym).select_from(_S)
    if identified:
        columns += [IdentityMap.patient_name, IdentityMap.real_patient_id]
        base = (select(*columns).select_from(_S)
                .outerjoin(IdentityMap, IdentityMap.patient_id == _S.patient_id))
    if query.uses_risk:
        base = base.outerjoin(CurrentRisk, _risk_join(query))
    with store.session() as s:
        rows = tuples(s.connection(), _page(base, query, identified))
    keys = ["pseudonym", *(["patient_name", "patient_id"] if identified else [])]
    return pd.DataFrame(rows, columns=keys, dtype=object)


def count_patients(store: Store, query: PatientQuery, *, identified: bool) -> int:
    """How many patients ``query`` selects, counted in SQL (``query.after``,
    ``query.offset`` and ``query.limit`` apply too: without them, the size of the whole
    filtered list).

    Parameters
    ----------
    store
        The open store.
    query
        The filters (see :class:`PatientQuery`).
    identified
        As in :func:`find_patients`: decides which columns ``query.search`` reads.
    """
    _check(query)
    chosen = select(_S.patient_id).select_from(_S)
    if query.filters_risk:  # a sort alone keeps every patient: no risk row to read
        chosen = chosen.outerjoin(CurrentRisk, _risk_join(query))
    chosen = _filtered(chosen, query, identified)
    if query.limit is not None or query.offset:
        chosen = chosen.order_by(_S.pseudonym).offset(query.offset).limit(query.limit)
    with store.session() as s:
        return int(s.execute(select(func.count()).select_from(chosen.subquery("chosen"))
                             ).scalar_one())


def _check(query: PatientQuery) -> None:
    if query.limit is not None and query.limit < 1:
        raise StoreError(f"patient list limit {query.limit}: expected 1 or more")
    if query.offset < 0:
        raise StoreError(f"patient list offset {query.offset}: expected 0 or more")
    if query.sort not in SORT_COLUMNS:
        raise StoreError(f"patient list sort {query.sort!r}: expected one of "
                         f"{', '.join(SORT_COLUMNS)}")
    if (query.risk_model is None) != (query.risk_horizon is None):
        raise StoreError("patient list: risk_model and risk_horizon go together "
                         f"(got {query.risk_model!r} and {query.risk_horizon!r})")
    if (query.sort == "risk" or query.filters_risk) and not query.uses_risk:
        raise StoreError("patient list: a sort or filter on risk needs risk_model and "
                         "risk_horizon (the model whose current risk to use)")


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
        conn = s.connection()
        tune_for_reports(conn)
        origin = conn.execute(time_origin_query(everyone)).all()
        scans = conn.execute(select(Study.patient_id, DayNumber(Study.study_date))
                             .where(Study.patient_id.is_not(None),
                                    Study.study_date.is_not(None))).all()
        visits = conn.execute(select(Visit.patient_id, Visit.time_years,
                                     DayNumber(Visit.visit_date))).all()
        outcomes = conn.execute(select(Outcome.patient_id, Outcome.time_years,
                                       Outcome.event)).all()
    ids = np.array([r[0] for r in origin], dtype="int64")
    base_days = baseline_days(ids.astype("float64"), days([r[2] for r in origin]),
                              days([r[4] for r in origin]), days([r[3] for r in origin]),
                              visits)
    base = pd.Series(base_days, index=ids)
    name = pd.Series([r[1] for r in origin], index=ids, dtype=object)
    scan_pid = np.array([r[0] for r in scans], dtype="int64")
    scan_years = ((days([r[1] for r in scans]) - base.reindex(scan_pid).to_numpy())
                  / DAYS_PER_YEAR)
    parts = [
        pd.DataFrame({"pseudonym": name.reindex(scan_pid).to_numpy(), "kind": "scan",
                      "time_years": scan_years, "event": None}),
        pd.DataFrame({"pseudonym": name.reindex([r[0] for r in visits]).to_numpy(),
                      "kind": "visit", "time_years": [float(r[1]) for r in visits],
                      "event": None}),
        pd.DataFrame({"pseudonym": name.reindex([r[0] for r in outcomes]).to_numpy(),
                      "kind": "outcome", "time_years": [float(r[1]) for r in outcomes],
                      "event": [r[2] for r in outcomes]}),
    ]
    df = pd.concat([p for p in parts if len(p)] or parts[:1], ignore_index=True)
    df["time_years"] = df["time_years"].astype("float64")
    df["event"] = df["event"].astype(object).where(df["event"].notna(), None)
    return df.sort_values(["pseudonym", "time_years", "kind"], ignore_index=True)


# --------------------------------------------------------------------------- SQL
_S = PatientSummary


def _risk_join(query: PatientQuery) -> Any:
    """The join condition of a patient's ``current_risk`` row of the query's model."""
    return ((CurrentRisk.patient_id == _S.patient_id)
            & (CurrentRisk.model_id == query.risk_model)
            & (CurrentRisk.horizon_years == float(query.risk_horizon or 0.0)))


def _joined(stmt: Select, query: PatientQuery, identified: bool) -> Select:
    """``stmt`` (from ``patient_summary``) with the rows its order and filters need:
    the identity row for a real-date sort, the current risk of the query's model."""
    if _real_last_scan_sort(query, identified):
        stmt = stmt.outerjoin(IdentityMap, IdentityMap.patient_id == _S.patient_id)
    if query.uses_risk:
        stmt = stmt.outerjoin(CurrentRisk, _risk_join(query))
    return stmt


def _row_query(identified: bool, query: PatientQuery) -> Select:
    """The columns of a list row (:data:`_ROW_KEYS`): the summary row joined to its
    patient, the outcome, when identified the identity row and, when the query names a
    model, its current-risk row (each one row at most)."""
    columns: list[Any] = [
        _S.pseudonym, Patient.sex, Patient.birth_year, _S.n_studies, _S.n_series,
        DayNumber(_S.first_scan), DayNumber(_S.last_scan), _S.n_visits,
        Outcome.event, Outcome.time_years, DayNumber(Outcome.outcome_date),
        *[_S.__table__.c[n] for n in KEY_BIOMARKERS],
    ]
    if identified:
        columns += [IdentityMap.date_shift_days, IdentityMap.patient_name,
                    IdentityMap.real_patient_id, DayNumber(IdentityMap.birth_date)]
    if query.uses_risk:
        columns += [CurrentRisk.risk, CurrentRisk.previous_risk, CurrentRisk.risk_time_years,
                    DayNumber(CurrentRisk.as_of), CurrentRisk.reason]
    stmt = (select(*columns).select_from(_S).join(Patient, Patient.id == _S.patient_id)
            .outerjoin(Outcome, Outcome.patient_id == _S.patient_id))
    if identified:
        stmt = stmt.outerjoin(IdentityMap, IdentityMap.patient_id == _S.patient_id)
    if query.uses_risk:
        stmt = stmt.outerjoin(CurrentRisk, _risk_join(query))
    return stmt


_ROW_KEYS = ["pseudonym", "sex", "stored_birth_year", "n_studies", "n_series", "first_scan",
             "last_scan", "n_visits", "event", "follow_up_years", "outcome_date",
             *KEY_BIOMARKERS]
_IDENTITY_KEYS = ["shift", "patient_name", "patient_id", "birth_date"]
_RISK_KEYS = ["risk", "previous_risk", "risk_time_years", "risk_as_of", "risk_reason"]


def _real_last_scan_sort(query: PatientQuery, identified: bool) -> bool:
    """True when the order needs the identity row: identified views sort the last scan
    by its real date (stored minus the patient's shift)."""
    return identified and query.sort == "last_scan"


def _ordered(stmt: Select, query: PatientQuery, identified: bool) -> Select:
    """``stmt`` (which reads ``patient_summary``, and ``identity_map`` when
    :func:`_real_last_scan_sort`) in ``query.sort`` order, ties by pseudonym."""
    if query.sort == "pseudonym":
        return stmt.order_by(_S.pseudonym)
    if query.sort == "risk":
        return stmt.order_by(CurrentRisk.risk.desc().nulls_last(), _S.pseudonym)
    key: ColumnElement[Any] = _S.__table__.c[query.sort]
    if query.sort == "last_scan":
        key = DayNumber(_S.last_scan)
        if _real_last_scan_sort(query, identified):
            key = key - func.coalesce(IdentityMap.date_shift_days, 0)
    return stmt.order_by(key.desc().nulls_last(), _S.pseudonym)


def _page(stmt: Select, query: PatientQuery, identified: bool) -> Select:
    """``stmt`` (a :func:`_row_query` or a query of ``patient_summary``) filtered,
    sorted and paged as ``query`` says.

    A page's patients are chosen first, from ``patient_summary`` alone where the
    filters and the sort allow (a sort and a top-N over one narrow table), then only
    their rows are joined and read.
    """
    if query.limit is None and not query.offset:
        return _ordered(_filtered(stmt, query, identified), query, identified)
    top = _joined(select(_S.patient_id).select_from(_S), query, identified)
    top = _ordered(_filtered(top, query, identified), query, identified)
    if query.offset:
        top = top.offset(query.offset)
    if query.limit is not None:
        top = top.limit(query.limit)
    return _ordered(stmt.where(_S.patient_id.in_(top.scalar_subquery())), query, identified)


def _filtered(stmt: Select, query: PatientQuery, identified: bool) -> Select:
    """``stmt`` (which reads ``patient_summary``) keeping the patients ``query``
    selects: every patient has one summary row, so the filters need no other join."""
    pid, name = _S.patient_id, _S.pseudonym
    text = (query.search or "").strip().lower()
    if text:
        hits: list[ColumnElement[bool]] = [func.lower(name).contains(text, autoescape=True)]
        if identified:  # identity columns are searched only where they are shown
            hits.append(exists().where(
                IdentityMap.patient_id == pid,
                or_(func.lower(IdentityMap.patient_name).contains(text, autoescape=True),
                    func.lower(IdentityMap.real_patient_id).contains(text, autoescape=True)))
                .correlate(_S))
        stmt = stmt.where(or_(*hits))
    if query.events is not None:
        stmt = stmt.where(exists().where(Outcome.patient_id == pid,
                                         Outcome.event.in_(list(query.events)))
                          .correlate(_S))
    if query.had_event:
        stmt = stmt.where(exists().where(Outcome.patient_id == pid,
                                         Outcome.event != CENSORED).correlate(_S))
    if query.modality is not None:
        stmt = stmt.where(exists().where(Study.patient_id == pid,
                                         Series.study_id == Study.id,
                                         Series.modality == query.modality)
                          .correlate(_S))
    if query.has_scans is not None:
        stmt = stmt.where(_S.n_studies > 0 if query.has_scans else _S.n_studies == 0)
    if query.pseudonyms is not None:
        stmt = stmt.where(name.in_(list(query.pseudonyms)))
    if query.after is not None:
        stmt = stmt.where(name > query.after)
    if query.risk_at_least is not None:
        stmt = stmt.where(CurrentRisk.risk >= float(query.risk_at_least))
    if query.rising:  # as the trend arrow: a change of exactly RISING_AT counts
        stmt = stmt.where(CurrentRisk.risk - CurrentRisk.previous_risk >= RISING_AT - 1e-12)
    if query.not_assessable:
        stmt = stmt.where(CurrentRisk.patient_id.is_not(None), CurrentRisk.risk.is_(None))
    return stmt


# --------------------------------------------------------------------------- frame
def _as_dates(day: np.ndarray) -> pd.Series:
    """Float days since 1970 (NaN when unknown) as datetime64 (NaT when unknown)."""
    out = np.full(day.shape, np.datetime64("NaT"), dtype="datetime64[D]")
    known = ~np.isnan(day)
    out[known] = _EPOCH + day[known].astype("int64")
    return pd.Series(out.astype("datetime64[ns]"), copy=False)


def _frame(rows: list[Any], present: list[str], identified: bool,
           with_risk: bool = False) -> pd.DataFrame:
    """The documented frame of :func:`list_patients` from the rows of :func:`_row_query`
    (built as one dict of columns: inserting columns one by one cost more than the query
    for a page)."""
    keys = _ROW_KEYS + (_IDENTITY_KEYS if identified else []) + (_RISK_KEYS if with_risk
                                                                  else [])
    raw = dict(zip(keys, zip(*rows, strict=True), strict=True)) if rows else {
        k: () for k in keys}
    # identified views give real dates: stored - date_shift_days (0 without an identity row)
    shift = (np.nan_to_num(np.array(raw["shift"], dtype="float64"), nan=0.0) if identified
             else 0.0)
    out: dict[str, Any] = {"pseudonym": np.array(raw["pseudonym"], dtype=object)}
    if identified:
        out["patient_name"] = np.array(raw["patient_name"], dtype=object)
        out["patient_id"] = np.array(raw["patient_id"], dtype=object)
        out["birth_date"] = _as_dates(days(list(raw["birth_date"])))
        # the real birth date's year, never the shifted year beside the real dates
        years: Any = pd.array(out["birth_date"].dt.year, dtype="Int64")
    else:
        years = pd.array(list(raw["stored_birth_year"]), dtype="Int64")
    out["sex"] = np.array(raw["sex"], dtype=object)
    out["birth_year"] = years
    out["n_studies"] = np.array(raw["n_studies"], dtype="int64")
    out["n_series"] = np.array(raw["n_series"], dtype="int64")
    for col in ("first_scan", "last_scan"):
        out[col] = _as_dates(days(list(raw[col])) - shift)
    out["n_visits"] = np.array(raw["n_visits"], dtype="int64")
    out["event"] = np.array(raw["event"], dtype=object)
    out["follow_up_years"] = np.array(raw["follow_up_years"], dtype="float64")
    out["outcome_date"] = _as_dates(days(list(raw["outcome_date"])) - shift)
    for name in present:
        out[name] = np.array(raw[name], dtype="float64")
    columns = list(PATIENT_COLUMNS)
    if identified:
        columns[1:1] = IDENTITY_COLUMNS
    if with_risk:
        for col in ("risk", "previous_risk", "risk_time_years"):
            out[col] = np.array(raw[col], dtype="float64")
        out["risk_as_of"] = _as_dates(days(list(raw["risk_as_of"])) - shift)
        out["risk_reason"] = np.array(raw["risk_reason"], dtype=object)
        present = [*present, *RISK_COLUMNS]
    return pd.DataFrame({c: out[c] for c in columns + present})
