"""Delivered segmentations (DICOM SEG, RTSTRUCT, NIfTI) as masks on an image volume's grid.

Segment names and codes map to HepaTrack's canonical structures (``liver``, ``spleen``,
``liver_vessels``, ``lesion``) through ONE table, :data:`SYNONYMS`. Masks are matched to
their image series by references and FrameOfReferenceUID, and resampled nearest-neighbour
in patient space when their grid differs from the image's. NIfTI is RAS+, DICOM is LPS:
the NIfTI affine is flipped in x and y before use.
"""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from analytics.config import IngestLimits
from analytics.errors import HepaTrackError, MaskError
from analytics.ingest.geometry import functional_group_geometry
from analytics.ingest.header import bounded_inflate
from analytics.ingest.resample import index_affine, resample_nearest
from analytics.ingest.volume import MaskSet, Volume

LIVER, SPLEEN, LIVER_VESSELS, LESION = "liver", "spleen", "liver_vessels", "lesion"

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
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


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
def _seg_stack(frames: list[int], pixels: np.ndarray, geoms, what: str
               ) -> tuple[np.ndarray, np.ndarray]:
    """Stack SEG frames into a regular 3-D grid [k, j, i] and its index->LPS affine."""
    g0 = geoms[frames[0]]
    normal = g0.normal
    d = np.array([geoms[f].position @ normal for f in frames])
    uniq = np.unique(np.round(d, 3))
    if len(uniq) > 1:
        step = float(np.min(np.diff(uniq)))
    else:
        step = g0.spacing_between_slices or g0.slice_thickness or 1.0
    first = frames[int(np.argmin(d))]
    origin = geoms[first].position
    k = (d - d.min()) / step
    if np.abs(k - np.round(k)).max() > 0.1:
        raise MaskError(f"{what}: frames of one segment are not on a regular grid along the "
                        f"slice normal (positions {np.round(np.sort(uniq), 2).tolist()} mm)")
    for f in frames:
        g = geoms[f]
        if (np.abs(g.row_cosine - g0.row_cosine).max() > 1e-3
                or np.abs((g.position - origin) @ g0.row_cosine) > 0.05 * g0.pixel_spacing[1]
                or np.abs((g.position - origin) @ g0.col_cosine) > 0.05 * g0.pixel_spacing[0]):
            raise MaskError(f"{what}: frames of one segment are not aligned (mixed orientation "
                            f"or in-plane offsets)")
    stack = np.zeros((round(k.max()) + 1, *pixels.shape[1:]), dtype=bool)
    for f, kk in zip(frames, np.round(k).astype(int), strict=True):
        stack[kk] |= pixels[f]
    affine = index_affine(origin, np.column_stack([g0.row_cosine, g0.col_cosine, normal]),
                          (step, *g0.pixel_spacing))
    return stack, affine


def _read_seg(ds: Dataset, reference: Volume, what: str) -> dict[str, np.ndarray]:
    import highdicom as hd

    try:
        seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
    except (ValueError, AttributeError, KeyError, TypeError) as e:
        raise MaskError(f"{what}: not a valid DICOM SEG ({e})") from e
    _check_frame_of_reference(ds, reference, what)
    pixels = ds.pixel_array
    if pixels.ndim == 2:
        pixels = pixels[None]
    seg_type = str(ds.get("SegmentationType", "BINARY")).upper()
    if seg_type == "FRACTIONAL":
        pixels = pixels >= 0.5 * float(ds.get("MaximumFractionalValue", 255) or 255)
    geoms = functional_group_geometry(ds)
    per_frame = ds.PerFrameFunctionalGroupsSequence
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else None
    masks: dict[str, np.ndarray] = {}
    for desc in seg.SegmentSequence:
        number = int(desc.SegmentNumber)
        structure = canonical_structure(
            str(desc.get("SegmentLabel", "")), _code_of(desc.get("SegmentedPropertyTypeCodeSequence")),
            _code_of(desc.get("AnatomicRegionSequence")))
        if structure is None:
            continue
        if seg_type == "LABELMAP":
            frames = list(range(len(per_frame)))
            seg_pixels = pixels == number
        else:
            frames = []
            for i, fg in enumerate(per_frame):
                ident = (fg.get("SegmentIdentificationSequence")
                         or (shared.get("SegmentIdentificationSequence") if shared else None))
                if ident and int(ident[0].ReferencedSegmentNumber) == number:
                    frames.append(i)
            seg_pixels = pixels.astype(bool)
        if not frames:
            continue
        stack, affine = _seg_stack(frames, seg_pixels, geoms, f"{what} segment {number}")
        mask = resample_nearest(stack, affine, reference)
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


# --------------------------------------------------------------------------- NIfTI
def _read_nifti(raw: bytes, reference: Volume, what: str, name: str | None,
                labels: dict[int, str] | None, limits: IngestLimits) -> dict[str, np.ndarray]:
    import nibabel as nib

    if raw[:2] == b"\x1f\x8b":
        raw = bounded_inflate(raw, limits.max_inflated_bytes, wbits=16 + 15, what=what)
    try:
        cls = nib.Nifti2Image if raw[4:8] in (b"n+2\0", b"ni2\0") else nib.Nifti1Image
        img = cls.from_bytes(raw)
        data = np.asanyarray(img.dataobj)
    except Exception as e:  # nibabel raises many types for a bad header
        raise MaskError(f"{what}: not a readable NIfTI file ({e})") from e
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise MaskError(f"{what}: NIfTI label map has shape {data.shape}; expected 3-D")
    values = [int(v) for v in np.unique(data) if v != 0]
    if labels is None:
        stem = Path(name or "").name.split(".")[0] if name else ""
        if len(values) <= 1 and canonical_structure(stem):
            labels = dict.fromkeys(values, stem)
        else:
            raise MaskError(f"{what}: NIfTI label map with labels {values} but no label names: "
                            f"pass labels={{value: name}} (or name a binary mask after its "
                            f"structure, e.g. liver.nii.gz)")
    # NIfTI voxel (i, j, k) -> RAS mm; LPS = diag(-1, -1, 1) RAS; array [i, j, k] -> [k, j, i]
    affine = _RAS_TO_LPS @ img.affine
    src = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    masks: dict[str, np.ndarray] = {}
    for value, label in labels.items():
        structure = canonical_structure(label)
        if structure is None:
            continue
        mask = resample_nearest(src == value, affine, reference)
        masks[structure] = masks[structure] | mask if structure in masks else mask
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
        Unreadable file, different FrameOfReferenceUID, irregular or non-planar geometry,
        NIfTI labels without names.
    """
    del ref_datasets
    what = name or f"{fmt} mask"
    raw = Path(data).read_bytes() if isinstance(data, Path) else bytes(data)
    limits = limits or IngestLimits()
    try:
        if fmt == "nifti":
            masks = _read_nifti(raw, reference, what, name, labels, limits)
        elif fmt in ("seg", "rtstruct"):
            ds = pydicom.dcmread(io.BytesIO(raw))
            masks = (_read_seg if fmt == "seg" else _read_rtstruct)(ds, reference, what)
        else:
            raise MaskError(f"{what}: unknown mask format {fmt!r}; expected seg, rtstruct or nifti")
    except HepaTrackError as e:
        raise MaskError(str(e)) from e
    except (pydicom.errors.InvalidDicomError, AttributeError, KeyError, ValueError,
            gzip.BadGzipFile) as e:
        raise MaskError(f"{what}: cannot read {fmt} ({e})") from e
    return MaskSet(masks=masks, source=fmt)
