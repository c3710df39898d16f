"""De-identification in the parser's worker, byte for byte as in process (cleaning,
refusals, repairs), and on every bundled pydicom file: what a series is scored by survives."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from pydicom import dcmread

from analytics.errors import InvalidDicomError
from analytics.ingest.deid import Deidentifier
from tests.ingest.deid_samples import SECRET, equivalence_files
from tests.ingest.dicom_samples import Study, ct_series, encode

#: what a series is built and scored by, compared before and after de-identification
SCORED_BY = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
             "SliceThickness", "RescaleSlope", "RescaleIntercept", "Rows", "Columns",
             "BitsAllocated", "PixelRepresentation", "Modality", "SOPClassUID", "ImageType",
             "NumberOfFrames")


def test_every_bundled_pydicom_file_keeps_what_it_is_scored_by(parser):
    from pydicom.data import get_testdata_files

    from analytics.errors import HepaTrackError
    from analytics.ingest.reader import ParsedInstance
    from tests.ingest.conftest import item

    files = sorted(p for p in map(Path, get_testdata_files()) if p.is_file())
    parsed = [r for r in parser.parse_many([item(p.name, p.read_bytes()) for p in files])
              if isinstance(r, ParsedInstance)]
    assert len(parsed) > 60
    d = Deidentifier(SECRET)
    checked = 0
    for p in parsed:
        before = dcmread(io.BytesIO(p.data), stop_before_pixels=True)
        try:
            out, _, _ = d.deidentify_bytes(p.data, name=p.name)
        except HepaTrackError as e:  # only a typed refusal, and only for no Patient ID
            assert "Patient ID (0010,0020) is missing" in str(e), (p.name, e)
            continue
        after = dcmread(io.BytesIO(out), stop_before_pixels=True)
        for keyword in SCORED_BY:
            if keyword in before:
                assert keyword in after and after[keyword].value == before[keyword].value, (
                    p.name, keyword)
        checked += 1
    assert checked > 50


def test_the_worker_de_identifies_byte_for_byte_as_the_in_process_path(parser):
    from analytics.ingest.reader import zero_preamble
    from analytics.ingest.repair import Repair, apply_repair

    d = Deidentifier(SECRET)
    compared = []
    for name, data in equivalence_files():
        data, _ = zero_preamble(data)  # as the reader hands the bytes on
        # the real CT series has no Patient ID: ingest assigns one (--patient) first
        repair = None if dcmread(io.BytesIO(data), stop_before_pixels=True).get(
            "PatientID") else {"PatientID": "ASSIGNED"}
        before = (apply_repair(data, Repair(values=repair), parser.limits)
                  if repair is not None else data)
        expected, _, _ = d.deidentify_bytes(before, name=name)
        assert parser.deidentify(data, name=name, secret=SECRET, deidentify=True,
                                 repair=repair) == expected, name
        if repair is not None:  # as the pipeline does it: repaired on re-read, then cleaned
            assert parser.deidentify(parser.deidentify(data, name=name, secret=b"",
                                                       deidentify=False, repair=repair),
                                     name=name, secret=SECRET, deidentify=True) == expected
        compared.append(name)
    assert len(compared) == 13 and sum(n.startswith("CT.") for n in compared) == 4


def test_a_refusal_in_the_worker_reads_as_in_process(parser):
    data = encode(ct_series(Study(patient_id=""), 1)[0])
    with pytest.raises(InvalidDicomError) as in_process:
        Deidentifier(SECRET).deidentify_bytes(data, name="anon.dcm")
    with pytest.raises(InvalidDicomError, match=f"^{re.escape(str(in_process.value))}$"):
        parser.deidentify(data, name="anon.dcm", secret=SECRET, deidentify=True)


def test_the_worker_repairs_identifiers_byte_for_byte_as_the_in_process_path(parser):
    from analytics.ingest.repair import Repair, apply_repair

    repair = Repair(values={"SeriesInstanceUID": "2.25.1234", "PatientID": "ASSIGNED"})
    for name, data in equivalence_files()[:4]:
        expected = apply_repair(data, repair, parser.limits)
        assert parser.deidentify(data, name=name, secret=b"", deidentify=False,
                                 repair=dict(repair.values)) == expected, name
        empty = apply_repair(data, Repair(), parser.limits)  # re-encoded: SOP UIDs recovered
        assert parser.deidentify(data, name=name, secret=b"", deidentify=False,
                                 repair={}) == empty, name
    assert parser.deidentify(b"as is", name="x", secret=b"", deidentify=False) == b"as is"
