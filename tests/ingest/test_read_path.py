"""The read path (files -> parse workers -> HU volume) gives pydicom's values bit for bit on
real scans, also while the parser reads the next file ahead of a busy worker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom import dcmread

from analytics.config import IngestLimits
from analytics.ingest.reader import ParsedInstance, SafeParser
from analytics.ingest.series import build_volume
from analytics.ingest.sources import SourceItem
from tests.realdata import ct_dicom_files, nifti_ct_as_dicom


def _reference_hu(files: list[Path]) -> np.ndarray:
    """pydicom's stored values, slices ordered along the slice normal, then cast to float32,
    multiplied by the slope and offset by the intercept (the float32 steps a CT's HU take)."""
    slices = [dcmread(f) for f in files]
    row, col = (np.array(slices[0].ImageOrientationPatient[:3], float),
                np.array(slices[0].ImageOrientationPatient[3:], float))
    normal = np.cross(row, col)
    slices.sort(key=lambda ds: float(np.array(ds.ImagePositionPatient, float) @ normal))
    out = []
    for ds in slices:
        hu = ds.pixel_array.astype(np.float32)
        slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
        if slope != 1.0:
            hu *= np.float32(slope)
        if intercept != 0.0:
            hu += np.float32(intercept)
        out.append(hu)
    return np.stack(out)


def _volume(files: list[Path], parser: SafeParser):
    items = [SourceItem.from_bytes(f.name, f.read_bytes()) for f in files]
    parsed = [r for r in parser.parse_many(items) if isinstance(r, ParsedInstance)]
    assert len(parsed) == len(files)
    return build_volume(parsed, parser.limits, parser)


def test_the_real_ct_series_reads_as_pydicoms_hu_bit_for_bit_with_one_worker_reading_ahead():
    files = ct_dicom_files()  # 20 real JPEG 2000 slices, decoded in the worker
    with SafeParser(IngestLimits(), workers=1) as parser:  # busy, so the next file is read ahead
        volume = _volume(files, parser)
        again = _volume(list(reversed(files)), parser)
    expected = _reference_hu(files)
    assert volume.array.dtype == np.float32 and volume.array.shape == expected.shape
    assert np.array_equal(volume.array.view(np.uint32), expected.view(np.uint32))
    assert np.array_equal(again.array.view(np.uint32), expected.view(np.uint32))
    assert float(expected.min()) < -900 and float(expected.max()) > 1000  # air and bone


def test_a_native_real_ct_reads_as_pydicoms_hu_bit_for_bit(parser, tmp_path):
    files = []  # the real CT of tests/data as uncompressed slices, read with frombuffer
    for name, data in nifti_ct_as_dicom():
        path = tmp_path / name.replace("/", "_")
        path.write_bytes(data)
        files.append(path)
    volume = _volume(files, parser)
    expected = _reference_hu(files)
    assert volume.array.shape == expected.shape and len(files) > 10
    assert np.array_equal(volume.array.view(np.uint32), expected.view(np.uint32))
    assert float(expected.min()) <= -1000 and float(expected.max()) > 500
