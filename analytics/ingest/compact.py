"""The compact header: the few values series assembly and pixel reading need, as plain JSON.

The parse worker sends this instead of a dataset, so the parent can sort, check and read
pixels without parsing the header again; the full dataset is parsed only when asked for
(de-identification, masks). It holds identifiers, pixel layout, per-frame geometry and
rescale, the contrast phase, and what each frame of an enhanced image shows (its kind: frame
type, echo time, b-value, time point, dimension index), from which stacks are formed, and
for images whether their pixels may show identifiers (``quarantine``: the reason, or None).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from analytics.ingest.deid import quarantine_reason
from analytics.ingest.geometry import FrameGeometry, frame_geometry
from analytics.ingest.header import UNDEFINED, Header, n_frames, raw_strings, raw_us, tag_name
from analytics.ingest.phase import contrast_phase
from analytics.ingest.stacks import frame_kinds
from analytics.ingest.ultrasound import quarantine_reason as ultrasound_quarantine


def _text(ds: Dataset, kw: str) -> str | None:
    """An ASCII-only element (UI, CS, DA, IS ...) read from its raw bytes."""
    v = raw_strings(ds, kw)
    return "\\".join(v) if v else None


def _decoded(ds: Dataset, kw: str) -> str | None:
    """A text element that may use the dataset's character set (LO, SH): pydicom decodes."""
    v = ds.get(kw)
    return None if v in (None, "") else str(v)


def _int(ds: Dataset, kw: str, default: int | None = None) -> int | None:
    v = raw_strings(ds, kw)
    try:
        return int(float(v[0])) if v else default
    except (TypeError, ValueError):
        return default


STUDY_HINTS = ("StudyDate", "StudyTime", "AccessionNumber", "StudyID")
SERIES_HINTS = ("Modality", "SOPClassUID", "SeriesNumber", "SeriesDate", "SeriesTime",
                 "AcquisitionNumber", "FrameOfReferenceUID", "ImageType", "ConvolutionKernel",
                 "SliceThickness", "EchoTime", "InversionTime")
TEXT_HINTS = ("SeriesDescription", "ProtocolName")
#: a series told apart across batches without its folder needs one of these
STRONG_HINTS = ("FrameOfReferenceUID", "SeriesTime")


def series_hints(ds: Dataset) -> dict[str, str | None]:
    """The header values that group an image into its series when its UIDs are empty."""
    out: dict[str, str | None] = {}
    for kw in (*STUDY_HINTS, *SERIES_HINTS):
        values = raw_strings(ds, kw)
        out[kw] = "\\".join(v.strip() for v in values) if values else None
    for kw in TEXT_HINTS:
        value = ds.get(kw)
        out[kw] = (str(value).strip() or None) if value is not None else None
    return out


def describe(header: Header, kind: str) -> dict[str, Any]:
    """The compact header of a parsed file (JSON-serialisable).

    Raises
    ------
    InvalidDicomError
        For images, missing or invalid geometry (named with frame and tag).
    """
    ds = header.dataset
    info: dict[str, Any] = {
        "kind": kind,
        "sop_class_uid": _text(ds, "SOPClassUID"),
        "sop_instance_uid": _text(ds, "SOPInstanceUID"),
        "series_uid": _text(ds, "SeriesInstanceUID"),
        "study_uid": _text(ds, "StudyInstanceUID"),
        "patient_id": _decoded(ds, "PatientID"),
        "modality": _text(ds, "Modality"),
        "transfer_syntax_uid": str(ds.file_meta.get("TransferSyntaxUID", "")) or None,
        "little_endian": bool(ds.is_little_endian),
        "frame_of_reference_uid": _text(ds, "FrameOfReferenceUID"),
        "instance_number": _int(ds, "InstanceNumber"),
        "pixel": ([header.pixel.tag, header.pixel.offset, header.pixel.length]
                  if header.pixel else None),
        "rows": raw_us(ds, "Rows"), "cols": raw_us(ds, "Columns"),
        "frames": n_frames(ds), "has_frames_tag": "NumberOfFrames" in ds,
        "samples": raw_us(ds, "SamplesPerPixel") or 1,
        "bits_allocated": raw_us(ds, "BitsAllocated"),
        "bits_stored": raw_us(ds, "BitsStored"),
        "pixel_representation": raw_us(ds, "PixelRepresentation") or 0,
        "extended_offset_table": "ExtendedOffsetTable" in ds,
        "image_type": [v.strip().upper() for v in (raw_strings(ds, "ImageType") or [])],
        "description": _decoded(ds, "SeriesDescription"),
        "study_date": _text(ds, "StudyDate"),
        "geometry": None,
        "contrast_phase": None,
        "recovered": list(header.recovered),
        "series_hints": None,
        "frame_kinds": None,
    }
    if kind in ("image", "ultrasound", "other"):
        # judged from this parse, so ingest does not parse the header again for it
        info["quarantine"] = (ultrasound_quarantine(ds) if kind == "ultrasound"
                              else quarantine_reason(ds))
    if kind == "image":
        info["geometry"] = [
            [*g.position.tolist(), *g.row_cosine.tolist(), *g.col_cosine.tolist(),
             *g.pixel_spacing, g.slope, g.intercept, g.slice_thickness,
             g.spacing_between_slices] for g in frame_geometry(ds)]
        info["contrast_phase"] = contrast_phase(ds)
        if not (info["study_uid"] and info["series_uid"] and info["patient_id"]):
            info["series_hints"] = series_hints(ds)
        kinds = frame_kinds(ds)
        info["frame_kinds"] = [k.as_list() for k in kinds] if kinds is not None else None
    return info


def needs_repair(info: dict[str, Any]) -> bool:
    """True for an image whose Study/Series UID or Patient ID is empty, or whose SOP UIDs
    came from the file meta (``analytics.ingest.identifiers`` fills them in)."""
    return info.get("kind") == "image" and bool(
        info.get("recovered") or not info.get("study_uid") or not info.get("series_uid")
        or not (info.get("patient_id") or "").strip())


def geometry_from(info: dict[str, Any]):
    """FrameGeometry list from a compact header's ``geometry``."""
    return [FrameGeometry(position=np.array(g[0:3]), row_cosine=np.array(g[3:6]),
                          col_cosine=np.array(g[6:9]), pixel_spacing=(g[9], g[10]),
                          slope=g[11], intercept=g[12], slice_thickness=g[13],
                          spacing_between_slices=g[14]) for g in info["geometry"] or []]


def pixel_extent_problem(info: dict[str, Any], body: bytes | memoryview) -> str | None:
    """Why the pixel data is truncated or malformed, or None if its extent is plausible.

    Native data must have the declared and actual length of Rows x Columns x Frames x
    Samples x BitsAllocated; encapsulated data must hold a complete item sequence with at
    least one fragment per frame. ``body`` is the file (inflated for deflate).
    """
    if info["pixel"] is None:
        return f"no pixel data element {tag_name(0x7FE00010)}"
    tag, offset, length = info["pixel"]
    bits = info["bits_allocated"] or 16
    expected = (info["rows"] * info["cols"] * info["frames"] * (info["samples"] or 1) * bits
                + 7) // 8
    available = len(body) - offset
    if length != UNDEFINED:
        if length < expected:
            return (f"truncated pixel data: {tag_name(tag)} declares {length} bytes, "
                    f"expected {expected} (Rows x Columns x Frames x BitsAllocated)")
        if available < expected:
            return (f"truncated pixel data: the file ends after {available} of {expected} "
                    f"pixel bytes")
        return None
    pos, items = offset, 0
    fmt = "<HHI" if info["little_endian"] else ">HHI"
    while True:
        if pos + 8 > len(body):
            return "truncated pixel data: encapsulated fragments end before the sequence delimiter"
        group, elem, size = struct.unpack_from(fmt, body, pos)
        item = (group << 16) | elem
        if item == 0xFFFEE0DD:
            break
        if item != 0xFFFEE000 or size == UNDEFINED:
            return f"malformed encapsulated pixel data: unexpected item ({group:04X},{elem:04X})"
        pos += 8 + size
        items += 1
        if pos > len(body):
            return "truncated pixel data: a fragment runs past the end of the file"
    if items - 1 < 1:  # the first item is the Basic Offset Table
        return "truncated pixel data: encapsulated pixel data has no fragments"
    frames = info["frames"]
    if frames > 1 and items - 1 < frames and not info["extended_offset_table"]:
        return f"truncated pixel data: {items - 1} fragments for {frames} frames"
    return None
