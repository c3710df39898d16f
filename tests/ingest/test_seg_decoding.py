"""SEG frame placement: the vectorised placement gives exactly the masks of the per-pixel
placement it replaced, on the published SEGs and on frames shifted, rotated or resampled."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pydicom
import pytest

from analytics.config import IngestLimits
from analytics.ingest import link_masks
from analytics.ingest.header import parse_dicom
from analytics.ingest.loader import load_series, load_volume, stored_file
from analytics.ingest.pipeline import ingest_uploads
from analytics.ingest.seg_frames import (
    _Plane,
    _slices_of_frames,
    place_frames,
    seg_pixels,
    seg_planes,
)
from analytics.ingest.series import build_volume
from analytics.ingest.volume import Volume
from analytics.store import dicom
from tests.ingest.test_real_masks import PYDICOM_DATA, _ct_for_seg


def per_pixel_placement(frames, pixels, planes, reference, what) -> np.ndarray:
    """The placement before vectorisation: one index pair per image pixel for every
    frame (kept here as the reference the new placement must equal)."""
    nz, ny, nx = reference.shape
    dz, dy, dx = (float(v) for v in reference.spacing_mm)
    direction = np.asarray(reference.direction, dtype=float)
    origin = np.asarray(reference.origin_mm, dtype=float)
    out = np.zeros((nz, ny, nx), dtype=bool)
    jj, ii = np.mgrid[0:ny, 0:nx]
    rows, cols = pixels.shape[1:]
    for k, fs in _slices_of_frames(frames, planes, reference, what).items():
        corner = origin + direction[:, 2] * dz * k
        for f in fs:
            p = planes[f]
            rel = corner - p.position
            u = ((rel @ p.row_cosine) + ii * (dx * direction[:, 0] @ p.row_cosine)
                 + jj * (dy * direction[:, 1] @ p.row_cosine)) / p.pixel_spacing[1]
            v = ((rel @ p.col_cosine) + ii * (dx * direction[:, 0] @ p.col_cosine)
                 + jj * (dy * direction[:, 1] @ p.col_cosine)) / p.pixel_spacing[0]
            ui = np.floor(u + 0.5).astype(np.intp)
            vi = np.floor(v + 0.5).astype(np.intp)
            ok = (ui >= 0) & (ui < cols) & (vi >= 0) & (vi < rows)
            out[k][ok] |= pixels[f][vi[ok], ui[ok]].astype(bool)
    return out


def _segment_frames(ds) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for i, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
        out.setdefault(int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber),
                       []).append(i)
    return out


@pytest.fixture(scope="module", params=["liver.dcm", "liver_expb.dcm"])
def published_seg(request):
    """A published SEG (little and big endian), decoded, with the CT series it names."""
    raw = (PYDICOM_DATA / request.param).read_bytes()
    ds = parse_dicom(raw, IngestLimits(), stop_before_pixels=False).dataset
    ct = [pydicom.dcmread(io.BytesIO(b)) for _, b in _ct_for_seg(ds)]
    volume = build_volume(ct)
    return ds, seg_pixels(ds, request.param), seg_planes(ds, volume, request.param), volume


def test_published_segs_are_placed_exactly_as_by_the_per_pixel_placement(published_seg):
    ds, pixels, planes, volume = published_seg
    placed = 0
    for number, frames in _segment_frames(ds).items():
        new = place_frames(frames, pixels, planes, volume, f"segment {number}")
        old = per_pixel_placement(frames, pixels, planes, volume, f"segment {number}")
        assert np.array_equal(new, old), number
        placed += int(new.sum())
    assert placed == int(pixels.astype(bool).sum())  # same grid: every voxel lands once


@pytest.mark.parametrize("shift_mm", [(3.3, -7.9, 0.0), (-1000.0, 0.0, 0.0), (0.4, 0.6, 0.0)])
def test_frames_shifted_in_plane_are_placed_as_by_the_per_pixel_placement(published_seg,
                                                                         shift_mm):
    _ds, pixels, planes, volume = published_seg
    shifted = [dataclasses.replace(p, position=p.position + np.asarray(shift_mm))
               for p in planes]
    frames = list(range(len(planes)))
    new = place_frames(frames, pixels, shifted, volume, "shifted")
    assert np.array_equal(new, per_pixel_placement(frames, pixels, shifted, volume, "shifted"))
    if shift_mm[0] == -1000.0:  # shifted out of the image by more than its width: nothing
        assert not new.any()


def test_frames_on_a_coarser_in_plane_grid_are_placed_as_by_the_per_pixel_placement(
        published_seg):
    _ds, pixels, planes, volume = published_seg
    coarse = [dataclasses.replace(p, pixel_spacing=(p.pixel_spacing[0] * 1.7,
                                                    p.pixel_spacing[1] * 2.3))
              for p in planes]
    frames = list(range(len(planes)))
    new = place_frames(frames, pixels, coarse, volume, "coarse")
    assert new.any()
    assert np.array_equal(new, per_pixel_placement(frames, pixels, coarse, volume, "coarse"))


@pytest.mark.parametrize("degrees", [90.0, 12.0])
def test_frames_rotated_in_plane_are_placed_as_by_the_per_pixel_placement(degrees):
    """Frames whose rows do not run along the image's take the per-pixel path."""
    rng = np.random.default_rng(3)
    volume = Volume(np.zeros((4, 24, 20), np.float32), (2.0, 0.9, 0.7), (-10.0, -8.0, 5.0))
    pixels = rng.random((4, 30, 26)) < 0.4
    a = np.deg2rad(degrees)
    row, col = np.array([np.cos(a), np.sin(a), 0.0]), np.array([-np.sin(a), np.cos(a), 0.0])
    centre = np.array([-10.0 + 7.0, -8.0 + 10.8, 0.0])
    planes = [_Plane(position=centre - 13 * 0.8 * row - 15 * 0.8 * col
                        + np.array([0.0, 0.0, 5.0 + 2.0 * k]), row_cosine=row,
                        col_cosine=col, pixel_spacing=(0.8, 0.8), spacing_between_slices=None)
              for k in range(4)]
    frames = [0, 1, 2, 3]
    new = place_frames(frames, pixels, planes, volume, "rotated")
    assert new.any()
    assert np.array_equal(new, per_pixel_placement(frames, pixels, planes, volume, "rotated"))


# --------------------------------------------------------------------------- at ingest
@pytest.fixture
def upload(settings, store, parser):
    def go(files, **kw):
        return ingest_uploads(files, settings, store, parser=parser, **kw)
    return go


def test_a_seg_arriving_with_its_series_is_checked_on_the_grid_without_reading_it_back(
        store, settings, upload, monkeypatch):
    """The series was just stored whole: the check places the SEG on the grid the batch
    already knows, and finds what the loader later finds on the stored series."""
    seg = (PYDICOM_DATA / "liver.dcm").read_bytes()
    ct = _ct_for_seg(pydicom.dcmread(PYDICOM_DATA / "liver.dcm"))

    def no_read_back(*_a, **_k):
        raise AssertionError("the series was read back to check its mask")

    monkeypatch.setattr(link_masks, "load_volume", no_read_back)
    report = upload([*ct, ("liver.dcm", seg)])
    assert report.rejected == [] and report.masks == 1
    (series,) = report.series
    monkeypatch.undo()
    volume, masks = load_series(store, settings, series["series_uid"])
    assert int(masks.masks["liver"].sum()) == 107098  # the SEG's own liver pixels
    assert volume.shape == (3, 512, 512)


def test_the_grid_kept_at_ingest_is_the_stored_series_grid(store, settings, parser):
    seg = (PYDICOM_DATA / "liver.dcm").read_bytes()
    ct = _ct_for_seg(pydicom.dcmread(PYDICOM_DATA / "liver.dcm"))
    kept: dict = {}
    real = link_masks.SeriesVolumes.__init__

    def keep(self, *a, **k):
        real(self, *a, **k)
        kept["grids"] = self.grids

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(link_masks.SeriesVolumes, "__init__", keep)
        report = ingest_uploads([*ct, ("liver.dcm", seg)], settings, store, parser=parser)
    (series,) = report.series
    grid = kept["grids"][series["series_uid"]]
    loaded = load_volume(store, settings, series["series_uid"])
    assert grid.shape == loaded.shape and grid.spacing_mm == loaded.spacing_mm
    assert grid.origin_mm == loaded.origin_mm
    assert np.array_equal(grid.direction, loaded.direction)
    assert grid.frame_of_reference_uid == loaded.frame_of_reference_uid
    assert grid.meta["sop_instance_uids"] == loaded.meta["sop_instance_uids"]
    stored = link_masks.decode_mask(seg_bytes_stored(store, settings, series), "seg", grid,
                                    settings, name="liver")
    again = link_masks.decode_mask(seg_bytes_stored(store, settings, series), "seg", loaded,
                                   settings, name="liver")
    assert stored.masks.keys() == again.masks.keys() == {"liver"}
    assert np.array_equal(stored.masks["liver"], again.masks["liver"])


def seg_bytes_stored(store, settings, series) -> bytes:
    """The de-identified SEG as stored for ``series``."""
    (mask,) = dicom.delivered_masks(store, series["series_uid"], ("seg",))
    return stored_file(settings, mask.path).read_bytes()
