"""Size measurements and region-of-interest statistics inside masks.

Volumes count voxels of the mask as delivered (no erosion). Intensity statistics use the
mask eroded by ``n`` voxels, so partial-volume voxels at the organ edge do not bias them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from analytics.features.geometry import bbox

_CROSS = ndi.generate_binary_structure(3, 1)
_CUBE = ndi.generate_binary_structure(3, 3)


def volume_ml(mask: np.ndarray | None, voxel_volume_ml: float) -> float | None:
    """Voxel count of ``mask`` times ``voxel_volume_ml``; None without a mask."""
    if mask is None:
        return None
    return float(np.count_nonzero(mask)) * voxel_volume_ml


def _shifted_and(m: np.ndarray, cube: bool) -> np.ndarray:
    """One unit erosion of a padded mask: AND with its 6 (cross) or 26 (cube) neighbours.

    The one-voxel pad keeps its value (False around a mask, True around a complement).
    """
    out = m.copy()
    if cube:
        # the 3x3x3 cube is separable: erode along each axis in turn
        for ax in range(3):
            lo = [slice(None)] * 3
            hi = [slice(None)] * 3
            mid = [slice(None)] * 3
            lo[ax], mid[ax], hi[ax] = slice(0, -2), slice(1, -1), slice(2, None)
            nxt = out.copy()
            nxt[tuple(mid)] &= out[tuple(lo)] & out[tuple(hi)]
            out = nxt
        return out
    for ax in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        mid = [slice(None)] * 3
        lo[ax], mid[ax], hi[ax] = slice(0, -2), slice(1, -1), slice(2, None)
        out[tuple(mid)] &= m[tuple(lo)] & m[tuple(hi)]
    return out


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest face-connected component of ``mask`` (``mask`` itself when empty)."""
    labels, n = ndi.label(mask)
    if n <= 1:
        return mask if n == 0 else labels == 1
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def erode(mask: np.ndarray, voxels: int) -> np.ndarray:
    """Erode ``mask`` by ``voxels`` voxels.

    Alternates 6-connected and 26-connected unit erosions (cross, cube, cross, ...), an
    octagonal approximation of a Euclidean ball of radius ``voxels`` that is much faster
    than a ball structuring element. Outside the image counts as background.
    """
    mask = np.asarray(mask, dtype=bool)
    if voxels <= 0:
        return mask.copy()
    box = bbox(mask, margin=1)
    out = np.zeros(mask.shape, dtype=bool)
    if box is None:
        return out
    sub = np.pad(mask[box], 1, constant_values=False)
    for i in range(voxels):
        sub = _shifted_and(sub, cube=i % 2 == 1)
    out[box] = sub[1:-1, 1:-1, 1:-1]
    return out


def dilate(mask: np.ndarray, voxels: int) -> np.ndarray:
    """Dilate ``mask`` by ``voxels`` voxels (same alternating scheme as :func:`erode`)."""
    mask = np.asarray(mask, dtype=bool)
    box = bbox(mask, margin=voxels + 1)
    if box is None or voxels <= 0:
        return mask.copy()
    out = np.zeros(mask.shape, dtype=bool)
    sub = np.pad(~mask[box], 1, constant_values=True)
    for i in range(voxels):
        sub = _shifted_and(sub, cube=i % 2 == 1)
    out[box] = ~sub[1:-1, 1:-1, 1:-1]
    return out


@dataclass(frozen=True)
class RoiStats:
    """Intensity statistics inside one region of interest."""

    mean: float
    median: float
    sd: float
    voxels: int


def roi_stats(image: np.ndarray, roi: np.ndarray) -> RoiStats | None:
    """Mean, median and SD (ddof=1) of ``image`` inside ``roi``; None if < 2 voxels."""
    values = np.asarray(image[roi], dtype=np.float64)
    if values.size < 2:
        return None
    return RoiStats(mean=float(values.mean()), median=float(np.median(values)),
                    sd=float(values.std(ddof=1)), voxels=int(values.size))


def lesion_summary(lesions: np.ndarray, voxel_volume_ml: float) -> tuple[int, float]:
    """Number of 26-connected lesion components and their total volume in mL."""
    mask = np.asarray(lesions, dtype=bool)
    box = bbox(mask)
    if box is None:
        return 0, 0.0
    _, n = ndi.label(mask[box], structure=_CUBE)
    return int(n), float(np.count_nonzero(mask)) * voxel_volume_ml
