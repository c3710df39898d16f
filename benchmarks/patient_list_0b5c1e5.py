"""Baseline of ``benchmarks/store_scale.py``: ``analytics/store/patient_list.py`` as of
``0b5c1e5``, kept verbatim (the cohort list aggregated at read time: scan counts and dates,
visit occasions and the latest key biomarkers by a window over every biomarker row).

The cohort list: one row per patient, aggregated in the database.

Conventions (identity, shifted dates, years, baseline, visit occasions) are those of
:mod:`analytics.store.repo`, which re-exports everything here.

The database does the per-patient work: counts and first/last scan dates per patient, the
latest value of each key biomarker (a window over the patient's series), the outcome and,
for identified views only, the identity row. Python receives one row per patient plus the
scan and visit dates needed to count visit occasions, which pandas counts without a loop
over patients. A fixed number of queries, whatever the number of patients.

Filters (:class:`PatientQuery`) run in SQL before any of that, so a filtered list or a page
of the list costs in proportion to the patients it returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    ARRAY,
    Float,
    Integer,
    Select,
    any_,
    bindparam,
    case,
    column,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    table,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from analytics.errors import StoreError
from analytics.store._repo_util import CENSORED, DAYS_PER_YEAR
from analytics.store.db import Store
from analytics.store.schema import (
    Feature,
    IdentityMap,
    Outcome,
    Patient,
    Series,
    Study,
    Visit,
)

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
_EPOCH = np.datetime64("1970-01-01", "D")


@dataclass(frozen=True)
class PatientQuery:
    """Which patients a cohort list returns, applied in SQL.

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
    after
        Keyset pagination: only pseudonyms sorting after this one.
    limit
        At most this many patients (the first by pseudonym).
    """

    search: str | None = None
    events: tuple[str, ...] | None = None
    had_event: bool = False
    modality: str | None = None
    has_scans: bool | None = None
    after: str | None = None
    limit: int | None = None


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
        The filters and the page (see :class:`PatientQuery`).
    identified
        As in :func:`list_patients`; also decides which columns ``query.search`` reads.

    Returns
    -------
    pandas.DataFrame
        As :func:`list_patients` (the same columns, including every key biomarker column
        present in the store), only the selected patients, sorted by pseudonym.

    Raises
    ------
    StoreError
        If ``query.limit`` is below 1.
    """
    if query.limit is not None and query.limit < 1:
        raise StoreError(f"patient list limit {query.limit}: expected 1 or more")
    with store.session() as s:
        conn = s.connection()
        _tune_for_reports(conn)
        member = _membership(conn, query, identified)
        if member is _nobody:
            head, scans, visits, latest = [], [], [], []
        else:
            head = _tuples(conn, _head_query(member, identified))
            scans = _tuples(conn, select(Study.patient_id, _DayNumber(Study.study_date))
                            .where(member(Study.patient_id)))
            visits = _tuples(conn, select(Visit.patient_id, Visit.time_years,
                                          _DayNumber(Visit.visit_date))
                             .where(member(Visit.patient_id)))
            latest = _tuples(conn, _latest_query(member))
        measured = conn.execute(select(*[
            exists().where(Feature.name == n, Feature.value.is_not(None)).label(n)
            for n in KEY_BIOMARKERS])).one()
    # columns of every key biomarker measured in the store, whatever the filter keeps
    present = [n for n, hit in zip(KEY_BIOMARKERS, measured, strict=True) if hit]
    frame = pd.DataFrame(head, columns=_HEAD_KEYS + (_IDENTITY_KEYS if identified else []))
    return _assemble(frame, scans, visits, latest, present, identified)


def count_patients(store: Store, query: PatientQuery, *, identified: bool) -> int:
    """How many patients ``query`` selects, counted in SQL (``query.after`` and
    ``query.limit`` apply too: without them, the size of the whole filtered list).

    Parameters
    ----------
    store
        The open store.
    query
        The filters (see :class:`PatientQuery`).
    identified
        As in :func:`find_patients`: decides which columns ``query.search`` reads.
    """
    if query.limit is not None and query.limit < 1:
        raise StoreError(f"patient list limit {query.limit}: expected 1 or more")
    chosen = _chosen(query, identified).with_only_columns(Patient.id).subquery("chosen")
    with store.session() as s:
        return int(s.execute(select(func.count()).select_from(chosen)).scalar_one())


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
        _tune_for_reports(conn)
        origin = pd.DataFrame(conn.execute(_time_origin_query(_everyone)).all(),
                              columns=["id", "pseudonym", "baseline_date", "first_scan",
                                       "valid_first"])
        scans = conn.execute(select(Study.patient_id, _DayNumber(Study.study_date))
                             .where(Study.patient_id.is_not(None),
                                    Study.study_date.is_not(None))).all()
        visits = conn.execute(select(Visit.patient_id, Visit.time_years,
                                     _DayNumber(Visit.visit_date))).all()
        outcomes = conn.execute(select(Outcome.patient_id, Outcome.time_years,
                                       Outcome.event)).all()
    base = pd.Series(_baseline(origin, visits).to_numpy(), index=origin["id"].to_numpy())
    name = pd.Series(origin["pseudonym"].to_numpy(), index=origin["id"].to_numpy())
    scan_pid = np.array([r[0] for r in scans], dtype="int64")
    scan_years = ((_days([r[1] for r in scans]) - base.reindex(scan_pid).to_numpy())
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
class _DayNumber(FunctionElement):
    """Days from 1970-01-01 to a date, computed by the database (NULL stays NULL): the
    list needs day arithmetic only, and numbers cross the driver far faster than dates."""

    type = Float()
    name = "day_number"
    inherit_cache = True


@compiles(_DayNumber)
def _day_number_sqlite(element: _DayNumber, compiler: Any, **kw: Any) -> str:
    return f"(julianday({compiler.process(element.clauses, **kw)}) - 2440587.5)"


@compiles(_DayNumber, "postgresql")
def _day_number_postgresql(element: _DayNumber, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)} - DATE '1970-01-01')"


#: sorts and hash aggregates of a whole-cohort read fit in memory at 50,000 patients
#: (PostgreSQL's default of 4 MB spilled them to disk); just-in-time compilation costs
#: more than it saves on these sub-second queries
_POSTGRES_READ_SETTINGS = ("SET LOCAL work_mem = '64MB'", "SET LOCAL jit = off")


def _tune_for_reports(conn: Any) -> None:
    """Settings for this transaction only (PostgreSQL; nothing on SQLite)."""
    if conn.dialect.name == "postgresql":
        for stmt in _POSTGRES_READ_SETTINGS:
            conn.exec_driver_sql(stmt)

def _chosen(query: PatientQuery, identified: bool) -> Select:
    """``SELECT patients.id`` of the patients ``query`` selects, first by pseudonym."""
    stmt = select(Patient.id, Patient.pseudonym)
    text = (query.search or "").strip().lower()
    if text:
        hits: list[ColumnElement[bool]] = [
            func.lower(Patient.pseudonym).contains(text, autoescape=True)]
        if identified:  # identity columns are searched only where they are shown
            hits.append(exists().where(
                IdentityMap.patient_id == Patient.id,
                or_(func.lower(IdentityMap.patient_name).contains(text, autoescape=True),
                    func.lower(IdentityMap.real_patient_id).contains(text, autoescape=True))))
        stmt = stmt.where(or_(*hits))
    if query.events is not None:
        stmt = stmt.where(exists().where(Outcome.patient_id == Patient.id,
                                         Outcome.event.in_(list(query.events))))
    if query.had_event:
        stmt = stmt.where(exists().where(Outcome.patient_id == Patient.id,
                                         Outcome.event != CENSORED))
    if query.modality is not None:
        stmt = stmt.where(exists().where(Study.patient_id == Patient.id,
                                         Series.study_id == Study.id,
                                         Series.modality == query.modality))
    if query.has_scans is not None:
        scanned = exists().where(Study.patient_id == Patient.id)
        stmt = stmt.where(scanned if query.has_scans else ~scanned)
    if query.after is not None:
        stmt = stmt.where(Patient.pseudonym > query.after)
    if query.limit is not None:
        stmt = stmt.order_by(Patient.pseudonym).limit(query.limit)
    return stmt


Member = Callable[[Any], ColumnElement[bool]]


def _everyone(_patient_id: Any) -> ColumnElement[bool]:
    return true()


def _nobody(_patient_id: Any) -> ColumnElement[bool]:
    return false()


def _tuples(conn: Any, stmt: Any) -> list[tuple]:
    """The rows of ``stmt`` as plain tuples from the driver's cursor: tens of thousands
    of result rows cost more as SQLAlchemy ``Row`` objects than the query itself (the
    statements here bind only plain values: ids, names, numbers)."""
    compiled = stmt.compile(dialect=conn.dialect,
                            compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    if compiled.positiontup is not None:
        bound: Any = tuple(params[k] for k in compiled.positiontup)
    else:
        bound = params
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(str(compiled), bound)
        return cursor.fetchall()
    finally:
        cursor.close()


def _membership(conn: Any, query: PatientQuery, identified: bool) -> Member:
    """The condition "this patient id is one ``query`` selects", for every later query.

    Without filters: always true (no join at all). On PostgreSQL the ids are read first
    (the planner cannot estimate how many a subquery, e.g. a substring search, keeps):
    up to :data:`_ARRAY_MEMBERS` of them are passed as one array and read by index; more
    go to a temporary table of this transaction with its statistics, which every query
    joins by hash (an array of tens of thousands is scanned per row, and the filter's
    own subquery, re-planned in each query, cost more than the whole list). SQLite takes
    the subquery.
    """
    if query == PatientQuery():
        return _everyone
    chosen = _chosen(query, identified).with_only_columns(Patient.id)
    if conn.dialect.name != "postgresql":
        return lambda patient_id: patient_id.in_(chosen)
    found = [r[0] for r in _tuples(conn, chosen)]
    if not found:
        return _nobody
    if len(found) <= _ARRAY_MEMBERS:
        ids = bindparam("chosen_ids", found, type_=ARRAY(Integer))
        return lambda patient_id: patient_id == any_(ids)
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(f"CREATE TEMPORARY TABLE {_CHOSEN.name} (id integer PRIMARY KEY) "
                       "ON COMMIT DROP")
        cursor.execute(f"INSERT INTO {_CHOSEN.name} SELECT unnest(%s::integer[])", (found,))
        cursor.execute(f"ANALYZE {_CHOSEN.name}")
    finally:
        cursor.close()
    return lambda patient_id: patient_id.in_(select(_CHOSEN.c.id))


#: above this many chosen patients, PostgreSQL joins a temporary table of them instead
#: of reading the patients' rows by index (about where the two cost the same at 50,000)
_ARRAY_MEMBERS = 2_000
#: the chosen patients of one large filtered read (PostgreSQL; dropped at commit)
_CHOSEN = table("patient_list_chosen", column("id", Integer))


_HEAD_KEYS = ["id", "pseudonym", "sex", "stored_birth_year", "baseline_date", "n_studies",
              "n_series", "first_scan", "last_scan", "valid_first", "event",
              "follow_up_years", "outcome_date"]
_IDENTITY_KEYS = ["shift", "patient_name", "patient_id", "birth_date"]


def _scan_aggregates(member: Member) -> Any:
    """Subquery, per chosen patient with studies: ``n_studies``, ``n_series``,
    ``first_scan``, ``last_scan`` and ``valid_first`` (the earliest scan that may define
    the baseline: its study has a series that is not invalid)."""
    per_study = select(Series.study_id, func.count(Series.id).label("n"),
                       func.count(case((Series.status != "invalid", Series.id))).label("valid"))
    if member is not _everyone:  # the whole cohort needs no join to studies here
        per_study = per_study.join(Study, Study.id == Series.study_id).where(
            member(Study.patient_id))
    per_study = per_study.group_by(Series.study_id).subquery("per_study")
    return (
        select(Study.patient_id,
               func.count(Study.id).label("n_studies"),
               func.coalesce(func.sum(per_study.c.n), 0).label("n_series"),
               func.min(Study.study_date).label("first_scan"),
               func.max(Study.study_date).label("last_scan"),
               func.min(case((per_study.c.valid > 0, Study.study_date))).label("valid_first"))
        .where(member(Study.patient_id))
        .outerjoin(per_study, per_study.c.study_id == Study.id)
        .group_by(Study.patient_id).subquery("per_patient"))


def _head_query(member: Member, identified: bool) -> Select:
    """One row per chosen patient: patient columns, study aggregates, outcome (and the
    identity row when identified), by pseudonym."""
    per_patient = _scan_aggregates(member)
    columns: list[Any] = [
        Patient.id, Patient.pseudonym, Patient.sex, Patient.birth_year,
        _DayNumber(Patient.baseline_date),
        func.coalesce(per_patient.c.n_studies, 0), func.coalesce(per_patient.c.n_series, 0),
        _DayNumber(per_patient.c.first_scan), _DayNumber(per_patient.c.last_scan),
        _DayNumber(per_patient.c.valid_first), Outcome.event, Outcome.time_years,
        _DayNumber(Outcome.outcome_date),
    ]
    stmt = (select(*columns).where(member(Patient.id))
            .outerjoin(per_patient, per_patient.c.patient_id == Patient.id)
            .outerjoin(Outcome, Outcome.patient_id == Patient.id))
    if identified:
        stmt = stmt.add_columns(IdentityMap.date_shift_days, IdentityMap.patient_name,
                                IdentityMap.real_patient_id,
                                _DayNumber(IdentityMap.birth_date))
        stmt = stmt.outerjoin(IdentityMap, IdentityMap.patient_id == Patient.id)
    return stmt.order_by(Patient.pseudonym)


def _time_origin_query(member: Member) -> Select:
    """Per chosen patient: ``id``, ``pseudonym``, stored ``baseline_date``, earliest scan
    and earliest scan that may define the baseline (one with a series not invalid)."""
    scans = _scan_aggregates(member)
    return (select(Patient.id, Patient.pseudonym, _DayNumber(Patient.baseline_date),
                   _DayNumber(scans.c.first_scan), _DayNumber(scans.c.valid_first))
            .where(member(Patient.id))
            .outerjoin(scans, scans.c.patient_id == Patient.id))


def _latest_query(member: Member) -> Select:
    """``(patient_id, *KEY_BIOMARKERS)``: per chosen patient with any, the newest non-null
    value of each key biomarker (latest study date, then latest series row, then latest
    computation), one column per name."""
    newest = func.row_number().over(
        partition_by=(Study.patient_id, Feature.name),
        order_by=(Study.study_date.desc().nulls_last(), Series.id.desc(),
                  Feature.computed_at.desc(), Feature.id.desc())).label("rank")
    ranked = (select(Study.patient_id, Feature.name, Feature.value, newest)
              .join(Series, Feature.series_id == Series.id)
              .join(Study, Series.study_id == Study.id)
              .where(member(Study.patient_id), Feature.name.in_(KEY_BIOMARKERS),
                     Feature.value.is_not(None))
              .subquery("ranked"))
    return (select(ranked.c.patient_id,
                   *[func.max(case((ranked.c.name == n, ranked.c.value))).label(n)
                     for n in KEY_BIOMARKERS])
            .where(ranked.c.rank == literal(1)).group_by(ranked.c.patient_id))


# --------------------------------------------------------------------------- frame
def _days(values: list[Any]) -> np.ndarray:
    """Day numbers (:class:`_DayNumber`) as floats, NaN when unknown."""
    return np.array(values, dtype="float64")


def _as_dates(days: np.ndarray) -> pd.Series:
    """Float days since 1970 (NaN when unknown) as datetime64 (NaT when unknown)."""
    out = np.full(days.shape, np.datetime64("NaT"), dtype="datetime64[D]")
    known = ~np.isnan(days)
    out[known] = _EPOCH + days[known].astype("int64")
    return pd.Series(out.astype("datetime64[ns]"))


def _numeric(rows: list[Any], width: int) -> np.ndarray:
    """Rows of numbers (None for unknown) as a float array of ``width`` columns, NaN when
    unknown (ids and day numbers are exact in float64)."""
    if not rows:
        return np.empty((0, width))
    return np.array(rows, dtype="float64").reshape(len(rows), width)


def _distinct_per_patient(pid: np.ndarray, value: np.ndarray, scale: float) -> np.ndarray:
    """``(patient id, number)`` keys, one per distinct pair: ``number * scale`` must be a
    whole number of magnitude below 5e8 (days since 1970, or years to the microyear)."""
    key = pid.astype("int64") * 1_000_000_000 + (np.rint(value * scale).astype("int64")
                                                 + 500_000_000)
    return np.unique(key) // 1_000_000_000


def _per_patient(ids: np.ndarray, pids: np.ndarray) -> np.ndarray:
    """How many of ``pids`` each of ``ids`` has."""
    found, counts = np.unique(pids, return_counts=True)
    at = np.searchsorted(found, ids)
    hit = (at < len(found)) & (found[np.minimum(at, len(found) - 1)] == ids) if len(found) \
        else np.zeros(len(ids), dtype=bool)
    out = np.zeros(len(ids), dtype="int64")
    out[hit] = counts[at[hit]]
    return out


def _visit_counts(ids: pd.Series, baseline: pd.Series, scans: list[Any],
                  visits: list[Any]) -> np.ndarray:
    """Visit occasions per patient (``analytics.store._repo_util.count_occasions``,
    for every patient at once): distinct scan and visit dates, an undated visit placed at
    baseline + its time, undated visits that cannot be placed by their time, plus every
    undated scan."""
    pid_ids = ids.to_numpy(dtype="int64")
    base_of = pd.Series(baseline.to_numpy(dtype="float64"), index=pid_ids)
    sc = _numeric(scans, 2)
    vi = _numeric(visits, 3)
    vi_pid, vi_t, vi_day = vi[:, 0].astype("int64"), vi[:, 1], vi[:, 2]
    vi_base = base_of.reindex(vi_pid).to_numpy() if len(vi) else np.empty(0)
    undated = np.isnan(vi_day)
    placeable = undated & ~np.isnan(vi_base)
    placed = vi_day.copy()
    # Python's round (half to even), as count_occasions places them
    placed[placeable] = vi_base[placeable] + np.round(vi_t[placeable] * DAYS_PER_YEAR)
    dated_scan = ~np.isnan(sc[:, 1])
    dated_visit = ~np.isnan(placed)
    dated = _distinct_per_patient(
        np.concatenate([sc[dated_scan, 0], vi[dated_visit, 0]]),
        np.concatenate([sc[dated_scan, 1], placed[dated_visit]]), 1.0)
    loose_rows = undated & ~placeable
    # undated visits that cannot be placed: distinct by their time (to 6 decimals)
    loose = _distinct_per_patient(vi[loose_rows, 0],
                                  np.round(vi_t[loose_rows], 6), 1_000_000.0)
    return (_per_patient(pid_ids, dated) + _per_patient(pid_ids, loose)
            + _per_patient(pid_ids, sc[~dated_scan, 0].astype("int64")))


def _baseline(frame: pd.DataFrame, visits: list[Any]) -> pd.Series:
    """Each patient's time origin (``_repo_util.baseline_of``) in days since 1970: the
    stored baseline, else the earliest valid scan or dated visit, else the earliest scan."""
    vi = _numeric(visits, 3)
    vdays = pd.Series(vi[:, 2], index=vi[:, 0].astype("int64"))
    first_visit = vdays.groupby(level=0).min().reindex(
        frame["id"].to_numpy(dtype="int64")).to_numpy()
    own = np.fmin(_days(frame["valid_first"].tolist()), first_visit)
    base = _days(frame["baseline_date"].tolist())
    base = np.where(np.isnan(base), own, base)
    return pd.Series(np.where(np.isnan(base), _days(frame["first_scan"].tolist()), base))


def _assemble(frame: pd.DataFrame, scans: list[Any], visits: list[Any], latest: list[Any],
              present: list[str], identified: bool) -> pd.DataFrame:
    """The documented frame of :func:`list_patients` from the query results."""
    ids = frame["id"]
    n_visits = _visit_counts(ids, _baseline(frame, visits), scans, visits)
    # identified views give real dates: stored - date_shift_days (0 without an identity row)
    shift = frame["shift"].astype("float64").fillna(0.0).to_numpy() if identified else 0.0
    out = pd.DataFrame({"pseudonym": frame["pseudonym"].astype(object)})
    if identified:
        out["patient_name"] = frame["patient_name"].astype(object)
        out["patient_id"] = frame["patient_id"].astype(object)
        birth = _days(frame["birth_date"].tolist())
        out["birth_date"] = _as_dates(birth)
        # the real birth date's year, never the shifted year beside the real dates
        years = pd.array(out["birth_date"].dt.year, dtype="Int64")
    else:
        years = frame["stored_birth_year"].tolist()
    out["sex"] = frame["sex"].astype(object)
    out["birth_year"] = pd.array(years, dtype="Int64")
    out["n_studies"] = frame["n_studies"].astype("int64")
    out["n_series"] = frame["n_series"].astype("int64")
    for col in ("first_scan", "last_scan"):
        out[col] = _as_dates(_days(frame[col].tolist()) - shift)
    out["n_visits"] = n_visits
    out["event"] = frame["event"].astype(object)
    out["follow_up_years"] = frame["follow_up_years"].astype("float64")
    out["outcome_date"] = _as_dates(_days(frame["outcome_date"].tolist()) - shift)
    values = pd.DataFrame(latest, columns=["pid", *KEY_BIOMARKERS]).set_index("pid")
    for name in present:
        out[name] = values[name].reindex(ids.to_numpy()).to_numpy(dtype="float64")
    columns = list(PATIENT_COLUMNS)
    if identified:
        columns[1:1] = IDENTITY_COLUMNS
    return out[columns + present]
