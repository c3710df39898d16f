"""``import-cohort``: visits and outcomes CSVs into the store.

Patients
    A CSV ``patient_id`` is looked up first as a real patient id in the identity map
    (imaging patients ingested from DICOM, or patients of an earlier import): the visits
    then join that patient's pseudonym and their dates get the patient's
    de-identification shift (stored = real + ``date_shift_days``), so labs and scans
    share one calendar. Otherwise the id is looked up as a pseudonym (research cohorts
    keyed by HepaTrack pseudonyms). Otherwise it is a real id seen for the first time and
    is pseudonymised exactly as image ingest does (``patient_pseudonym``, ``patient_key``
    and ``date_shift_days`` of :mod:`analytics.ingest.deid` under the site secret; kept
    as received when de-identification is off): the patient and its identity-map row are
    created, so a later image ingest of the same patient lands on the same row with the
    same shifted calendar, whichever comes first. An id shaped like a pseudonym
    (``HT-`` and 16 hex digits) that names no stored patient is rejected.
    Ids are compared ignoring case and spaces (:func:`analytics.names.name_key`), against
    the store and within one import. An id that matches several identity-map rows is
    rejected as ambiguous, and so is a second id naming a patient already named in the
    same import (a real id and its pseudonym, or two spellings of one id): the first id
    used is kept. Ids with control or invisible characters are rejected.
Idempotence
    A visit is the same visit when it has the same patient and the same date (dated
    rows) or the same time (time rows). Re-importing a file changes nothing; a changed
    value updates the visit (counted as ``updated``). The file is the truth for its own
    columns only: a value that is empty in the new file is removed, a column that the
    new file does not have is kept, so two files with different columns (labs, then
    elastography) can describe the same visits. Outcomes are one row per patient and
    are replaced when changed.
Safety
    Validation runs first; every accepted row is then written in one transaction, so a
    failure leaves the store as it was. Rejected rows write nothing.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from analytics import audit
from analytics.cohort.columns import ID_COLUMN
from analytics.cohort.reader import Source, read_table
from analytics.cohort.validate import (
    DAYS_PER_YEAR,
    TIME_EPS,
    Issue,
    PatientContext,
    StoredOutcome,
    ValidatedCohort,
    patient_key,
    validate,
)
from analytics.cohort_types import CENSORED
from analytics.config import Settings
from analytics.errors import StoreError
from analytics.ingest import deid
from analytics.names import bad_character, name_key
from analytics.store.db import Store
from analytics.store.schema import IdentityMap, Outcome, Patient, Study, Visit

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


#: ``real id -> NewIdentity``: the pseudonymisation of image ingest (see the docstring)
Pseudonymise = Callable[[str], NewIdentity]


def pseudonymiser(secret: bytes, *, deidentify: bool = True) -> Pseudonymise:
    """Pseudonymise real ids exactly as :func:`analytics.ingest.deid.read_identity` does."""
    def make(real_id: str) -> NewIdentity:
        key = deid.patient_key(secret, real_id)
        if not deidentify:
            return NewIdentity(real_id, key, real_id.strip(), 0)
        return NewIdentity(real_id, key, deid.patient_pseudonym(secret, real_id),
                           deid.date_shift_days(secret, real_id))
    return make


def _canon(column: Any) -> Any:
    # SQL side of name_key for ASCII ids (lower() folds ASCII on every backend)
    return func.replace(func.lower(column), " ", "")


@dataclass
class ImportReport:
    """What an import did. ``to_json`` gives the ``import-cohort --json`` payload."""

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
    rejected: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in self.__dict__.items()
                               if k not in ("rejected", "warnings")}
        out["rejected"] = [i.to_json() for i in self.rejected]
        out["warnings"] = [i.to_json() for i in self.warnings]
        return out

    def summary(self) -> str:
        lines = [
            f"imported {self.patients} patients ({self.patients_created} new), "
            f"{self.visits} visits ({self.visits_inserted} new, {self.visits_updated} "
            f"updated), {self.outcomes} outcomes ({self.events} events); "
            f"{len(self.rejected)} rows rejected, {len(self.warnings)} warnings"]
        lines += [f"rejected: {i}" for i in self.rejected]
        lines += [f"warning: {i}" for i in self.warnings]
        return "\n".join(lines)


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
        for model, date_col in ((Study, Study.study_date), (Visit, Visit.visit_date)):
            for r in s.execute(select(model.patient_id, func.min(date_col), func.count())
                               .where(model.patient_id.in_(chunk))
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
           report: ImportReport, pseudonymise: Pseudonymise,
           new_ids: dict[str, NewIdentity]) -> None:
    """Upsert every accepted row in one transaction (``contexts`` None: read them again)."""
    with store.session() as s:
        keys = sorted({v.key for v in data.visits} | {o.key for o in data.outcomes})
        if contexts is None:
            new_ids = {}
            contexts = _contexts(s, keys, pseudonymise, new_ids)
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
        pid_of = {k: patients[pseudonyms[k]].id for k in keys}

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
                              source=CSV_SOURCE, values=dict(rec.values))
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
                report.visits_updated += 1
            else:
                report.visits_unchanged += 1
        report.visits = len(data.visits)

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


def _spellings(keys: list[str], contexts: dict[str, PatientContext]) -> None:
    """Refuse a second spelling (case or spaces) of an id already used in this import."""
    first: dict[str, str] = {}
    for key in keys:
        seen = first.setdefault(name_key(key), key)
        if seen != key and not (key in contexts and contexts[key].error):
            contexts[key] = replace(
                contexts.get(key) or PatientContext(pseudonym=key),
                error=f"patient_id {key!r} differs from {seen!r} only in case or spaces; "
                      "use one spelling per patient")


def import_cohort(store: Store, visits: Source, outcomes: Source, *,
                  settings: Settings | None = None,
                  step: Callable[..., AbstractContextManager[Any]] = audit.unaudited
                  ) -> ImportReport:
    """Validate and import a visits table and an outcomes table.

    Parameters
    ----------
    store
        The open store.
    visits, outcomes
        CSV paths or DataFrames in the cohort CSV format (ARCHITECTURE.md).
    settings
        The site's settings: its secret and ``deidentify`` pseudonymise new patients as
        image ingest does. Default: the store's site secret, de-identification on.
    step
        Called with the audit record's ``detail`` around the store write: the use case's
        audited step (:func:`analytics.usecases.cohort.import_cohort`); none by default.

    Returns
    -------
    ImportReport
        Counts, rejected rows and warnings.

    Raises
    ------
    CohortError
        If a file cannot be read or lacks a required column (nothing is imported).
    StoreError
        If the store write fails (nothing is imported).
    """
    vt = read_table(visits, "visits")
    ot = read_table(outcomes, "outcomes")
    # ids in order of first appearance: on a clash the first id used is kept
    keys = list(dict.fromkeys(k for k in (patient_key(r.cells.get(ID_COLUMN))
                                          for r in vt.rows + ot.rows)
                              if k and not bad_character(k)))
    pseudonymise = pseudonymiser(settings.site_secret() if settings else store.site_secret(),
                                 deidentify=settings.deidentify if settings else True)
    new_ids: dict[str, NewIdentity] = {}
    with store.session() as s:
        contexts = _contexts(s, keys, pseudonymise, new_ids)
    _spellings(keys, contexts)
    named: dict[str, str] = {}
    for key in keys:
        name = contexts[key].pseudonym if key in contexts else key
        if name in named:  # a real id and the pseudonym of the same patient in one import
            contexts[key] = replace(contexts.get(key) or PatientContext(pseudonym=name),
                                    error=f"patient_id {key!r} names the same patient as "
                                          f"{named[name]!r}; use one id per patient")
        else:
            named[name] = key
    data = validate(vt, ot, contexts)
    report = ImportReport(rejected=data.rejected, warnings=data.warnings)
    detail = {"visit_rows": len(vt.rows), "outcome_rows": len(ot.rows),
              "accepted_visits": len(data.visits), "accepted_outcomes": len(data.outcomes),
              "rejected": len(data.rejected)}
    with step(detail=detail):
        for attempt in (1, 2):
            try:
                _write(store, data, contexts if attempt == 1 else None, report,
                       pseudonymise, new_ids)
                break
            except IntegrityError as e:
                # another import created the same patient or visit meanwhile: retry once
                # against the new state; a second clash is a real conflict
                report = ImportReport(rejected=data.rejected, warnings=data.warnings)
                if attempt == 2:
                    raise StoreError(f"import-cohort: the store refused the write ({e.orig});"
                                     " nothing was imported") from e
            except SQLAlchemyError as e:
                raise StoreError(f"import-cohort: the store write failed, nothing was "
                                 f"imported ({type(e).__name__}: {e})") from e
    return report
