"""Link delivered masks (SEG, RTSTRUCT, NIfTI) to their stored image series and commit them.

A SEG or RTSTRUCT names its image series and instances; after pseudonymisation the same
HMAC maps those references onto the stored UIDs, so the link holds whether the images came
in this batch or an earlier one. A NIfTI file names nothing: it is linked only when exactly
one image series of this batch covers the same field of view in the patient (from the
NIfTI affine and the series' stored geometry), its free-text header fields are blanked and
its header extensions dropped; its label names go into the mask row's ``segments``.

Every mask is decoded onto its image series' volume before it is stored (the loader's own
reading), so a mask that cannot be read is refused at ingest with its reason instead of
failing, or being replaced, at feature extraction.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from typing import Any

from pydicom import Dataset

from analytics.config import Settings
from analytics.errors import HepaTrackError, InvalidDicomError
from analytics.ingest.deid import Deidentifier, read_identity
from analytics.ingest.findings import UNSUPPORTED, Rejection
from analytics.ingest.loader import decode_mask, load_volume
from analytics.ingest.masks import mask_references, referenced_series
from analytics.ingest.nifti_masks import (
    describe_grid,
    load_nifti,
    same_field_of_view,
    structure_labels,
)
from analytics.ingest.prepare import Reload, stored_bytes, stored_uid
from analytics.ingest.reader import ParsedInstance, SafeParser
from analytics.ingest.resample import index_affine
from analytics.ingest.results import BatchEntry, IngestReport
from analytics.ingest.structures import canonical_structure
from analytics.ingest.volume import Volume
from analytics.store import dicom
from analytics.store.db import Store
from analytics.store.instances import MaskToStore, commit_mask


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


def _linked_series(header: Dataset, store: Store, d: Deidentifier, deid: bool
                   ) -> tuple[str, str] | None:
    """(stored series UID, patient pseudonym) of the series a SEG/RTSTRUCT refers to: by
    its referenced series alone when one is stored (the first step of
    :func:`_series_for_refs`, without reading every frame's references), else by all of
    its references."""
    series = sorted(stored_uid(d, u, deid) for u in referenced_series(header))
    found = dicom.series_for_refs(store, series, [], None) if series else None
    if found is not None:
        return found
    original = mask_references(header)
    refs = {"series_uids": sorted(stored_uid(d, u, deid) for u in original["series_uids"]),
            "sop_instance_uids": sorted(stored_uid(d, u, deid)
                                        for u in original["sop_instance_uids"]),
            "frame_of_reference_uid": stored_uid(d, original["frame_of_reference_uid"], deid)}
    return _series_for_refs(store, refs)


def _series_for_refs(store: Store, refs: dict[str, Any]) -> tuple[str, str] | None:
    """(stored series UID, patient pseudonym) of the image series the references name.

    By referenced series UID, else the series holding referenced instances, else the only
    series on the referenced frame of reference.
    """
    return dicom.series_for_refs(store, refs["series_uids"], refs["sop_instance_uids"],
                                 refs["frame_of_reference_uid"])


class SeriesVolumes:
    """The image volume masks are decoded against, loaded once per series in a batch
    (only the last one is kept: masks arrive grouped by series and a CT is large)."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.settings = store, settings
        self._uid: str | None = None
        self._volume: Volume | HepaTrackError | None = None
        #: grids of series this batch stored whole (``prepare.ingest_series`` fills it):
        #: a mask is placed on the grid alone, so these are not read back
        self.grids: dict[str, Volume] = {}

    def get(self, series_uid: str) -> Volume:
        """The stored series as a volume (its grid only, for a series this batch stored
        whole); raises its HepaTrackError again on every call."""
        if series_uid in self.grids:
            return self.grids[series_uid]
        if self._uid != series_uid:
            self._uid = series_uid
            try:
                self._volume = load_volume(self.store, self.settings, series_uid)
            except HepaTrackError as e:
                self._volume = e
        if isinstance(self._volume, HepaTrackError):
            raise self._volume
        assert self._volume is not None
        return self._volume


def _decodes(mask: MaskToStore, volumes: SeriesVolumes, report: IngestReport) -> bool:
    """True if the mask decodes onto its series' volume (else it is refused with why).

    A series that is stored but cannot be built into a volume (incomplete, invalid) cannot
    judge its masks: they are stored and the report notes that they were not checked.
    """
    try:
        volume = volumes.get(mask.image_series_uid)
    except HepaTrackError as ex:
        report.notes.append(f"{mask.name}: stored without being checked against its image "
                            f"series ({ex})")
        return True
    try:
        decode_mask(mask.data, mask.format, volume, volumes.settings,
                    segments=mask.segments, name=mask.name)
    except HepaTrackError as ex:
        report.rejected.append(Rejection(mask.name, f"mask rejected: {ex}"))
        return False
    return True


def ingest_mask(entry: BatchEntry, settings: Settings, store: Store, d: Deidentifier,
                report: IngestReport, *, deid: bool, reload: Reload,
                batch_series: dict[str, list[BatchEntry]], parser: SafeParser,
                labels: dict[int, str] | None = None,
                volumes: SeriesVolumes | None = None) -> None:
    """Link one SEG/RTSTRUCT/NIfTI mask to its stored image series, decode it onto the
    series' volume and commit it.

    Parameters
    ----------
    parser
        De-identifies the mask's file in a limited worker (``prepare.stored_bytes``).
    labels
        NIfTI label value -> structure name for label maps of this batch (the user's
        table); binary masks named after their structure and TotalSegmentator's own label
        table need none.
    volumes
        Volumes loaded for earlier masks of the batch (one is made when None).
    """
    volumes = volumes or SeriesVolumes(store, settings)
    try:
        p = reload(entry)
    except HepaTrackError as ex:
        report.rejected.append(Rejection(entry.parsed.name, str(ex)))
        return
    if p.kind == "nifti":
        _ingest_nifti(p, entry, settings, store, report, batch_series, d, deid, labels, volumes)
        return
    found = _linked_series(p.header, store, d, deid)
    if found is None:
        report.rejected.append(Rejection(p.name, "mask rejected: the image series it refers "
                                                 "to is not in this batch or the store"))
        return
    try:
        ident = read_identity(p.header, d.secret, name=p.name, deidentify=deid)
        data, clean = stored_bytes(p, d, deid, parser)
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
                       sop_instance_uid=clean.sop_instance_uid or None,
                       segments=_segments(clean.dataset, p.kind))
    if _decodes(mask, volumes, report):
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
    counts = dicom.mask_counts(store, uids)
    for entry in report.series:
        entry["masks"] = int(counts.get(entry["series_uid"], 0))


# --------------------------------------------------------------------------- NIfTI
def clean_nifti(data: bytes, max_inflated: int) -> bytes:
    """NIfTI bytes (gzip) with the free-text fields blanked and header extensions dropped.

    ``descrip``, ``aux_file``, ``db_name`` and ``data_type`` may carry names; extensions
    may carry anything (a whole DICOM header, XML); the label names the extensions held are
    kept in the mask row instead.

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
    for endian in ("<", ">"):
        size = struct.unpack(endian + "i", bytes(buf[:4]))[0] if len(buf) >= 4 else 0
        if size == 348 and len(buf) >= 352:
            buf[4:14] = bytes(10)  # data_type (unused text)
            buf[14:32] = bytes(18)  # db_name
            buf[148:228] = bytes(80)  # descrip
            buf[228:252] = bytes(24)  # aux_file
            offset = int(struct.unpack(endian + "f", bytes(buf[108:112]))[0])
            if offset > 352 and offset <= len(buf):
                struct.pack_into(endian + "f", buf, 108, 352.0)
                buf = buf[:352] + buf[offset:]
            buf[348:352] = bytes(4)  # no extensions
            break
        if size == 540 and len(buf) >= 544:
            buf[240:320] = bytes(80)  # NIfTI-2 descrip
            buf[320:344] = bytes(24)  # aux_file
            offset = int(struct.unpack(endian + "q", bytes(buf[168:176]))[0])
            if offset > 544 and offset <= len(buf):
                struct.pack_into(endian + "q", buf, 168, 544)
                buf = buf[:544] + buf[offset:]
            buf[540:544] = bytes(4)
            break
    else:
        raise InvalidDicomError("not a readable NIfTI-1/2 header")
    return gzip.compress(bytes(buf), compresslevel=6, mtime=0)


def _series_grids(store: Store, uids: list[str]) -> dict[str, tuple]:
    """Stored series UID -> (index -> LPS affine, (i, j, k) shape) from its geometry."""
    grids = {}
    for uid, geo in dicom.series_geometries(store, uids):
        try:
            affine = index_affine(geo["origin_mm"], geo["direction"], geo["spacing_mm"])
            shape = (int(geo["cols"]), int(geo["rows"]), int(geo["n_slices"]))
        except (KeyError, TypeError, ValueError):
            continue  # a series without a coherent geometry cannot carry a NIfTI mask
        grids[uid] = (affine, shape)
    return grids


def _ingest_nifti(p: ParsedInstance, entry: BatchEntry, settings: Settings, store: Store,
                  report: IngestReport, batch_series: dict[str, list[BatchEntry]],
                  d: Deidentifier, deid: bool, labels: dict[int, str] | None,
                  volumes: SeriesVolumes) -> None:
    """A NIfTI mask carries no references: link it to the one batch series whose field of
    view it covers, name its labels, and store it if it decodes onto that series."""
    try:
        nm = load_nifti(p.data, p.name, settings.limits)
        table = structure_labels(nm, p.name, labels, p.name)
    except HepaTrackError as ex:
        report.rejected.append(Rejection(p.name, str(ex), UNSUPPORTED))
        return
    batch = [stored_uid(d, key, deid) for key in batch_series]
    stored = {s["series_uid"] for s in report.series}
    grids = _series_grids(store, [u for u in batch if u in stored])
    matches = [uid for uid, (a, shape) in grids.items()
               if same_field_of_view(nm.affine_lps, nm.shape_ijk, a, shape)]
    if len(matches) != 1:
        mine = describe_grid(nm.affine_lps, nm.shape_ijk, nm.axcodes)
        if matches:
            why = f"{len(matches)} image series of this batch cover the same field of view"
        elif grids:
            others = "; ".join(describe_grid(a, shape) for a, shape in list(grids.values())[:3])
            why = f"no image series of this batch has its grid: the batch has {others}"
        else:
            why = "no stored image series in this batch"
        report.rejected.append(Rejection(
            p.name, f"mask rejected: a NIfTI mask names no image series; its grid ({mine}) "
                    f"is placed by its affine and {why}; send it with exactly one image "
                    "series of the same field of view"))
        return
    try:
        data = clean_nifti(p.data, settings.limits.max_inflated_bytes)
    except InvalidDicomError as ex:
        report.rejected.append(Rejection(p.name, str(ex)))
        return
    segments: dict[str, Any] = {}
    for value, label in sorted(table.items()):
        key = canonical_structure(label) or label
        info = segments.setdefault(key, {"label": value, "source_name": label})
        if info["label"] != value:
            info["labels"] = sorted({*info.get("labels", [info["label"]]), value})
    mask = MaskToStore(name=p.name, format="nifti", image_series_uid=matches[0],
                       content_sha256=entry.content_sha256, data=data, suffix=".nii.gz",
                       segments=segments)
    if _decodes(mask, volumes, report):
        _commit_mask(mask, settings, store, report)
