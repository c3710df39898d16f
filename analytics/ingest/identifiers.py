"""Identifiers an export left empty: recovered, derived or assigned, and always recorded.

Anonymising exports often empty Type 1 identifiers. HepaTrack repairs three cases and
says so on the series (``series.geometry["identifiers"]``), in the ingest report and on
the Ingest page:

- SOP Class/Instance UID empty in the data set: taken from the file meta, which PS3.10
  requires to carry the same values (``header.recover_from_file_meta``).
- Study/Series Instance UID empty: the files are grouped by what identifies a series
  without them (patient, study date/time/accession/ID, modality, SOP class, frame of
  reference, orientation, pixel spacing, rows and columns, series/acquisition number,
  series date/time, reconstruction and description), and each group gets UIDs derived
  with HMAC-SHA256 under the site secret, so re-ingesting the same files finds the same
  UIDs and nobody without the secret can link them to the originals. Files in different
  folders of one batch are never put in one series; the folder enters the UID only when
  two folders share every other property, or when the frame of reference and series time
  are both missing (too little to tell two series apart across batches).
- Patient ID empty: the file is refused unless the user named the patient for such files
  (``hepatrack ingest --patient ID``, or the Ingest page's field). A file that has a
  Patient ID keeps it: an assignment never overrides one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import posixpath
import uuid
from typing import Any

from analytics.ingest.compact import SERIES_HINTS, STRONG_HINTS, STUDY_HINTS, TEXT_HINTS
from analytics.ingest.findings import MISSING_ATTRIBUTE, Rejection
from analytics.ingest.header import tag_name
from analytics.ingest.repair import Repair
from analytics.ingest.results import BatchEntry

PATIENT_ID_MISSING = (
    "Patient ID (0010,0020) is missing or empty; expected the patient's identifier so that visits can "
    "be linked. To file such a series under a patient, name the patient for files without "
    "a Patient ID (hepatrack ingest --patient ID, or the Ingest page's field)")


def derived_uid(secret: bytes, what: str, key: Any) -> str:
    """A ``2.25`` UID (PS3.5 B.2) from a keyed hash of ``key``: stable, not reversible."""
    msg = f"hepatrack-derived-{what}\0".encode() + json.dumps(key, sort_keys=True).encode()
    digest = hmac.new(secret, msg, hashlib.sha256).digest()
    return f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"



def merged(repairs: list[Repair | None]) -> dict[str, Any] | None:
    """The series' record of what was filled in (``series.geometry["identifiers"]``)."""
    done = [r for r in repairs if r is not None]
    if not done or not any(r.values or r.recovered for r in done):
        return None
    return {"recovered_from_file_meta": [tag_name(k) for k in ("SOPClassUID", "SOPInstanceUID")
                                         if any(k in r.recovered for r in done)],
            "derived": [k for k in ("Study Instance UID", "Series Instance UID")
                        if any(k in r.derived for r in done)],
            "patient_assigned": any(r.patient_assigned for r in done)}


def warning(record: dict[str, Any] | None) -> str | None:
    """The sentence the ingest report and the Ingest page show for a repaired series."""
    if not record:
        return None
    parts = []
    if record.get("derived"):
        parts.append(f"identifiers derived: {' and '.join(record['derived'])} were empty, so "
                     "the files were grouped by frame of reference, orientation, spacing, size "
                     "and series/acquisition number and time, and given stable UIDs derived "
                     "with the site secret")
    if record.get("recovered_from_file_meta"):
        parts.append(f"{' and '.join(record['recovered_from_file_meta'])} taken from the file "
                     "meta (empty in the data set)")
    if record.get("patient_assigned"):
        parts.append("Patient ID was empty and was assigned at ingest")
    return "; ".join(parts) or None


def _folder(name: str) -> str:
    """The folder part of a display name (an archive entry's path inside its archive)."""
    return posixpath.dirname(name.rsplit(":", 1)[-1])


def _layout(info: dict[str, Any]) -> list[Any]:
    """Orientation, pixel spacing and matrix of the first frame, rounded past noise."""
    geometry = info.get("geometry") or [[]]
    first = geometry[0]
    cosines = [round(float(v), 4) + 0.0 for v in first[3:9]]
    spacing = [round(float(v), 4) for v in first[9:11]]
    return [cosines, spacing, info.get("rows"), info.get("cols")]


def resolve(entries: list[BatchEntry], secret: bytes, assign_patient: str | None
            ) -> tuple[dict[str, list[BatchEntry]], list[Rejection]]:
    """Group images with empty identifiers into series and give each file its repair.

    Parameters
    ----------
    entries
        Parsed images for which :func:`analytics.ingest.compact.needs_repair` holds.
    secret
        The site secret (keys the derived UIDs).
    assign_patient
        The Patient ID for files that have none; None refuses such files.

    Returns
    -------
    groups, rejected
        Series UID (derived or as sent) -> its entries, each with ``repair`` set and its
        ``parsed`` identifiers updated; and the files refused (no Patient ID).
    """
    assign = (assign_patient or "").strip() or None
    rejected: list[Rejection] = []
    keyed: list[tuple[BatchEntry, str, list[Any] | None, str]] = []
    for e in entries:
        p = e.parsed
        patient = (p.patient_id or "").strip() or assign
        if patient is None:
            rejected.append(Rejection(p.name, PATIENT_ID_MISSING, MISSING_ATTRIBUTE))
            continue
        hints = p.info.get("series_hints") or {}
        study = p.study_uid or derived_uid(
            secret, "study", [patient, *(hints.get(k) for k in STUDY_HINTS)])
        series_key = None if p.series_uid else [
            patient, study, *(hints.get(k) for k in (*SERIES_HINTS, *TEXT_HINTS)),
            *_layout(p.info)]
        keyed.append((e, patient, series_key, study))
    folders: dict[str, set[str]] = {}
    for e, _patient, series_key, _study in keyed:
        if series_key is not None:
            folders.setdefault(json.dumps(series_key), set()).add(_folder(e.parsed.name))
    groups: dict[str, list[BatchEntry]] = {}
    for e, patient, series_key, study in keyed:
        p = e.parsed
        series = p.series_uid
        if series_key is not None:
            hints = p.info.get("series_hints") or {}
            weak = not any(hints.get(k) for k in STRONG_HINTS)
            if weak or len(folders[json.dumps(series_key)]) > 1:
                series_key = [*series_key, _folder(p.name)]
            series = derived_uid(secret, "series", series_key)
        repair = Repair(recovered=list(p.info.get("recovered") or []))
        if not p.study_uid:
            repair.values["StudyInstanceUID"] = study
            repair.derived.append("Study Instance UID")
        if not p.series_uid:
            repair.values["SeriesInstanceUID"] = series
            repair.derived.append("Series Instance UID")
        if not (p.patient_id or "").strip():
            repair.values["PatientID"] = patient
            repair.patient_assigned = True
        e.repair = repair
        e.parsed = _with_ids(p, study, series, patient)
        groups.setdefault(series, []).append(e)
    return groups, rejected


def _with_ids(p, study: str, series: str, patient: str):
    return dataclasses.replace(p, study_uid=study, series_uid=series, patient_id=patient)
