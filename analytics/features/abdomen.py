"""Where a liver or spleen search must not look: the abdominal wall and the paraspinal zone.

Both touch the liver and spleen with the same attenuation. Canonical arrays on the coarse
grid of ``analytics.features.segmentation`` (``GRID_MM``): axis 0 inferior -> superior,
axis 1 anterior -> posterior, axis 2 patient right -> left.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: the coarse isotropic grid of the classical pipeline, mm (segmentation imports it)
GRID_MM = 3.0


def body_wall(smooth: np.ndarray, body: np.ndarray) -> np.ndarray:
    """The soft-tissue layer just inside the subcutaneous fat (abdominal/chest wall).

    Per axial slice, subcutaneous fat is the fat reachable from outside the body through
    fat; the wall is the soft tissue within ``W`` mm of it, where ``W`` is the median
    depth of the wall's inner surface (soft tissue bordering internal fat or lung), i.e.
    the measured wall thickness, clipped to 5-20 mm.
    """
    fat = smooth < -30.0
    depth = np.zeros(body.shape, dtype=np.float32)
    inner_depths = []
    soft_all = np.zeros(body.shape, dtype=bool)
    for k in range(body.shape[0]):
        b = body[k]
        if not b.any():
            continue
        outside = ~b
        lab, _ = ndi.label(outside | (fat[k] & b))
        ext = np.unique(lab[outside])
        subq = np.isin(lab, ext[ext > 0])
        d = ndi.distance_transform_edt(~subq) * GRID_MM
        soft = b & ~fat[k] & ~subq
        internal_fat = fat[k] & b & ~subq
        inner = soft & ndi.binary_dilation(internal_fat) & (d <= 30.0)
        inner_depths.append(d[inner])
        depth[k] = d
        soft_all[k] = soft
    values = np.concatenate(inner_depths) if inner_depths else np.zeros(0)
    if values.size < 20:
        return np.zeros(body.shape, dtype=bool)
    thickness = float(np.clip(np.median(values), 5.0, 20.0))
    return soft_all & (depth <= thickness)


def paraspinal_zone(coarse: np.ndarray, smooth: np.ndarray, body: np.ndarray, *,
                    behind_mm: float = 10.0, half_mm: float = 40.0) -> np.ndarray:
    """Soft tissue behind the front of the vertebral body and within 40 mm of the spine's
    midline (paraspinal muscles), per axial slice where a vertebra is seen.

    Vertebrae are components above 180 HU containing cortical bone (> 550 HU). The liver
    and spleen lie lateral to this zone.
    """
    zone = np.zeros(body.shape, dtype=bool)
    labels, n = ndi.label(smooth > 180.0)
    if n == 0:
        return zone
    cortical = np.zeros(n + 1, dtype=bool)
    cortical[np.unique(labels[(coarse > 550.0) & (labels > 0)])] = True
    cortical[0] = False
    bone = cortical[labels]
    cols = np.arange(body.shape[2])[None, :]
    rows = np.arange(body.shape[1])[:, None]
    half = half_mm / GRID_MM
    for k in range(body.shape[0]):
        if not bone[k].any() or not body[k].any():
            continue
        _, bx = np.nonzero(body[k])
        mid = 0.5 * (bx.min() + bx.max())
        bj, bi = np.nonzero(bone[k])
        near = np.abs(bi - mid) * GRID_MM < 30.0  # the spine sits on the midline
        if not near.any():
            continue
        x_s = float(np.median(bi[near]))
        front = float(bj[near].min()) + behind_mm / GRID_MM
        zone[k] = body[k] & (rows > front) & (np.abs(cols - x_s) < half) & ~bone[k]
    return zone


def _half_width(body: np.ndarray, cx: float) -> float:
    cols = np.flatnonzero(body.any(axis=(0, 1)))
    return float(max(cols[-1] - cx, cx - cols[0], 1.0))
