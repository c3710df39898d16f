"""Header parsing without ``force``: file meta, bounded inflation, element checks, SOP class.

:func:`parse_dicom` is the one way HepaTrack turns bytes into a pydicom dataset. It runs in a
worker process (``analytics.ingest._worker``, under memory and time limits) for untrusted
input, and in-process for files the worker already vetted or that HepaTrack stored itself.
"""

from __future__ import annotations

import functools
import io
import struct
import warnings
import zlib
from dataclasses import dataclass

from pydicom.dataset import Dataset, FileDataset
from pydicom.filereader import _read_file_meta_info, read_dataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from analytics.config import IngestLimits
from analytics.errors import InvalidDicomError, LimitExceededError, UnsupportedError

PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float, Double Float
#: a set: pydicom's tags compare through a Python ``__eq__``, a set lookup hashes first
_PIXEL_TAG_SET = frozenset(PIXEL_TAGS)
UNDEFINED = 0xFFFFFFFF
MAX_SEQUENCE_DEPTH = 32
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV",
             b"UV"}

IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2": "CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.4": "MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.4": "Legacy Converted Enhanced MR Image Storage",
}
SEG_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66.4": "Segmentation Storage",
    "1.2.840.10008.5.1.4.1.1.66.7": "Label Map Segmentation Storage",
}
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
#: 2-D ultrasound, measured per frame (``analytics.ingest.ultrasound``), never built into a volume
ULTRASOUND_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.6.1": "Ultrasound Image Storage",
    "1.2.840.10008.5.1.4.1.1.3.1": "Ultrasound Multi-frame Image Storage",
}
#: Secondary captures are kept as ``other`` (de-identification quarantines them); never scored.
SECONDARY_CAPTURE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.1": "Multi-frame Single Bit Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.2": "Multi-frame Grayscale Byte Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.3": "Multi-frame Grayscale Word Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.4": "Multi-frame True Color Secondary Capture Image Storage",
}
MEDIA_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"
ENHANCED_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2",
                        "1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.4.4"}

_SOP_REQUIRED = ("SOPClassUID", "SOPInstanceUID")
#: an image whose Study/Series Instance UIDs are empty is grouped and given derived UIDs
#: (``analytics.ingest.identifiers``); every other object must name its study and series
_GROUP_REQUIRED = ("StudyInstanceUID", "SeriesInstanceUID")
#: Type 1 identifiers the file meta repeats (PS3.10 7.1): taken from there when the data
#: set holds them empty, as anonymising exports often leave them
_FROM_FILE_META = (("SOPClassUID", "MediaStorageSOPClassUID"),
                   ("SOPInstanceUID", "MediaStorageSOPInstanceUID"))
_IMAGE_REQUIRED = ("Modality", "Rows", "Columns", "BitsAllocated", "BitsStored",
                   "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation")
_CLASSIC_GEOMETRY = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")


@dataclass(frozen=True)
class PixelElement:
    """Where the pixel data element lies in the dataset body.

    ``offset`` is the byte offset of the element's value in the body (the file bytes, or the
    inflated bytes for the deflated transfer syntax); ``length`` is the declared value length
    (``UNDEFINED`` for encapsulated pixel data).
    """

    tag: int
    offset: int
    length: int

    @property
    def encapsulated(self) -> bool:
        return self.length == UNDEFINED


@dataclass
class Header:
    """A parsed header (no pixel values) and where its pixel data starts."""

    dataset: FileDataset
    pixel: PixelElement | None
    body: bytes | memoryview  # the bytes ``pixel.offset`` refers to
    truncated: bool  # the header itself ended before its declared end
    recovered: tuple[str, ...] = ()  # keywords taken from the file meta (``_FROM_FILE_META``)


def tag_name(keyword_or_tag: str | int) -> str:
    """``'SeriesInstanceUID (0020,000E)'`` for a keyword or tag, as error messages name tags."""
    from pydicom.datadict import keyword_for_tag, tag_for_keyword

    if isinstance(keyword_or_tag, str):
        tag = tag_for_keyword(keyword_or_tag)
        kw = keyword_or_tag
    else:
        tag = keyword_or_tag
        kw = keyword_for_tag(tag) or "private or unknown element"
    return f"{kw} ({tag >> 16:04X},{tag & 0xFFFF:04X})" if tag is not None else kw


def raw_strings(ds: Dataset, keyword: str) -> list[str] | None:
    """Values of a text-encoded element (DS, IS, CS, UI, DA, TM ...) without pydicom's
    per-element conversion: the hot path of series assembly reads a few dozen of these.

    Returns None when the element is absent or empty.
    """
    from pydicom.datadict import tag_for_keyword

    elem = ds._dict.get(tag_for_keyword(keyword))
    if elem is None:
        return None
    value = elem.value
    if isinstance(value, bytes | bytearray):
        text = value.decode("latin-1").strip(" \x00")
        return text.split("\\") if text else None
    if value is None or value == "":
        return None
    if isinstance(value, str | int | float):
        return [str(value)]
    return [str(v) for v in value]


def raw_us(ds: Dataset, keyword: str) -> int | None:
    """An unsigned short (US) element's first value, read from its raw bytes if unconverted."""
    from pydicom.datadict import tag_for_keyword

    elem = ds._dict.get(tag_for_keyword(keyword))
    if elem is None or elem.value is None:
        return None
    value = elem.value
    if isinstance(value, bytes | bytearray):
        if len(value) < 2:
            return None
        return int.from_bytes(value[:2], "little" if ds.is_little_endian else "big")
    if isinstance(value, int):
        return value
    return int(value[0]) if len(value) else None


def has_dicm(data: bytes | memoryview) -> bool:
    return len(data) >= 132 and bytes(data[128:132]) == b"DICM"


def bounded_inflate(data: bytes | memoryview, max_bytes: int, *, wbits: int = -zlib.MAX_WBITS,
                    what: str = "deflated dataset") -> bytes:
    """Inflate ``data`` but never produce more than ``max_bytes`` (deflate-bomb guard).

    Raises
    ------
    LimitExceededError
        If the output would exceed ``max_bytes``.
    InvalidDicomError
        If the stream is corrupt.
    """
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(data, max_bytes + 1)
    except zlib.error as e:
        raise InvalidDicomError(f"{what} is corrupt ({e})") from e
    if len(out) > max_bytes or d.unconsumed_tail:
        raise LimitExceededError(f"{what} inflates to more than {max_bytes} bytes "
                                 f"(max_inflated_bytes): refused (deflate bomb?)")
    return out


def _encoding(ts: str) -> tuple[bool, bool]:
    """(implicit VR, little endian) of a transfer syntax, or UnsupportedError."""
    if ts == ImplicitVRLittleEndian:
        return True, True
    if ts == ExplicitVRBigEndian:
        return False, False
    if ts in (ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian):
        return False, True
    uid = UID(ts)
    if uid.is_transfer_syntax and uid.is_compressed:
        return False, True  # every encapsulated syntax is explicit VR little endian
    raise UnsupportedError(f"unsupported transfer syntax {uid.name} ({ts})")


def _pixel_element(body: bytes | memoryview, pos: int, implicit: bool,
                   little: bool) -> PixelElement | None:
    if pos + 8 > len(body):
        return None
    fmt = "<" if little else ">"
    group, elem = struct.unpack_from(fmt + "HH", body, pos)
    tag = (group << 16) | elem
    if tag not in PIXEL_TAGS:
        return None
    if implicit:
        (length,) = struct.unpack_from(fmt + "I", body, pos + 4)
        return PixelElement(tag, pos + 8, length)
    vr = bytes(body[pos + 4:pos + 6])
    if vr in _LONG_VRS:
        if pos + 12 > len(body):
            return None
        (length,) = struct.unpack_from(fmt + "I", body, pos + 8)
        return PixelElement(tag, pos + 12, length)
    (length,) = struct.unpack_from(fmt + "H", body, pos + 6)
    return PixelElement(tag, pos + 8, length)


def parse_dicom(data: bytes | memoryview, limits: IngestLimits, *,
                stop_before_pixels: bool = True) -> Header:
    """Parse a DICOM Part 10 file from bytes (never with ``force``).

    Parameters
    ----------
    data
        The whole file, or a prefix of it (then the header may come back truncated).
    limits
        ``max_inflated_bytes`` bounds inflation of the deflated transfer syntax.
    stop_before_pixels
        Stop at the pixel data element (its position is returned in ``Header.pixel``).

    Raises
    ------
    InvalidDicomError
        No ``DICM`` at byte 128, or no transfer syntax in the file meta.
    UnsupportedError
        An unknown (private) transfer syntax.
    LimitExceededError
        A deflated dataset that inflates past ``limits.max_inflated_bytes``.
    """
    if not has_dicm(data):
        raise InvalidDicomError("not a DICOM file (no 'DICM' prefix at byte 128)")
    fp = io.BytesIO(data)
    fp.seek(132)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        meta = _read_file_meta_info(fp)
        ts = meta.get("TransferSyntaxUID")
        if not ts:
            raise InvalidDicomError(f"file meta lacks {tag_name('TransferSyntaxUID')}")
        implicit, little = _encoding(str(ts))
        body: bytes | memoryview = data
        if ts == DeflatedExplicitVRLittleEndian:
            body = bounded_inflate(memoryview(data)[fp.tell():], limits.max_inflated_bytes)
            fp = io.BytesIO(body)
        stop = (lambda tag, vr, length: tag in _PIXEL_TAG_SET) if stop_before_pixels else None
        ds = read_dataset(fp, implicit, little, stop_when=stop)
        pos = fp.tell()
    truncated = any("End of file" in str(w.message) or "EOF" in str(w.message) for w in caught)
    fds = FileDataset("", ds, preamble=bytes(data[:128]), file_meta=meta,
                      is_implicit_VR=implicit, is_little_endian=little)
    fds.set_original_encoding(implicit, little, ds._character_set)
    pixel = _pixel_element(body, pos, implicit, little) if stop_before_pixels else None
    return Header(dataset=fds, pixel=pixel, body=body, truncated=truncated,
                  recovered=recover_from_file_meta(fds))


def recover_from_file_meta(ds: FileDataset) -> tuple[str, ...]:
    """Fill SOP Class/Instance UIDs that are empty in the data set from the file meta.

    PS3.10 requires Media Storage SOP Class/Instance UID to equal the data set's; an export
    that emptied the data set's copies still identifies the object there. A value present
    in the data set is never replaced.

    Returns
    -------
    tuple of str
        The keywords filled in (empty when nothing was missing or the meta lacks them too).
    """
    done = []
    for kw, meta_kw in _FROM_FILE_META:
        value = str(ds.file_meta.get(meta_kw, "") or "").strip(" \x00")
        if value and _missing(ds, (kw,)):
            setattr(ds, kw, value)
            done.append(kw)
    return tuple(done)


def _maybe_sequence(tag: int, vr: str | None, value) -> bool:
    if vr == "SQ" or isinstance(value, list):
        return True
    if vr is not None:  # explicit VR, or already converted
        return False
    from pydicom.datadict import dictionary_VR

    try:
        return dictionary_VR(tag) == "SQ"
    except KeyError:  # implicit-VR private or unknown: read as bytes, never nested
        return False


def check_elements(ds: Dataset, depth: int = 0) -> None:
    """Check declared lengths of every element and parse every sequence, bounding depth.

    pydicom reads a value shorter than its declared length without complaint, and parses
    defined-length sequences lazily; this forces both, so problems surface here (in the
    worker), not later in the parent. Other values stay raw: they are bounded by the file's
    size and converted on use.

    Raises
    ------
    InvalidDicomError
        An element whose declared length runs past the end of the data, sequences nested
        deeper than ``MAX_SEQUENCE_DEPTH``, or a sequence pydicom cannot parse.
    """
    if depth > MAX_SEQUENCE_DEPTH:
        raise InvalidDicomError(f"sequences nested deeper than {MAX_SEQUENCE_DEPTH} levels")
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        length = getattr(raw, "length", None)
        value = getattr(raw, "value", None)
        if (length not in (None, UNDEFINED) and isinstance(value, bytes | bytearray)
                and len(value) < length):
            raise InvalidDicomError(f"element {tag_name(int(tag))} declares {length} bytes "
                                    f"but only {len(value)} remain in the file")
        if not _maybe_sequence(int(tag), getattr(raw, "VR", None), value):
            continue
        try:
            elem = ds[tag]
        except RecursionError as e:
            raise InvalidDicomError("malformed file: sequences nested too deeply") from e
        except (ValueError, TypeError, KeyError, struct.error, NotImplementedError,
                LookupError) as e:
            raise InvalidDicomError(f"element {tag_name(int(tag))} cannot be read ({e})") from e
        if elem.VR == "SQ":
            for item in elem.value:
                check_elements(item, depth + 1)


def classify(ds: Dataset) -> str:
    """``image`` | ``ultrasound`` | ``seg`` | ``rtstruct`` | ``other`` from the SOP Class UID.

    Raises
    ------
    UnsupportedError
        A SOP class HepaTrack neither scores nor keeps (RT dose, SR ...).
    """
    sop = str(ds.get("SOPClassUID", "") or getattr(ds.file_meta, "MediaStorageSOPClassUID", ""))
    if sop in IMAGE_SOP_CLASSES:
        return "image"
    if sop in ULTRASOUND_SOP_CLASSES:
        return "ultrasound"
    if sop in SEG_SOP_CLASSES:
        return "seg"
    if sop == RTSTRUCT_SOP_CLASS:
        return "rtstruct"
    if sop in SECONDARY_CAPTURE_SOP_CLASSES:
        return "other"
    if sop == MEDIA_DIRECTORY_SOP_CLASS:
        raise UnsupportedError("DICOMDIR (media directory) ignored: the files it lists are "
                               "read from the folder itself")
    if not sop:
        raise InvalidDicomError(f"missing required attribute {tag_name('SOPClassUID')}")
    raise UnsupportedError(f"unsupported SOP class: {UID(sop).name} ({sop}); expected CT, MR, "
                           f"enhanced CT/MR, ultrasound, SEG or RTSTRUCT")


def _missing(ds: Dataset, keywords: tuple[str, ...]) -> str | None:
    from pydicom.datadict import tag_for_keyword

    for kw in keywords:
        elem = ds._dict.get(tag_for_keyword(kw))  # raw: presence and length, no conversion
        value = None if elem is None else elem.value
        if value is None or (isinstance(value, bytes | bytearray) and len(value) == 0) or (
                isinstance(value, str) and not value.strip()):
            return kw
    return None


def required_missing(ds: Dataset, kind: str) -> str | None:
    """The first required attribute absent or empty for ``kind`` (named with its tag)."""
    kw = _missing(ds, _SOP_REQUIRED)
    if kw is None and kind != "image":
        kw = _missing(ds, _GROUP_REQUIRED)
    if kw is None and kind == "image":
        kw = _missing(ds, _IMAGE_REQUIRED)
        if kw is None and str(ds.SOPClassUID) not in ENHANCED_SOP_CLASSES:
            kw = _missing(ds, _CLASSIC_GEOMETRY)
        elif kw is None:
            kw = _missing(ds, ("NumberOfFrames", "SharedFunctionalGroupsSequence",
                               "PerFrameFunctionalGroupsSequence"))
    elif kw is None and kind == "ultrasound":  # 2-D frames: no slice geometry
        kw = _missing(ds, _IMAGE_REQUIRED)
    elif kw is None and kind == "seg":
        kw = _missing(ds, ("SegmentSequence", "Rows", "Columns"))
    elif kw is None and kind == "rtstruct":
        kw = _missing(ds, ("StructureSetROISequence", "ROIContourSequence"))
    return None if kw is None else tag_name(kw)


def n_frames(ds: Dataset) -> int:
    value = raw_strings(ds, "NumberOfFrames")
    try:
        return max(int(value[0]), 1) if value else 1
    except (TypeError, ValueError) as e:
        raise InvalidDicomError(f"{tag_name('NumberOfFrames')} is not a number "
                                f"({value!r})") from e


def pixel_bytes(ds: Dataset) -> int:
    """Rows x Columns x Frames x Samples x bytes per sample: the decoded size in bytes."""
    bits = raw_us(ds, "BitsAllocated") or 16
    n = (raw_us(ds, "Rows") or 0) * (raw_us(ds, "Columns") or 0) * n_frames(ds) * (
        raw_us(ds, "SamplesPerPixel") or 1)
    return (n * bits + 7) // 8


@functools.lru_cache(maxsize=64)
def decoder_problem(ts: str) -> str | None:
    """Why pixel data in transfer syntax ``ts`` cannot be decoded here, or None."""
    uid = UID(ts)
    if not uid.is_compressed:
        return None
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(uid)
    except (NotImplementedError, ValueError):
        return f"unsupported compression: {uid.name} ({ts})"
    if not decoder.is_available:
        return f"unsupported compression: {uid.name} ({ts}); no decoder plugin installed"
    return None


def sniff(data: bytes | memoryview) -> str:
    """A short guess at what a non-DICOM file is, for the rejection message."""
    head = bytes(data[:8])
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "a zip archive (nested archives are not opened)"
    if head[:2] == b"\x1f\x8b":
        return "gzip data"
    if head[:2] == b"MZ":
        return "a Windows executable"
    if head[:4] == b"\x7fELF":
        return "an ELF executable"
    if head[:4] == b"%PDF":
        return "a PDF document"
    return ""

