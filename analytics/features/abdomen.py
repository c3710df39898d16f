"""Where a liver or spleen search must not look: the abdominal wall (with the arms beside
the trunk) and the paraspinal zone.

Both touch the liver and spleen with the same attenuation. Canonical arrays on the coarse
grid of ``analytics.features.segmentation`` (``GRID_MM``): axis 0 inferior -> superior,
axis 1 anterior -> posterior, axis 2 patient right -> left.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: the coarse isotropic grid of the classical pipeline, mm (segmentation imports it)
GRID_MM = 3.0
#: a soft-tissue run longer than this under the skin means there is no subcutaneous fat
NO_SUBQ_MM = 10.0


def body_wall(smooth: np.ndarray, body: np.ndarray, *, n_rays: int = 360) -> np.ndarray:
    """The soft-tissue layer just inside the subcutaneous fat (abdominal/chest wall), and
    the limbs (an arm lying at the side of the trunk).

    Per axial slice, rays run from the body's centre to its skin. Along each ray, read
    from the skin inwards, the subcutaneous fat is the first run of fat (or air) within
    ``NO_SUBQ_MM`` of the skin - none there, and the wall starts at the skin - and the
    wall is the soft tissue from the end of that run down to ``W`` mm deeper, where ``W``
    is the median length of the soft-tissue runs that end at internal fat or lung within
    30 mm (the measured wall thickness), clipped to 5-20 mm. Reading rays, not following
    the fat's connectivity, keeps the wall outside the abdominal cavity: subcutaneous fat
    joins the visceral fat and the lung through gaps of one voxel in a thin wall, and a
    flood fill through them makes every organ's rim against internal fat "wall". The trunk
    along a ray ends where the ray first leaves the body (from the centre outwards):
    beyond it lies an arm, never the liver or spleen, excluded as a whole.
    """
    fat = smooth < -30.0
    starts = np.full((body.shape[0], n_rays), np.nan)
    edge = np.full((body.shape[0], n_rays), np.inf)
    runs = []
    geometry = []
    step = 0.5
    for k in range(body.shape[0]):
        b = body[k]
        if not b.any():
            geometry.append(None)
            continue
        cy, cx = ndi.center_of_mass(b)
        r_max = float(np.hypot(*b.shape))
        radii = np.arange(r_max, 0.0, -step)  # from outside inwards
        theta = np.linspace(0.0, 2.0 * np.pi, n_rays, endpoint=False)
        yy = cy + np.sin(theta)[:, None] * radii[None, :]
        xx = cx + np.cos(theta)[:, None] * radii[None, :]
        inside = ndi.map_coordinates(b.astype(np.uint8), [yy, xx], order=0, cval=0) > 0
        is_fat = ndi.map_coordinates(fat[k].astype(np.uint8), [yy, xx], order=0, cval=1) > 0
        # the trunk ends where a ray first leaves the body: what lies beyond (an arm at
        # the side) is not trunk, and its skin is not the trunk's
        outward = ~inside[:, ::-1]
        first_out = np.where(outward.any(axis=1), np.argmax(outward, axis=1), radii.size)
        trunk_end = radii.size - first_out  # index (inwards) of the last trunk sample + 1
        inside &= np.arange(radii.size)[None, :] >= trunk_end[:, None]
        edge[k] = radii[np.clip(trunk_end, 0, radii.size - 1)]
        ws, length = _wall_along_rays(inside, is_fat, step * GRID_MM)
        starts[k] = np.where(ws >= 0, radii[np.clip(ws, 0, radii.size - 1)], np.nan)
        runs.append(length[(length > 0) & (length <= 30.0)])
        geometry.append((cy, cx))
    values = np.concatenate(runs) if runs else np.zeros(0)
    if values.size < 20:
        return np.zeros(body.shape, dtype=bool)
    thickness = float(np.clip(np.median(values), 5.0, 20.0)) / GRID_MM
    out = np.zeros(body.shape, dtype=bool)
    rows, cols = np.indices(body.shape[1:])
    for k, g in enumerate(geometry):
        if g is None:
            continue
        r = np.hypot(rows - g[0], cols - g[1])
        ray = np.rint(np.arctan2(rows - g[0], cols - g[1]) % (2 * np.pi) / (2 * np.pi) * n_rays)
        outer = starts[k][ray.astype(int) % n_rays]
        band = (r <= outer + 0.5) & (r > outer + 0.5 - thickness)
        out[k] = body[k] & ~fat[k] & np.nan_to_num(band, nan=0).astype(bool)
        out[k] |= body[k] & (r > edge[k][ray.astype(int) % n_rays] + 1.0)  # limbs
    return out


def _wall_along_rays(inside: np.ndarray, fat: np.ndarray, step_mm: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per ray (samples from outside inwards): index where the wall starts (-1: no body)
    and the length (mm) of the soft-tissue run from there to internal fat or air."""
    n = inside.shape[1]
    idx = np.arange(n)[None, :]
    has_body = inside.any(axis=1)
    skin = np.argmax(inside, axis=1)[:, None]
    after_skin = idx >= skin
    fat_in = fat & inside & after_skin
    has_fat = fat_in.any(axis=1)
    f0 = np.where(has_fat, np.argmax(fat_in, axis=1), n)[:, None]
    soft = inside & ~fat
    past = soft & (idx > f0)
    f1 = np.where(past.any(axis=1), np.argmax(past, axis=1), n)[:, None]
    no_subq = (f0 - skin) * step_mm > NO_SUBQ_MM
    start = np.where(no_subq, skin, f1)
    stop = (~soft) & (idx > start)
    end = np.where(stop.any(axis=1)[:, None], np.argmax(stop, axis=1)[:, None], n)
    length = np.where((end < n) & (start < n), (end - start) * step_mm, 0.0)[:, 0]
    start = np.where(has_body[:, None] & (start < n), start, -1)[:, 0]
    return start, length


def paraspinal_zone(coarse: np.ndarray, smooth: np.ndarray, body: np.ndarray, *,
                    behind_mm: float = 10.0, half_mm: float = 40.0) -> np.ndarray:
    """Soft tissue behind the front of the vertebral body and within 40 mm of the spine's
    midline (paraspinal muscles), per axial slice where a vertebra is seen.

    Vertebrae are components above 180 HU containing cortical bone (> 550 HU), on the
    midline in the body's posterior half. The liver and spleen lie lateral to this zone.
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
        by, bx = np.nonzero(body[k])
        mid = 0.5 * (bx.min() + bx.max())
        bj, bi = np.nonzero(bone[k])
        # the spine sits on the midline, in the body's posterior half (the sternum and
        # the xiphoid, also on the midline, lie in front)
        near = (np.abs(bi - mid) * GRID_MM < 30.0) & (bj > 0.5 * (by.min() + by.max()))
        if not near.any():
            continue
        x_s = float(np.median(bi[near]))
        front = float(bj[near].min()) + behind_mm / GRID_MM
        zone[k] = body[k] & (rows > front) & (np.abs(cols - x_s) < half) & ~bone[k]
    return zone


def _half_width(body: np.ndarray, cx: float) -> float:
    cols = np.flatnonzero(body.any(axis=(0, 1)))
    return float(max(cols[-1] - cx, cx - cols[0], 1.0))
