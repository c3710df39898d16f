"""Every file bundled with pydicom (no downloads) ingests or is refused with a specific reason."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from pydicom.data import get_testdata_files

from analytics.errors import HepaTrackError
from analytics.ingest.findings import Rejection
from analytics.ingest.reader import ParsedInstance
from analytics.ingest.series import build_volume, check_series
from tests.ingest.conftest import item

# Bundled files only: get_testdata_files() lists what ships inside the pydicom wheel.
CORPUS = sorted(p for p in map(Path, get_testdata_files()) if p.is_file())

EXPECTED = {
    "CT_small.dcm": ("image", None),
    "MR_small_RLE.dcm": ("image", None),
    "MR_truncated.dcm": ("image", "truncated pixel data"),
    "liver_1frame.dcm": ("seg", None),
    "image_dfl.dcm": ("other", None),
    "README.txt": ("rejected", "not a DICOM file"),
    "zipMR.gz": ("rejected", "looks like gzip data"),
    "meta_missing_tsyntax.dcm": ("rejected", "TransferSyntaxUID (0002,0010)"),
    "rtplan.dcm": ("rejected", "unsupported SOP class: RT Plan Storage"),
    "rtplan_truncated.dcm": ("rejected", "declares 976 bytes but only 711 remain"),
    "dicomdirtests/DICOMDIR": ("rejected", "DICOMDIR (media directory) ignored"),
    # ultrasound is accepted since issue 19: measured per frame, never built into a volume
    "examples_ybr_color.dcm": ("ultrasound", None),
    "examples_jpeg2k.dcm": ("ultrasound", None),
    "examples_palette.dcm": ("ultrasound", None),
    "examples_rgb_color.dcm": ("ultrasound", None),
    "UN_sequence.dcm": ("rejected", "missing required attribute Modality (0008,0060)"),
}
GENERIC = {"malformed file", "malformed file: ", "error", ""}


@pytest.fixture(scope="module")
def results(parser):
    assert len(CORPUS) > 150  # the bundled corpus, not an empty listing
    items = [item(str(p.relative_to(p.parents[1])) if p.parent.name != "test_files" else p.name,
                  p.read_bytes()) for p in CORPUS]
    return list(parser.parse_many(items))


def test_every_file_gets_an_outcome_and_rejections_are_specific(results):
    assert len(results) == len(CORPUS)
    for r in results:
        assert isinstance(r, ParsedInstance | Rejection)
        if isinstance(r, Rejection):
            assert r.reason.strip() not in GENERIC, r
            assert "Traceback" not in r.reason and len(r.reason) > 15, r


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED.items()))
def test_known_files(results, name, expected):
    kind, text = expected
    (r,) = [r for r in results if (r.file if isinstance(r, Rejection) else r.name) == name]
    if kind == "rejected":
        assert isinstance(r, Rejection) and text in r.reason, r
    else:
        assert isinstance(r, ParsedInstance) and r.kind == kind
        assert (r.pixel_problem is None) if text is None else (text in r.pixel_problem)


def test_accepted_images_build_or_fail_with_a_typed_reason(results, parser, limits):
    by_series: dict[str, list[ParsedInstance]] = defaultdict(list)
    for r in results:
        if isinstance(r, ParsedInstance) and r.kind == "image":
            by_series[str(r.series_uid)].append(r)
    built = failed = 0
    for instances in by_series.values():
        check = check_series(instances, limits)
        try:
            vol = build_volume(instances, limits, decoder=parser)
        except HepaTrackError as e:
            assert str(e).strip() and (not check.ok or "pixel" in str(e) or "malformed" in str(e))
            failed += 1
            continue
        assert check.ok and vol.array.shape[0] == check.geometry["n_slices"]
        built += 1
    assert built >= 8 and failed >= 1  # e.g. MR_truncated.dcm is not scored
