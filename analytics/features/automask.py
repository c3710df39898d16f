"""Automatic masks kept as DICOM SEG: written with highdicom, one SEG per feature run.

The masks HepaTrack segments itself (no SEG, RTSTRUCT or NIfTI was delivered for an
organ) are what its numbers were measured on, so they are kept: one binary DICOM SEG per
series and extractor run, referencing the stored (de-identified) CT instances it was drawn
on, with one segment per organ (SNOMED CT codes), algorithm type AUTOMATIC and the
algorithm named with its method and the extractor version. Any viewer opens it, and
``hepatrack export --what masks`` hands it out.

Identity: a mask set is named by :func:`mask_digest` (organ names, voxels, method and
extractor version), so re-running the same extraction finds the stored mask instead of
adding one, and a new extractor version gives a new mask. The SEG's UIDs are derived from
that digest, so the same masks always give the same file name and SOP Instance UID.

Frame order: the volume's slice ``k`` is the pixel matrix of the ``k``-th instance in
``volume.meta["sop_instance_uids"]`` (``build_volume`` copies stored frames as they are),
so the mask on the volume grid is written frame for frame against those instances.
Multi-frame sources are not written (the digest row is kept without a file).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from analytics.errors import FeatureError

__all__ = ["ORGAN_CODES", "auto_mask_path", "mask_digest", "seg_uids", "write_auto_seg"]

#: SNOMED CT concepts of the organs an automatic SEG can hold (segmented property type)
ORGAN_CODES: dict[str, Code] = {
    "liver": Code("10200004", "SCT", "Liver"),
    "spleen": Code("78961009", "SCT", "Spleen"),
    "aorta": Code("15825003", "SCT", "Aorta"),
}
_ANATOMICAL_STRUCTURE = Code("91723000", "SCT", "Anatomical Structure")
#: CID 7162 algorithm families: a network, or classical image processing
_AI_FAMILY = Code("113037", "DCM", "Artificial Intelligence")
_CLASSICAL_FAMILY = Code("113041", "DCM", "Morphological Operations")
#: RGB display colours (Okabe-Ito, as on the key image)
_COLOURS = {"liver": (0, 158, 115), "spleen": (230, 159, 0), "aorta": (213, 94, 0)}


def mask_digest(masks: Mapping[str, np.ndarray], method: str | None, version: str) -> str:
    """Content hash of an automatic mask set: organ names and voxels, method and version.

    Parameters
    ----------
    masks
        Organ name -> boolean mask on the volume grid.
    method, version
        Segmentation method (``classical-v3``) and extractor version (``1.3.0``).

    Returns
    -------
    str
        Hex SHA-256; equal masks from the same method and version give the same digest.
    """
    h = hashlib.sha256(f"{method}|{version}".encode())
    for name in sorted(masks):
        m = np.ascontiguousarray(masks[name], dtype=bool)
        h.update(f"|{name}|{m.shape}".encode())
        h.update(np.packbits(m).tobytes())
    return h.hexdigest()


def seg_uids(digest: str) -> tuple[str, str]:
    """``(series UID, SOP Instance UID)`` of the SEG, derived from its digest (2.25 form)."""
    series = "2.25." + str(int(hashlib.sha256(f"series|{digest}".encode()).hexdigest()[:30], 16))
    sop = "2.25." + str(int(digest[:30], 16))
    return series, sop


def auto_mask_path(series_dir: str, digest: str) -> str:
    """Stored path of an automatic SEG, relative to HEPATRACK_HOME (generated name)."""
    return f"{series_dir}/masks/auto-{digest[:40]}.dcm"


#: Type 2 attributes highdicom copies from the source (de-identification may remove them)
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
          "StudyTime", "AccessionNumber", "ReferringPhysicianName", "StudyID")


def _with_type2(ds: Dataset) -> Dataset:
    """``ds`` with the Type 2 patient and study attributes present (empty when absent)."""
    if all(k in ds for k in _TYPE2):
        return ds
    out = Dataset(ds)  # a shallow copy: the stored header is not changed
    for k in _TYPE2:
        if k not in out:
            setattr(out, k, "")
    return out


def algorithm_name(method: str | None) -> str:
    """The SEG's algorithm name: the engine without the version in brackets
    (``HepaTrack classical-v3``, ``TotalSegmentator 2.18.0 total --fast``)."""
    base = (method or "automatic").split(" (")[0]
    return base if base.startswith("TotalSegmentator") else f"HepaTrack {base}"


def _family(method: str | None) -> Code:
    return _AI_FAMILY if method and "totalseg" in method else _CLASSICAL_FAMILY


def write_auto_seg(masks: Mapping[str, np.ndarray], sources: Sequence[Dataset], *,
                   method: str, version: str, digest: str) -> bytes:
    """A binary DICOM SEG of ``masks`` over the CT instances ``sources``, as file bytes.

    Parameters
    ----------
    masks
        Organ name (keys of :data:`ORGAN_CODES`) -> boolean mask ``[z, y, x]`` on the volume
        grid; slice ``k`` lies on ``sources[k]``. Empty masks are left out.
    sources
        Headers of the single-frame source instances, in the volume's slice order.
    method, version
        Algorithm name and extractor version, written in each segment's Algorithm
        Identification (``HepaTrack <method>``, version ``<version>``).
    digest
        :func:`mask_digest` of the masks; names the SEG's UIDs.

    Returns
    -------
    bytes
        The SEG file (explicit VR little endian, with file meta).

    Raises
    ------
    FeatureError
        No organ to write, an organ without a SNOMED code, sources that do not match the
        masks' slices, or highdicom refusing the content (its message is kept).
    """
    import highdicom as hd

    organs = [o for o in ORGAN_CODES if o in masks and np.asarray(masks[o]).any()]
    unknown = sorted(set(masks) - set(ORGAN_CODES))
    if unknown:
        raise FeatureError(f"automatic SEG: no SNOMED code for {', '.join(unknown)}")
    if not organs:
        raise FeatureError("automatic SEG: every mask is empty; nothing to write")
    shape = np.asarray(masks[organs[0]]).shape
    if len(sources) != shape[0] or any(int(ds.get("NumberOfFrames", 1) or 1) != 1
                                       for ds in sources):
        raise FeatureError(f"automatic SEG: {len(sources)} single-frame source instances "
                           f"expected {shape[0]} slices; multi-frame sources are not written")
    if (int(sources[0].Rows), int(sources[0].Columns)) != shape[1:]:
        raise FeatureError(f"automatic SEG: source images are {sources[0].Rows}x"
                           f"{sources[0].Columns}, masks {shape[1]}x{shape[2]}")
    sources = [_with_type2(ds) for ds in sources]
    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name(method), family=_family(method), version=version,
        source="HepaTrack")
    descriptions = [hd.seg.SegmentDescription(
        segment_number=i + 1, segment_label=organ.capitalize(),
        segmented_property_category=_ANATOMICAL_STRUCTURE,
        segmented_property_type=ORGAN_CODES[organ],
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        display_color=hd.color.CIELabColor.from_rgb(*_COLOURS[organ]))
        for i, organ in enumerate(organs)]
    pixels = np.stack([np.asarray(masks[o], dtype=bool) for o in organs], axis=-1)
    series_uid, sop_uid = seg_uids(digest)
    with warnings.catch_warnings():
        # a pseudonym is a one-component Patient's Name; highdicom warns about it
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person")
        try:
            seg = hd.seg.Segmentation(
                source_images=list(sources), pixel_array=pixels.astype(np.uint8),
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=descriptions, series_instance_uid=series_uid,
                series_number=9901, sop_instance_uid=sop_uid, instance_number=1,
                manufacturer="HepaTrack", manufacturer_model_name="HepaTrack",
                software_versions=version, device_serial_number="none",
                content_label="AUTOMATIC",
                content_description=f"automatic segmentation {method}"[:64],
                series_description=f"HepaTrack automatic masks ({method})"[:64])
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            raise FeatureError(f"automatic SEG: highdicom refused the content ({e})") from e
    buf = io.BytesIO()
    seg.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
