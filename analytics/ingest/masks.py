"""Delivered segmentations (DICOM SEG, RTSTRUCT, NIfTI) as masks on an image volume's grid.

Segment names and codes map to HepaTrack's canonical structures (``liver``, ``spleen``,
``liver_vessels``, ``lesion``, and the vessel trunks ``portal_splenic_vein`` and
``inferior_vena_cava`` and the ``aorta``) through ONE table, :data:`analytics.ingest.structures.SYNONYMS`. Masks are
matched to their image series by references and FrameOfReferenceUID.

Every SEG frame is placed by its own Per-frame Functional Groups, never by frame order or
by a slice step inferred from the frames present (:mod:`analytics.ingest.seg_frames`).
NIfTI masks are read in :mod:`analytics.ingest.nifti_masks`.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from analytics.config import IngestLimits
from analytics.errors import HepaTrackError, MaskError
from analytics.ingest.header import SEG_SOP_CLASSES, parse_dicom
from analytics.ingest.nifti_masks import read_nifti
from analytics.ingest.resample import index_affine
from analytics.ingest.seg_frames import place_frames, seg_pixels, seg_planes
from analytics.ingest.structures import canonical_structure
from analytics.ingest.volume import MaskSet, Volume


def _code_of(seq) -> str | None:
    if not seq:
        return None
    item = seq[0]
    return f"{item.get('CodingSchemeDesignator', 'SCT')}:{item.get('CodeValue', '')}"


# --------------------------------------------------------------------------- references
def mask_references(ds: Dataset) -> dict:
    """What a SEG or RTSTRUCT points at.

    Returns
    -------
    dict
        ``series_uids`` (referenced SeriesInstanceUIDs), ``sop_instance_uids`` (referenced
        image SOPInstanceUIDs), ``frame_of_reference_uid`` and ``study_uid``.
    """
    series: set[str] = set()
    sops: set[str] = set()
    for_uid = ds.get("FrameOfReferenceUID")
    for ref in ds.get("ReferencedSeriesSequence") or []:
        if ref.get("SeriesInstanceUID"):
            series.add(str(ref.SeriesInstanceUID))
        for inst in ref.get("ReferencedInstanceSequence") or []:
            sops.add(str(inst.ReferencedSOPInstanceUID))
    groups = list(ds.get("SharedFunctionalGroupsSequence") or [])
    groups += list(ds.get("PerFrameFunctionalGroupsSequence") or [])
    for fg in groups:
        for der in fg.get("DerivationImageSequence") or []:
            for src in der.get("SourceImageSequence") or []:
                sops.add(str(src.ReferencedSOPInstanceUID))
    for src in ds.get("SourceImageSequence") or []:
        sops.add(str(src.ReferencedSOPInstanceUID))
    for fref in ds.get("ReferencedFrameOfReferenceSequence") or []:
        for_uid = for_uid or fref.get("FrameOfReferenceUID")
        for study in fref.get("RTReferencedStudySequence") or []:
            for ser in study.get("RTReferencedSeriesSequence") or []:
                series.add(str(ser.SeriesInstanceUID))
                for img in ser.get("ContourImageSequence") or []:
                    sops.add(str(img.ReferencedSOPInstanceUID))
    for roi in ds.get("ROIContourSequence") or []:
        for contour in roi.get("ContourSequence") or []:
            for img in contour.get("ContourImageSequence") or []:
                sops.add(str(img.ReferencedSOPInstanceUID))
    return {"series_uids": sorted(series), "sop_instance_uids": sorted(sops),
            "frame_of_reference_uid": str(for_uid) if for_uid else None,
            "study_uid": str(ds.get("StudyInstanceUID", "") or "") or None}


def referenced_series(ds: Dataset) -> list[str]:
    """The referenced SeriesInstanceUIDs of a SEG or RTSTRUCT, as :func:`mask_references`
    gives them, without walking every frame's functional groups (a SEG of a few hundred
    frames spends most of its reading there)."""
    series = {str(ref.SeriesInstanceUID) for ref in ds.get("ReferencedSeriesSequence") or []
              if ref.get("SeriesInstanceUID")}
    for fref in ds.get("ReferencedFrameOfReferenceSequence") or []:
        for study in fref.get("RTReferencedStudySequence") or []:
            series.update(str(ser.SeriesInstanceUID)
                          for ser in study.get("RTReferencedSeriesSequence") or [])
    return sorted(series)


def match_series(refs: dict, candidates: dict[str, dict]) -> str | None:
    """Pick the image series a mask belongs to.

    ``candidates`` maps series UID to ``{"sop_instance_uids": set, "frame_of_reference_uid"}``.
    Order: a referenced series UID; else the series holding referenced instances; else the
    only series sharing the FrameOfReferenceUID. None when nothing (or more than one) fits.
    """
    for uid in refs.get("series_uids", []):
        if uid in candidates:
            return uid
    sops = set(refs.get("sop_instance_uids", []))
    hits = [uid for uid, c in candidates.items() if sops & set(c.get("sop_instance_uids", ()))]
    if len(hits) == 1:
        return hits[0]
    fr = refs.get("frame_of_reference_uid")
    same = [uid for uid, c in candidates.items() if fr and c.get("frame_of_reference_uid") == fr]
    return same[0] if len(same) == 1 else None


def _frame_of_reference(ds: Dataset) -> str | None:
    """The FrameOfReferenceUID as :func:`mask_references` reads it, without walking every
    frame's functional groups for the instances they name."""
    for_uid = ds.get("FrameOfReferenceUID")
    for fref in ds.get("ReferencedFrameOfReferenceSequence") or []:
        for_uid = for_uid or fref.get("FrameOfReferenceUID")
    return str(for_uid) if for_uid else None


def _check_frame_of_reference(ds: Dataset, reference: Volume, what: str) -> None:
    fr = _frame_of_reference(ds)
    if fr and reference.frame_of_reference_uid and fr != reference.frame_of_reference_uid:
        raise MaskError(f"{what}: FrameOfReferenceUID {fr} does not match the image series "
                        f"({reference.frame_of_reference_uid}); expected the same patient space")


# --------------------------------------------------------------------------- SEG
def _read_seg(ds: Dataset, reference: Volume, what: str) -> dict[str, np.ndarray]:
    # read here rather than through highdicom, which needs Plane Position in every frame
    if str(ds.get("SOPClassUID", "")) not in SEG_SOP_CLASSES or not ds.get("SegmentSequence"):
        raise MaskError(f"{what}: not a valid DICOM SEG (expected a Segmentation SOP Class "
                        "with a Segment Sequence (0062,0002))")
    _check_frame_of_reference(ds, reference, what)
    pixels = seg_pixels(ds, what)
    seg_type = str(ds.get("SegmentationType", "BINARY")).upper()
    if seg_type == "FRACTIONAL":
        pixels = pixels >= 0.5 * float(ds.get("MaximumFractionalValue", 255) or 255)
    planes = seg_planes(ds, reference, what)
    if len(planes) != pixels.shape[0]:
        raise MaskError(f"{what}: {pixels.shape[0]} frames of pixel data for {len(planes)} "
                        "frames of functional groups")
    per_frame = ds.PerFrameFunctionalGroupsSequence
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else None
    frame_segments: list[int | None] | None = None  # read when a BINARY segment needs it
    masks: dict[str, np.ndarray] = {}
    for desc in ds.SegmentSequence:
        number = int(desc.SegmentNumber)
        structure = canonical_structure(
            str(desc.get("SegmentLabel", "")), _code_of(desc.get("SegmentedPropertyTypeCodeSequence")),
            _code_of(desc.get("AnatomicRegionSequence")))
        if structure is None:
            continue
        if seg_type == "LABELMAP":
            frames = list(range(len(per_frame)))
            segment_pixels = pixels == number
        else:
            if frame_segments is None:
                frame_segments = _frame_segment_numbers(per_frame, shared)
            frames = [i for i, n in enumerate(frame_segments) if n == number]
            segment_pixels = pixels
        if not frames:
            continue
        mask = place_frames(frames, segment_pixels, planes, reference,
                            f"{what} segment {number}")
        masks[structure] = masks[structure] | mask if structure in masks else mask
    return masks


def _frame_segment_numbers(per_frame, shared: Dataset | None) -> list[int | None]:
    """The segment each frame belongs to (Segment Identification), None where unnamed;
    read once for all segments."""
    fallback = shared.get("SegmentIdentificationSequence") if shared else None
    out: list[int | None] = []
    for fg in per_frame:
        ident = fg.get("SegmentIdentificationSequence") or fallback
        out.append(int(ident[0].ReferencedSegmentNumber) if ident else None)
    return out


# --------------------------------------------------------------------------- RTSTRUCT
def _read_rtstruct(ds: Dataset, reference: Volume, what: str) -> dict[str, np.ndarray]:
    from skimage.draw import polygon

    _check_frame_of_reference(ds, reference, what)
    names = {int(r.ROINumber): str(r.get("ROIName", "")) for r in ds.StructureSetROISequence}
    codes = {}
    for obs in ds.get("RTROIObservationsSequence") or []:
        codes[int(obs.ReferencedROINumber)] = _code_of(obs.get("RTROIIdentificationCodeSequence"))
    inv = np.linalg.inv(index_affine(reference.origin_mm, reference.direction,
                                     reference.spacing_mm))
    nz, ny, nx = reference.shape
    masks: dict[str, np.ndarray] = {}
    for roi in ds.ROIContourSequence:
        number = int(roi.ReferencedROINumber)
        structure = canonical_structure(names.get(number), codes.get(number))
        if structure is None:
            continue
        out = masks.setdefault(structure, np.zeros(reference.shape, dtype=bool))
        roi_mask = np.zeros(reference.shape, dtype=bool)
        for c in roi.get("ContourSequence") or []:
            if str(c.get("ContourGeometricType", "CLOSED_PLANAR")).upper() != "CLOSED_PLANAR":
                continue
            pts = np.asarray(c.ContourData, dtype=float).reshape(-1, 3)
            ijk = (inv @ np.c_[pts, np.ones(len(pts))].T)[:3]
            k = ijk[2]
            if np.ptp(k) > 0.5:
                raise MaskError(f"{what}: ROI {names.get(number)!r} has a contour that is not in "
                                f"the plane of an image slice (spans {np.ptp(k):.2f} slices)")
            kk = int(np.round(k.mean()))
            if not 0 <= kk < nz or len(pts) < 3:
                continue
            rr, cc = polygon(ijk[1], ijk[0], shape=(ny, nx))
            poly = np.zeros((ny, nx), dtype=bool)
            poly[rr, cc] = True
            roi_mask[kk] ^= poly  # even-odd: an inner contour on the same slice is a hole
        out |= roi_mask
    return masks


def read_mask(data: bytes | Path, fmt: str, reference: Volume, ref_datasets=None, *,
              name: str | None = None, labels: dict[int, str] | None = None,
              limits: IngestLimits | None = None) -> MaskSet:
    """Read a SEG, RTSTRUCT or NIfTI segmentation onto ``reference``'s grid.

    Parameters
    ----------
    data
        File bytes or a path.
    fmt
        ``seg``, ``rtstruct`` or ``nifti``.
    reference
        The image volume the masks must lie on (its grid, geometry and FrameOfReferenceUID).
    ref_datasets
        Unused for geometry (the volume carries it); accepted for API compatibility.
    name
        Display name (NIfTI: a binary mask named after its structure, ``liver.nii.gz``).
    labels
        NIfTI label value -> structure name (any synonym).
    limits
        Bounds gzip inflation of NIfTI files.

    Returns
    -------
    MaskSet
        Boolean masks ``[z, y, x]`` on the reference grid, keyed by canonical structure.

    Raises
    ------
    MaskError
        Unreadable file or undecodable pixel data, different FrameOfReferenceUID, frames
        that cannot be placed on the image's slices, NIfTI labels without names or a NIfTI
        grid that does not cover the image's field of view.
    """
    del ref_datasets
    what = name or f"{fmt} mask"
    raw = Path(data).read_bytes() if isinstance(data, Path) else bytes(data)
    limits = limits or IngestLimits()
    try:
        if fmt == "nifti":
            masks = read_nifti(raw, reference, what, name, labels, limits)
        elif fmt in ("seg", "rtstruct"):
            # the vetted parser (inflation bounded, never force), not a bare dcmread
            ds = parse_dicom(raw, limits, stop_before_pixels=False).dataset
            masks = (_read_seg if fmt == "seg" else _read_rtstruct)(ds, reference, what)
        else:
            raise MaskError(f"{what}: unknown mask format {fmt!r}; expected seg, rtstruct or nifti")
    except HepaTrackError as e:
        raise MaskError(str(e)) from e
    except (pydicom.errors.InvalidDicomError, AttributeError, KeyError, ValueError,
            IndexError, TypeError, gzip.BadGzipFile) as e:  # malformed elements of this file
        raise MaskError(f"{what}: cannot read {fmt} ({e})") from e
    return MaskSet(masks=masks, source=fmt)
