"""Series of the same MR study that one series needs: the Dixon water image for the fat
image's signal fat fraction, and a delivered liver mask for a map that came without one.

MR quantitative maps are usually reconstructed from the same acquisition as an anatomical
or Dixon series, and a site delivers the liver mask for one of them. A series without a
delivered liver mask borrows the liver mask of another series of the same study and frame
of reference, resampled (nearest neighbour) onto its own grid: the MR elastography map's
few thick slices get the liver of the 3-D series. Borrowing is flagged in the mask's
``method`` and in the warnings; automatic segmentation is never run to fill the gap.
"""

from __future__ import annotations

import numpy as np

from analytics.config import Settings
from analytics.errors import HepaTrackError
from analytics.features.mr_quant import DIXON_FAT, DIXON_WATER, measurement_plan, recognise
from analytics.features.totalseg import choose_engine
from analytics.ingest.loader import load_series, load_volume, stored_file
from analytics.ingest.quant_header import quant_header
from analytics.ingest.reader import parse_trusted
from analytics.ingest.resample import resample_nearest, volume_affine
from analytics.ingest.volume import MaskSet, Volume
from analytics.store import dicom

__all__ = ["BORROWED", "attach_companions", "measurement_plans"]

#: ``MaskSet.method`` prefix of a liver mask borrowed from another series of the study
BORROWED = "borrowed from series"
_GRID_TOL_MM = 0.01


def _header_of(store, settings: Settings, series_uid: str) -> dict | None:
    files = dicom.series_files(store, series_uid)
    if files is None or not files.paths:
        return None
    rel = files.paths[0]
    return quant_header(parse_trusted(rel, stored_file(settings, rel).read_bytes(),
                                      settings.limits).header)


def _same_grid(a: Volume, b: Volume) -> bool:
    return (a.shape == b.shape
            and np.allclose(a.spacing_mm, b.spacing_mm, atol=_GRID_TOL_MM)
            and np.allclose(a.origin_mm, b.origin_mm, atol=_GRID_TOL_MM)
            and np.allclose(a.direction, b.direction, atol=1e-4))


def _siblings(store, volume: Volume) -> list[str]:
    """Complete MR series of the same study and frame of reference."""
    if not volume.series_uid or not volume.frame_of_reference_uid:
        return []
    return [uid for uid, modality, frame, status in dicom.study_siblings(store,
                                                                           volume.series_uid)
            if (modality or "").upper() == "MR" and status == "complete"
            and frame == volume.frame_of_reference_uid]


def attach_companions(store, settings: Settings, volume: Volume,
                      masks: MaskSet | None) -> MaskSet | None:
    """Give an MR series what it needs from its study; returns the masks to use.

    A Dixon fat image gets the water image on its grid in ``volume.meta["dixon_water"]``.
    A series without a delivered liver mask gets a sibling's delivered liver mask
    resampled onto its grid (``method`` says from which series): one on the same grid
    first, else the one holding the largest liver (a full 3-D series, not a thick slab). Other series and CT are
    returned unchanged.
    """
    if (volume.modality or "").upper() != "MR":
        return masks
    siblings = _siblings(store, volume)
    if not siblings:
        return masks
    reading = recognise(volume.meta.get("quant_header"), "MR")
    if reading.kind == DIXON_FAT:
        for uid in siblings:
            try:
                if recognise(_header_of(store, settings, uid), "MR").kind != DIXON_WATER:
                    continue
                water = load_volume(store, settings, uid)
            except HepaTrackError:
                continue
            if _same_grid(volume, water):
                volume.meta["dixon_water"] = water.array
                break
    if masks is not None and masks.get("liver") is not None:
        return masks
    if volume.meta.get("mask_errors"):
        return masks  # a delivered mask failed: say so, never fill in from elsewhere
    best = None  # (same grid, source liver mL, uid, source volume, source masks)
    with_liver = [uid for uid, _m, delivered in dicom.delivered_segments(store, siblings)
                  if _has_liver(delivered)]  # only those are read: pixels are costly
    for uid in (u for u in siblings if u in with_liver):
        try:
            other, other_masks = load_series(store, settings, uid)
        except HepaTrackError:
            continue
        if other_masks is None or other_masks.automatic or other_masks.get("liver") is None:
            continue
        ml = float(np.count_nonzero(other_masks.get("liver"))) * other.voxel_volume_ml
        key = (_same_grid(volume, other), ml)
        if best is None or key > best[:2]:
            best = (*key, uid, other, other_masks)
    if best is None:
        return masks
    _same, _ml, uid, other, other_masks = best
    liver = resample_nearest(other_masks.get("liver").astype(np.uint8),
                             volume_affine(other), volume).astype(bool)
    if not liver.any():
        return masks
    merged = dict(masks.masks) if masks is not None else {}
    merged["liver"] = liver
    return MaskSet(masks=merged, source=other_masks.source, automatic=False,
                   method=f"{BORROWED} …{uid[-12:]} (same study and frame of reference)")
    return masks


def _has_liver(delivered: list[dict | None]) -> bool:
    return any("liver" in (segments or {}) for segments in delivered)


def measurement_plans(store, settings: Settings, series_uids: list[str]) -> dict[str, str]:
    """Per stored series: which liver measurements feature extraction will make, and
    which it cannot and why (:func:`analytics.features.mr_quant.measurement_plan`).

    A liver mask counts when delivered with the series or, on MR, with another series
    of the same study and frame of reference (it is borrowed, see
    :func:`attach_companions`).
    """
    engines = {m: choose_engine("auto", m) is not None for m in ("CT", "MR")}
    out: dict[str, str] = {}
    for uid, modality, delivered in dicom.delivered_segments(store, series_uids):
        modality = (modality or "").upper()
        has_liver = _has_liver(delivered)
        header = None
        if modality == "MR":
            try:
                header = _header_of(store, settings, uid)
            except HepaTrackError:
                header = None
            if not has_liver:
                frames = {u: f for u, m, f, st in dicom.study_siblings(store, uid)}
                own = dicom.series_frame_of_reference(store, uid)
                same = [u for u, f in frames.items() if own is not None and f == own]
                has_liver = any(_has_liver(d) for _u, m, d in
                                dicom.delivered_segments(store, same)
                                if (m or "").upper() == "MR")
        out[uid] = measurement_plan(modality, header, has_liver, engines.get(modality, False))
    return out
