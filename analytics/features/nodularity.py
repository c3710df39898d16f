"""Liver surface nodularity, modelled on the LSN score of Smith et al. (Radiology 2016).

Per axial slice the outer liver contour is traced (sub-voxel, from a lightly smoothed
mask), resampled evenly along its length, and compared with a low-pass version of itself:
a cubic Savitzky-Golay fit along the contour over ``window_mm``, which follows the gross
organ shape (including its curvature, unlike a plain moving average that shrinks convex
curves) but not undulations shorter than the window. The score is the mean absolute
distance between the two, in mm. Deviations are capped at ``cap_mm`` so that a fissure or
the hilum does not dominate the score. Slices whose liver cross-section is below
``min_area_fraction`` of the largest one (the cranial and caudal tips) are skipped.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage import measure

from analytics.features.geometry import bbox


def _outer_contour(slice_mask: np.ndarray, spacing_yx: tuple[float, float]) -> np.ndarray | None:
    """Longest iso-contour (mm coordinates) of a slice: the outline of its largest part."""
    # light smoothing removes the voxel staircase without touching mm-scale relief
    soft = ndi.gaussian_filter(np.pad(slice_mask, 2).astype(np.float32), 0.5)
    contours = measure.find_contours(soft, 0.5)
    if not contours:
        return None
    c = max(contours, key=len)
    if len(c) < 8:
        return None
    return c * np.asarray(spacing_yx)


def _resample_closed(points: np.ndarray, step_mm: float) -> np.ndarray:
    """Points evenly spaced by ``step_mm`` along a closed polyline."""
    closed = np.vstack([points, points[:1]])
    seg = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(int(s[-1] / step_mm), 8)
    t = np.linspace(0.0, s[-1], n, endpoint=False)
    return np.column_stack([np.interp(t, s, closed[:, k]) for k in range(2)])


def savgol_wrap(values: np.ndarray, window: int, polyorder: int) -> np.ndarray:
    """Savitzky-Golay smoothing of a closed (periodic) sequence.

    The same filter as ``scipy.signal.savgol_filter(values, window, polyorder,
    mode="wrap")``: least-squares polynomial coefficients of the centre point, applied by
    circular convolution. Written here because importing ``scipy.signal`` costs seconds
    of every command's start-up for this one filter.
    """
    half = window // 2
    x = np.arange(-half, half + 1, dtype=float)
    vander = np.vander(x, polyorder + 1, increasing=True)
    # the fitted polynomial's value at the centre: row 0 of the pseudo-inverse
    coeffs = np.linalg.pinv(vander)[0]
    return ndi.convolve1d(np.asarray(values, dtype=float), coeffs[::-1], mode="wrap")


def slice_deviation_mm(points: np.ndarray, *, window_mm: float, step_mm: float,
                       cap_mm: float) -> np.ndarray | None:
    """Per-point distance (mm) between a closed contour and its low-pass version."""
    p = _resample_closed(points, step_mm)
    win = round(window_mm / step_mm) | 1
    if win >= len(p) or win < 5:
        return None
    smooth = np.column_stack([savgol_wrap(p[:, k], win, 3) for k in range(2)])
    dev = np.linalg.norm(p - smooth, axis=1)
    return np.minimum(dev, cap_mm)


def surface_nodularity(liver: np.ndarray, spacing_mm: tuple[float, float, float], *,
                       window_mm: float = 40.0, min_area_fraction: float = 0.25,
                       cap_mm: float = 5.0) -> float | None:
    """Liver surface nodularity score (mm).

    Parameters
    ----------
    liver
        Whole-liver mask in canonical orientation (axis 0 = superior-inferior).
    spacing_mm
        Canonical voxel spacing (S, P, L), mm.
    window_mm
        Length of the contour fitted by each local cubic (the low-pass scale).
    min_area_fraction
        Slices with less liver than this fraction of the largest slice are skipped.
    cap_mm
        Per-point deviations are capped at this value.

    Returns
    -------
    float or None
        Mean absolute contour deviation (mm) over the included slices; None without liver.
    """
    box = bbox(liver)
    if box is None:
        return None
    sub = liver[box]
    areas = sub.reshape(sub.shape[0], -1).sum(axis=1)
    keep = np.flatnonzero(areas >= min_area_fraction * areas.max())
    step = 0.5 * min(spacing_mm[1], spacing_mm[2])
    devs = []
    for k in keep:
        contour = _outer_contour(sub[k], (spacing_mm[1], spacing_mm[2]))
        if contour is None:
            continue
        d = slice_deviation_mm(contour, window_mm=window_mm, step_mm=step, cap_mm=cap_mm)
        if d is not None:
            devs.append(d)
    if not devs:
        return None
    return float(np.concatenate(devs).mean())
