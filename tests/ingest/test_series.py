"""Series assembly: ordering along the normal, geometry checks, enhanced CT, exclusions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydicom.uid import generate_uid

from analytics.errors import InvalidSeriesError, LimitExceededError
from analytics.ingest.phase import contrast_phase, phase_from_text
from analytics.ingest.reader import ParsedInstance
from analytics.ingest.series import build_volume, check_series
from tests.ingest.conftest import ct_series, ct_slice, enhanced_ct, hu_phantom, item, to_bytes

SHAPE = (6, 16, 20)


@pytest.fixture(scope="module")
def hu() -> np.ndarray:
    return hu_phantom(SHAPE)


def _parse(parser, datasets) -> list[ParsedInstance]:
    out = list(parser.parse_many([item(f"im{n}.dcm", to_bytes(ds))
                                  for n, ds in enumerate(datasets)]))
    assert all(isinstance(o, ParsedInstance) for o in out), out
    return out


def _world(vol, k, j, i) -> np.ndarray:
    """LPS of voxel (k, j, i) by the Volume convention."""
    sz, sy, sx = vol.spacing_mm
    return np.asarray(vol.origin_mm) + vol.direction @ np.array([i * sx, j * sy, k * sz])


def test_slices_are_sorted_along_the_normal_not_by_instance_number(parser, hu, limits):
    datasets = ct_series(hu)
    check = check_series(_parse(parser, datasets), limits)
    assert check.ok, check.reason
    z = [float(i.header.ImagePositionPatient[2]) for i in check.instances]
    assert z == sorted(z)
    numbers = [i.instance_number for i in check.instances]
    assert numbers != sorted(numbers)  # InstanceNumber would have given another order
    vol = build_volume(check.instances, limits)
    np.testing.assert_array_equal(vol.array, hu.astype(np.float32))
    assert vol.spacing_mm == pytest.approx((2.5, 0.8, 0.8))
    assert vol.origin_mm == pytest.approx((-12.0, -20.0, 100.0))
    np.testing.assert_allclose(vol.direction, np.eye(3))
    assert vol.modality == "CT" and vol.array.dtype == np.float32


@pytest.mark.parametrize("orientation", [
    (1, 0, 0, 0, -1, 0),  # normal -z: the slice with the highest z comes first
    (1, 0, 0, 0, math.cos(0.5), -math.sin(0.5)),  # oblique about x
    (0, 1, 0, 0, 0, -1),  # sagittal
], ids=["flipped", "oblique", "sagittal"])
def test_voxel_world_coordinates_match_each_slice_position(parser, hu, limits, orientation):
    datasets = ct_series(hu, orientation=orientation, origin=(5.0, -7.0, 30.0))
    parsed = _parse(parser, datasets)
    vol = build_volume(parsed, limits)
    np.testing.assert_array_equal(vol.array, hu.astype(np.float32))
    by_uid = {i.sop_instance_uid: i for i in parsed}
    for k, uid in enumerate(vol.meta["sop_instance_uids"]):
        ipp = np.array([float(v) for v in by_uid[uid].header.ImagePositionPatient])
        np.testing.assert_allclose(_world(vol, k, 0, 0), ipp, atol=1e-3)
        # voxel (k, 3, 5): 3 rows down the column cosine, 5 columns along the row cosine
        expect = ipp + 3 * 0.8 * np.array(orientation[3:]) + 5 * 0.8 * np.array(orientation[:3])
        np.testing.assert_allclose(_world(vol, k, 3, 5), expect, atol=1e-3)


def _positions(n, dz=2.5, z0=100.0):
    return [[-12.0, -20.0, z0 + dz * k] for k in range(n)]


def _broken(kind: str, hu):
    n = hu.shape[0]
    if kind == "gap":
        pos = _positions(n)
        for k in range(3, n):
            pos[k][2] += 5.0
        return ct_series(hu, positions=pos)
    if kind == "uneven":
        pos = _positions(n)
        pos[3][2] += 0.9
        return ct_series(hu, positions=pos)
    if kind == "duplicate":
        pos = _positions(n)
        pos[4] = list(pos[3])
        return ct_series(hu, positions=pos)
    if kind == "tilt":
        return ct_series(hu, positions=[[-12.0, -20.0 + 0.9 * k, 100.0 + 2.5 * k]
                                        for k in range(n)])
    if kind == "orientation":
        ds = ct_series(hu, shuffle=False)
        for d in ds[:2]:
            d.ImageOrientationPatient = ["1", "0", "0", "0", "0.995", "-0.0998"]
        return ds
    if kind == "rows":
        ds = ct_series(hu)
        ds[0] = ct_slice(np.zeros((8, 8), np.uint16), _positions(n)[0],
                         series_uid=ds[1].SeriesInstanceUID, study_uid=ds[1].StudyInstanceUID)
        ds[0].ImagePositionPatient = ["-12", "-20", "90"]
        return ds
    if kind == "spacing":
        ds = ct_series(hu)
        ds[2].PixelSpacing = ["0.9", "0.9"]
        return ds
    if kind == "series":
        ds = ct_series(hu)
        ds[1].SeriesInstanceUID = generate_uid()
        return ds
    raise AssertionError(kind)


@pytest.mark.parametrize(("kind", "match"), [
    ("gap", r"^missing slices: gap of 7\.50 mm between 105\.00 and 112\.50 mm \(2 slices "
            r"missing\) along the slice normal, where the spacing is 2\.50 mm$"),
    ("uneven", r"^non-uniform slice spacing: 1\.60 to 3\.40 mm"),
    ("duplicate", r"^duplicate slice positions: .* both lie at 107\.50 mm along the slice normal"),
    ("tilt", r"^slice positions are not along the slice normal \(gantry tilt.*in-plane shift of "
             r"4\.50 mm over 12\.50 mm, about 19\.8 degrees"),
    ("orientation", r"^mixed orientation: .* ImageOrientationPatient"),
    ("rows", r"^mixed Rows/Columns: 8x8, 16x20$"),
    ("spacing", r"^mixed PixelSpacing \(0028,0030\)"),
    ("series", r"^mixed SeriesInstanceUID \(0020,000E\)"),
])
def test_incoherent_series_are_not_built_and_say_why(parser, hu, limits, kind, match):
    parsed = _parse(parser, _broken(kind, hu))
    check = check_series(parsed, limits)
    assert not check.ok and check.category == "incoherent"
    with pytest.raises(InvalidSeriesError, match=match):
        build_volume(parsed, limits)


def test_truncated_instance_stops_the_series(parse_bytes, parser, hu, limits):
    parsed = _parse(parser, ct_series(hu))
    cut = parse_bytes(parsed[2].data[:-10], "cut.dcm")
    with pytest.raises(InvalidSeriesError, match=r"^cut\.dcm: truncated pixel data: the file "
                                                 r"ends after 630 of 640 pixel bytes; the "
                                                 r"series is not scored$"):
        build_volume([*parsed[:2], cut, *parsed[3:]], limits)


def test_same_uid_with_different_content_is_a_conflict(parser, hu, limits):
    datasets = ct_series(hu)
    twin = to_bytes(datasets[0])
    datasets[0].PatientID = "OTHER"
    parsed = _parse(parser, datasets)
    parsed.append(parser.parse(item("twin.dcm", twin)))
    check = check_series(parsed, limits)
    assert check.reason.startswith(f"SOPInstanceUID {datasets[0].SOPInstanceUID} appears twice "
                                   f"with different content")
    exact = parser.parse(item("copy.dcm", parsed[1].data))
    again = check_series([*parsed[:-1], exact], limits)
    assert again.ok and "copy.dcm: duplicate of" in again.geometry["notes"][0]


def test_localizers_and_secondary_captures_are_excluded(parser, hu, limits):
    datasets = ct_series(hu)
    uid, study = datasets[0].SeriesInstanceUID, datasets[0].StudyInstanceUID
    scout = ct_slice(np.zeros((16, 20), np.uint16), (0, -50, 120), series_uid=uid,
                     study_uid=study, orientation=(0, 1, 0, 0, 0, -1))
    tagged = ct_slice(np.zeros((16, 20), np.uint16), (0, 0, 0), series_uid=uid, study_uid=study)
    tagged.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    sc = ct_slice(np.zeros((16, 20), np.uint16), (0, 0, 50), series_uid=uid, study_uid=study)
    sc.SOPClassUID = sc.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    parsed = _parse(parser, [*datasets, scout, tagged, sc])
    vol = build_volume(parsed, limits)
    np.testing.assert_array_equal(vol.array, hu.astype(np.float32))
    reasons = sorted(e["reason"] for e in vol.meta["excluded"])
    assert reasons == [
        "localizer (ImageType LOCALIZER): excluded from the volume",
        "localizer (single slice whose orientation differs from the series): excluded",
        "secondary capture: excluded from the volume (not scored)",
    ]


@pytest.mark.parametrize("shared", [True, False], ids=["shared-groups", "per-frame-groups"])
def test_enhanced_ct_uses_functional_groups(parser, hu, limits, shared):
    order = [3, 0, 5, 1, 4, 2]  # frames stored out of spatial order
    ds = enhanced_ct(hu, slope=2.0, intercept=-1000.0, shared_geometry=shared,
                     frame_order=order, orientation=(1, 0, 0, 0, -1, 0))
    (inst,) = _parse(parser, [ds])
    assert inst.n_frames == 6
    vol = build_volume([inst], limits)
    # the normal is -z and frame k lies at z = 100 - 2.5 k: order along the normal is k
    stored = np.round((hu - -1000.0) / 2.0) * 2.0 - 1000.0  # the HU the rescale gives back
    np.testing.assert_array_equal(vol.array, stored.astype(np.float32))
    assert np.abs(vol.array - hu).max() <= 1.0
    assert vol.spacing_mm == pytest.approx((2.5, 0.8, 0.8))
    assert vol.origin_mm == pytest.approx((-12.0, -20.0, 100.0))
    np.testing.assert_allclose(vol.direction[:, 2], [0, 0, -1])


def test_enhanced_ct_missing_plane_position_names_frame_and_tag(parse_bytes, hu):
    ds = enhanced_ct(hu)
    del ds.PerFrameFunctionalGroupsSequence[2].PlanePositionSequence
    rej = parse_bytes(to_bytes(ds), "enh.dcm")
    assert rej.reason == ("malformed file: frame 3: missing required attribute "
                          "ImagePositionPatient (0020,0032) in PlanePositionSequence (0020,9113)")


def test_single_slice_series_takes_z_spacing_from_thickness(parser, limits):
    hu1 = hu_phantom((1, 8, 8))
    vol = build_volume(_parse(parser, ct_series(hu1)), limits)
    assert vol.shape == (1, 8, 8) and vol.spacing_mm[0] == 2.5
    np.testing.assert_array_equal(vol.array, hu1.astype(np.float32))


def test_mr_keeps_stored_intensities(parser, limits):
    mr = hu_phantom((3, 8, 8)) + 1000
    vol = build_volume(_parse(parser, ct_series(mr, modality="MR", slope=1.0, intercept=0.0)),
                       limits)
    assert vol.modality == "MR"
    np.testing.assert_array_equal(vol.array, mr.astype(np.float32))


def test_datasets_can_be_built_directly(hu, limits):
    vol = build_volume(ct_series(hu), limits)
    np.testing.assert_array_equal(vol.array, hu.astype(np.float32))


def test_series_cap_is_a_limit_error(parser, hu, limits):
    from dataclasses import replace

    parsed = _parse(parser, ct_series(hu))
    with pytest.raises(LimitExceededError, match=r"over the per-series cap of 1000 bytes"):
        build_volume(parsed, replace(limits, max_series_bytes=1000))
    with pytest.raises(LimitExceededError, match=r"volume would need 7680 bytes \(float32\)"):
        build_volume(parsed, replace(limits, max_pixel_bytes=7000))


@pytest.mark.parametrize(("text", "phase"), [
    ("Abd PV 1.0 B30f", "portal_venous"), ("Portal venous phase", "portal_venous"),
    ("LEBER venös", "portal_venous"), ("late arterial 3mm", "arterial"),
    ("ARTERIAL", "arterial"), ("Non-contrast abdomen", "unenhanced"), ("NATIVE", "unenhanced"),
    ("nativ 5mm", "unenhanced"), ("Delayed 3 min", "delayed"), ("Equilibrium", "delayed"),
    ("Abdomen 5mm B31f", None), ("Cartilage", None),
])
def test_contrast_phase_keywords(text, phase):
    assert phase_from_text(text) == phase


@pytest.mark.parametrize(("agent", "start", "acq", "phase"), [
    ("Omnipaque", "101500", "101540", "arterial"),
    ("Omnipaque", "101500", "101610", "portal_venous"),
    ("Omnipaque", "101500", "102000", "delayed"),
    ("NONE", "", "", "unenhanced"),
    ("Omnipaque", "", "101610", None),
    ("", "", "", None),
])
def test_contrast_phase_from_bolus_timing(agent, start, acq, phase):
    ds = ct_slice(np.zeros((4, 4), np.uint16), (0, 0, 0), description="Abdomen")
    ds.ContrastBolusAgent = agent
    ds.ContrastBolusStartTime = start
    ds.AcquisitionTime = acq
    assert contrast_phase(ds) == phase
