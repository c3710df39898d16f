"""Delivered segmentations (DICOM SEG, RTSTRUCT, NIfTI) as masks on an image volume's grid.

Segment names and codes map to HepaTrack's canonical structures (``liver``, ``spleen``,
``liver_vessels``, ``lesion``, and the vessel trunks ``portal_splenic_vein`` and
``inferior_vena_cava`` and the ``aorta``) through ONE table, :data:`SYNONYMS`. Masks are
matched to their image series by references and FrameOfReferenceUID.

Every SEG frame is placed by its own Per-frame Functional Groups, never by frame order or
by a slice step inferred from the frames present (:mod:`analytics.ingest.seg_frames`).
NIfTI masks are read in :mod:`analytics.ingest.nifti_masks`.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from analytics.config import IngestLimits
from analytics.errors import HepaTrackError, MaskError
from analytics.ingest.header import SEG_SOP_CLASSES, parse_dicom
from analytics.ingest.resample import index_affine
from analytics.ingest.seg_frames import place_frames, seg_pixels, seg_planes
from analytics.ingest.volume import MaskSet, Volume

LIVER, SPLEEN, LIVER_VESSELS, LESION = "liver", "spleen", "liver_vessels", "lesion"
#: vessel trunks that lie mostly outside the liver, and the aorta (phase and blood level)
PORTAL_SPLENIC_VEIN, INFERIOR_VENA_CAVA, AORTA = ("portal_splenic_vein", "inferior_vena_cava",
                                                  "aorta")
#: every structure a delivered mask is read for
STRUCTURES = (LIVER, SPLEEN, LIVER_VESSELS, LESION, PORTAL_SPLENIC_VEIN, INFERIOR_VENA_CAVA,
              AORTA)

#: The synonym table. Keys are normalised names (lower case, ``_``/``-`` as spaces) or coded
#: concepts ``SCHEME:VALUE``: SNOMED CT (``SCT``) and its legacy SNOMED RT ids (``SRT``).
#: Codes from DICOM PS3.16 (CID 7151/7166/7192 use them for SEG segment types).
SYNONYMS: dict[str, str] = {
    # liver
    "liver": LIVER, "liver total": LIVER, "whole liver": LIVER, "total liver": LIVER,
    "liver parenchyma": LIVER, "hepar": LIVER, "leber": LIVER, "foie": LIVER, "hígado": LIVER,
    "fegato": LIVER, "lever": LIVER, "liver mask": LIVER, "liver seg": LIVER,
    "SCT:10200004": LIVER, "SRT:T-62000": LIVER, "SCT:181268008": LIVER,
    # spleen
    "spleen": SPLEEN, "milz": SPLEEN, "rate": SPLEEN, "bazo": SPLEEN, "milt": SPLEEN,
    "splenic parenchyma": SPLEEN, "spleen total": SPLEEN,
    "SCT:78961009": SPLEEN, "SRT:T-C3000": SPLEEN, "SCT:181279003": SPLEEN,
    # liver vessels
    "liver vessels": LIVER_VESSELS, "liver vessel": LIVER_VESSELS,
    "hepatic vessels": LIVER_VESSELS, "hepatic vessel": LIVER_VESSELS,
    "hepatic vasculature": LIVER_VESSELS, "liver vasculature": LIVER_VESSELS,
    "portal vein": LIVER_VESSELS, "portal veins": LIVER_VESSELS,
    "hepatic vein": LIVER_VESSELS, "hepatic veins": LIVER_VESSELS,
    "portal vein and hepatic veins": LIVER_VESSELS, "portal and hepatic veins": LIVER_VESSELS,
    "hepatic and portal veins": LIVER_VESSELS, "lebergefässe": LIVER_VESSELS,
    "lebergefaesse": LIVER_VESSELS, "pfortader": LIVER_VESSELS, "lebervenen": LIVER_VESSELS,
    "SCT:32764006": LIVER_VESSELS, "SRT:T-48810": LIVER_VESSELS,  # portal vein
    "SCT:8993003": LIVER_VESSELS, "SRT:T-48720": LIVER_VESSELS,  # hepatic vein
    "SCT:76015000": LIVER_VESSELS, "SRT:T-46420": LIVER_VESSELS,  # hepatic artery
    # vessel trunks outside the liver (TotalSegmentator names them so); never liver vessels
    "portal splenic vein": PORTAL_SPLENIC_VEIN,
    "portal vein and splenic vein": PORTAL_SPLENIC_VEIN,
    "portal and splenic vein": PORTAL_SPLENIC_VEIN, "portal and splenic veins": PORTAL_SPLENIC_VEIN,
    "splenic vein": PORTAL_SPLENIC_VEIN, "splenoportal axis": PORTAL_SPLENIC_VEIN,
    "SCT:35819009": PORTAL_SPLENIC_VEIN, "SRT:T-48890": PORTAL_SPLENIC_VEIN,  # splenic vein
    "inferior vena cava": INFERIOR_VENA_CAVA, "ivc": INFERIOR_VENA_CAVA,
    "vena cava inferior": INFERIOR_VENA_CAVA, "v cava inferior": INFERIOR_VENA_CAVA,
    "SCT:64131007": INFERIOR_VENA_CAVA, "SRT:T-48610": INFERIOR_VENA_CAVA,
    "aorta": AORTA, "abdominal aorta": AORTA, "aorta abdominalis": AORTA,
    "SCT:15825003": AORTA, "SRT:T-42000": AORTA, "SCT:7832008": AORTA,  # aorta, abdominal
    # lesions
    "lesion": LESION, "lesions": LESION, "liver lesion": LESION, "liver lesions": LESION,
    "tumor": LESION, "tumour": LESION, "tumors": LESION, "tumours": LESION,
    "liver tumor": LESION, "liver tumour": LESION, "hepatic tumor": LESION,
    "hepatic lesion": LESION, "hcc": LESION, "hepatocellular carcinoma": LESION,
    "metastasis": LESION, "metastases": LESION, "liver metastasis": LESION,
    "neoplasm": LESION, "mass": LESION, "nodule": LESION, "cyst": LESION,
    "läsion": LESION, "laesion": LESION, "herd": LESION, "leberherd": LESION,
    "SCT:52988006": LESION, "SRT:M-01100": LESION,  # lesion
    "SCT:108369006": LESION, "SRT:M-8FFFF": LESION,  # neoplasm / tumor
    "SCT:4147007": LESION, "SRT:M-03000": LESION,  # mass
    "SCT:25370001": LESION,  # hepatocellular carcinoma
    "SCT:128462008": LESION,  # metastasis
    "SCT:367643001": LESION,  # cyst
}
#: Generic vessel concepts count as liver vessels only with the liver as anatomic region.
_VESSEL_CODES = {"SCT:59820001", "SCT:29092000", "SCT:51114001", "SRT:T-D000A", "SRT:T-48000",
                 "SRT:T-41000"}
_LIVER_REGION = {"SCT:10200004", "SRT:T-62000"}


def _norm_name(name: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[_\-.]+", " ", name.strip().lower())).strip()


def _norm_code(code: str) -> str:
    code = code.strip()
    if ":" not in code:
        return f"SCT:{code}"
    scheme, value = code.split(":", 1)
    scheme = scheme.upper()
    return f"{'SCT' if scheme in ('SNM', 'SCT', 'SNOMED', 'SNOMEDCT') else scheme}:{value}"


def canonical_structure(name: str | None, code: str | None = None,
                        region_code: str | None = None) -> str | None:
    """The canonical structure for a segment name and/or code, or None if not one of ours.

    Parameters
    ----------
    name
        Segment label, ROI name or file stem (case and ``_``/``-`` do not matter).
    code
        Coded concept, ``"SCT:10200004"`` or a bare SNOMED CT id (``"10200004"``).
    region_code
        Anatomic region code: a generic vessel code inside the liver means liver vessels.
    """
    if code:
        hit = SYNONYMS.get(_norm_code(code))
        if hit:
            return hit
        if (_norm_code(code) in _VESSEL_CODES and region_code
                and _norm_code(region_code) in _LIVER_REGION):
            return LIVER_VESSELS
    if name:
        return SYNONYMS.get(_norm_name(name))
    return None


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


def _check_frame_of_reference(ds: Dataset, reference: Volume, what: str) -> None:
    fr = mask_references(ds)["frame_of_reference_uid"]
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
            frames = []
            for i, fg in enumerate(per_frame):
                ident = (fg.get("SegmentIdentificationSequence")
                         or (shared.get("SegmentIdentificationSequence") if shared else None))
                if ident and int(ident[0].ReferencedSegmentNumber) == number:
                    frames.append(i)
            segment_pixels = pixels
        if not frames:
            continue
        mask = place_frames(frames, segment_pixels, planes, reference,
                            f"{what} segment {number}")
        masks[structure] = masks[structure] | mask if structure in masks else mask
    return masks


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
            from analytics.ingest.nifti_masks import read_nifti  # it imports this module

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
