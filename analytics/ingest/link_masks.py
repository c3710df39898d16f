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
from sqlalchemy import func, select

from analytics.config import Settings
from analytics.errors import HepaTrackError, InvalidDicomError
from analytics.ingest.commit import MaskToStore, commit_mask
from analytics.ingest.deid import Deidentifier, read_identity
from analytics.ingest.findings import Rejection
from analytics.ingest.masks import canonical_structure, mask_references
from analytics.ingest.prepare import Reload, stored_bytes, stored_uid
from analytics.ingest.reader import ParsedInstance
from analytics.store.db import Store
from analytics.store.schema import Instance, Mask, Patient, Series, Study

if TYPE_CHECKING:
    from analytics.ingest.pipeline import BatchEntry, IngestReport


def _code(seq: Any) -> str | None:
    if not seq:
        return None
    item = seq[0]
    return f"{item.get('CodingSchemeDesignator', 'SCT')}:{item.get('CodeValue', '')}"


def _segments(clean: Dataset, fmt: str) -> dict[str, Any]:
    """``{structure: {"label", "source_name", "code"}}`` from the de-identified header.

    The key is the canonical structure (``liver``, ``spleen`` ...) when the label or code
    names one, else the label as written (lower case).
    """
    out: dict[str, Any] = {}
    if fmt == "seg":
        items = [(int(x.get("SegmentNumber", 0) or 0), str(x.get("SegmentLabel", "") or ""),
                  _code(x.get("SegmentedPropertyTypeCodeSequence")),
                  _code(x.get("AnatomicRegionSequence")))
                 for x in clean.get("SegmentSequence") or []]
    else:
        items = [(int(x.get("ROINumber", 0) or 0), str(x.get("ROIName", "") or ""), None, None)
                 for x in clean.get("StructureSetROISequence") or []]
    for number, name, code, region in items:
        key = canonical_structure(name, code, region) or (name.strip().lower()
                                                          or f"label {number}")
        out.setdefault(key, {"label": number, "source_name": name, "code": code})
    return out


def _series_for_refs(store: Store, refs: dict[str, Any]) -> tuple[str, str] | None:
    """(stored series UID, patient pseudonym) of the image series the references name.

    By referenced series UID, else the series holding referenced instances, else the only
    series on the referenced frame of reference.
    """
    with store.session() as s:
        q = (select(Series.series_uid, Patient.pseudonym).join(Study, Series.study_id == Study.id)
             .join(Patient, Study.patient_id == Patient.id))
        if refs["series_uids"]:
            row = s.execute(q.where(Series.series_uid.in_(refs["series_uids"]))).first()
            if row:
                return row[0], row[1]
        if refs["sop_instance_uids"]:
            row = s.execute(q.join(Instance, Instance.series_id == Series.id)
                            .where(Instance.sop_instance_uid.in_(refs["sop_instance_uids"][:500]))
                            ).first()
            if row:
                return row[0], row[1]
        if refs["frame_of_reference_uid"]:
            rows = s.execute(q.where(Series.frame_of_reference_uid
                                     == refs["frame_of_reference_uid"])).all()
            if len(rows) == 1:
                return rows[0][0], rows[0][1]
    return None


def ingest_mask(entry: BatchEntry, settings: Settings, store: Store, d: Deidentifier,
                report: IngestReport, *, deid: bool, reload: Reload,
                batch_series: dict[str, list[BatchEntry]]) -> None:
    """Link one SEG/RTSTRUCT/NIfTI mask to its stored image series and commit it."""
    try:
        p = reload(entry)
    except HepaTrackError as ex:
        report.rejected.append(Rejection(entry.parsed.name, str(ex)))
        return
    if p.kind == "nifti":
        _ingest_nifti(p, entry, settings, store, report, batch_series, d, deid)
        return
    original = mask_references(p.header)
    refs = {"series_uids": sorted(stored_uid(d, u, deid) for u in original["series_uids"]),
            "sop_instance_uids": sorted(stored_uid(d, u, deid)
                                        for u in original["sop_instance_uids"]),
            "frame_of_reference_uid": stored_uid(d, original["frame_of_reference_uid"], deid)}
    found = _series_for_refs(store, refs)
    if found is None:
        report.rejected.append(Rejection(p.name, "mask rejected: the image series it refers "
                                                 "to is not in this batch or the store"))
        return
    try:
        ident = read_identity(p.header, d.secret, name=p.name, deidentify=deid)
        data, clean = stored_bytes(p, d, deid)
    except (HepaTrackError, ValueError, TypeError, OverflowError) as ex:
        report.rejected.append(Rejection(p.name, f"cannot de-identify: {ex}"))
        return
    if ident.pseudonym != found[1]:
        report.conflicts.append(Rejection(p.name, "conflict: the mask names another patient "
                                                  "than its image series; not stored",
                                          "conflict"))
        return
    mask = MaskToStore(name=p.name, format=p.kind, image_series_uid=found[0],
                       content_sha256=entry.content_sha256, data=data,
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


def count_masks(store: Store, report: IngestReport) -> None:
    """Set each reported series' ``masks`` to the number of masks stored for it."""
    uids = [s["series_uid"] for s in report.series]
    if not uids:
        return
    with store.session() as s:
        counts = dict(s.execute(
            select(Series.series_uid, func.count(Mask.id))
            .join(Mask, Mask.series_id == Series.id).where(Series.series_uid.in_(uids))
            .group_by(Series.series_uid)).all())
    for entry in report.series:
        entry["masks"] = int(counts.get(entry["series_uid"], 0))


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


def _ingest_nifti(p: ParsedInstance, entry: BatchEntry, settings: Settings, store: Store,
                  report: IngestReport, batch_series: dict[str, list[BatchEntry]],
                  d: Deidentifier, deid: bool) -> None:
    """A NIfTI mask carries no references: link it to the one batch series of its shape."""
    try:
        shape = nifti_shape(p.data, settings.limits.max_inflated_bytes)
    except InvalidDicomError as ex:
        report.rejected.append(Rejection(p.name, str(ex)))
        return
    dims = sorted(shape[:3])
    batch = [stored_uid(d, key, deid) for key in batch_series]
    stored = {s["series_uid"] for s in report.series}
    with store.session() as s:
        rows = s.execute(select(Series.series_uid, Series.rows, Series.columns, Series.n_slices)
                         .where(Series.series_uid.in_([u for u in batch if u in stored]))).all()
    matches = [uid for uid, r, c, n in rows if r and c and sorted((r, c, n)) == dims]
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
                       content_sha256=entry.content_sha256, data=data, suffix=".nii.gz",
                       segments={})
    _commit_mask(mask, settings, store, report)
