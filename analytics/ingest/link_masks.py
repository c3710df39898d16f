"""Link delivered masks (SEG, RTSTRUCT, NIfTI) to their stored image series and commit them.

A SEG or RTSTRUCT names its image series and instances; after pseudonymisation the same
HMAC maps those references onto the stored UIDs, so the link holds whether the images came
in this batch or an earlier one. A NIfTI file names nothing: it is linked only when exactly
one image series of this batch has its shape, and its free-text header fields are blanked.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from typing import TYPE_CHECKING, Any

from pydicom import Dataset
from sqlalchemy import select

from analytics.config import Settings
from analytics.errors import HepaTrackError, InvalidDicomError
from analytics.ingest.commit import MaskToStore, commit_mask, content_hash
from analytics.ingest.deid import Deidentifier, read_identity
from analytics.ingest.findings import Rejection
from analytics.ingest.prepare import Reload, _deidentified, _int, _stored_uid
from analytics.ingest.reader import ParsedInstance
from analytics.store.db import Store
from analytics.store.schema import Instance, Patient, Series, Study

if TYPE_CHECKING:
    from analytics.ingest.pipeline import IngestReport, _Entry


def _mask_refs(ds: Dataset) -> tuple[set[str], set[str]]:
    """Original (series UIDs, SOP instance UIDs) a SEG or RTSTRUCT refers to."""
    series, sops = set(), set()
    for ref in ds.get("ReferencedSeriesSequence") or []:
        if ref.get("SeriesInstanceUID"):
            series.add(str(ref.SeriesInstanceUID))
        sops.update(str(r.ReferencedSOPInstanceUID)
                    for r in ref.get("ReferencedInstanceSequence") or []
                    if r.get("ReferencedSOPInstanceUID"))
    for fr in ds.get("ReferencedFrameOfReferenceSequence") or []:
        for st in fr.get("RTReferencedStudySequence") or []:
            for se in st.get("RTReferencedSeriesSequence") or []:
                if se.get("SeriesInstanceUID"):
                    series.add(str(se.SeriesInstanceUID))
                sops.update(str(c.ReferencedSOPInstanceUID)
                            for c in se.get("ContourImageSequence") or []
                            if c.get("ReferencedSOPInstanceUID"))
    for fg in ds.get("PerFrameFunctionalGroupsSequence") or []:
        for der in fg.get("DerivationImageSequence") or []:
            sops.update(str(s.ReferencedSOPInstanceUID)
                        for s in der.get("SourceImageSequence") or []
                        if s.get("ReferencedSOPInstanceUID"))
    return series, sops


def _segments(clean: Dataset, fmt: str) -> dict[str, Any]:
    """``{label: {"label": number, "source_name": label}}`` from the de-identified header."""
    out: dict[str, Any] = {}
    if fmt == "seg":
        for seg in clean.get("SegmentSequence") or []:
            name = str(seg.get("SegmentLabel", "") or f"segment {seg.get('SegmentNumber')}")
            out[name.strip().lower()] = {"label": int(seg.get("SegmentNumber", 0) or 0),
                                         "source_name": name}
    elif fmt == "rtstruct":
        for roi in clean.get("StructureSetROISequence") or []:
            name = str(roi.get("ROIName", "") or f"roi {roi.get('ROINumber')}")
            out[name.strip().lower()] = {"label": int(roi.get("ROINumber", 0) or 0),
                                         "source_name": name}
    return out


def _series_for_refs(store: Store, series_uids: set[str], sop_uids: set[str]
                     ) -> tuple[str, str] | None:
    """(stored series UID, patient pseudonym) of the image series the references name."""
    with store.session() as s:
        q = (select(Series.series_uid, Patient.pseudonym).join(Study, Series.study_id == Study.id)
             .join(Patient, Study.patient_id == Patient.id))
        if series_uids:
            row = s.execute(q.where(Series.series_uid.in_(sorted(series_uids)))).first()
            if row:
                return row[0], row[1]
        if sop_uids:
            row = s.execute(q.join(Instance, Instance.series_id == Series.id)
                            .where(Instance.sop_instance_uid.in_(sorted(sop_uids)[:500]))
                            ).first()
            if row:
                return row[0], row[1]
    return None


def ingest_mask(entry: _Entry, settings: Settings, store: Store, d: Deidentifier,
                report: IngestReport, *, deid: bool, reload: Reload,
                batch_series: dict[str, list[_Entry]]) -> None:
    """Link one SEG/RTSTRUCT/NIfTI mask to its stored image series and commit it."""
    try:
        p = reload(entry)
    except HepaTrackError as ex:
        report.rejected.append(Rejection(entry.parsed.name, str(ex)))
        return
    if p.kind == "nifti":
        _ingest_nifti(p, settings, store, report, batch_series, d, deid)
        return
    series, sops = _mask_refs(p.header)
    series = {_stored_uid(d, u, deid) for u in series}
    sops = {_stored_uid(d, u, deid) for u in sops}
    found = _series_for_refs(store, series, sops)
    if found is None:
        report.rejected.append(Rejection(p.name, "mask rejected: the image series it refers "
                                                 "to is not in this batch or the store"))
        return
    try:
        ident = read_identity(p.header, d.secret, name=p.name, deidentify=deid)
        data, clean = _deidentified(p, d, deid)
    except (HepaTrackError, ValueError, TypeError, OverflowError) as ex:
        report.rejected.append(Rejection(p.name, f"cannot de-identify: {ex}"))
        return
    if ident.pseudonym != found[1]:
        report.conflicts.append(Rejection(p.name, "conflict: the mask names another patient "
                                                  "than its image series; not stored",
                                          "conflict"))
        return
    mask = MaskToStore(name=p.name, format=p.kind, image_series_uid=found[0],
                       content_sha256=content_hash(p.data), data=data,
                       sop_instance_uid=str(clean.get("SOPInstanceUID", "")) or None,
                       segments=_segments(clean, p.kind))
    _commit_mask(mask, settings, store, report)


def _commit_mask(mask: MaskToStore, settings: Settings, store: Store,
                 report: IngestReport) -> None:
    try:
        result = commit_mask(store, settings, mask)
    except HepaTrackError as ex:
        report.rejected.append(Rejection(mask.name, str(ex)))
        return
    for c in result.conflicts:
        (report.rejected if c.category == "unmatched" else report.conflicts).append(c)
    report.masks += result.masks_stored
    report.duplicates += result.masks_duplicate
    for s in report.series:
        if s["series_uid"] == mask.image_series_uid and (result.masks_stored
                                                         or result.masks_duplicate):
            s["masks"] += 1


# --------------------------------------------------------------------------- NIfTI
def nifti_shape(data: bytes, max_inflated: int) -> tuple[int, ...]:
    """The array shape from a NIfTI-1/2 header (plain or gzip), without reading the voxels.

    Raises
    ------
    InvalidDicomError
        If the header cannot be read.
    """
    head = data[:600]
    if head[:2] == b"\x1f\x8b":
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[:1 << 16], 600)
        except zlib.error as e:
            raise InvalidDicomError(f"NIfTI header cannot be inflated ({e})") from e
    for endian in ("<", ">"):
        if len(head) >= 348 and struct.unpack(endian + "i", head[:4])[0] == 348:
            dims = struct.unpack(endian + "8h", head[40:56])
            return tuple(int(v) for v in dims[1:1 + max(0, min(7, dims[0]))])
        if len(head) >= 540 and struct.unpack(endian + "i", head[:4])[0] == 540:
            dims = struct.unpack(endian + "8q", head[16:80])
            return tuple(int(v) for v in dims[1:1 + max(0, min(7, dims[0]))])
    raise InvalidDicomError("not a readable NIfTI-1/2 header")


def clean_nifti(data: bytes, max_inflated: int) -> bytes:
    """NIfTI-1 bytes (gzip) with the free-text ``descrip``, ``aux_file`` and ``db_name`` blanked.

    Raises
    ------
    InvalidDicomError
        If the file inflates past ``max_inflated`` bytes or is not NIfTI-1/2.
    """
    raw = data
    if data[:2] == b"\x1f\x8b":
        dec = zlib.decompressobj(16 + zlib.MAX_WBITS)
        raw = dec.decompress(data, max_inflated + 1)
        if len(raw) > max_inflated or dec.unconsumed_tail:
            raise InvalidDicomError(f"NIfTI file inflates past {max_inflated} bytes "
                                    "(max_inflated_bytes)")
    buf = bytearray(raw)
    size1 = len(buf) >= 348 and 348 in (struct.unpack("<i", bytes(buf[:4]))[0],
                                         struct.unpack(">i", bytes(buf[:4]))[0])
    size2 = len(buf) >= 540 and 540 in (struct.unpack("<i", bytes(buf[:4]))[0],
                                         struct.unpack(">i", bytes(buf[:4]))[0])
    if size1:
        buf[4:14] = bytes(10)  # data_type (unused text)
        buf[14:32] = bytes(18)  # db_name
        buf[148:228] = bytes(80)  # descrip
        buf[228:252] = bytes(24)  # aux_file
    elif size2:
        buf[240:320] = bytes(80)  # NIfTI-2 descrip
        buf[320:344] = bytes(24)  # aux_file
    else:
        raise InvalidDicomError("not a readable NIfTI-1/2 header")
    return gzip.compress(bytes(buf), compresslevel=6, mtime=0)


def _ingest_nifti(p: ParsedInstance, settings: Settings, store: Store, report: IngestReport,
                  batch_series: dict[str, list[_Entry]], d: Deidentifier, deid: bool) -> None:
    """A NIfTI mask carries no references: link it to the one batch series of its shape."""
    try:
        shape = nifti_shape(p.data, settings.limits.max_inflated_bytes)
    except InvalidDicomError as ex:
        report.rejected.append(Rejection(p.name, str(ex)))
        return
    dims = sorted(shape[:3])
    stored = {s["series_uid"] for s in report.series}
    matches = []
    for key, entries in batch_series.items():
        images = [e for e in entries if e.parsed.kind == "image"]
        if not images:
            continue
        hdr = images[0].parsed.header
        rows, cols = _int(hdr.get("Rows")), _int(hdr.get("Columns"))
        n = sum(e.parsed.n_frames for e in images)
        uid = _stored_uid(d, key, deid)
        if rows and cols and sorted((rows, cols, n)) == dims and uid in stored:
            matches.append(uid)
    if len(matches) != 1:
        why = ("no stored image series of the same shape in this batch" if not matches else
               f"{len(matches)} image series of the same shape in this batch")
        report.rejected.append(Rejection(
            p.name, f"mask rejected: a NIfTI mask names no image series and there is {why} "
                    f"(shape {list(shape)}); send it with exactly one matching series"))
        return
    try:
        data = clean_nifti(p.data, settings.limits.max_inflated_bytes)
    except InvalidDicomError as ex:
        report.rejected.append(Rejection(p.name, str(ex)))
        return
    mask = MaskToStore(name=p.name, format="nifti", image_series_uid=matches[0],
                       content_sha256=p.sha256, data=data, suffix=".nii.gz", segments={})
    _commit_mask(mask, settings, store, report)
