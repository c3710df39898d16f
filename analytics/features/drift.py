"""Growing an enhanced organ through a slow drift of its attenuation.

CT numbers are not uniform across the field of view: beam hardening (arms beside the
trunk, the spine), scatter and cupping lower the attenuation of the same tissue by tens of
HU from one side of an organ to the other. A window fixed around the organ's median then
misses the darkened part. Where the organ is enhanced - its level well above muscle's -
the growth may follow that drift: a voxel is taken when it is within the window of the
organ's *local* level (a normalised convolution of the grown organ around it), not only
of its median, down to half-way between the organ's median and muscle (nearer the organ
than muscle). Unenhanced liver and spleen lie within ~20 HU of muscle, stomach wall and
blood, which a drifting level would walk into, so they keep a fixed window.

Canonical arrays on the coarse grid of ``analytics.features.segmentation``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from analytics.features.geometry import bbox

#: an organ is enhanced when its median is at least this far above muscle's
ENHANCED_MIN_HU = 30.0
#: the local level: a Gaussian of this sigma (coarse voxels, 12 mm) over the grown organ
DRIFT_SIGMA_VOX = 4.0
#: the drift growth takes at most this many one-voxel steps (45 mm)
DRIFT_STEPS = 15
#: muscle level: soft tissue of the paraspinal zone between these bounds (HU)
MUSCLE_HU = (-30.0, 150.0)


def muscle_level(smooth: np.ndarray, paraspinal: np.ndarray) -> float | None:
    """Median attenuation of the paraspinal muscles (None: no zone or too few voxels)."""
    vals = smooth[paraspinal & (smooth > MUSCLE_HU[0]) & (smooth < MUSCLE_HU[1])]
    return float(np.median(vals)) if vals.size >= 50 else None


def drift_floor(median: float, muscle: float | None) -> float | None:
    """The lowest level an organ of this median may drift to: half-way to muscle, when the
    organ is enhanced (None otherwise)."""
    if muscle is None or median - muscle < ENHANCED_MIN_HU:
        return None
    return 0.5 * (median + muscle)


def follow_drift(grown: np.ndarray, smooth: np.ndarray, allowed: np.ndarray, half: float,
                 floor: float, steps: int = DRIFT_STEPS) -> np.ndarray:
    """``grown`` extended, one face-connected voxel per step, to ``allowed`` voxels at or
    above ``floor`` within ``half`` of the organ's local level."""
    margin = steps + int(3 * DRIFT_SIGMA_VOX) + 1
    box = bbox(grown, margin=margin)
    if box is None:
        return grown
    g, img, ok = grown[box].copy(), smooth[box], allowed[box] & (smooth[box] >= floor)
    six = ndi.generate_binary_structure(3, 1)
    for _ in range(steps):
        m = g.astype(np.float32)
        den = ndi.gaussian_filter(m, DRIFT_SIGMA_VOX)
        level = ndi.gaussian_filter(img * m, DRIFT_SIGMA_VOX) / np.maximum(den, 1e-3)
        front = ndi.binary_dilation(g, six) & ~g & ok & (np.abs(img - level) <= half)
        if not front.any():
            break
        g |= front
    out = grown.copy()
    out[box] = g
    return out
