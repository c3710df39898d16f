"""Anatomical landmarks found in CT images: the body outline and the aorta.

All functions take canonical arrays (axis 0 inferior -> superior, axis 1 anterior ->
posterior, axis 2 patient right -> left; see ``analytics.features.geometry``). Heavy work
is done on a coarse isotropic grid (``grid_mm``) and mapped back.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

BODY_MIN_HU = -400.0


def to_grid(array: np.ndarray, spacing: tuple[float, float, float], grid_mm: float,
            *, order: int = 1) -> np.ndarray:
    """Resample a canonical array to an isotropic grid (linear or nearest)."""
    zoom = [s / grid_mm for s in spacing]
    if order == 0:
        return ndi.zoom(array.astype(np.uint8), zoom, order=0, grid_mode=True,
                        mode="grid-constant").astype(bool)
    img = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))
    img.SetSpacing((spacing[2], spacing[1], spacing[0]))
    size = [max(2, round(n * s / grid_mm)) for n, s in zip(img.GetSize(), img.GetSpacing(),
                                                         strict=True)]
    # grid centred on the image extent, so a flipped volume samples the same points
    origin = [-0.5 * s + 0.5 * (n * s - (m - 1) * grid_mm)
              for n, s, m in zip(img.GetSize(), img.GetSpacing(), size, strict=True)]
    out = sitk.Resample(img, size, sitk.Transform(), sitk.sitkLinear, origin, (grid_mm,) * 3,
                        img.GetDirection(), -1024.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def from_grid(mask: np.ndarray, shape: tuple[int, int, int],
              spacing: tuple[float, float, float], grid_mm: float) -> np.ndarray:
    """Map a coarse-grid mask back to the native grid (nearest coarse voxel)."""
    idx = []
    for ax in range(3):
        # coarse sample 0 sits at the same centred offset as in ``to_grid``
        first = 0.5 * (shape[ax] * spacing[ax] - (mask.shape[ax] - 1) * grid_mm)
        centres = (np.arange(shape[ax]) + 0.5) * spacing[ax]
        j = np.clip(np.rint((centres - first) / grid_mm).astype(int), 0, mask.shape[ax] - 1)
        idx.append(j)
    return mask[np.ix_(*idx)]


def body_mask(image: np.ndarray) -> np.ndarray:
    """The patient's body: largest component above -400 HU, holes filled per slice."""
    above = image > BODY_MIN_HU
    labels, n = ndi.label(above)
    if n == 0:
        return above
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    body = labels == int(np.argmax(sizes))
    for k in range(body.shape[0]):
        body[k] = ndi.binary_fill_holes(body[k])
    return body


def find_aorta(image: np.ndarray, spacing: tuple[float, float, float], *,
               liver: np.ndarray | None = None, grid_mm: float = 2.0) -> np.ndarray | None:
    """A small mask on the abdominal aorta (native grid), or None if not found.

    The aorta is the vertical tube just left of the midline in front of the spine: per
    axial slice, among the strong tubular (Hessian objectness, 4-6 mm scales) maxima of a
    central region outside bone, the one nearest the expected spot in front of and left of
    the vertebral body (the leftmost one when no vertebra is seen); slices whose
    candidate agrees with the median position are kept and a 4 mm disk is drawn around
    each candidate.
    """
    coarse = to_grid(image, spacing, grid_mm)
    body = body_mask(coarse)
    if body.sum() < 1000:
        return None
    zs = np.flatnonzero(body.any(axis=(1, 2)))
    if liver is not None and liver.any():
        lz = np.flatnonzero(from_grid_mask_any(liver, spacing, grid_mm, coarse.shape))
        if lz.size:
            zs = np.arange(lz[0], lz[-1] + 1)
    _, cy, cx = ndi.center_of_mass(body)
    half_x = 60.0 / grid_mm
    y0 = int(max(0, cy - 40.0 / grid_mm))
    y1 = int(min(coarse.shape[1], cy + 80.0 / grid_mm))
    x0 = int(max(0, cx - half_x))
    x1 = int(min(coarse.shape[2], cx + half_x))
    if y1 - y0 < 5 or x1 - x0 < 5:
        return None
    sub = coarse[:, y0:y1, x0:x1]
    img = sitk.GetImageFromArray(np.ascontiguousarray(np.clip(sub, -200.0, 600.0)))
    img.SetSpacing((grid_mm,) * 3)
    best = None
    for s in (4.0, 6.0):
        sm = sitk.SmoothingRecursiveGaussian(img, s) * (s * s)
        v = sitk.GetArrayFromImage(sitk.ObjectnessMeasure(
            sm, alpha=0.5, beta=0.5, gamma=5.0, objectDimension=1, brightObject=True))
        best = v if best is None else np.maximum(best, v)
    smooth = ndi.gaussian_filter(sub, 1.0)
    # bone (vertebrae: components above 180 HU that contain cortical bone > 550 HU) is
    # never the aorta, even when the aorta is as bright as marrow in the arterial phase
    labels, n = ndi.label(smooth > 180.0)
    if n:
        cortical = np.zeros(n + 1, dtype=bool)
        cortical[np.unique(labels[(sub > 550.0) & (labels > 0)])] = True
        cortical[0] = False
        bone = ndi.binary_dilation(cortical[labels], iterations=1)
        best[bone] = 0.0
    else:
        bone = np.zeros(sub.shape, dtype=bool)
    cands = []
    for k in zs:
        vk = best[k]
        if vk.max() <= 0:
            continue
        peaks = (vk == ndi.maximum_filter(vk, size=int(20 / grid_mm) | 1)) & (
            vk >= 0.5 * vk.max()) & (smooth[k] > -20.0) & (smooth[k] < 700.0)
        pts = np.argwhere(peaks)
        if len(pts) == 0:
            continue
        if bone[k].any():
            # the aorta lies just in front of the vertebral body, a little to its left
            bj, bi = np.argwhere(bone[k]).T
            centre_i = float(np.median(bi))
            front_j = float(bj[np.abs(bi - centre_i) * grid_mm < 10.0].min())
            expected = np.array([front_j - 12.0 / grid_mm, centre_i + 15.0 / grid_mm])
            dist = np.hypot(*(pts - expected).T) * grid_mm
            if dist.min() > 40.0:
                continue
            j, i = pts[np.argmin(dist)]
        else:
            j, i = pts[np.argmax(pts[:, 1])]  # leftmost: the aorta lies left of the IVC
        cands.append((k, j, i))
    if len(cands) < 3:
        return None
    c = np.asarray(cands)
    mj, mi = np.median(c[:, 1]), np.median(c[:, 2])
    ok = c[np.hypot(c[:, 1] - mj, c[:, 2] - mi) * grid_mm <= 10.0]
    if len(ok) < max(3, 0.3 * len(c)):
        return None
    out = np.zeros(coarse.shape, dtype=bool)
    r = max(1, round(4.0 / grid_mm))
    yy, xx = np.ogrid[-r:r + 1, -r:r + 1]
    disk = yy * yy + xx * xx <= r * r
    for k, j, i in ok:
        jj, ii = j + y0, i + x0
        sl = (k, slice(max(0, jj - r), jj + r + 1), slice(max(0, ii - r), ii + r + 1))
        d = disk[r - (jj - sl[1].start):r + (sl[1].stop - jj),
                 r - (ii - sl[2].start):r + (sl[2].stop - ii)]
        out[sl] |= d
    return from_grid(out, image.shape, spacing, grid_mm)


def from_grid_mask_any(mask: np.ndarray, spacing: tuple[float, float, float],
                       grid_mm: float, coarse_shape: tuple[int, ...]) -> np.ndarray:
    """Which coarse slices (axis 0) contain any voxel of a native-grid mask."""
    native = mask.any(axis=(1, 2))
    out = np.zeros(coarse_shape[0], dtype=bool)
    k = np.clip(((np.flatnonzero(native) + 0.5) * spacing[0] / grid_mm).astype(int), 0,
                coarse_shape[0] - 1)
    out[k] = True
    return out
