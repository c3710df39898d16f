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

import dataclasses
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from analytics import audit
from analytics.cohort.columns import ID_COLUMN, format_sex_coding
from analytics.cohort.reader import Source, read_table
from analytics.cohort.validate import (
    Issue,
    PatientContext,
    patient_key,
    validate,
)
from analytics.config import Settings
from analytics.ingest import deid
from analytics.names import bad_character, name_key
from analytics.store.cohort import (
    CSV_SOURCE,
    CohortCounts,
    NewIdentity,
    Pseudonymise,
    patient_contexts,
    write_cohort,
)
from analytics.store.db import Store

__all__ = ["CSV_SOURCE", "ImportReport", "NewIdentity", "Pseudonymise", "import_cohort",
           "pseudonymiser", "source_file_name"]


def pseudonymiser(secret: bytes, *, deidentify: bool = True) -> Pseudonymise:
    """Pseudonymise real ids exactly as :func:`analytics.ingest.deid.read_identity` does."""
    def make(real_id: str) -> NewIdentity:
        key = deid.patient_key(secret, real_id)
        if not deidentify:
            return NewIdentity(real_id, key, real_id.strip(), 0)
        return NewIdentity(real_id, key, deid.patient_pseudonym(secret, real_id),
                           deid.date_shift_days(secret, real_id))
    return make


@dataclass
class ImportReport(CohortCounts):
    """What an import did: the store's counts (:class:`CohortCounts`) with the rejected rows
    and warnings. ``to_json`` gives the ``import-cohort --json`` payload."""

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


def source_file_name(source: Source) -> str | None:
    """The base name of a visits file (no folder), kept with the visits it imports; None
    for a table given in memory. Control and invisible characters are dropped and the
    name is cut to 255 characters."""
    if isinstance(source, pd.DataFrame):
        return None
    name = "".join(ch for ch in Path(source).name if not bad_character(ch))
    return name[:255] or None


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
                  step: Callable[..., AbstractContextManager[Any]] = audit.unaudited,
                  sex_coding: Mapping[str, str] | None = None) -> ImportReport:
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
    sex_coding
        The visits file's numeric sex convention, as
        :func:`analytics.cohort.columns.parse_sex_coding` reads ``"1=M,2=F"``; without it
        numeric sex codes are left empty with a warning.

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
    contexts = patient_contexts(store, keys, pseudonymise, new_ids)
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
    data = validate(vt, ot, contexts, sex_coding=sex_coding)
    detail: dict[str, Any] = {
        "visit_rows": len(vt.rows), "outcome_rows": len(ot.rows),
        "accepted_visits": len(data.visits), "accepted_outcomes": len(data.outcomes),
        "rejected": len(data.rejected)}
    if sex_coding:
        detail["sex_coding"] = format_sex_coding(dict(sex_coding))
    with step(detail=detail):
        counts = write_cohort(store, data, contexts, pseudonymise, new_ids,
                              file_name=source_file_name(visits))
    return ImportReport(**dataclasses.asdict(counts), rejected=data.rejected,
                        warnings=data.warnings)
