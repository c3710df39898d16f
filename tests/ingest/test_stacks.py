"""Enhanced multi-frame series holding several stacks at the same positions.

Real exports from dcm_qa_enh (``tests/data/dcm_qa_enh``): a Philips object with 32 magnitude
and 32 B0 field-map frames, and a Siemens XA10 EPI series of four time points in four
files. Their truth (frame kinds, positions, rescale, pixels) is read here with pydicom
directly, not through HepaTrack. A synthetic two-echo object checks voxels exactly.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from sqlalchemy import select

from analytics.cli import main
from analytics.errors import InvalidSeriesError, LimitExceededError
from analytics.ingest.loader import load_series
from analytics.ingest.pipeline import ingest_sources
from analytics.ingest.reader import ParsedInstance
from analytics.ingest.series import build_volume, check_series
from analytics.ingest.stacks import FrameKind, Stack, biomarker_stack
from analytics.store import open_store
from analytics.store.schema import Instance, Series
from tests.ingest.conftest import _meta, ct_series, item, to_bytes

DATA = Path(__file__).parents[1] / "data" / "dcm_qa_enh"
PHILIPS = DATA / "philips_b0_magnitude_fieldmap.dcm"
SIEMENS = sorted(DATA.glob("siemens_xa10_fmri_t*.dcm"))
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"


# --------------------------------------------------------------------------- truth
def _file_stacks(path: Path) -> dict[str, dict]:
    """Per frame kind of a real file: its frame indices in slice order, slice spacing and
    rescaled pixels, read with pydicom only."""
    ds = pydicom.dcmread(path)
    shared = ds.SharedFunctionalGroupsSequence[0]
    pixels = ds.pixel_array.reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns)
    out: dict[str, dict] = {}
    for i, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
        ftype = (fg.get("MRImageFrameTypeSequence") or shared.MRImageFrameTypeSequence)[0]
        content = fg.FrameContentSequence[0]
        key = f"{ftype.FrameType[3]} t{content.get('TemporalPositionIndex')}"
        iop = np.array((fg.get("PlaneOrientationSequence")
                        or shared.PlaneOrientationSequence)[0].ImageOrientationPatient, float)
        ipp = np.array(fg.PlanePositionSequence[0].ImagePositionPatient, float)
        pvt = (fg.get("PixelValueTransformationSequence")
               or shared.PixelValueTransformationSequence)[0]
        d = float(ipp @ np.cross(iop[:3], iop[3:]))
        value = pixels[i] * float(pvt.RescaleSlope) + float(pvt.RescaleIntercept)
        out.setdefault(key, {"frames": []})["frames"].append((d, i, value))
    for s in out.values():
        s["frames"].sort()
        positions = np.array([d for d, _, _ in s["frames"]])
        s["spacing_mm"] = float(np.median(np.diff(positions))) if len(positions) > 1 else None
        s["array"] = np.stack([v for _, _, v in s["frames"]])
    return out


@pytest.fixture
def store(settings):
    s = open_store(settings)
    yield s
    s.dispose()


def _parse(parser, blobs: dict[str, bytes]) -> list[ParsedInstance]:
    out = list(parser.parse_many([item(name, data) for name, data in blobs.items()]))
    assert all(isinstance(o, ParsedInstance) for o in out), out
    return out


# --------------------------------------------------------------------------- real data
def test_philips_magnitude_and_field_map_ingest_as_two_stacks_of_32_frames(tmp_path, settings,
                                                                         store, parser):
    truth = _file_stacks(PHILIPS)
    assert sorted((k, len(s["frames"])) for k, s in truth.items()) == [
        ("FIELD_MAP t1", 32), ("M t1", 32)]
    folder = tmp_path / "src"
    folder.mkdir()
    shutil.copy(PHILIPS, folder / "IM_0027")
    report = ingest_sources([str(folder)], settings, store, parser=parser)
    assert not report.rejected, report.rejected
    (entry,) = report.series
    assert (entry["status"], entry["slices"], entry["stack"]) == (
        "complete", 32, "MAGNITUDE TE 1.52 ms")
    stacks = {s["label"]: s for s in entry["stacks"]}
    assert {k: (s["frames"], s["biomarkers"]) for k, s in stacks.items()} == {
        "MAGNITUDE TE 1.52 ms": (32, True), "FIELD_MAP": (32, False)}
    for label, key in (("MAGNITUDE TE 1.52 ms", "M t1"), ("FIELD_MAP", "FIELD_MAP t1")):
        assert stacks[label]["slice_spacing_mm"] == pytest.approx(truth[key]["spacing_mm"],
                                                                  abs=1e-3)
    with store.session() as s:
        row = s.scalar(select(Series))
        n_frames = s.scalars(select(Instance.n_frames)).all()
    assert row.n_slices == 32 and row.spacing_mm[2] == pytest.approx(4.0, abs=1e-3)
    assert row.geometry["stack"]["rule"].startswith("anatomical image before derived maps")
    assert n_frames == [64]  # one stored file, all its frames kept

    magnitude, _ = load_series(store, settings, entry["series_uid"])
    np.testing.assert_allclose(magnitude.array, truth["M t1"]["array"], rtol=1e-6, atol=1e-3)
    assert magnitude.spacing_mm[0] == pytest.approx(truth["M t1"]["spacing_mm"], abs=1e-3)
    assert magnitude.meta["stack"]["label"] == "MAGNITUDE TE 1.52 ms"
    field, _ = load_series(store, settings, entry["series_uid"],
                           stack=stacks["FIELD_MAP"]["id"])
    np.testing.assert_allclose(field.array, truth["FIELD_MAP t1"]["array"], rtol=1e-6,
                               atol=1e-3)
    assert field.array.min() < -400 < 400 < field.array.max()  # Hz, not magnitude values
    again = ingest_sources([str(folder)], settings, store, parser=parser)
    assert (again.duplicates, again.series[0]["already_stored"], again.series[0]["stack"]) == (
        1, True, "MAGNITUDE TE 1.52 ms")


def test_time_points_delivered_in_two_batches_end_as_one_series_scored_on_the_first(
        tmp_path, settings, store, parser):
    late, early = tmp_path / "late", tmp_path / "early"
    for folder, files in ((late, SIEMENS[2:]), (early, SIEMENS[:2])):
        folder.mkdir()
        for p in files:
            shutil.copy(p, folder / p.name)
    first = ingest_sources([str(late)], settings, store, parser=parser)
    assert first.series[0]["stack"] == "MAGNITUDE TE 30 ms time point 3"
    second = ingest_sources([str(early)], settings, store, parser=parser)
    (entry,) = second.series
    assert (entry["status"], entry["slices"], entry["stack"]) == (
        "complete", 6, "MAGNITUDE TE 30 ms time point 1")
    assert [s["frames"] for s in entry["stacks"]] == [6, 6, 6, 6]
    volume, _ = load_series(store, settings, entry["series_uid"])
    expected = pydicom.dcmread(SIEMENS[0]).pixel_array.astype(np.float32)
    np.testing.assert_array_equal(volume.array, expected)


def test_siemens_time_points_in_four_files_are_four_stacks_and_the_first_is_scored(
        tmp_path, home, capsys):
    truth = {k: v for k, v in (_file_stacks(p).popitem() for p in SIEMENS)}
    assert sorted(truth) == ["NONE t1", "NONE t2", "NONE t3", "NONE t4"]
    folder = tmp_path / "src"
    folder.mkdir()
    for p in SIEMENS:
        shutil.copy(p, folder / p.name)
    code = main(["--home", str(home), "ingest", str(folder), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and not report["rejected"], report["rejected"]
    (entry,) = report["series"]
    assert (entry["slices"], entry["stack"]) == (6, "MAGNITUDE TE 30 ms time point 1")
    assert [(s["label"], s["frames"], s["biomarkers"]) for s in entry["stacks"]] == [
        (f"MAGNITUDE TE 30 ms time point {t}", 6, t == 1) for t in (1, 2, 3, 4)]
    for s, t in zip(entry["stacks"], (1, 2, 3, 4), strict=True):
        assert s["slice_spacing_mm"] == pytest.approx(truth[f"NONE t{t}"]["spacing_mm"],
                                                      abs=1e-3)
    assert main(["--home", str(home), "ingest", str(folder)]) == 0
    assert ("split into 4 stacks: MAGNITUDE TE 30 ms time point 1 (6 frames)"
            in capsys.readouterr().out)


def test_the_unsplit_philips_frames_would_share_positions(parser):
    """The file really holds two frames at each position (why it used to be refused)."""
    truth = _file_stacks(PHILIPS)
    magnitude = [d for d, _, _ in truth["M t1"]["frames"]]
    field = [d for d, _, _ in truth["FIELD_MAP t1"]["frames"]]
    np.testing.assert_allclose(magnitude, field, atol=1e-3)
    (inst,) = _parse(parser, {"IM_0027": PHILIPS.read_bytes()})
    check = check_series([inst])
    assert check.ok, check.reason
    assert check.geometry["notes"][-1] == (
        "enhanced MR split into 2 stacks: MAGNITUDE TE 1.52 ms (32 frames), FIELD_MAP "
        "(32 frames); biomarkers use MAGNITUDE TE 1.52 ms")


# --------------------------------------------------------------------------- synthetic
#: DimensionIndexPointer and label of each dimension layout ``enhanced_mr`` can write
LAYOUTS = {
    "echo": [(0x00209057, "In-Stack Position Number"), (0x00189082, "Echo")],
    "position": [(0x00209057, "In-Stack Position Number")],
    "stack": [(0x00209056, "Stack ID"), (0x00209057, "In-Stack Position Number")],
    "counter": [(0x00209156, "Frame Acquisition Number"),
                (0x00209057, "In-Stack Position Number")],
}


def enhanced_mr(volumes: list[tuple[float, np.ndarray]], *, spacing=(3.0, 1.5, 1.5),
                origin=(-20.0, -30.0, 40.0), dimensions: str = "echo",
                offsets_mm: list[float] | None = None) -> Dataset:
    """An Enhanced MR object holding one magnitude volume per ``(echo time ms, volume)``.

    Volume ``e`` lies ``offsets_mm[e]`` along z from ``origin`` (all at the same positions
    by default); frames are stored slice by slice with the volumes interleaved (slice 1 of
    volume 1, slice 1 of volume 2, ...). ``dimensions`` picks the DimensionIndexValues
    layout (:data:`LAYOUTS`): in-stack position and echo number, in-stack position only,
    stack number and in-stack position, or a frame counter and in-stack position.
    """
    offsets_mm = offsets_mm or [0.0] * len(volumes)
    n, rows, cols = volumes[0][1].shape
    ds = Dataset()
    ds.file_meta = _meta(ENHANCED_MR, generate_uid(), ExplicitVRLittleEndian)
    ds.SOPClassUID = ENHANCED_MR
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.Modality, ds.PatientID, ds.InstanceNumber = "MR", "PAT-MR-1", 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "T1", "NONE"]
    ds.Rows, ds.Columns = rows, cols
    ds.NumberOfFrames = n * len(volumes)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    dims = []
    for pointer, label in LAYOUTS[dimensions]:
        d = Dataset()
        d.DimensionIndexPointer = pointer
        d.FunctionalGroupPointer = 0x00189114 if pointer == 0x00189082 else 0x00209111
        d.DimensionDescriptionLabel = label
        dims.append(d)
    ds.DimensionIndexSequence = DicomSequence(dims)
    shared = Dataset()
    measures, orientation = Dataset(), Dataset()
    measures.PixelSpacing = [f"{spacing[1]:g}", f"{spacing[2]:g}"]
    measures.SliceThickness = f"{spacing[0]:g}"
    orientation.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    shared.PixelMeasuresSequence = DicomSequence([measures])
    shared.PlaneOrientationSequence = DicomSequence([orientation])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    frames, stored = [], []
    for k in range(n):
        for e, (te, vol) in enumerate(volumes):
            fg = Dataset()
            pos, echo, ftype, content = Dataset(), Dataset(), Dataset(), Dataset()
            pos.ImagePositionPatient = [f"{origin[0]:g}", f"{origin[1]:g}",
                                        f"{origin[2] + offsets_mm[e] + spacing[0] * k:g}"]
            echo.EffectiveEchoTime = te
            ftype.FrameType = ["ORIGINAL", "PRIMARY", "T1", "NONE"]
            ftype.ComplexImageComponent = "MAGNITUDE"
            content.InStackPositionNumber = k + 1
            content.DimensionIndexValues = {
                "echo": [k + 1, e + 1], "position": [k + 1], "stack": [e + 1, k + 1],
                "counter": [len(frames) + 1, k + 1]}[dimensions]
            fg.PlanePositionSequence = DicomSequence([pos])
            fg.MREchoSequence = DicomSequence([echo])
            fg.MRImageFrameTypeSequence = DicomSequence([ftype])
            fg.FrameContentSequence = DicomSequence([content])
            frames.append(fg)
            stored.append(vol[k].astype(np.uint16))
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(frames)
    ds.PixelData = np.stack(stored).tobytes()
    return ds


@pytest.fixture(scope="module")
def echoes() -> list[tuple[float, np.ndarray]]:
    rng = np.random.default_rng(7)
    return [(2.3, rng.integers(0, 4000, (5, 12, 10))),
            (4.6, rng.integers(0, 4000, (5, 12, 10)))]


@pytest.mark.parametrize("dimensions", ["echo", "position", "counter"],
                         ids=["echo in the dimension index", "echo time only",
                              "a frame counter in the dimension index"])
def test_two_echoes_at_the_same_positions_build_two_volumes_equal_to_the_written_frames(
        parser, limits, echoes, dimensions):
    (inst,) = _parse(parser, {"echoes.dcm": to_bytes(enhanced_mr(echoes,
                                                                 dimensions=dimensions))})
    check = check_series([inst], limits)
    assert check.ok, check.reason
    labels = [s["label"] for s in check.geometry["stacks"]]
    assert labels == ["MAGNITUDE TE 2.3 ms", "MAGNITUDE TE 4.6 ms"]
    for te, vol in echoes:
        got = build_volume([inst], limits, stack=f"MAGNITUDE TE {te:g} ms")
        np.testing.assert_array_equal(got.array, vol.astype(np.float32))
        assert got.spacing_mm == pytest.approx((3.0, 1.5, 1.5))
        assert got.origin_mm == pytest.approx((-20.0, -30.0, 40.0))
    default = build_volume([inst], limits)
    np.testing.assert_array_equal(default.array, echoes[0][1].astype(np.float32))
    assert default.meta["stack"]["label"] == "MAGNITUDE TE 2.3 ms"  # the first echo is scored


def test_two_stacks_told_apart_only_by_their_stack_number_build_two_volumes(parser, limits,
                                                                          echoes):
    same_kind = [(4.6, echoes[0][1]), (4.6, echoes[1][1])]
    ds = enhanced_mr(same_kind, dimensions="stack", offsets_mm=[0.0, 100.0])
    (inst,) = _parse(parser, {"stacks.dcm": to_bytes(ds)})
    check = check_series([inst], limits)
    assert check.ok, check.reason
    stacks = check.geometry["stacks"]
    assert [(s["label"], s["frames"]) for s in stacks] == [
        ("MAGNITUDE TE 4.6 ms (stack 1)", 5), ("MAGNITUDE TE 4.6 ms (stack 2)", 5)]
    for s, (_, vol), z0 in zip(stacks, same_kind, (40.0, 140.0), strict=True):
        got = build_volume([inst], limits, stack=s["id"])
        np.testing.assert_array_equal(got.array, vol.astype(np.float32))
        assert got.origin_mm[2] == pytest.approx(z0)


def test_frames_of_one_kind_at_one_position_are_still_refused_as_duplicates(parser, limits,
                                                                            echoes):
    same_echo = [(4.6, echoes[0][1]), (4.6, echoes[1][1])]
    (inst,) = _parse(parser, {"dup.dcm": to_bytes(enhanced_mr(same_echo,
                                                              dimensions="position"))})
    check = check_series([inst], limits)
    assert not check.ok and "stacks" not in check.geometry
    with pytest.raises(InvalidSeriesError,
                       match=r"^duplicate slice positions: dup\.dcm and dup\.dcm both lie at "
                             r"40\.00 mm .*\(6 slices share positions\)$"):
        build_volume([inst], limits)


def test_a_stack_with_duplicate_positions_beside_a_good_one_refuses_the_series_naming_it(
        parser, limits, echoes):
    three = [(2.3, echoes[0][1]), (4.6, echoes[1][1]), (4.6, echoes[0][1])]
    (inst,) = _parse(parser, {"three.dcm": to_bytes(enhanced_mr(three,
                                                                dimensions="position"))})
    with pytest.raises(InvalidSeriesError,
                       match=r"^duplicate slice positions: .*\(in stack MAGNITUDE TE 4\.6 ms, "
                             r"10 frames, one of 2 stacks\)$"):
        build_volume([inst], limits)


def test_the_pixel_budget_covers_every_stack_not_only_the_one_built(parser, limits, echoes):
    from dataclasses import replace

    (inst,) = _parse(parser, {"echoes.dcm": to_bytes(enhanced_mr(echoes))})
    one_stack = 5 * 12 * 10 * 4
    assert build_volume([inst], replace(limits, max_pixel_bytes=2 * one_stack)).shape == (5, 12, 10)
    with pytest.raises(LimitExceededError,
                       match=r"^the 2 stacks of this series would need 4800 bytes \(float32\) "
                             r"together, over the pixel budget of 3000 \(max_pixel_bytes\)$"):
        build_volume([inst], replace(limits, max_pixel_bytes=3000))


def test_many_stacks_are_all_listed_in_the_geometry_and_summarised_in_one_line(parser, limits):
    rng = np.random.default_rng(3)
    many = [(1.0 + n, rng.integers(0, 100, (3, 4, 4))) for n in range(14)]
    (inst,) = _parse(parser, {"many.dcm": to_bytes(enhanced_mr(many))})
    check = check_series([inst], limits)
    assert check.ok, check.reason
    assert [s["frames"] for s in check.geometry["stacks"]] == [3] * 14
    assert check.geometry["notes"][-1].startswith(
        "enhanced MR split into 14 stacks: MAGNITUDE TE 1 ms (3 frames), MAGNITUDE TE 2 ms")
    assert check.geometry["notes"][-1].endswith(
        "MAGNITUDE TE 12 ms (3 frames) and 2 more; biomarkers use MAGNITUDE TE 1 ms")


def test_asking_for_a_stack_the_series_does_not_have_names_the_stacks_it_has(parser, limits,
                                                                             echoes):
    (inst,) = _parse(parser, {"echoes.dcm": to_bytes(enhanced_mr(echoes))})
    with pytest.raises(InvalidSeriesError,
                       match=r"^no stack 'PHASE' in this series; its stacks are "
                             r"[0-9a-f]{10} \(MAGNITUDE TE 2\.3 ms\), [0-9a-f]{10} "
                             r"\(MAGNITUDE TE 4\.6 ms\)$"):
        build_volume([inst], limits, stack="PHASE")


def _classic_mr_echoes(volumes: list[tuple[float, np.ndarray]]) -> list[Dataset]:
    """A classic MR series (one file per slice) holding every echo at the same positions."""
    first = ct_series(volumes[0][1], modality="MR", slope=1.0, intercept=0.0, shuffle=False)
    out = []
    for te, vol in volumes:
        echo = ct_series(vol, modality="MR", slope=1.0, intercept=0.0, shuffle=False)
        for ds, ref in zip(echo, first, strict=True):
            ds.SeriesInstanceUID, ds.StudyInstanceUID = ref.SeriesInstanceUID, ref.StudyInstanceUID
            ds.FrameOfReferenceUID = ref.FrameOfReferenceUID
            ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
            ds.EchoTime = f"{te:g}"
        out += echo
    return out


def test_a_classic_mr_series_of_two_echoes_splits_into_two_volumes(parser, limits, echoes):
    datasets = _classic_mr_echoes(echoes)
    parsed = _parse(parser, {f"im{n}.dcm": to_bytes(ds) for n, ds in enumerate(datasets)})
    check = check_series(parsed, limits)
    assert check.ok, check.reason
    assert [(s["label"], s["frames"]) for s in check.geometry["stacks"]] == [
        ("MAGNITUDE TE 2.3 ms", 5), ("MAGNITUDE TE 4.6 ms", 5)]
    assert len(check.instances) == 10  # every file stays part of the series
    for te, vol in echoes:
        got = build_volume(parsed, limits, stack=f"MAGNITUDE TE {te:g} ms")
        np.testing.assert_array_equal(got.array, vol.astype(np.float32))


def test_a_time_index_that_only_counts_slices_does_not_split_a_volume(parser, limits, echoes):
    datasets = _classic_mr_echoes(echoes[:1])
    for n, ds in enumerate(datasets):
        ds.TemporalPositionIdentifier = n + 1  # one "time point" per slice: slice timing
    parsed = _parse(parser, {f"im{n}.dcm": to_bytes(ds) for n, ds in enumerate(datasets)})
    check = check_series(parsed, limits)
    assert check.ok and check.geometry["n_slices"] == 5 and "stacks" not in check.geometry


# --------------------------------------------------------------------------- the rule
def _stack(label: str, frames: int = 10, **kind) -> Stack:
    return Stack(kind=FrameKind(**kind), key=(label,), frames=[None] * frames, label=label)


@pytest.mark.parametrize(("stacks", "expected"), [
    ([_stack("field", frame_type=("ORIGINAL", "PRIMARY", "T1", "FIELD_MAP"), component="REAL"),
      _stack("magnitude", frame_type=("ORIGINAL", "PRIMARY", "T1", "M"),
             component="MAGNITUDE", echo_ms=4.6)], "magnitude"),
    ([_stack("fat", frame_type=("DERIVED", "PRIMARY", "DIXON", "FAT")),
      _stack("water", frame_type=("DERIVED", "PRIMARY", "DIXON", "WATER")),
      _stack("out", frame_type=("ORIGINAL", "PRIMARY", "DIXON", "OUT_PHASE"), echo_ms=1.15),
      _stack("in", frame_type=("ORIGINAL", "PRIMARY", "DIXON", "IN_PHASE"), echo_ms=2.3)],
     "in"),
    ([_stack("phase", component="PHASE", echo_ms=2.3),
      _stack("second echo", component="MAGNITUDE", echo_ms=4.6),
      _stack("first echo", component="MAGNITUDE", echo_ms=2.3)], "first echo"),
    ([_stack("adc", frame_type=("DERIVED", "PRIMARY", "DIFFUSION", "ADC")),
      _stack("b800", component="MAGNITUDE", b_value=800.0),
      _stack("b50", component="MAGNITUDE", b_value=50.0)], "b50"),
    ([_stack("t3", component="MAGNITUDE", temporal=3),
      _stack("t1", component="MAGNITUDE", temporal=1)], "t1"),
], ids=["magnitude before field map", "Dixon in-phase", "first magnitude echo",
        "lowest b-value, not ADC", "first time point"])
def test_biomarker_stack_rule(stacks, expected):
    assert biomarker_stack(stacks).label == expected
