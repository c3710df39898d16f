"""Ultrasound ingest: real files (JPEG baseline, JPEG 2000, RLE, palette, multi-frame) are
accepted; pixels outside the 2-D ultrasound region never reach the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import JPEG2000Lossless, RLELossless
from sqlalchemy import select

from analytics.ingest.pipeline import ingest_sources
from analytics.ingest.reader import ParsedInstance
from analytics.ingest.ultrasound import region_mask, tissue_regions
from analytics.store.schema import Instance, Series
from analytics.synthetic.ultrasound import (
    BURNED_NAME,
    default_truth,
    render_frame,
    ultrasound_dataset,
)
from tests.ingest.conftest import to_bytes
from ui import ingest_view

DATA = Path(__file__).parents[1] / "data" / "pydicom-us"


@pytest.fixture
def run(settings, store, parser):
    def go(sources, **kw):
        return ingest_sources([str(s) for s in sources], settings, store, parser=parser, **kw)
    return go


def _stored(store, settings):
    with store.session() as s:
        rows = s.execute(select(Instance.path, Series.modality, Series.geometry)
                         .join(Series, Instance.series_id == Series.id)).all()
    return [(dcmread(settings.home / r.path), r.modality, r.geometry) for r in rows]


@pytest.mark.parametrize("name", ["US1_J2KR.dcm", "US1_J2KI.dcm", "OBXXXX1A_rle.dcm",
                                  "OBXXXX1A_rle_2frame.dcm"])
def test_real_ultrasound_files_parse_as_ultrasound_with_intact_pixel_data(parse_bytes, name):
    inst = parse_bytes((DATA / name).read_bytes(), name)
    assert isinstance(inst, ParsedInstance), inst
    assert inst.kind == "ultrasound" and inst.modality == "US" and inst.pixel_problem is None


def test_lossless_jpeg_2000_ultrasound_decodes_to_the_uncompressed_reference(parser,
                                                                            parse_bytes):
    inst = parse_bytes((DATA / "US1_J2KR.dcm").read_bytes(), "US1_J2KR.dcm")
    arr = parser.decode(inst)  # in a limited worker, as every decode of user bytes
    assert arr.shape == (1, 480, 640, 3)
    # reference values of US1_UNCR.dcm (tests/data/pydicom-data/README.md)
    assert int(arr.astype(np.int64).sum()) == 31821736
    assert arr[0, 240, 320:325].tolist() == [[12, 12, 12], [13, 13, 13], [20, 20, 20],
                                             [23, 23, 23], [23, 23, 23]]


def test_ultrasound_without_regions_is_quarantined_not_stored(run, store, settings):
    report = run([DATA / "US1_J2KR.dcm"])
    assert report.series_ingested == 0 and report.instances == 0
    (q,) = report.quarantined
    assert q.file == "US1_J2KR.dcm"
    assert "Sequence of Ultrasound Regions (0018,6011)" in q.reason and "not stored" in q.reason
    assert _stored(store, settings) == []


def test_real_rle_ultrasound_is_stored_with_the_text_band_blanked(run, store, settings):
    original = dcmread(DATA / "OBXXXX1A_rle.dcm")
    kept = region_mask((600, 800), tissue_regions(original))
    assert (original.pixel_array[~kept] > 0).sum() > 1000  # text and scale bars outside
    report = run([DATA / "OBXXXX1A_rle.dcm"])
    assert report.series_ingested == 1 and not report.quarantined, report.as_dict()
    (entry,) = report.series
    assert entry["modality"] == "US" and entry["slices"] == 1
    assert entry["pixels_blanked_outside_region"] is True and entry["calibrated"] is True
    assert [m["name"] for m in entry["measurements"]["will"]] == [
        "us_hepatorenal_index", "us_liver_texture", "us_liver_depth_slope"]
    ((ds, modality, geometry),) = _stored(store, settings)
    assert modality == "US" and ds.BurnedInAnnotation == "NO"
    assert ds.file_meta.TransferSyntaxUID == RLELossless
    assert ds.PhotometricInterpretation == "PALETTE COLOR"
    stored = ds.pixel_array
    assert (stored[~kept] == 0).all()
    assert np.array_equal(stored[kept], original.pixel_array[kept])  # the image untouched
    codes = [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]
    assert "113101" in codes  # Clean Pixel Data Option
    assert "Clean Pixel Data: blanked outside ultrasound regions" in ds.DeidentificationMethod
    (region,) = geometry["ultrasound"]["regions"]
    assert region["delta_x_mm"] == pytest.approx(0.2622878766196998)
    assert (region["x0"], region["y0"], region["x1"], region["y1"]) == (120, 60, 799, 518)


def test_jpeg_baseline_multiframe_ultrasound_is_stored_as_rgb_frames(run, store, settings):
    path = get_testdata_file("examples_ybr_color.dcm")  # US multi-frame, YBR_FULL_422 JPEG
    report = run([path])
    assert report.series_ingested == 1, report.as_dict()
    assert report.series[0]["slices"] == 30
    ((ds, _, _),) = _stored(store, settings)
    assert ds.PhotometricInterpretation == "RGB" and int(ds.NumberOfFrames) == 30
    kept = region_mask((240, 320), tissue_regions(ds))
    assert (ds.pixel_array[:, ~kept] == 0).all()


@pytest.mark.parametrize("syntax", [None, RLELossless, JPEG2000Lossless])
def test_a_name_burned_into_the_pixels_outside_the_region_is_never_stored(
        run, store, settings, tmp_path, syntax):
    truth = default_truth()
    frames = [render_frame(truth, np.random.default_rng(k)) for k in range(2)]
    kw = {"transfer_syntax": syntax} if syntax else {}
    ds = ultrasound_dataset(frames, truth, **kw)
    x0, y0, x1, y1 = truth.region_px
    outside = np.ones((truth.rows, truth.cols), dtype=bool)
    outside[y0:y1 + 1, x0:x1 + 1] = False
    assert (np.stack(frames)[:, outside] == 255).sum() > 50  # "DOE^JANE" and the ID drawn
    path = tmp_path / "us.dcm"
    path.write_bytes(to_bytes(ds))
    report = run([path])
    assert report.series_ingested == 1 and report.series[0]["slices"] == 2, report.as_dict()
    ((stored, _, _),) = _stored(store, settings)
    pixels = stored.pixel_array
    assert pixels.shape == (2, truth.rows, truth.cols)
    assert (pixels[:, outside] == 0).all()  # the burned-in name is gone
    assert np.array_equal(pixels[:, ~outside], np.stack(frames)[:, ~outside])
    raw = (settings.home / "dicom").rglob("*")
    for f in (p for p in raw if p.is_file()):
        assert BURNED_NAME.encode() not in f.read_bytes()  # nor in the header
    assert str(stored.PatientName) != BURNED_NAME


def test_ultrasound_is_blanked_even_when_de_identification_is_off(run, store, settings,
                                                                  tmp_path):
    truth = default_truth()
    ds = ultrasound_dataset([render_frame(truth, np.random.default_rng(3))], truth)
    path = tmp_path / "us.dcm"
    path.write_bytes(to_bytes(ds))
    report = run([path], deidentify=False)
    assert report.series_ingested == 1
    ((stored, _, _),) = _stored(store, settings)
    band = stored.pixel_array[:truth.region_px[1]]
    assert stored.BurnedInAnnotation == "NO" and (band == 0).all()


def test_synthetic_ultrasound_without_regions_is_quarantined(parse_bytes, run, tmp_path):
    truth = default_truth()
    ds = ultrasound_dataset([render_frame(truth, np.random.default_rng(1))], truth,
                            regions=False)
    path = tmp_path / "us.dcm"
    path.write_bytes(to_bytes(ds))
    report = run([path])
    assert report.series_ingested == 0 and len(report.quarantined) == 1


def test_reingesting_an_ultrasound_series_reports_duplicates(run, tmp_path):
    truth = default_truth()
    ds = ultrasound_dataset([render_frame(truth, np.random.default_rng(2))], truth)
    path = tmp_path / "us.dcm"
    path.write_bytes(to_bytes(ds))
    assert run([path]).instances == 1
    again = run([path])
    assert again.instances == 0 and again.duplicates == 1
    assert again.series[0]["already_stored"] is True


def test_the_ingest_table_says_per_series_what_will_and_cannot_be_measured(run, tmp_path):
    truth = default_truth()
    calibrated = ultrasound_dataset([render_frame(truth, np.random.default_rng(5))], truth,
                                    patient_id="US-A")
    uncalibrated = ultrasound_dataset([render_frame(truth, np.random.default_rng(6))], truth,
                                      patient_id="US-B")
    uncalibrated.SequenceOfUltrasoundRegions[0].PhysicalUnitsXDirection = 0  # no units
    for name, ds in (("a.dcm", calibrated), ("b.dcm", uncalibrated)):
        (tmp_path / name).write_bytes(to_bytes(ds))
    report = run([tmp_path / "a.dcm", tmp_path / "b.dcm"])
    assert report.series_ingested == 2
    table = ingest_view.result_table({"report": report})
    texts = sorted(table["measurements"].tolist())
    assert texts[0].startswith("cannot measure hepatorenal index: the image region has no "
                               "physical delta X/Y in cm")
    assert texts[1].startswith("will measure hepatorenal index, liver echo texture (first-order "
                               "and GLCM), depth-intensity slope (uncalibrated) (on a frame a "
                               "sonographer chooses")
    assert all("pixels outside the ultrasound image region blanked" in t for t in texts)
    planned = {s["patient"]: s["measurements"] for s in report.series}
    assert sorted(len(p["cannot"]) for p in planned.values()) == [0, 3]


def test_a_second_ultrasound_file_of_a_stored_series_adds_its_frames(run, store, settings,
                                                                     tmp_path):
    truth = default_truth()
    first = ultrasound_dataset([render_frame(truth, np.random.default_rng(7))], truth,
                               instance_number=1)
    second = ultrasound_dataset([render_frame(truth, np.random.default_rng(8))] * 3, truth,
                                study_uid=first.StudyInstanceUID,
                                series_uid=first.SeriesInstanceUID, instance_number=2)
    (tmp_path / "1.dcm").write_bytes(to_bytes(first))
    (tmp_path / "2.dcm").write_bytes(to_bytes(second))
    assert run([tmp_path / "1.dcm"]).series[0]["slices"] == 1
    report = run([tmp_path / "2.dcm"])
    (entry,) = report.series
    assert (entry["status"], entry["slices"], entry["modality"]) == ("complete", 4, "US")
    stored = _stored(store, settings)
    assert sorted(int(ds.get("NumberOfFrames") or 1) for ds, _, _ in stored) == [1, 3]
    assert stored[0][2]["ultrasound"]["frames_per_instance"] == [1, 3]
