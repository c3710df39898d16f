"""Pixel decoding: native (LE, BE, deflate, BitsStored) and every compressed syntax we support."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    HTJ2KLossless,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from analytics.errors import InvalidDicomError, UnsupportedError
from analytics.ingest.pixels import native_frames, stored_frames
from analytics.ingest.reader import ParsedInstance, parse_trusted
from analytics.ingest.series import _rescale_into, build_volume
from tests.ingest.conftest import ct_series, ct_slice, hu_phantom, item, to_bytes

# A 16x16 uint16 ramp ((i * 37) % 4000), encoded once with OpenJPH 0.26.3 (imagecodecs
# htj2k_encode, lossless) and with libjpeg-turbo 3 (jpeg8_encode lossless, predictor 1,
# 12 bits): there is no HTJ2K or lossless-JPEG encoder among the project's dependencies.
RAMP = (np.arange(256).reshape(16, 16) * 37 % 4000).astype(np.uint16)
HTJ2K_RAMP = base64.b64decode(
    "/0//UQApQAAAAAAQAAAAEAAAAAAAAAAAAAAAEAAAABAAAAAAAAAAAAABDwEB/1AACAACAAAACv9SAAwAAgABAAUE"
    "BEAB/1wAEyCIkJCQkJCQkJCQkJCQiIiI/2QAFwABT3BlbkpQSCBWZXIgMC4yNi4zLv+QAAoAAAAAAQoAAf+TwAAm"
    "z/IFB3QAAMAAE0AAE0AAEoAc/gIHdACk/AKHdACJAQd0AMAAFRAABVQAAVIEkOD4AIK0AFCTR/TFzwHHNAAOeDRO"
    "dwCjlADAABaMAAFuQAAWgA5sTBnWsMKeD0Phg0Mcg5YAqq1aA2A4Fta7pgdwTQXimoDnmv4AoGuQgBNYAB5AG/Nx"
    "tR1K5uOAFozjlgDAAC24AAXcwAAqwAgin9shARLIBwlIOP98CPLngCQn7FBAsIJ7AJ//eZ//fM9/Xj6sNsmQD573"
    "JM/3JM/3JM97ku3yJIfjST7fkz7vSemOBz5mMBzbgBzAc/ZjAeyyAc53/uf5iMJwo7cA/9k=")
JPEG_LOSSLESS_RAMP = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/wwALDAAQABABAREA/8QAFgABAQEAAAAAAAAAAAAAAAAABgoM/9oACAEBAAEA"
    "AM/+lSpUqVKlSpUqVKlSpaUEqVKlSpUqVKlSpUqVLSglSpUqVKlSpUqVKlSpaUEqVKlSpUqVKlSpUqVLSglSpUqV"
    "KlSpUqVKlSpaUEqVKlSpUqVKlSpUqVLSglSpUqVKlSpUqVLghEqXFXpUqVKlSpUqVKlSpUqWlBKlSpUqVKlSpUqV"
    "KlS0oJUqVKlSpUqVKlSpUqWlBKlSpUqVKlSpUqVKlS0oJUqVKlSpUqVKlSpUqWlBKlSpUqVKlSpUqVKlS0oJUqVK"
    "lSpUuCESpUqVKlxV6VKlSpUqVKlSpUqVKlpQSpUqVKlSpUqVKlSpUv8A/9k=")


def _parse_all(parser, blobs: list[bytes]) -> list[ParsedInstance]:
    out = list(parser.parse_many([item(f"f{n}.dcm", b) for n, b in enumerate(blobs)]))
    assert all(isinstance(o, ParsedInstance) for o in out), out
    return out


@pytest.fixture(scope="module")
def hu() -> np.ndarray:
    return hu_phantom((3, 32, 32))  # OpenJPEG needs 32 px for its default 6 resolutions


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless,
                                    DeflatedExplicitVRLittleEndian],
                         ids=["rle", "jpeg-ls", "jpeg2000", "deflate"])
def test_lossless_syntaxes_give_exact_hu(parser, hu, limits, syntax):
    blobs = []
    for ds in ct_series(hu):
        if syntax == DeflatedExplicitVRLittleEndian:
            ds.file_meta.TransferSyntaxUID = syntax
        else:
            ds.compress(syntax)
        blobs.append(to_bytes(ds))
    parsed = _parse_all(parser, blobs)
    assert {p.transfer_syntax_uid for p in parsed} == {syntax}
    vol = build_volume(parsed, limits, decoder=parser)
    np.testing.assert_array_equal(vol.array, hu.astype(np.float32))


@pytest.mark.parametrize(("syntax", "codestream", "bits"), [
    (HTJ2KLossless, HTJ2K_RAMP, 16), (JPEGLosslessSV1, JPEG_LOSSLESS_RAMP, 12),
], ids=["htj2k", "jpeg-lossless"])
def test_embedded_codestreams_decode_exactly(parser, limits, syntax, codestream, bits):
    ds = ct_slice(RAMP, (0, 0, 0), intercept=-1024.0, ts=syntax)
    ds.BitsStored, ds.HighBit = bits, bits - 1
    ds.PixelData = encapsulate([codestream])
    ds["PixelData"].VR = "OB"
    (inst,) = _parse_all(parser, [to_bytes(ds)])
    vol = build_volume([inst], limits, decoder=parser)
    np.testing.assert_array_equal(vol.array[0], RAMP.astype(np.float32) - 1024)


def test_jpeg_baseline_matches_the_reference_decoder(parser, limits):
    from PIL import Image

    img = (np.add.outer(np.arange(16), np.arange(16)) * 7).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    truth = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
    ds = ct_slice(img.astype(np.uint16), (0, 0, 0), intercept=0.0, ts=JPEGBaseline8Bit)
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    (inst,) = _parse_all(parser, [to_bytes(ds)])
    vol = build_volume([inst], limits, decoder=parser)
    assert np.abs(vol.array[0] - truth).max() <= 1  # IDCT rounding differs by at most 1


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm",
                                  "MR_small_jpeg_ls_lossless.dcm", "MR_small_bigendian.dcm",
                                  "MR_small_implicit.dcm", "MR_small_expb.dcm"])
def test_pydicom_mr_variants_equal_the_uncompressed_original(parser, limits, name):
    ref, other = _parse_all(parser, [Path(get_testdata_file("MR_small.dcm")).read_bytes(),
                                     Path(get_testdata_file(name)).read_bytes()])
    a = build_volume([ref], limits, decoder=parser).array
    b = build_volume([other], limits, decoder=parser).array
    np.testing.assert_array_equal(a, b)
    truth = dcmread(get_testdata_file("MR_small.dcm")).pixel_array
    np.testing.assert_array_equal(a[0], truth.astype(np.float32))


@pytest.mark.parametrize("name", ["SC_rgb_jpeg_gdcm.dcm", "693_J2KI.dcm",
                                  "JPEGLSNearLossless_16.dcm", "image_dfl.dcm"])
def test_worker_decoding_equals_pydicom_in_process(parser, name):
    data = Path(get_testdata_file(name)).read_bytes()
    inst = parse_trusted(name, data, kind="other")
    arr = parser.decode(inst)
    truth = dcmread(get_testdata_file(name)).pixel_array
    np.testing.assert_array_equal(arr.reshape(truth.shape), truth)


@pytest.mark.parametrize(("signed", "raw", "expected"), [
    (False, [0x1FFF, 0xF123], [0x0FFF, 0x0123]),  # bits above BitsStored are dropped
    (True, [0x0FFF, 0x0800, 0x07FF, 0xF001], [-1, -2048, 2047, 1]),  # 12-bit two's complement
])
def test_bits_stored_below_bits_allocated(signed, raw, expected):
    arr = np.array(raw + [0] * (16 - len(raw)), dtype=np.uint16).reshape(4, 4)
    ds = ct_slice(arr.view(np.int16) if signed else arr, (0, 0, 0))
    ds.BitsStored, ds.HighBit = 12, 11
    inst = parse_trusted("b.dcm", to_bytes(ds))
    out = native_frames(inst).ravel()[: len(raw)]
    assert out.tolist() == expected


def test_no_decoder_names_the_syntax(limits):
    ds = ct_slice(np.zeros((4, 4), np.uint16), (0, 0, 0), ts="1.2.840.10008.1.2.4.100")
    ds.PixelData = encapsulate([b"\0" * 16])
    inst = parse_trusted("mpeg.dcm", to_bytes(ds))
    with pytest.raises(UnsupportedError, match=r"^mpeg\.dcm: unsupported compression: MPEG2 "
                                               r"Main Profile / Main Level "
                                               r"\(1\.2\.840\.10008\.1\.2\.4\.100\)$"):
        stored_frames(inst, limits)


def test_corrupt_codestream_is_an_error_and_the_decoder_survives(parser, limits):
    ds = ct_slice(RAMP, (0, 0, 0), ts=JPEG2000Lossless)
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x13" * 60])
    ds["PixelData"].VR = "OB"
    (inst,) = _parse_all(parser, [to_bytes(ds)])
    with pytest.raises(InvalidDicomError, match=r"^f0\.dcm: malformed file: "):
        build_volume([inst], limits, decoder=parser)
    ok = ct_slice(RAMP, (0, 0, 0))
    ok.compress(RLELossless)
    (good,) = _parse_all(parser, [to_bytes(ok)])
    assert build_volume([good], limits, decoder=parser).array.shape == (1, 16, 16)


@pytest.mark.parametrize("dtype", ["int16", "uint16", "int32", "uint8"])
@pytest.mark.parametrize(("slope", "intercept"), [(1.0, -1024.0), (0.5, -1024.0),
                                                  (2.3, 0.1), (1.0, 0.0), (0.000123, 7.77)])
def test_rescale_in_one_pass_gives_the_values_of_cast_multiply_add(dtype, slope, intercept):
    info = np.iinfo(dtype)
    stored = np.random.default_rng(0).integers(info.min, info.max, (32, 48), endpoint=True
                                               ).astype(dtype)
    expected = np.empty(stored.shape, np.float32)
    expected[...] = stored
    if slope != 1.0:
        expected *= np.float32(slope)
    if intercept != 0.0:
        expected += np.float32(intercept)
    out = np.empty(stored.shape, np.float32)
    _rescale_into(out, stored, SimpleNamespace(slope=slope, intercept=intercept))
    assert np.array_equal(out, expected)
    assert out[0, 0] == np.float32(np.float32(stored[0, 0]) * np.float32(slope)
                                   + np.float32(intercept))
