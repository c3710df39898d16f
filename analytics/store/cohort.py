"""The cohort import's reads and writes: what the store knows of each CSV patient id, and
one transaction that upserts patients, identities, visits and outcomes.

The rules (validation, pseudonymisation, the report) live in :mod:`analytics.cohort.importer`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import func, select, true
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from analytics.cohort.records import (
    DAYS_PER_YEAR,
    TIME_EPS,
    PatientContext,
    StoredOutcome,
    ValidatedCohort,
)
from analytics.cohort_types import CENSORED
from analytics.errors import StoreError
from analytics.names import name_key
from analytics.store._repo_util import dates_baseline
from analytics.store.db import Store
from analytics.store.schema import (
    CohortImport,
    Feature,
    IdentityMap,
    Outcome,
    Patient,
    Series,
    Study,
    Visit,
)

__all__ = ["CSV_SOURCE", "CohortCounts", "CohortRows", "FeatureValueRow", "NewIdentity",
           "OutcomeRow", "PatientRow", "Pseudonymise", "SeriesRow", "StudyDateRow", "VisitRow",
           "cohort_rows", "patient_contexts", "write_cohort"]

CSV_SOURCE = "csv"
_CHUNK = 500
_PSEUDONYM_SHAPE = re.compile(r"^HT-[0-9A-F]{16}$", re.IGNORECASE)


@dataclass(frozen=True)
class NewIdentity:
    """A real patient id seen for the first time, pseudonymised as image ingest does."""

    real_patient_id: str
    key: str
    pseudonym: str
    shift_days: int


#: ``real id -> NewIdentity``: the pseudonymisation of image ingest
Pseudonymise = Callable[[str], NewIdentity]


@dataclass
class CohortCounts:
    """What one write did (the counts of the ``import-cohort`` report)."""

    patients: int = 0
    patients_created: int = 0
    visits: int = 0
    visits_inserted: int = 0
    visits_updated: int = 0
    visits_unchanged: int = 0
    outcomes: int = 0
    outcomes_inserted: int = 0
    outcomes_updated: int = 0
    outcomes_unchanged: int = 0
    events: int = 0


def patient_contexts(store: Store, keys: Iterable[str], pseudonymise: Pseudonymise,
                     new_ids: dict[str, NewIdentity]) -> dict[str, PatientContext]:
    """What the store knows about each CSV patient id (ids it does not know are
    pseudonymised into ``new_ids``)."""
    with store.session() as s:
        return _contexts(s, keys, pseudonymise, new_ids)


def write_cohort(store: Store, data: ValidatedCohort, contexts: dict[str, PatientContext],
                 pseudonymise: Pseudonymise, new_ids: dict[str, NewIdentity], *,
                 file_name: str | None = None) -> CohortCounts:
    """Upsert every accepted row in one transaction; nothing is written on failure.

    Another import that created the same patient or visit meanwhile makes the first
    attempt fail: it is retried once against the new state (contexts read again).
    When a visit is inserted or changed, the same transaction records the import
    (``cohort_imports``: ``file_name``, the visits file's base name, and the time) and
    links each such visit to it (``visits.import_id``); unchanged visits keep theirs.

    Raises
    ------
    StoreError
        If the store refuses the write twice, or the write fails (nothing is imported).
    """
    for attempt in (1, 2):
        try:
            return _write(store, data, contexts if attempt == 1 else None, pseudonymise,
                          new_ids, file_name)
        except IntegrityError as e:
            # a second clash is a real conflict
            if attempt == 2:
                raise StoreError(f"import-cohort: the store refused the write ({e.orig});"
                                 " nothing was imported") from e
        except SQLAlchemyError as e:
            raise StoreError(f"import-cohort: the store write failed, nothing was "
                             f"imported ({type(e).__name__}: {e})") from e
    raise AssertionError("unreachable")


def _canon(column: Any) -> Any:
    # SQL side of name_key for ASCII ids (lower() folds ASCII on every backend)
    return func.replace(func.lower(column), " ", "")


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


def _contexts(s: Session, keys: Iterable[str], pseudonymise: Pseudonymise,
              new_ids: dict[str, NewIdentity]) -> dict[str, PatientContext]:
    """What the store knows about each CSV patient id (see the module docstring).

    Ids the store does not know are pseudonymised into ``new_ids`` (filled here).
    """
    keys = sorted(set(keys))
    canon = {k: name_key(k) for k in keys}
    by_real: dict[str, dict[int, int]] = defaultdict(dict)
    by_pseudonym: dict[str, int] = {}
    for chunk in _chunks(sorted(set(canon.values()))):
        for r in s.execute(select(IdentityMap.real_patient_id, IdentityMap.patient_id,
                                  IdentityMap.date_shift_days)
                           .where(_canon(IdentityMap.real_patient_id).in_(chunk))):
            by_real[name_key(r.real_patient_id)][r.patient_id] = r.date_shift_days or 0
        for r in s.execute(select(Patient.pseudonym, Patient.id)
                           .where(_canon(Patient.pseudonym).in_(chunk))):
            by_pseudonym[name_key(r.pseudonym)] = r.id
    for chunk in _chunks(keys):  # ids beyond ASCII, which SQL lower() does not fold
        for r in s.execute(select(IdentityMap.real_patient_id, IdentityMap.patient_id,
                                  IdentityMap.date_shift_days)
                           .where(IdentityMap.real_patient_id.in_(chunk))):
            by_real[name_key(r.real_patient_id)][r.patient_id] = r.date_shift_days or 0
    resolved: dict[str, tuple[int, int]] = {}
    contexts: dict[str, PatientContext] = {}
    for key in keys:
        matches = list(by_real.get(canon[key], {}).items())
        if len(matches) > 1:
            contexts[key] = PatientContext(
                pseudonym=key, error=f"patient_id {key!r} matches {len(matches)} patients in "
                                     "the identity map (different issuers); use the "
                                     "patient's pseudonym instead")
        elif matches:
            resolved[key] = matches[0]
        elif canon[key] in by_pseudonym:
            resolved[key] = (by_pseudonym[canon[key]], 0)
        elif _PSEUDONYM_SHAPE.match(key):
            contexts[key] = PatientContext(
                pseudonym=key, error=f"patient_id {key!r} has the form of a HepaTrack "
                                     "pseudonym but no such patient is stored; expected a "
                                     "stored pseudonym or the patient's real ID")
        else:
            new = new_ids[key] = pseudonymise(key)
            contexts[key] = PatientContext(pseudonym=new.pseudonym, shift_days=new.shift_days)
    by_pid = {pid: key for key, (pid, _) in resolved.items()}
    for chunk in _chunks(sorted(by_pid)):
        for r in s.execute(select(IdentityMap.patient_id, IdentityMap.date_shift_days)
                           .where(IdentityMap.patient_id.in_(chunk))):
            key = by_pid[r.patient_id]
            resolved[key] = (r.patient_id, r.date_shift_days or 0)
    ids = sorted({pid for pid, _ in resolved.values()})
    info: dict[int, dict[str, Any]] = defaultdict(dict)
    for chunk in _chunks(ids):
        for r in s.execute(select(Patient.id, Patient.pseudonym, Patient.baseline_date)
                           .where(Patient.id.in_(chunk))):
            info[r.id].update(pseudonym=r.pseudonym, baseline=r.baseline_date)
        for model, date_col, cond in ((Study, Study.study_date, dates_baseline()),
                                      (Visit, Visit.visit_date, true())):
            for r in s.execute(select(model.patient_id, func.min(date_col), func.count())
                               .where(model.patient_id.in_(chunk), cond)
                               .group_by(model.patient_id)):
                pid, earliest, n = r
                info[pid]["records"] = info[pid].get("records", 0) + n
                if earliest is not None:
                    prev = info[pid].get("earliest")
                    info[pid]["earliest"] = min(earliest, prev) if prev else earliest
        for r in s.execute(select(Outcome).where(Outcome.patient_id.in_(chunk))).scalars():
            info[r.patient_id]["outcome"] = StoredOutcome(r.time_years, r.outcome_date,
                                                          r.event)
    for key, (pid, shift) in resolved.items():
        i = info[pid]
        contexts[key] = PatientContext(
            pseudonym=i["pseudonym"], shift_days=int(shift), baseline_date=i.get("baseline"),
            earliest_date=i.get("earliest"), has_records=i.get("records", 0) > 0,
            outcome=i.get("outcome"))
    return contexts


def _merge_values(old: dict[str, Any], new: dict[str, Any], columns: list[str]
                  ) -> dict[str, Any]:
    kept = {k: v for k, v in (old or {}).items() if k not in columns}
    return {**kept, **new}


def _same_time(a: float, b: float) -> bool:
    return abs(a - b) < TIME_EPS


def _write(store: Store, data: ValidatedCohort, contexts: dict[str, PatientContext] | None,
           pseudonymise: Pseudonymise, new_ids: dict[str, NewIdentity],
           file_name: str | None) -> CohortCounts:
    """Upsert every accepted row in one transaction (``contexts`` None: read them again)."""
    report = CohortCounts()
    with store.session() as s:
        keys = sorted({v.key for v in data.visits} | {o.key for o in data.outcomes})
        if contexts is None:
            new_ids = {}
            contexts = _contexts(s, keys, pseudonymise, new_ids)
        pid_of = _upsert_patients(s, data, keys, contexts, new_ids, report)
        existing = _upsert_visits(s, data, pid_of, report, _ImportRow(s, file_name))
        _rederive_times(data, pid_of, existing)
        _upsert_outcomes(s, data, pid_of, report)
    return report


def _upsert_patients(s: Session, data: ValidatedCohort, keys: list[str],
                     contexts: dict[str, PatientContext], new_ids: dict[str, NewIdentity],
                     report: CohortCounts) -> dict[str, int]:
    """Patient rows (and identity rows of new ids) of every key; key -> patient id."""
    patients: dict[str, Patient] = {}
    pseudonyms = {k: (contexts[k].pseudonym if k in contexts else k) for k in keys}
    for chunk in _chunks(sorted(set(pseudonyms.values()))):
        for p in s.execute(select(Patient).where(Patient.pseudonym.in_(chunk))).scalars():
            patients[p.pseudonym] = p
    for key in keys:
        name = pseudonyms[key]
        if name not in patients:
            patients[name] = Patient(pseudonym=name, source=CSV_SOURCE,
                                     sex=data.sex.get(key))
            s.add(patients[name])
            report.patients_created += 1
        elif patients[name].sex is None and key in data.sex:
            patients[name].sex = data.sex[key]
    s.flush()
    _add_identities(s, {k: (patients[pseudonyms[k]].id, new_ids[k])
                        for k in keys if k in new_ids})
    report.patients = len(keys)
    return {k: patients[pseudonyms[k]].id for k in keys}


class _ImportRow:
    """This import's ``cohort_imports`` row, added on the first visit it writes."""

    def __init__(self, s: Session, file_name: str | None) -> None:
        self._s, self._file_name, self._id = s, file_name, None

    def id(self) -> int:
        if self._id is None:
            row = CohortImport(file_name=self._file_name)
            self._s.add(row)
            self._s.flush()
            self._id = row.id
        return self._id


def _upsert_visits(s: Session, data: ValidatedCohort, pid_of: dict[str, int],
                   report: CohortCounts, batch: _ImportRow) -> dict[int, list[Visit]]:
    """Insert new visits, update changed ones; patient id -> its CSV visits."""
    existing: dict[int, list[Visit]] = defaultdict(list)
    for chunk in _chunks(sorted(set(pid_of.values()))):
        for v in s.execute(select(Visit).where(Visit.patient_id.in_(chunk),
                                               Visit.source == CSV_SOURCE)).scalars():
            existing[v.patient_id].append(v)
    for rec in data.visits:
        pid = pid_of[rec.key]
        match = None
        if rec.date is not None:
            match = next((v for v in existing[pid] if v.visit_date == rec.date), None)
        if match is None:
            match = next((v for v in existing[pid]
                          if _same_time(v.time_years, rec.time_years)), None)
        if match is None:
            visit = Visit(patient_id=pid, time_years=rec.time_years, visit_date=rec.date,
                          source=CSV_SOURCE, values=dict(rec.values), import_id=batch.id())
            s.add(visit)
            existing[pid].append(visit)
            report.visits_inserted += 1
            continue
        values = _merge_values(match.values, rec.values, data.value_columns)
        changed = (values != (match.values or {})
                   or not _same_time(match.time_years, rec.time_years)
                   or (rec.date is not None and match.visit_date != rec.date))
        if changed:
            match.values = values
            match.time_years = rec.time_years
            match.visit_date = rec.date if rec.date is not None else match.visit_date
            match.import_id = batch.id()
            report.visits_updated += 1
        else:
            report.visits_unchanged += 1
    report.visits = len(data.visits)
    return existing


def _rederive_times(data: ValidatedCohort, pid_of: dict[str, int],
                    existing: dict[int, list[Visit]]) -> None:
    # dated visits not in this file keep their date; re-derive their time if the
    # patient's baseline moved (an earlier dated visit arrived)
    for key, pid in pid_of.items():
        base = data.baselines.get(key)
        if base is None:
            continue
        for v in existing[pid]:
            if v.visit_date is not None:
                t = (v.visit_date - base).days / DAYS_PER_YEAR
                if not _same_time(v.time_years, t):
                    v.time_years = t


def _upsert_outcomes(s: Session, data: ValidatedCohort, pid_of: dict[str, int],
                     report: CohortCounts) -> None:
    stored: dict[int, Outcome] = {}
    for chunk in _chunks(sorted(set(pid_of.values()))):
        stored.update((o.patient_id, o) for o in s.execute(
            select(Outcome).where(Outcome.patient_id.in_(chunk))).scalars())
    for key, pid in pid_of.items():
        old, base = stored.get(pid), data.baselines.get(key)
        if old is not None and old.outcome_date is not None and base is not None:
            old.time_years = (old.outcome_date - base).days / DAYS_PER_YEAR
    for rec in data.outcomes:
        pid = pid_of[rec.key]
        old = stored.get(pid)
        if old is None:
            s.add(Outcome(patient_id=pid, time_years=rec.time_years,
                          outcome_date=rec.date, event=rec.event))
            report.outcomes_inserted += 1
        elif (old.event != rec.event or old.outcome_date != rec.date
              or not _same_time(old.time_years, rec.time_years)):
            old.event, old.outcome_date, old.time_years = rec.event, rec.date, rec.time_years
            report.outcomes_updated += 1
        else:
            report.outcomes_unchanged += 1
    report.outcomes = len(data.outcomes)
    report.events = sum(1 for o in data.outcomes if o.event != CENSORED)


def _add_identities(s: Session, new: dict[str, tuple[int, NewIdentity]]) -> None:
    """Identity-map rows of patients first seen in this import (as image ingest writes)."""
    have = set()
    for chunk in _chunks(sorted({pid for pid, _ in new.values()})):
        have |= set(s.execute(select(IdentityMap.patient_id)
                              .where(IdentityMap.patient_id.in_(chunk))).scalars())
    for pid, ident in new.values():
        if pid not in have:
            s.add(IdentityMap(patient_id=pid, real_patient_id=ident.real_patient_id[:128],
                              real_patient_id_key=ident.key,
                              date_shift_days=ident.shift_days))
            have.add(pid)




# --------------------------------------------------------------------------- reads
class PatientRow(NamedTuple):
    id: int
    pseudonym: str
    baseline_date: dt.date | None
    birth_year: int | None
    sex: str | None = None


class VisitRow(NamedTuple):
    patient_id: int
    time_years: float
    visit_date: dt.date | None
    values: dict[str, Any] | None


class StudyDateRow(NamedTuple):
    patient_id: int
    study_date: dt.date | None


class SeriesRow(NamedTuple):
    id: int
    series_uid: str
    modality: str
    contrast_phase: str | None
    patient_id: int
    study_date: dt.date | None


class FeatureValueRow(NamedTuple):
    id: int
    series_id: int
    name: str
    value: float | None
    unit: str
    computed_at: dt.datetime
    flags: dict[str, Any] | None = None


class OutcomeRow(NamedTuple):
    patient_id: int
    time_years: float
    outcome_date: dt.date | None
    event: str


@dataclass(frozen=True)
class CohortRows:
    """Everything the cohort table is built from, read in one transaction."""

    patients: list[PatientRow]
    visits: list[VisitRow]  # lab visits (not the imaging ones)
    study_dates: list[StudyDateRow]
    series: list[SeriesRow]  # complete series with their patient and study date
    features: list[FeatureValueRow]
    outcomes: list[OutcomeRow]


def cohort_rows(store: Store, patients: Iterable[str] | None = None) -> CohortRows:
    """The rows of every patient, lab visit, study, complete series, feature and outcome;
    with ``patients`` (pseudonyms), of those patients only (one patient's score needs
    only that patient's rows)."""
    ids = None
    with store.session() as s:
        query = select(Patient.id, Patient.pseudonym, Patient.baseline_date,
                       Patient.birth_year, Patient.sex)
        if patients is not None:
            query = query.where(Patient.pseudonym.in_(sorted(set(patients))))
        patient_rows = s.execute(query).all()
        if patients is not None:
            ids = [r.id for r in patient_rows]

        def only(column, q):
            return q if ids is None else q.where(column.in_(ids))

        visit_rows = s.execute(only(Visit.patient_id, select(
            Visit.patient_id, Visit.time_years, Visit.visit_date, Visit.values)
            .where(Visit.source != "imaging"))).all()
        study_dates = s.execute(only(Study.patient_id, select(Study.patient_id,
                                                               Study.study_date)
                                     .where(dates_baseline()))).all()
        series = s.execute(only(Study.patient_id, select(
            Series.id, Series.series_uid, Series.modality, Series.contrast_phase,
            Study.patient_id, Study.study_date)
            .join(Study, Series.study_id == Study.id)
            .where(Series.status == "complete"))).all()
        feature_query = select(Feature.id, Feature.series_id, Feature.name, Feature.value,
                               Feature.unit, Feature.computed_at, Feature.flags)
        if ids is not None:
            feature_query = feature_query.where(Feature.series_id.in_([r.id for r in series]))
        feature_rows = s.execute(feature_query).all()
        outcome_rows = s.execute(only(Outcome.patient_id, select(
            Outcome.patient_id, Outcome.time_years, Outcome.outcome_date,
            Outcome.event))).all()
    return CohortRows(patients=[PatientRow(*r) for r in patient_rows],
                      visits=[VisitRow(*r) for r in visit_rows],
                      study_dates=[StudyDateRow(*r) for r in study_dates],
                      series=[SeriesRow(*r) for r in series],
                      features=[FeatureValueRow(*r) for r in feature_rows],
                      outcomes=[OutcomeRow(*r) for r in outcome_rows])
