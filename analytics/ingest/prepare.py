"""Turn the parsed instances of one series into a committed unit.

Quarantine images whose pixels may show identifiers, refuse non-image objects, check the
series belongs to one patient, re-read the bytes, check the geometry (``check_series``),
de-identify every instance (in a limited parse worker: the whole file is read there, never
in this process), judge the union with what the store already holds of the
series, and commit. Masks are linked in ``analytics.ingest.link_masks``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom import Dataset

from analytics.config import IngestLimits, Settings
from analytics.errors import HepaTrackError, InvalidDicomError
from analytics.ingest.deid import (
    Deidentifier,
    PatientIdentity,
    accession_key,
    parse_da,
    quarantine_reason,
    read_identity,
    source_key,
)
from analytics.ingest.dicomweb import RetrievedSeries
from analytics.ingest.findings import EXCLUDED, LIMIT, UNSUPPORTED, Rejection
from analytics.ingest.header import parse_dicom
from analytics.ingest.identifiers import merged, warning
from analytics.ingest.phase import contrast_phase
from analytics.ingest.reader import ParsedInstance, SafeParser, parse_trusted
from analytics.ingest.results import BatchEntry, IngestReport
from analytics.ingest.series import check_series
from analytics.ingest.stacks import stack_entry
from analytics.ingest.ultrasound import quarantine_reason as ultrasound_quarantine
from analytics.ingest.ultrasound_series import (
    check_ultrasound_series,
    is_ultrasound,
    ultrasound_entry,
)
from analytics.ingest.volume import Volume
from analytics.store import dicom
from analytics.store.db import Store
from analytics.store.instances import (
    InstanceToStore,
    SeriesToStore,
    commit_series,
)

QUARANTINE = "quarantine"
#: geometry keys kept in ``series.geometry`` (no names, descriptions or original UIDs)
_GEOMETRY_KEYS = ("n_slices", "rows", "cols", "spacing_mm", "origin_mm", "direction",
                  "slice_positions_mm", "enhanced", "contrast_phase", "stack", "stacks",
                  "ultrasound")


@dataclass
class SeriesJob:
    entries: list[BatchEntry]
    pacs: RetrievedSeries | None = None


Reload = Callable[["BatchEntry"], ParsedInstance]


def stored_uid(d: Deidentifier, uid: str | None, deid: bool) -> str:
    """The UID as stored: its keyed pseudonym when de-identifying, else unchanged."""
    if not uid:
        return ""
    return d.uid(uid) if deid else uid


def _load(job: SeriesJob, report: IngestReport, reload: Reload
          ) -> list[tuple[ParsedInstance, BatchEntry]]:
    """Re-read the series' images; secondary captures and other objects are reported.

    An image whose de-identified copy came with its header parse is not read again
    (its copy is stored; its compact header is all the series check needs), except the
    first image, whose header gives the series its patient and study.
    """
    images = []
    for e in job.entries:
        if e.parsed.pixel_problem and e.source == "dicomweb":
            report.rejected.append(Rejection(e.parsed.name,
                                             f"{e.parsed.pixel_problem} (PACS reply cut short)"))
            continue
        try:
            p = e.parsed if images and e.parsed.clean is not None and e.repair is None \
                else reload(e)
            why = _quarantine(p)
        except HepaTrackError as ex:
            report.rejected.append(Rejection(e.parsed.name, str(ex)))
            continue
        if why:
            report.quarantined.append(Rejection(p.name, f"quarantined: {why}; not stored",
                                                QUARANTINE))
        elif p.kind not in ("image", "ultrasound"):
            report.rejected.append(Rejection(
                p.name, f"SOP Class {p.sop_class_uid} is not a CT/MR image, SEG or RTSTRUCT: "
                        "not stored", UNSUPPORTED))
        else:
            images.append((p, e))
    return images


def _quarantine(p: ParsedInstance) -> str | None:
    """Why ``p`` must not be stored (its pixels may show identifiers), or None: as the
    parse worker judged it from its own parse, else from the header parsed here."""
    if "quarantine" in p.info:
        return p.info["quarantine"]
    return (ultrasound_quarantine(p.header) if p.kind == "ultrasound"
            else quarantine_reason(p.header))


def _one_patient(images: list[ParsedInstance], report: IngestReport) -> bool:
    """True if every instance names the same, non-empty Patient ID; else all are refused."""
    ids = {(p.patient_id or "").strip() for p in images}
    if len(ids) == 1 and "" not in ids:
        return True
    why = ("Patient ID (0010,0020) is missing; expected the patient's identifier so that "
           "visits can be linked") if "" in ids else (
        f"the instances of this series name {len(ids)} different Patient IDs (0010,0020); "
        "a series belongs to one patient")
    report.rejected.extend(Rejection(p.name, why) for p in images)
    return False


def _instance_positions(check) -> dict[int, float]:
    """id(ParsedInstance) -> position along the normal of its first frame (mm)."""
    out: dict[int, float] = {}
    positions = check.geometry.get("slice_positions_mm") or []
    for k, (i, _f) in enumerate(check.frames):
        inst = check.instances[i]
        if id(inst) not in out and k < len(positions):
            out[id(inst)] = float(positions[k])
    return out


def _status(check, job: SeriesJob, n_valid: int) -> tuple[str, str | None]:
    pacs = job.pacs
    if pacs is not None:
        expected = pacs.expected
        short = expected is not None and n_valid < expected
        if short or not pacs.complete:
            parts = [pacs.reason] if pacs.reason else []
            if short:
                parts.append(f"{n_valid} of the {expected} instances reported by the PACS "
                             "arrived intact")
            if not check.ok:
                parts.append(check.stored_reason)
            return "incomplete", "; ".join(p for p in parts if p)
    if not check.ok:
        return "invalid", check.stored_reason  # stored: no file names or original UIDs
    return "complete", None


def _existing(store: Store, series_uid: str) -> list[tuple[str, str]]:
    """(source_key, path) of the instances already stored for a series."""
    return dicom.stored_instances(store, series_uid)


def _replacements(unit: SeriesToStore, store: Store) -> dict[str, str]:
    """source_key -> stored content hash of each stored instance of ``unit``'s series that
    a received copy with other, intact content replaces (the series is being completed).

    Only a series stored as not complete is mended this way; in a complete series another
    content under the same UID stays a conflict.
    """
    files = dicom.series_files(store, unit.series_uid)
    if files is None or files.status == "complete":
        return {}
    stored = dicom.stored_hashes(store, unit.series_uid)
    return {i.source_key: stored[i.source_key] for i in unit.instances
            if i.source_key in stored and stored[i.source_key] != i.content_sha256
            and i.pixel_problem is None}


def _over_series_cap(job: SeriesJob, settings: Settings, report: IngestReport) -> bool:
    """Refuse every file of a series over ``max_series_bytes``, before anything is read
    again or written (RELIABILITY.md 3); True if it was refused."""
    total, cap = sum(e.size for e in job.entries), settings.limits.max_series_bytes
    if total <= cap:
        return False
    why = (f"series is {total} bytes in {len(job.entries)} files, over the per-series cap of "
           f"{cap} bytes (max_series_bytes in [limits] of config.toml, or "
           "HEPATRACK_MAX_SERIES_BYTES); nothing of this series was stored")
    report.rejected.extend(Rejection(e.parsed.name, why, LIMIT) for e in job.entries)
    return True


def ingest_series(job: SeriesJob, settings: Settings, store: Store, d: Deidentifier,
                  report: IngestReport, *, deid: bool, reload: Reload, parser: SafeParser,
                  complete: str | None = None, grids: dict[str, Volume] | None = None) -> None:
    """Check, de-identify and commit one series; everything refused goes to ``report``.

    ``parser`` de-identifies each file in a limited worker (:func:`stored_bytes`).
    ``complete`` names a stored series (its stored UID) being completed: a received
    instance with intact pixel data replaces its stored broken copy (same SOP Instance UID).
    ``grids`` receives, for a series stored whole from this batch, its grid as the loader
    would build it (no voxels), so the batch's masks are checked without reading the
    series back.
    """
    if _over_series_cap(job, settings, report):
        return
    pairs = _load(job, report, reload)
    loaded = [p for p, _ in pairs]
    if not loaded or not _one_patient(loaded, report):
        return
    check = _check(loaded, settings)
    report.notes.extend(r.reason for r in check.excluded if r.category == EXCLUDED)
    if check.reason and check.reason != check.stored_reason:
        # the uploader's own report may name their files; the store keeps stored_reason
        report.notes.append(check.reason)
    first, first_entry = pairs[0]
    try:
        ident = read_identity(first.header, d.secret, name=first.name, deidentify=deid)
    except InvalidDicomError as ex:
        report.rejected.extend(Rejection(p.name, str(ex)) for p in loaded)
        return
    positions = _instance_positions(check) if check.ok else {}
    to_store: list[InstanceToStore] = []
    clean_sops: dict[int, str] = {}
    first_clean: CleanHeader | None = None
    for p, e in pairs:
        try:
            data, clean = stored_bytes(p, d, deid, parser)
        except (HepaTrackError, ValueError, TypeError, OverflowError) as ex:
            report.rejected.append(Rejection(p.name, f"cannot de-identify: {ex}"))
            continue
        first_clean = first_clean or clean
        clean_sops[id(p)] = clean.sop_instance_uid
        to_store.append(InstanceToStore(
            name=p.name, source_key=source_key(d.secret, p.sop_instance_uid or e.content_sha256),
            content_sha256=e.content_sha256, sop_instance_uid=clean.sop_instance_uid,
            sop_class_uid=p.sop_class_uid or "", data=data,
            instance_number=p.instance_number, slice_position_mm=positions.get(id(p)),
            n_frames=p.n_frames, transfer_syntax_uid=p.transfer_syntax_uid,
            pixel_problem=p.pixel_problem))
    if not to_store or first_clean is None:
        return
    status, reason = _status(check, job, len(to_store))
    if status == "complete" and len(to_store) < len(pairs):  # checked whole, stored in part
        status, reason = "invalid", (f"{len(pairs) - len(to_store)} of {len(pairs)} instances "
                                     "could not be de-identified (see the rejections)")
    unit = _unit(first, first_clean, ident, check, to_store, d, deid, status, reason,
                 sorted({e.source for e in job.entries})[0], first_entry.content_sha256)
    if complete is not None and unit.series_uid == complete:
        unit.replace = _replacements(unit, store)
    _merge_with_stored(unit, store, settings)
    identifiers = merged([e.repair for e in job.entries])
    if identifiers:
        unit.geometry = {**(unit.geometry or {}), "identifiers": identifiers}
    try:
        result = commit_series(store, settings, unit)
    except HepaTrackError as ex:
        report.rejected.extend(Rejection(i.name, str(ex)) for i in to_store)
        return
    report.instances += result.stored
    report.duplicates += result.duplicates
    report.conflicts.extend(result.conflicts)
    report.replaced += result.replaced
    if result.hold is not None:
        _report_held(report, unit, result)
        return
    if result.stored:
        report.series_ingested += 1
        if grids is not None and unit.status == "complete" and complete is None:
            _remember_grid(grids, store, unit, check, clean_sops, len(pairs))
    if result.stored or result.duplicates:
        _summarise(report, store, unit, already=result.stored == 0)


def _check(instances: list[ParsedInstance], settings: Settings):
    """The series check: 2-D frames for ultrasound, a volume for CT/MR."""
    if is_ultrasound(instances):
        return check_ultrasound_series(instances)
    return check_series(instances, settings.limits)


def _remember_grid(grids: dict[str, Volume], store: Store, unit: SeriesToStore, check,
                   clean_sops: dict[int, str], received: int) -> None:
    """Keep the grid of a series whose stored instances are exactly this batch's."""
    if "spacing_mm" not in (check.geometry or {}):
        return  # ultrasound frames: no volume grid for a mask
    order = list(dict.fromkeys(i for i, _ in check.frames))
    sops = [clean_sops.get(id(check.instances[i])) for i in order]
    if None in sops or len(clean_sops) != received \
            or len(_existing(store, unit.series_uid)) != received:
        return  # merged with instances stored before: the loader reads the series
    geo = check.geometry
    grids[unit.series_uid] = Volume(
        # a zero-stride array: the grid's shape without its voxels
        array=np.broadcast_to(np.float32(0), (geo["n_slices"], geo["rows"], geo["cols"])),
        spacing_mm=tuple(geo["spacing_mm"]), origin_mm=tuple(geo["origin_mm"]),
        direction=np.array(geo["direction"]), modality=geo["modality"],
        series_uid=unit.series_uid, frame_of_reference_uid=unit.frame_of_reference_uid,
        contrast_phase=geo["contrast_phase"], meta={"sop_instance_uids": sops})


@dataclass
class CleanHeader:
    """The header of the copy to store: the few values ingest files it by, as the parse
    worker read them from the dataset it de-identified (``facts``), and the dataset itself,
    parsed from ``data`` only when asked for (a mask's segments)."""

    data: bytes
    limits: IngestLimits
    facts: dict[str, str | None] | None = None
    _dataset: Dataset | None = None

    @property
    def dataset(self) -> Dataset:
        """The stored copy's header (parsed in-process on first use: its bytes come from
        a worker that parsed them whole)."""
        if self._dataset is None:
            self._dataset = parse_dicom(self.data, self.limits).dataset
        return self._dataset

    def _value(self, key: str, keyword: str) -> str | None:
        if self.facts is not None:
            return self.facts.get(key)
        value = self.dataset.get(keyword)
        return None if value in (None, "") else str(value)

    @property
    def sop_instance_uid(self) -> str:
        return self._value("sop_instance_uid", "SOPInstanceUID") or ""

    @property
    def study_description(self) -> str | None:
        return self._value("study_description", "StudyDescription")

    @property
    def series_description(self) -> str | None:
        return self._value("series_description", "SeriesDescription")


def stored_bytes(p: ParsedInstance, d: Deidentifier, deid: bool, parser: SafeParser
                 ) -> tuple[bytes, CleanHeader]:
    """The bytes to store and the header they encode.

    De-identification (unless ``deid`` is off) reads the whole file, elements after the
    pixel data included, so it runs in a parse worker under the parse limits
    (:meth:`SafeParser.deidentify_read`): the worker parses the file once, de-identifies
    that dataset and encodes it once, and sends back with the bytes what ingest files them
    by, so this process parses neither the file nor its clean copy.
    An ultrasound file's pixels outside its image regions are blanked there too, whether
    or not the header is de-identified (:mod:`analytics.ingest.ultrasound`).

    Raises
    ------
    InvalidDicomError, LimitExceededError
        As :meth:`SafeParser.deidentify`: the file is refused by name.
    """
    blank = p.kind == "ultrasound"
    if not deid and not blank:
        # as received; the reader already zeroed the preamble
        return p.data, CleanHeader(p.data, parser.limits, _dataset=p.header)
    if p.clean is not None and not blank:  # made by the worker that parsed the header
        data, facts = parser.cleaned(p)
    else:
        data, facts = parser.deidentify_read(p.data, name=p.name, secret=d.secret,
                                             deidentify=deid, blank_regions=blank)
    return data, CleanHeader(data, parser.limits, facts)


def _unit(first: ParsedInstance, clean: CleanHeader, ident: PatientIdentity, check,
          to_store: list[InstanceToStore], d: Deidentifier, deid: bool, status: str,
          reason: str | None, source: str, fallback_key: str) -> SeriesToStore:
    hdr = first.header
    study_date = parse_da(str(hdr.get("StudyDate", "") or ""))
    if study_date is not None and ident.date_shift_days:
        study_date = study_date + dt.timedelta(days=ident.date_shift_days)
    accession = str(hdr.get("AccessionNumber", "") or "").strip()
    geo = check.geometry if check.ok else {}
    spacing = geo.get("spacing_mm")
    rows = geo.get("rows", _int(hdr.get("Rows")))
    cols = geo.get("cols", _int(hdr.get("Columns")))
    return SeriesToStore(
        identity=ident,
        study_uid=stored_uid(d, first.study_uid, deid),
        series_uid=stored_uid(d, first.series_uid, deid),
        source_key=source_key(d.secret, first.series_uid or fallback_key),
        modality=str(first.modality or hdr.get("Modality", "") or "OT"),
        instances=to_store, study_date=study_date,
        study_description=_text(clean.study_description),
        accession_key=accession_key(d.secret, accession) if accession else None,
        description=_text(clean.series_description),
        contrast_phase=geo.get("contrast_phase") if check.ok else contrast_phase(hdr),
        frame_of_reference_uid=stored_uid(d, first.frame_of_reference_uid, deid) or None,
        n_slices=int(geo.get("n_slices", len(to_store))), rows=rows, columns=cols,
        spacing_mm=[spacing[2], spacing[1], spacing[0]] if spacing else None,  # [x, y, z]
        geometry={k: geo[k] for k in _GEOMETRY_KEYS if k in geo} or None,
        status=status, status_reason=reason,
        source=source)


def _text(value: Any) -> str | None:
    text = str(value or "").strip()
    return text or None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _merge_with_stored(unit: SeriesToStore, store: Store, settings: Settings) -> None:
    """When the store already holds part of this series, judge the union, not the batch."""
    stored = _existing(store, unit.series_uid)
    if not stored:
        return
    stored_keys = {k for k, _ in stored}
    new = [i for i in unit.instances
           if i.source_key not in stored_keys or i.source_key in unit.replace]
    if not new:
        return  # nothing new: commit reports duplicates and changes nothing
    union: list[ParsedInstance] = []
    for key, rel in stored:
        if key in unit.replace:
            continue  # judged with the copy that replaces it
        path = settings.home / rel
        try:
            union.append(parse_trusted(rel, path.read_bytes(), settings.limits))
        except (OSError, HepaTrackError):
            continue  # a missing stored file makes the union incoherent, reported below
    fresh = {}
    for i in new:
        parsed = parse_trusted(i.name, i.data, settings.limits)
        fresh[id(parsed)] = i
        union.append(parsed)
    check = _check(union, settings)
    expected = len(stored) + len(new) - len(unit.replace)
    if check.ok and len(check.instances) + len(check.excluded) >= expected:
        positions = _instance_positions(check)
        for parsed_id, inst in fresh.items():
            inst.slice_position_mm = positions.get(parsed_id, inst.slice_position_mm)
        geo = check.geometry
        if unit.status != "incomplete":
            unit.status, unit.status_reason = "complete", None
        unit.n_slices = int(geo["n_slices"])
        spacing = geo.get("spacing_mm")  # none for ultrasound frames
        unit.spacing_mm = [spacing[2], spacing[1], spacing[0]] if spacing else None
        unit.geometry = {k: geo[k] for k in _GEOMETRY_KEYS if k in geo}
    elif not check.ok:
        unit.status = "incomplete" if unit.status == "incomplete" else "invalid"
        unit.status_reason = check.stored_reason
    else:
        unit.status, unit.status_reason = "invalid", "stored files of this series are missing"


def _report_held(report: IngestReport, unit: SeriesToStore, result) -> None:
    """A held series: named by its stored patient's pseudonym and the fields that differ
    (never their values: the report reaches roles without the identified view)."""
    hold = result.hold
    if not (result.stored or result.duplicates):
        return
    report.held = [h for h in report.held if h["series_uid"] != unit.series_uid] + [{
        "series_uid": unit.series_uid, "study_uid": unit.study_uid,
        "hold_id": hold.hold_id, "patient": hold.pseudonym, "fields": list(hold.fields),
        "modality": unit.modality, "slices": unit.n_slices,
        "study_date": unit.study_date.isoformat() if unit.study_date else None,
        "already_stored": result.stored == 0, "reason": hold.reason()}]


def _summarise(report: IngestReport, store: Store, unit: SeriesToStore, *, already: bool
               ) -> None:
    row = dicom.series_summary(store, unit.series_uid)
    if row is None:
        return
    entry = {"series_uid": row.series_uid, "patient": row.pseudonym,
             "study_date": row.study_date.isoformat() if row.study_date else None,
             "modality": row.modality, "slices": row.n_slices, "masks": 0,
             "status": row.status, "reason": row.status_reason, "already_stored": already}
    ident = warning((row.geometry or {}).get("identifiers"))
    if ident:
        entry["identifiers_derived"] = bool(
            (row.geometry or {}).get("identifiers", {}).get("derived"))
        entry["warnings"] = [ident]
    entry.update(stack_entry(row.geometry))
    entry.update(ultrasound_entry(row.geometry))
    report.series = [s for s in report.series if s["series_uid"] != row.series_uid] + [entry]
    if row.status == "incomplete":
        report.incomplete.append({"series_uid": row.series_uid, "reason": row.status_reason})
