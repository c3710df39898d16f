"""Idempotent, atomic commit of one series (files and rows) to the store.

A series is committed as one unit:

1. Every instance is looked up by its dedup key (``instances.source_key``, an HMAC of the
   original SOP Instance UID) and content hash. Same key and hash: already stored. Same
   key, other content, or a UID already stored for another patient: a conflict; nothing is
   overwritten (except a broken instance of a series being completed: ``replace``).
   A new study whose Patient ID names a stored patient with other identity fields is
   held (:mod:`analytics.store.identity_holds`): stored, filed under no patient.
2. The new files are written to a staging folder under ``HEPATRACK_HOME/tmp``, fsynced, and
   renamed into ``HEPATRACK_HOME/dicom`` under generated names (derived from the dedup key
   and content hash, never from the upload), then the folder is fsynced.
3. All rows (patient, identity, study, series, instances, masks) go in ONE transaction.

A process killed between 2 and 3 leaves orphan files and no rows; a re-run writes the
same names again and commits. Two processes committing the same series race on the
unique constraints; the loser rolls back, re-reads and reports the instances as already
stored, so exactly one copy of each row exists (the files have identical names and bytes).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import shutil
import socket
import time
import uuid
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from analytics.config import Settings
from analytics.errors import StoreError
from analytics.ingest.deid import PatientIdentity
from analytics.ingest.findings import Rejection
from analytics.store.db import Store
from analytics.store.identity_holds import (
    FIELD_LABELS,
    IdentityFacts,
    add_hold,
    differing_fields,
    open_hold_of_study,
    stored_facts,
)
from analytics.store.schema import IdentityMap, Instance, Mask, Patient, Series, Study

CONFLICT = "conflict"
STAGING_PREFIX = "stage-"
STALE_STAGING_S = 24 * 3600.0
_MAX_ATTEMPTS = 8
_IN_CHUNK = 500  # bound on SQL IN-list sizes
_FSYNC_THREADS = 4  # files flushed to disk at once while the next ones are written
_FSYNC_OPEN = 64  # written files open at once, waiting for their fsync


@dataclass
class InstanceToStore:
    """One de-identified instance ready to be written.

    ``source_key`` and ``content_sha256`` describe what was received; ``data`` is what is
    stored (de-identified, preamble zeroed).
    """

    name: str
    source_key: str
    content_sha256: str
    sop_instance_uid: str
    sop_class_uid: str
    data: bytes
    instance_number: int | None = None
    slice_position_mm: float | None = None
    n_frames: int = 1
    transfer_syntax_uid: str | None = None
    pixel_problem: str | None = None  # truncated or malformed pixel data (reader's finding)


@dataclass
class MaskToStore:
    """A SEG, RTSTRUCT or NIfTI mask linked to a stored image series (by stored UID)."""

    name: str
    format: str  # seg | rtstruct | nifti
    image_series_uid: str
    content_sha256: str
    data: bytes
    sop_instance_uid: str | None = None
    segments: dict[str, Any] = field(default_factory=dict)
    suffix: str = ".dcm"


@dataclass
class SeriesToStore:
    """Everything stored for one image series."""

    identity: PatientIdentity
    study_uid: str
    series_uid: str
    source_key: str
    modality: str
    instances: list[InstanceToStore]
    study_date: dt.date | None = None
    study_description: str | None = None
    accession_key: str | None = None
    description: str | None = None
    contrast_phase: str | None = None
    frame_of_reference_uid: str | None = None
    n_slices: int = 0
    rows: int | None = None
    columns: int | None = None
    spacing_mm: list[float] | None = None
    geometry: dict[str, Any] | None = None
    status: str = "complete"
    status_reason: str | None = None
    source: str | None = None
    #: source_key -> content hash of a stored (broken) instance this unit may replace
    replace: dict[str, str] = field(default_factory=dict)


@dataclass
class HoldPlan:
    """Where a held unit goes: the stored patient it conflicts with and what differs."""

    patient_id: int
    pseudonym: str
    fields: list[str]
    hold_id: int | None = None  # the study's existing hold

    def reason(self) -> str:
        differs = ", ".join(FIELD_LABELS[f] for f in self.fields)
        return (f"held: identity conflict with stored patient {self.pseudonym} ({differs} "
                "differ); stored but not filed under any patient until a clinician resolves "
                "it")


@dataclass
class CommitResult:
    """What happened to one series or mask unit."""

    series_uid: str
    stored: int = 0
    duplicates: int = 0
    conflicts: list[Rejection] = field(default_factory=list)
    new_series: bool = False
    masks_stored: int = 0
    masks_duplicate: int = 0
    hold: HoldPlan | None = None
    replaced: int = 0


def _meta_end(data: bytes | memoryview) -> int:
    """Offset where the dataset body starts (after preamble, ``DICM`` and group 0002)."""
    if len(data) < 132 or bytes(data[128:132]) != b"DICM":
        return 0
    pos = 132
    while pos + 8 <= len(data) and bytes(data[pos:pos + 2]) == b"\x02\x00":  # explicit LE
        vr = bytes(data[pos + 4:pos + 6])
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV"):
            if pos + 12 > len(data):
                break
            pos += 12 + int.from_bytes(data[pos + 8:pos + 12], "little")
        else:
            pos += 8 + int.from_bytes(data[pos + 6:pos + 8], "little")
    return min(pos, len(data))


def content_hash(data: bytes) -> str:
    """SHA-256 of the dataset body: the bytes after the preamble and the file meta group.

    Two copies of one instance that differ only in their file meta (a PACS re-wrapping it,
    another implementation UID) or preamble are the same content, not a conflict.
    """
    return hashlib.sha256(memoryview(data)[_meta_end(data):]).hexdigest()


def fingerprint(data: bytes) -> tuple[str, str]:
    """``(content_hash, SHA-256 of the file meta)``: both must match for "unchanged"."""
    end = _meta_end(data)
    view = memoryview(data)
    return (hashlib.sha256(view[end:]).hexdigest(),
            hashlib.sha256(view[128:end] if end else b"").hexdigest())


# --------------------------------------------------------------------------- files
def series_dir(series_source_key: str) -> str:
    """Storage folder of a series, relative to HEPATRACK_HOME (generated, never from input)."""
    return f"dicom/{series_source_key[:2]}/{series_source_key[:40]}"


def instance_path(series_source_key: str, inst: InstanceToStore) -> str:
    return (f"{series_dir(series_source_key)}/"
            f"{inst.source_key[:40]}.{inst.content_sha256[:16]}.dcm")


def mask_path(series_source_key: str, mask: MaskToStore) -> str:
    return f"{series_dir(series_source_key)}/masks/{mask.content_sha256[:40]}{mask.suffix}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def new_staging_dir(settings: Settings) -> Path:
    """A fresh staging folder named after this host and process (for stale detection)."""
    tmp = settings.home / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"{STAGING_PREFIX}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    return path


def clean_stale_staging(settings: Settings, *, max_age_s: float = STALE_STAGING_S) -> int:
    """Remove staging folders of dead processes on this host, or older than ``max_age_s``.

    Returns the number of folders removed.
    """
    tmp = settings.home / "tmp"
    if not tmp.is_dir():
        return 0
    host = socket.gethostname()
    removed = 0
    now = time.time()
    for d in tmp.iterdir():
        if not d.is_dir() or not d.name.startswith(STAGING_PREFIX):
            continue
        parts = d.name[len(STAGING_PREFIX):].rsplit("-", 2)
        stale = False
        if len(parts) == 3 and parts[0] == host and parts[1].isdigit():
            stale = not _pid_alive(int(parts[1]))
        with contextlib.suppress(OSError):
            stale = stale or now - d.stat().st_mtime > max_age_s
        if stale:
            shutil.rmtree(d, ignore_errors=True)
            removed += 1
    return removed


def _fsync_close(fh) -> None:
    try:
        os.fsync(fh.fileno())
    finally:
        fh.close()


def _write_synced(stage: Path, home: Path, files: list[tuple[str, bytes]]
                  ) -> list[tuple[Path, Path]]:
    """Write each file into ``stage`` and fsync it; ``(staged, final)`` paths in order.

    The fsyncs run on a few threads while the next files are written (fsync waits on the
    disk, not the interpreter), so a 200-file series does not wait for 200 flushes one
    after another; every file is on disk before this returns, as before.
    """
    staged: list[tuple[Path, Path]] = []
    if len(files) == 1:
        (rel, data), = files
        tmp = stage / "000000.part"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return [(tmp, home / rel)]
    # leaving the pool waits for every fsync, so each file is closed whatever happens
    with ThreadPoolExecutor(max_workers=_FSYNC_THREADS,
                            thread_name_prefix="store-fsync") as pool:
        syncing: deque = deque()
        for n, (rel, data) in enumerate(files):
            if len(syncing) >= _FSYNC_OPEN:  # bound the open files of a long series
                syncing.popleft().result()
            tmp = stage / f"{n:06d}.part"
            fh = open(tmp, "wb")  # noqa: SIM115  (closed by _fsync_close)
            try:
                fh.write(data)
                fh.flush()
            except BaseException:
                fh.close()
                raise
            syncing.append(pool.submit(_fsync_close, fh))
            staged.append((tmp, home / rel))
        for done in syncing:
            done.result()  # a failed fsync fails the placement, as before
    return staged


def place_files(settings: Settings, files: list[tuple[str, bytes]]) -> list[Path]:
    """Write ``(relative path, bytes)`` via staging + fsync + rename; return the final paths."""
    if not files:
        return []
    stage = new_staging_dir(settings)
    try:
        staged = _write_synced(stage, settings.home, files)
        _fsync_dir(stage)
        dirs: set[Path] = set()
        for tmp, final in staged:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)  # atomic; an orphan from a killed run is overwritten
            dirs.add(final.parent)
        for d in dirs:
            _fsync_dir(d)
        return [final for _, final in staged]
    finally:
        shutil.rmtree(stage, ignore_errors=True)


# --------------------------------------------------------------------------- rows
def _chunks(values: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(values), _IN_CHUNK):
        yield values[i:i + _IN_CHUNK]


def _existing_instances(s, keys: list[str]) -> dict[str, tuple[str, str | None, str]]:
    """source_key -> (content_sha256, patient pseudonym or None if held, series UID)."""
    found: dict[str, tuple[str, str | None, str]] = {}
    for chunk in _chunks(keys):
        rows = s.execute(
            select(Instance.source_key, Instance.content_sha256, Patient.pseudonym,
                   Series.series_uid)
            .join(Series, Instance.series_id == Series.id)
            .join(Study, Series.study_id == Study.id)
            .outerjoin(Patient, Study.patient_id == Patient.id)
            .where(Instance.source_key.in_(chunk))).all()
        for key, sha, pseudo, suid in rows:
            found[key] = (sha, pseudo, suid)
    return found


def _facts(ident: PatientIdentity) -> IdentityFacts:
    return IdentityFacts(ident.patient_name, ident.birth_date, ident.sex, ident.issuer)


def _hold_plan(s, unit: SeriesToStore, linked: Any, owner: str | None,
               result: CommitResult) -> tuple[HoldPlan | None, bool]:
    """``(hold plan or None, refused)``: whether the unit is held, or refused outright."""
    hold = open_hold_of_study(s, unit.study_uid)
    if hold is not None:
        if linked is None or hold.patient_id != linked.id:
            reason = (f"{CONFLICT}: study {unit.study_uid} is held for another Patient ID; "
                      "nothing was stored")
            result.conflicts.extend(Rejection(i.name, reason, CONFLICT) for i in unit.instances)
            return None, True
        return HoldPlan(hold.patient_id, linked.pseudonym, list(hold.fields), hold.id), False
    if linked is None:
        return None, False
    fields = differing_fields(stored_facts(s, linked.id), _facts(unit.identity))
    if not fields:
        return None, False
    plan = HoldPlan(linked.id, linked.pseudonym, fields)
    if owner is not None:  # the study is already filed: one study is not split in two
        reason = (f"{CONFLICT}: identity conflict with stored patient {linked.pseudonym} "
                  f"({', '.join(FIELD_LABELS[f] for f in fields)} differ) in a study already "
                  "filed under it; nothing was stored")
        result.conflicts.extend(Rejection(i.name, reason, CONFLICT) for i in unit.instances)
        return None, True
    return plan, False


def _plan(s, unit: SeriesToStore, result: CommitResult) -> list[InstanceToStore]:
    """Split the unit's instances into new ones (returned), duplicates and conflicts.

    A held unit (``result.hold``) is compared with what is stored under nobody.
    """
    pseudo = unit.identity.pseudonym
    linked_row = s.execute(
        select(Patient.id, Patient.pseudonym)
        .join(IdentityMap, IdentityMap.patient_id == Patient.id)
        .where(IdentityMap.real_patient_id_key == unit.identity.key)).first()
    linked = linked_row.pseudonym if linked_row is not None else None
    if linked is not None and linked != pseudo:
        reason = (f"{CONFLICT}: this patient is already stored under another pseudonym "
                  "(ingested with a different de-identification setting); nothing was stored")
        result.conflicts.extend(Rejection(i.name, reason, CONFLICT) for i in unit.instances)
        return []
    owner = s.execute(
        select(Patient.pseudonym).join(Study, Study.patient_id == Patient.id)
        .where(Study.study_uid == unit.study_uid)).scalar_one_or_none()
    if owner is None:
        owner = s.execute(
            select(Patient.pseudonym).join(Study, Study.patient_id == Patient.id)
            .join(Series, Series.study_id == Study.id)
            .where(Series.series_uid == unit.series_uid)).scalar_one_or_none()
    if owner is not None and owner != pseudo:
        reason = (f"{CONFLICT}: series {unit.series_uid} (or its study) is already stored for "
                  "another patient; nothing was overwritten")
        result.conflicts.extend(Rejection(i.name, reason, CONFLICT) for i in unit.instances)
        return []
    result.hold, refused = _hold_plan(s, unit, linked_row, owner, result)
    if refused:
        return []
    owner_tag = None if result.hold is not None else pseudo
    existing = _existing_instances(s, [i.source_key for i in unit.instances])
    new: list[InstanceToStore] = []
    seen: set[str] = set()
    for inst in unit.instances:
        got = existing.get(inst.source_key)
        if inst.source_key in seen:
            result.duplicates += 1  # the same instance twice in one batch
            continue
        seen.add(inst.source_key)
        if got is None:
            new.append(inst)
        elif got[1] != owner_tag:
            result.conflicts.append(Rejection(
                inst.name, f"{CONFLICT}: this SOP Instance UID is already stored for another "
                           "patient; nothing was overwritten", CONFLICT))
        elif (got[0] != inst.content_sha256 and got[2] == unit.series_uid
              and unit.replace.get(inst.source_key) == got[0]):
            new.append(inst)  # the re-sent good copy of a broken instance
            result.replaced += 1
        elif got[0] != inst.content_sha256:
            result.conflicts.append(Rejection(
                inst.name, f"{CONFLICT}: this SOP Instance UID is already stored with different "
                           "content; nothing was overwritten", CONFLICT))
        else:
            result.duplicates += 1
    return new


def _get_patient(s, ident: PatientIdentity) -> Patient:
    patient = s.execute(select(Patient).where(Patient.pseudonym == ident.pseudonym)
                        ).scalar_one_or_none()
    if patient is None:
        patient = Patient(pseudonym=ident.pseudonym, sex=ident.sex,
                          birth_year=ident.shifted_birth_year, source="imaging")
        s.add(patient)
        s.flush()
    else:
        patient.sex = patient.sex or ident.sex
        patient.birth_year = patient.birth_year or ident.shifted_birth_year
    identity = s.execute(select(IdentityMap).where(IdentityMap.patient_id == patient.id)
                         ).scalar_one_or_none()
    if identity is not None:
        # a row made by a cohort import knows only the ID: the images add what it lacks,
        # and never replace what it has (one fact, one value)
        if identity.patient_name is None and ident.patient_name:
            identity.patient_name = ident.patient_name[:256]
        if identity.birth_date is None and ident.birth_date is not None:
            identity.birth_date = ident.birth_date
        if identity.issuer is None and ident.issuer:
            identity.issuer = ident.issuer[:128]
    else:
        s.add(IdentityMap(patient_id=patient.id, real_patient_id=ident.real_patient_id[:128],
                          real_patient_id_key=ident.key,
                          patient_name=(ident.patient_name or None) and ident.patient_name[:256],
                          birth_date=ident.birth_date, date_shift_days=ident.date_shift_days,
                          issuer=ident.issuer and ident.issuer[:128]))
    return patient


def _get_study(s, unit: SeriesToStore, patient_id: int | None) -> Study:
    """The study row (a new one under ``patient_id``; None: held, under nobody)."""
    study = s.execute(select(Study).where(Study.study_uid == unit.study_uid)).scalar_one_or_none()
    if study is None:
        study = Study(study_uid=unit.study_uid, patient_id=patient_id, study_date=unit.study_date,
                      description=unit.study_description and unit.study_description[:256],
                      accession_key=unit.accession_key)
        s.add(study)
        s.flush()
    return study


def _file_study(s, unit: SeriesToStore, hold: HoldPlan | None) -> Study:
    """The unit's study: under its patient, or held under nobody with its hold row."""
    if hold is None:
        return _get_study(s, unit, _get_patient(s, unit.identity).id)
    study = _get_study(s, unit, None)
    if hold.hold_id is None:
        ident = unit.identity
        hold.hold_id = add_hold(s, study.id, hold.patient_id, ident.real_patient_id,
                                _facts(ident), ident.date_shift_days, hold.fields).id
    return study


def _write_rows(s, unit: SeriesToStore, new: list[InstanceToStore],
                paths: dict[str, str], hold: HoldPlan | None = None
                ) -> tuple[Series, bool, list[str]]:
    """Write the rows; returns the series, whether it is new and the paths of replaced
    instances (their files are removed once the rows are committed)."""
    study = _file_study(s, unit, hold)
    series = s.execute(select(Series).where(Series.series_uid == unit.series_uid)
                       ).scalar_one_or_none()
    created = series is None
    if series is None:
        series = Series(series_uid=unit.series_uid, source_key=unit.source_key,
                        study_id=study.id, modality=unit.modality[:16],
                        storage_dir=series_dir(unit.source_key), n_instances=0)
        s.add(series)
    series.description = unit.description and unit.description[:256]
    series.contrast_phase = unit.contrast_phase
    series.frame_of_reference_uid = unit.frame_of_reference_uid
    replaced: list[str] = []
    swap = [i.source_key for i in new if i.source_key in unit.replace]
    if swap and not created:
        for old in s.execute(select(Instance).where(Instance.series_id == series.id,
                                                    Instance.source_key.in_(swap))).scalars():
            replaced.append(old.path)
            s.delete(old)
        s.flush()
    series.n_instances = (series.n_instances or 0) + len(new) - len(replaced)
    series.n_slices = unit.n_slices
    series.rows, series.columns = unit.rows, unit.columns
    series.spacing_mm = unit.spacing_mm
    series.geometry = unit.geometry
    series.status = unit.status
    series.status_reason = unit.status_reason
    series.source = unit.source and unit.source[:512]
    s.flush()
    s.add_all(Instance(
        sop_instance_uid=i.sop_instance_uid, source_key=i.source_key,
        content_sha256=i.content_sha256, series_id=series.id, sop_class_uid=i.sop_class_uid,
        instance_number=i.instance_number, slice_position_mm=i.slice_position_mm,
        n_frames=i.n_frames, path=paths[i.source_key], size_bytes=len(i.data),
        transfer_syntax_uid=i.transfer_syntax_uid) for i in new)
    s.flush()
    return series, created, replaced


def _retryable(e: Exception) -> bool:
    if isinstance(e, IntegrityError):
        return True
    return isinstance(e, OperationalError) and "locked" in str(e.orig).lower()


def commit_series(store: Store, settings: Settings, unit: SeriesToStore) -> CommitResult:
    """Store one series' new instances (files, then rows in one transaction).

    Returns
    -------
    CommitResult
        New, duplicate and conflicting instances. A series whose instances are all already
        stored changes nothing.

    Raises
    ------
    StoreError
        If the store stays busy or unwritable after the retry budget.
    """
    last: Exception | None = None
    for attempt in range(_MAX_ATTEMPTS):
        result = CommitResult(series_uid=unit.series_uid)
        with store.session() as s:
            new = _plan(s, unit, result)
        if not new:
            return result
        paths = {i.source_key: instance_path(unit.source_key, i) for i in new}
        place_files(settings, [(paths[i.source_key], i.data) for i in new])
        try:
            with store.session() as s:
                _, created, replaced = _write_rows(s, unit, new, paths, result.hold)
        except (IntegrityError, OperationalError) as e:
            if not _retryable(e):
                raise StoreError(f"series {unit.series_uid}: cannot write rows "
                                 f"({type(e).__name__})") from e
            last = e  # placed files stay: a concurrent writer of the same names may need them
            time.sleep(min(0.05 * 2 ** attempt, 1.0))
            continue  # another process stored some of it first: plan again
        result.stored = len(new)
        result.new_series = created
        remove_files(settings, replaced)
        return result
    raise StoreError(f"series {unit.series_uid}: store busy, gave up after {_MAX_ATTEMPTS} "
                     f"attempts ({type(last).__name__})")


def remove_files(settings: Settings, paths: Iterable[str]) -> int:
    """Delete stored files (relative to the home) whose rows are gone; returns how many."""
    removed = 0
    for rel in paths:
        with contextlib.suppress(OSError):
            (settings.home / rel).unlink()
            removed += 1
    return removed


def sweep_orphans(store: Store, settings: Settings, *, min_age_s: float = STALE_STAGING_S
                  ) -> int:
    """Delete stored files that no row references and that are older than ``min_age_s``.

    Orphans come from a process killed between renaming files and committing rows, or from
    a commit that lost a race; they are harmless, and re-ingesting overwrites them. The age
    threshold keeps files that a running ingest has placed but not yet committed.
    Returns the number of files removed.
    """
    root = settings.dicom_dir
    if not root.is_dir():
        return 0
    with store.session() as s:
        referenced = set(s.execute(select(Instance.path)).scalars())
        referenced.update(p for p in s.execute(select(Mask.path)).scalars() if p)
    now, removed = time.time(), 0
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(settings.home).as_posix()
        with contextlib.suppress(OSError):
            if rel not in referenced and now - path.stat().st_mtime > min_age_s:
                path.unlink()
                removed += 1
    return removed


# --------------------------------------------------------------------------- masks
def commit_mask(store: Store, settings: Settings, mask: MaskToStore) -> CommitResult:
    """Store a mask file and its row, linked to the stored image series it references.

    Raises
    ------
    StoreError
        If the store stays busy after the retry budget.
    """
    last: Exception | None = None
    for attempt in range(_MAX_ATTEMPTS):
        result = CommitResult(series_uid=mask.image_series_uid)
        with store.session() as s:
            series = s.execute(select(Series).where(Series.series_uid == mask.image_series_uid)
                               ).scalar_one_or_none()
            if series is None:
                result.conflicts.append(Rejection(
                    mask.name, "mask rejected: its image series is not in this batch or the "
                               "store", "unmatched"))
                return result
            same = s.execute(select(Mask.content_sha256, Mask.sop_instance_uid)
                             .where(Mask.series_id == series.id)).all()
            if any(sha == mask.content_sha256 for sha, _ in same):
                result.masks_duplicate = 1
                return result
            if mask.sop_instance_uid and any(uid == mask.sop_instance_uid for _, uid in same):
                result.conflicts.append(Rejection(
                    mask.name, f"{CONFLICT}: this mask's SOP Instance UID is already stored "
                               "with different content; nothing was overwritten", CONFLICT))
                return result
            skey = series.source_key
        rel = mask_path(skey, mask)
        place_files(settings, [(rel, mask.data)])
        try:
            with store.session() as s:
                sid = s.execute(select(Series.id).where(Series.series_uid == mask.image_series_uid)
                                ).scalar_one()
                s.add(Mask(series_id=sid, format=mask.format, path=rel,
                           sop_instance_uid=mask.sop_instance_uid,
                           content_sha256=mask.content_sha256, segments=mask.segments,
                           automatic=False, method="delivered"))
        except (IntegrityError, OperationalError) as e:
            if not _retryable(e):
                raise StoreError(f"mask {mask.name}: cannot write its row "
                                 f"({type(e).__name__})") from e
            last = e
            time.sleep(min(0.05 * 2 ** attempt, 1.0))
            continue
        result.masks_stored = 1
        return result
    raise StoreError(f"mask {mask.name}: store busy, gave up after {_MAX_ATTEMPTS} attempts "
                     f"({type(last).__name__})")
