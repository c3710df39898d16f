"""Encode a dataset read from a file back into a DICOM file, elements left raw copied as read.

pydicom's writer spends most of a de-identified copy's encoding on per-element bookkeeping
for elements nobody changed (they are still the raw bytes the reader kept). For an
explicit VR little endian file written in its own encoding and character set, those
elements are copied here with their tag, VR and length; every other element (converted,
changed, sequences of undefined length, pixel data) goes through pydicom's own
``write_data_element``, and any other case through ``Dataset.save_as``. The bytes are those
of ``save_as(enforce_file_format=True)``, element for element.
"""

from __future__ import annotations

import io
import struct
from copy import deepcopy

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import (
    validate_file_meta,
    write_data_element,
    write_file_meta_info,
)
from pydicom.tag import tag_in_exception
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from analytics.ingest.header import PIXEL_TAGS

ZERO_PREAMBLE = b"\0" * 128
_UNDEFINED = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010
_SHORT = struct.Struct("<HH2sH")  # tag (group, element), VR, 2-byte length
_LONG = struct.Struct("<HH2s2xI")  # tag, VR, reserved, 4-byte length
_LONG_VRS = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)


def encode_file(ds: Dataset) -> bytes:
    """``ds`` as a DICOM file with an all-zero preamble, as ``save_as`` writes it.

    Raises
    ------
    ValueError, TypeError, OSError
        What ``save_as`` raises for a dataset it cannot encode.
    """
    ds.preamble = ZERO_PREAMBLE
    meta = getattr(ds, "file_meta", None)
    tsyntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if not _copies_raw(ds, tsyntax):
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        return buf.getvalue()
    meta = deepcopy(meta)
    # the File Meta fix-ups of dcmwrite(enforce_file_format=True)
    meta_class, ds_class = meta.get("MediaStorageSOPClassUID"), ds.get("SOPClassUID")
    if meta_class is None or (ds_class and ds_class != meta_class):
        meta.MediaStorageSOPClassUID = ds_class
    meta_instance, ds_instance = meta.get("MediaStorageSOPInstanceUID"), ds.get("SOPInstanceUID")
    if meta_instance is None or (ds_instance and ds_instance != meta_instance):
        meta.MediaStorageSOPInstanceUID = ds_instance
    validate_file_meta(meta, enforce_standard=True)
    if "PixelData" in ds:
        ds["PixelData"].is_undefined_length = tsyntax.is_compressed
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = False, True
    fp.write(ZERO_PREAMBLE)
    fp.write(b"DICM")
    write_file_meta_info(fp, meta, enforce_standard=True)
    _write_body(fp, ds)
    return fp.getvalue()


def _copies_raw(ds: Dataset, tsyntax) -> bool:
    """Whether ``ds`` is written in the explicit VR little endian encoding it was read in,
    with its character set unchanged (pydicom then writes raw elements as they are)."""
    if tsyntax is None or tsyntax.is_private or not tsyntax.is_transfer_syntax:
        return False
    if tsyntax.is_implicit_VR or not tsyntax.is_little_endian:
        return False
    if tsyntax == DeflatedExplicitVRLittleEndian:
        return False
    if ds.original_encoding != (False, True):
        return False
    if ds.original_character_set != ds._character_set:
        return False
    if ds.is_implicit_VR not in (None, False) or ds.is_little_endian not in (None, True):
        return False
    return not any(t >> 16 in (0, 2) for t in ds._dict)  # save_as refuses these


def _write_body(fp: DicomBytesIO, ds: Dataset) -> None:
    """The elements of ``ds`` in tag order, as pydicom's ``write_dataset`` writes them."""
    encoding = ds.get("SpecificCharacterSet", "iso8859")
    for tag in sorted(ds.keys()):
        if tag.element == 0 and tag.group > 6:
            continue  # retired group lengths are not written (PS3.5 7.2)
        elem = ds.get_item(tag)
        if elem.is_raw and tag not in PIXEL_TAGS:
            value, vr = elem.value, elem.VR
            if (isinstance(value, bytes) and isinstance(vr, str) and len(vr) == 2
                    and elem.length != _UNDEFINED):
                if vr in _LONG_VRS:
                    fp.write(_LONG.pack(tag >> 16, tag & 0xFFFF, vr.encode(), len(value)))
                    fp.write(value)
                    continue
                if len(value) <= 0xFFFF:
                    fp.write(_SHORT.pack(tag >> 16, tag & 0xFFFF, vr.encode(), len(value)))
                    fp.write(value)
                    continue
        elif tag == _PIXEL_DATA and _native_pixels(elem):
            # native pixel data: its bytes once, not through two intermediate buffers
            fp.write(_LONG.pack(tag >> 16, tag & 0xFFFF, elem.VR.encode(), len(elem.value)))
            fp.write(elem.value)
            continue
        with tag_in_exception(tag):
            write_data_element(fp, elem, encoding)


def _native_pixels(elem) -> bool:
    """Pixel Data of defined, even length held as bytes: written as OB/OW write it."""
    return (elem.VR in ("OB", "OW") and not elem.is_undefined_length
            and not elem.is_buffered and isinstance(elem.value, bytes)
            and len(elem.value) % 2 == 0)
