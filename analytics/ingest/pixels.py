"""Pixel values of one instance: native data straight from the file bytes, compressed in a worker.

Native (uncompressed) little- and big-endian data is read with ``numpy.frombuffer`` at the
pixel data offset found while parsing the header: no second parse, no copy until the
volume is filled. Compressed syntaxes (RLE, JPEG baseline/extended/lossless, JPEG-LS,
JPEG 2000, HTJ2K) are decoded by pydicom's pixel plugins inside a limited worker process.
"""

from __future__ import annotations

import numpy as np
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from analytics.config import IngestLimits
from analytics.errors import InvalidDicomError, UnsupportedError
from analytics.ingest.header import decoder_problem, parse_dicom
from analytics.ingest.reader import ParsedInstance, SafeParser

_FLOAT_PIXEL_DATA, _DOUBLE_PIXEL_DATA = 0x7FE00008, 0x7FE00009


def is_native(inst: ParsedInstance) -> bool:
    """True when the pixel data can be read without a codec (deflate counts as native)."""
    ts = UID(inst.transfer_syntax_uid or "")
    return ts == DeflatedExplicitVRLittleEndian or not ts.is_compressed


def _dtype(inst: ParsedInstance) -> np.dtype:
    info = inst.info
    order = "<" if info["little_endian"] else ">"
    if inst.pixel is not None and inst.pixel.tag == _FLOAT_PIXEL_DATA:
        return np.dtype(order + "f4")
    if inst.pixel is not None and inst.pixel.tag == _DOUBLE_PIXEL_DATA:
        return np.dtype(order + "f8")
    bits = int(info["bits_allocated"] or 0)
    if bits not in (8, 16, 32):
        raise UnsupportedError(f"{inst.name}: BitsAllocated (0028,0100) = {bits} is not "
                               f"supported for images (expected 8, 16 or 32)")
    kind = "i" if info["pixel_representation"] == 1 else "u"
    return np.dtype(f"{order}{kind}{bits // 8}")


def _mask_high_bits(arr: np.ndarray, inst: ParsedInstance) -> np.ndarray:
    """Honour BitsStored < BitsAllocated: drop bits above HighBit, sign-extend if signed."""
    if arr.dtype.kind == "f":
        return arr
    bits = int(inst.info["bits_allocated"])
    stored = int(inst.info["bits_stored"] or bits)
    if stored >= bits:
        return arr
    shift = bits - stored
    if arr.dtype.kind == "i":
        return (arr << shift) >> shift
    return arr & ((1 << stored) - 1)


def native_frames(inst: ParsedInstance, limits: IngestLimits | None = None) -> np.ndarray:
    """Stored values ``(frames, rows, cols)`` of a native-syntax instance, via frombuffer.

    Raises
    ------
    InvalidDicomError
        Truncated pixel data or a non-grayscale image.
    """
    if inst.pixel_problem:
        raise InvalidDicomError(f"{inst.name}: {inst.pixel_problem}")
    info = inst.info
    if (info["samples"] or 1) != 1:
        raise UnsupportedError(f"{inst.name}: SamplesPerPixel (0028,0002) = "
                               f"{info['samples']}; expected 1 (grayscale)")
    body: bytes | memoryview = inst.data
    if inst.transfer_syntax_uid == DeflatedExplicitVRLittleEndian:
        body = parse_dicom(inst.data, limits or IngestLimits()).body
    frames, rows, cols = info["frames"], int(info["rows"]), int(info["cols"])
    dtype = _dtype(inst)
    arr = np.frombuffer(body, dtype=dtype, count=frames * rows * cols, offset=inst.pixel.offset)
    if not dtype.isnative:
        arr = arr.astype(dtype.newbyteorder("="))
    return _mask_high_bits(arr.reshape(frames, rows, cols), inst)


def stored_frames(inst: ParsedInstance, limits: IngestLimits,
                  decoder: SafeParser | None = None) -> np.ndarray:
    """Stored values ``(frames, rows, cols)`` of any supported transfer syntax.

    Parameters
    ----------
    inst
        A parsed image instance.
    limits
        Decode limits (memory, time, inflation).
    decoder
        The worker pool used for compressed syntaxes; a temporary one is started if None.

    Raises
    ------
    UnsupportedError
        ``unsupported compression: <syntax name> (<UID>)`` when no decoder exists.
    InvalidDicomError
        Truncated or undecodable pixel data.
    """
    if is_native(inst):
        return native_frames(inst, limits)
    problem = decoder_problem(str(inst.transfer_syntax_uid))
    if problem:
        raise UnsupportedError(f"{inst.name}: {problem}")
    if inst.pixel_problem:
        raise InvalidDicomError(f"{inst.name}: {inst.pixel_problem}")
    if decoder is None:
        with SafeParser(limits) as own:
            arr = own.decode(inst)
    else:
        arr = decoder.decode(inst)
    rows, cols = int(inst.info["rows"]), int(inst.info["cols"])
    if arr.ndim != 3 or arr.shape[1:] != (rows, cols):
        raise UnsupportedError(f"{inst.name}: decoded pixel array has shape {arr.shape}; "
                               f"expected (frames, {rows}, {cols}) grayscale")
    return arr
