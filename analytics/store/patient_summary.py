"""The per-patient summary behind the cohort list, kept equal to its source rows on write.

The cohort list shows, per patient, counts and first/last scan dates, visit occasions and
the latest value of each key biomarker. Computing them at read time means a window sort
over every biomarker row of every patient (seconds at 50,000 patients on PostgreSQL), so
``patient_summary`` holds them, one row per patient, and the list reads that table.

How it stays right: every session of an open store (:func:`track_patients`) notes which
patients a change touches, whatever writes it (ingest, feature extraction, removal of a
series, identity resolution moving a study, cohort import, ...), from the ORM objects it
flushes (old and new foreign keys alike) and from DML ``UPDATE``/``DELETE`` statements
(their rows are looked up before they run). Just before the transaction commits, those
patients' rows are recomputed from scratch with the queries below and replaced, in the
same transaction: the summary is never newer or older than the rows it summarises, and
a recomputation is by construction what it holds. What the notes cannot place (a DML
``INSERT`` into a summarised table, an ``UPDATE`` that moves rows between parents, or
more than :data:`_FULL_REBUILD_AT` patients) rebuilds the whole table instead: slower,
never wrong. The coverage is the same as the store's data version
(:mod:`analytics.store.version`): writes through the store's sessions.

A home made before this table existed gets it when it is opened (``db.migrate``), built
from scratch once (:func:`ensure_built`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from sqlalchemy import (
    Float,
    case,
    delete,
    event,
    func,
    insert,
    inspect,
    literal,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from analytics.store._repo_util import DAYS_PER_YEAR
from analytics.store.schema import (
    Feature,
    Outcome,
    Patient,
    PatientSummary,
    Series,
    StoreInfo,
    Study,
    Visit,
)

__all__ = ["KEY_BIOMARKERS", "SUMMARY_BUILT_KEY", "ensure_built", "rebuild", "refresh",
           "summary_rows", "track_patients"]

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
#: ``store_info`` key written once the summary has been built for a store
SUMMARY_BUILT_KEY = "patient_summary_built"
#: more patients touched by one transaction than this: rebuild the whole table (one pass
#: over every row costs less than that many per-patient lookups)
_FULL_REBUILD_AT = 2_000
_PENDING = "hepatrack_summary_patients"
_EVERYONE = "everyone"
_EPOCH = np.datetime64("1970-01-01", "D")

Member = Callable[[Any], ColumnElement[bool]]


# --------------------------------------------------------------------------- SQL helpers
class DayNumber(FunctionElement):
    """Days from 1970-01-01 to a date, computed by the database (NULL stays NULL): the
    list needs day arithmetic only, and numbers cross the driver far faster than dates."""

    type = Float()
    name = "day_number"
    inherit_cache = True


@compiles(DayNumber)
def _day_number_sqlite(element: DayNumber, compiler: Any, **kw: Any) -> str:
    return f"(julianday({compiler.process(element.clauses, **kw)}) - 2440587.5)"


@compiles(DayNumber, "postgresql")
def _day_number_postgresql(element: DayNumber, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)} - DATE '1970-01-01')"


#: sorts and hash aggregates of a whole-cohort read fit in memory at 50,000 patients
#: (PostgreSQL's default of 4 MB spilled them to disk); just-in-time compilation costs
#: more than it saves on these sub-second queries
_POSTGRES_READ_SETTINGS = ("SET LOCAL work_mem = '64MB'", "SET LOCAL jit = off")


def tune_for_reports(conn: Any) -> None:
    """Settings for this transaction only (PostgreSQL; nothing on SQLite)."""
    if conn.dialect.name == "postgresql":
        for stmt in _POSTGRES_READ_SETTINGS:
            conn.exec_driver_sql(stmt)


def tuples(conn: Any, stmt: Any) -> list[tuple]:
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


def everyone(_patient_id: Any) -> ColumnElement[bool]:
    return true()


def scan_aggregates(member: Member) -> Any:
    """Subquery, per chosen patient with studies: ``n_studies``, ``n_series``,
    ``first_scan``, ``last_scan`` and ``valid_first`` (the earliest scan that may define
    the baseline: its study has a series that is not invalid)."""
    per_study = select(Series.study_id, func.count(Series.id).label("n"),
                       func.count(case((Series.status != "invalid", Series.id))).label("valid"))
    if member is not everyone:  # the whole cohort needs no join to studies here
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


def time_origin_query(member: Member) -> Any:
    """Per chosen patient: ``id``, ``pseudonym``, stored ``baseline_date``, earliest scan
    and earliest scan that may define the baseline (one with a series not invalid)."""
    scans = scan_aggregates(member)
    return (select(Patient.id, Patient.pseudonym, DayNumber(Patient.baseline_date),
                   DayNumber(scans.c.first_scan), DayNumber(scans.c.valid_first))
            .where(member(Patient.id))
            .outerjoin(scans, scans.c.patient_id == Patient.id))


def _latest_query(member: Member) -> Any:
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


# --------------------------------------------------------------------------- numbers
def days(values: list[Any]) -> np.ndarray:
    """Day numbers (:class:`DayNumber`) as floats, NaN when unknown."""
    return np.array(values, dtype="float64")


def numeric(rows: list[Any], width: int) -> np.ndarray:
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


def visit_counts(ids: np.ndarray, baseline: np.ndarray, scans: list[Any],
                 visits: list[Any]) -> np.ndarray:
    """Visit occasions per patient (``analytics.store._repo_util.count_occasions``,
    for every patient at once): distinct scan and visit dates, an undated visit placed at
    baseline + its time, undated visits that cannot be placed by their time, plus every
    undated scan."""
    pid_ids = ids.astype("int64")
    base_of = dict(zip(pid_ids.tolist(), baseline.tolist(), strict=True))
    sc = numeric(scans, 2)
    vi = numeric(visits, 3)
    vi_pid, vi_t, vi_day = vi[:, 0].astype("int64"), vi[:, 1], vi[:, 2]
    vi_base = np.array([base_of.get(p, np.nan) for p in vi_pid.tolist()], dtype="float64")
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


def baseline_days(ids: np.ndarray, stored: np.ndarray, valid_first: np.ndarray,
                  first_scan: np.ndarray, visits: list[Any]) -> np.ndarray:
    """Each patient's time origin (``_repo_util.baseline_of``) in days since 1970: the
    stored baseline, else the earliest valid scan or dated visit, else the earliest scan."""
    vi = numeric(visits, 3)
    first_visit: dict[int, float] = {}
    for pid, day in zip(vi[:, 0].astype("int64").tolist(), vi[:, 2].tolist(), strict=True):
        if day == day and (pid not in first_visit or day < first_visit[pid]):
            first_visit[pid] = day
    earliest = np.array([first_visit.get(p, np.nan) for p in ids.astype("int64").tolist()],
                        dtype="float64")
    own = np.fmin(valid_first, earliest)
    base = np.where(np.isnan(stored), own, stored)
    return np.where(np.isnan(base), first_scan, base)


# --------------------------------------------------------------------------- compute
def summary_rows(conn: Any, member: Member = everyone) -> list[dict[str, Any]]:
    """The ``patient_summary`` rows of the chosen patients, computed from scratch.

    Parameters
    ----------
    conn
        A connection in the transaction to read (the caller's, so uncommitted changes
        count).
    member
        The condition "this patient id is chosen" (default: every patient).

    Returns
    -------
    list of dict
        One dict per existing chosen patient, keyed by ``patient_summary`` column.
    """
    origin = tuples(conn, _head_query(member))
    if not origin:
        return []
    scans = tuples(conn, select(Study.patient_id, DayNumber(Study.study_date))
                   .where(member(Study.patient_id)))
    visits = tuples(conn, select(Visit.patient_id, Visit.time_years,
                                 DayNumber(Visit.visit_date)).where(member(Visit.patient_id)))
    latest = {r[0]: r[1:] for r in tuples(conn, _latest_query(member))}
    table = numeric([r[:4] for r in origin], 4)
    ids = table[:, 0]
    base = baseline_days(ids, table[:, 1], table[:, 3], table[:, 2], visits)
    n_visits = visit_counts(ids, base, scans, visits)
    empty = (None,) * len(KEY_BIOMARKERS)
    rows = []
    for i, r in enumerate(origin):
        values = latest.get(r[0], empty)
        rows.append({
            "patient_id": int(r[0]), "pseudonym": r[7],
            "follow_up_years": None if r[8] is None else float(r[8]),
            "n_studies": int(r[4] or 0), "n_series": int(r[5] or 0),
            "n_visits": int(n_visits[i]), "first_scan": _date(r[2]), "last_scan": _date(r[6]),
            **{n: (None if v is None else float(v))
               for n, v in zip(KEY_BIOMARKERS, values, strict=True)},
        })
    return rows


def _head_query(member: Member) -> Any:
    """Per chosen patient: id, stored baseline, first scan, first scan that may define
    the baseline, studies, series, last scan (day numbers for the dates), pseudonym and
    the outcome's time (follow-up, years)."""
    scans = scan_aggregates(member)
    return (select(Patient.id, DayNumber(Patient.baseline_date),
                   DayNumber(scans.c.first_scan), DayNumber(scans.c.valid_first),
                   scans.c.n_studies, scans.c.n_series, DayNumber(scans.c.last_scan),
                   Patient.pseudonym, Outcome.time_years)
            .where(member(Patient.id))
            .outerjoin(scans, scans.c.patient_id == Patient.id)
            .outerjoin(Outcome, Outcome.patient_id == Patient.id))


def _date(day: Any) -> dt.date | None:
    if day is None:
        return None
    return (_EPOCH + np.timedelta64(int(day), "D")).astype(object)


# --------------------------------------------------------------------------- write
def refresh(session: Session, patient_ids: Iterable[int]) -> None:
    """Recompute the summary rows of ``patient_ids`` in ``session``'s transaction
    (patients that no longer exist lose their row)."""
    ids = sorted({int(p) for p in patient_ids})
    if not ids:
        return
    if len(ids) > _FULL_REBUILD_AT:
        rebuild(session)
        return
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        # two transactions writing for one patient summarise it one after the other, the
        # second from what the first committed (SQLite has a single writer already)
        session.execute(select(Patient.id).where(Patient.id.in_(ids))
                        .order_by(Patient.id).with_for_update())
    session.execute(delete(PatientSummary).where(PatientSummary.patient_id.in_(ids)))
    rows = summary_rows(conn, lambda patient_id: patient_id.in_(ids))
    if rows:
        session.execute(insert(PatientSummary), rows)


def rebuild(session: Session) -> None:
    """Recompute every summary row in ``session``'s transaction."""
    conn = session.connection()
    tune_for_reports(conn)
    if conn.dialect.name == "postgresql":  # one rebuild or refresh at a time
        conn.exec_driver_sql("LOCK TABLE patient_summary IN SHARE ROW EXCLUSIVE MODE")
    session.execute(delete(PatientSummary))
    rows = summary_rows(conn)
    for a in range(0, len(rows), 10_000):
        session.execute(insert(PatientSummary), rows[a:a + 10_000])


def ensure_built(sessions: sessionmaker) -> None:
    """Build the summary of a store that has none yet (a home made before the table
    existed, or rows bulk-loaded outside the store's sessions), once; later writes keep
    it (:func:`track_patients`)."""
    with sessions() as s, s.begin():
        if s.execute(select(StoreInfo.value).where(StoreInfo.key == SUMMARY_BUILT_KEY)
                     ).scalar() is not None:
            return
        if s.connection().dialect.name == "postgresql":  # one builder at a time
            s.connection().exec_driver_sql("SELECT pg_advisory_xact_lock(740200118)")
            if s.execute(select(StoreInfo.value).where(StoreInfo.key == SUMMARY_BUILT_KEY)
                         ).scalar() is not None:
                return
        rebuild(s)
        s.execute(insert(StoreInfo).values(key=SUMMARY_BUILT_KEY, value="1"))


# which column of a summarised table leads to its patient, and how
_PATIENT_OF: dict[str, tuple[str, Any]] = {
    "patients": ("id", None),
    "studies": ("patient_id", None),
    "visits": ("patient_id", None),
    "outcomes": ("patient_id", None),
    "series": ("study_id", "study"),
    "features": ("series_id", "series"),
}
#: foreign keys whose change moves a row to another patient
_PARENT_KEYS = frozenset(k for k, _via in _PATIENT_OF.values())


def _pending(session: Session) -> set[Any]:
    return session.info.setdefault(_PENDING, set())


def _patients_of(session: Session, via: str | None, keys: set[int]) -> set[int]:
    """Patient ids behind parent ids: ``via`` is None for patient ids themselves,
    ``"study"`` for study ids, ``"series"`` for series ids."""
    keys = {k for k in keys if k is not None}
    if not keys:
        return set()
    if via is None:
        return keys
    if via == "study":
        stmt = select(Study.patient_id).where(Study.id.in_(keys))
    else:
        stmt = (select(Study.patient_id).join(Series, Series.study_id == Study.id)
                .where(Series.id.in_(keys)))
    with session.no_autoflush:
        return {p for p in session.execute(stmt).scalars() if p is not None}


def _note_objects(session: Session, objects: Iterable[Any], *, old: bool) -> None:
    """Note the patients of flushed objects: their current parent and, with ``old``,
    the parent before this flush (a study moved to another patient changes both)."""
    pending = _pending(session)
    by_via: dict[str | None, set[int]] = {}
    for obj in objects:
        table = getattr(obj, "__tablename__", None)
        if table not in _PATIENT_OF:
            continue
        column, via = _PATIENT_OF[table]
        found = by_via.setdefault(via, set())
        found.add(getattr(obj, column))
        if old:
            found.update(inspect(obj).attrs[column].history.deleted or ())
    for via, keys in by_via.items():
        pending.update(_patients_of(session, via, keys))


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    # rows about to be deleted or changed still lead to their patient in the database
    _note_objects(session, [*session.deleted, *session.dirty], old=True)


def _after_flush(session: Session, _context: Any) -> None:
    # new rows have their ids and parents now
    _note_objects(session, [*session.new, *session.dirty], old=False)


def _executing(state: Any) -> None:
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    table = getattr(getattr(state.statement, "table", None), "name", None)
    if table not in _PATIENT_OF:
        return
    pending = _pending(state.session)
    stmt = state.statement
    where = getattr(stmt, "whereclause", None)
    moves = state.is_update and any(
        getattr(c, "key", c) in _PARENT_KEYS for c in (stmt._values or {}))
    if state.is_insert or where is None or moves:
        pending.add(_EVERYONE)
        return
    column, via = _PATIENT_OF[table]
    source = stmt.table
    with state.session.no_autoflush:
        keys = set(state.session.execute(select(source.c[column]).where(where)).scalars())
    pending.update(_patients_of(state.session, via, keys))


def _committing(session: Session) -> None:
    if session.new or session.dirty or session.deleted:
        session.flush()  # the notes of what is still to flush
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    if _EVERYONE in pending:
        rebuild(session)
    else:
        refresh(session, pending)
    session.info.pop(_PENDING, None)  # the summary's own writes note nothing to redo


def _rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)


def track_patients(sessions: sessionmaker) -> None:
    """Make every session of ``sessions`` keep ``patient_summary`` equal to the rows it
    summarises, in the transaction that changes them (see the module docstring)."""
    event.listen(sessions, "before_flush", _before_flush)
    event.listen(sessions, "after_flush", _after_flush)
    event.listen(sessions, "do_orm_execute", _executing)
    event.listen(sessions, "before_commit", _committing)
    event.listen(sessions, "after_rollback", _rolled_back)
