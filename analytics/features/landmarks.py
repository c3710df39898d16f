"""Anatomical landmarks found in CT images: the body outline and the aorta.

All functions take canonical arrays (axis 0 inferior -> superior, axis 1 anterior ->
posterior, axis 2 patient right -> left; see ``analytics.features.geometry``). Heavy work
is done on a coarse isotropic grid (``grid_mm``) and mapped back.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from analytics.features.measure import largest_component

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
    body = largest_component(image > BODY_MIN_HU)
    for k in range(body.shape[0]):
        body[k] = ndi.binary_fill_holes(body[k])
    return body


#: the abdominal aorta's lumen radius range searched (mm): 15-30 mm diameter, a little
#: less where the wall or the vertebra takes part of the disk
AORTA_RADII_MM = (4.0, 6.0, 8.0, 10.0, 12.0, 14.0)
#: cortical bone (HU on the coarse grid): marks the vertebra, never reached by blood
CORTICAL_HU = 500.0
#: bone (cancellous and cortical) on the slightly smoothed coarse grid
BONE_HU = 180.0
#: blood is between water and the densest arterial bolus
BLOOD_HU = (0.0, 700.0)
#: angles at which the lumen boundary is tested
N_ANGLES = 16
#: minimum fraction of the boundary that must be a real edge for a slice candidate
MIN_EDGE_FRACTION = 0.45
#: at most this fraction of the outline may be a side lying on bone
MAX_BONE_SIDE = 0.25


def find_aorta(image: np.ndarray, spacing: tuple[float, float, float], *,
               liver: np.ndarray | None = None, grid_mm: float = 2.0) -> np.ndarray | None:
    """The lumen core of the abdominal aorta (native-grid mask), or None if not found.

    Anatomy drives the search: per axial slice the vertebral body is located from its
    cortical bone (centre line and anterior edge, smoothed over z); the aorta is a round
    tube of 12-30 mm diameter in front of it, from a little right of its centre line to
    the left (the IVC lies further right), outside the liver when it is given. Each
    position and radius of that region is tested as a disk: a homogeneous core, the same
    level just inside the fitted wall and an edge just outside it over most of the
    circle (fat, bone or any tissue of another level; the aorta is as dark as muscle
    before contrast, so the level itself is never assumed); a side lying on the
    vertebra, where the blur of bone reaches into a lumen pressed flat against it,
    counts as edge for up to a quarter of the circle. The slice candidates are linked
    over z by dynamic programming (the tube's centre, radius and blood level change
    smoothly, a change of level costs score as blood keeps one level along the tube;
    gaps of a few slices are bridged) and the best chain must span at least half of the
    searched levels (the liver's, when given). Outlying slices are dropped. The mask is
    the lumen core: per slice, the voxels at the chain's blood level inside the fitted
    wall connected to the centre, so partial volume of the wall or bone does not bias its median.
    """
    coarse = to_grid(image, spacing, grid_mm)
    body = body_mask(coarse)
    if body.sum() < 1000:
        return None
    zs, in_liver = _search_levels(body, liver, spacing, grid_mm)
    if zs.size < 3:
        return None
    k0, k1 = int(zs[0]), int(zs[-1]) + 1
    region = _search_region(coarse, body, in_liver, k0, k1, grid_mm)
    if region is None:
        return None
    y0, y1, x0, x1, allowed = region
    sub = coarse[k0:k1, y0:y1, x0:x1]
    # the aorta runs along z: smoothing along it too keeps its edges and halves the noise
    smooth = ndi.gaussian_filter(sub, (1.0, 1.0, 1.0), mode="nearest")
    noise = _noise_sd(sub, smooth, body[k0:k1, y0:y1, x0:x1])
    edge_hu = max(30.0, 5.0 * 0.4 * noise)
    level_hu = max(20.0, 3.0 * 0.4 * noise)
    cortical = ndi.maximum_filter(sub > CORTICAL_HU, size=(1, 3, 3))
    score, radius, level = _disk_scores(sub, smooth, cortical, allowed, grid_mm, noise,
                                        edge_hu, level_hu)
    chain = _track(score, radius, level, grid_mm, edge_hu)
    if chain is None or len(chain) < max(3, 0.5 * (k1 - k0)):
        return None
    out = np.zeros(coarse.shape, dtype=bool)
    out[k0:k1, y0:y1, x0:x1] = _lumen_core(chain, smooth, cortical, level_hu, grid_mm)
    if not out.any():
        return None
    return from_grid(out, image.shape, spacing, grid_mm)


def _search_levels(body: np.ndarray, liver: np.ndarray | None,
                   spacing: tuple[float, float, float], grid_mm: float
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """Coarse slices searched (the body's, or the liver's when given) and the liver there.

    Returns the slice indices and the liver on the coarse grid (None without a liver).
    """
    zs = np.flatnonzero(body.any(axis=(1, 2)))
    in_liver = None
    if liver is not None and liver.any():
        # the aorta runs outside the liver: no lumen centre is searched inside it (at
        # equal attenuation before contrast, the caudate lobe next to it is a smooth
        # region of the same level)
        in_liver = _native_on_grid(liver, spacing, grid_mm, body.shape)
        lz = np.flatnonzero(from_grid_mask_any(liver, spacing, grid_mm, body.shape))
        if lz.size:
            zs = np.arange(lz[0], lz[-1] + 1)
    return zs, in_liver


def _search_region(coarse: np.ndarray, body: np.ndarray, in_liver: np.ndarray | None,
                   k0: int, k1: int, grid_mm: float
                   ) -> tuple[int, int, int, int, np.ndarray] | None:
    """Where lumen centres are searched in front of the spine, on slices ``[k0, k1)``.

    Returns the box ``y0, y1, x0, x1`` (coarse voxels, with room for the largest disk)
    and the allowed centres within it, or None without a vertebra or room for a disk.
    """
    anchor = _spine_anchor(coarse[k0:k1], body[k0:k1], grid_mm)
    if anchor is None:
        return None
    xc, front = anchor  # per slice of [k0, k1), coarse voxel units
    rmax = max(AORTA_RADII_MM) / grid_mm
    pad = int(np.ceil(rmax + 4.0 / grid_mm)) + 1
    # search region: centres from 12 mm right of the vertebral centre line to 45 mm left
    # of it, from 50 mm in front of the vertebral body's anterior edge to 4 mm behind it
    # (the marrow further back is as bright as an enhanced lumen)
    lo_i, hi_i = np.floor(xc - 12.0 / grid_mm), np.ceil(xc + 45.0 / grid_mm)
    lo_j, hi_j = np.floor(front - 50.0 / grid_mm), np.ceil(front + 4.0 / grid_mm)
    y0 = max(0, int(lo_j.min()) - pad)
    y1 = min(coarse.shape[1], int(hi_j.max()) + pad + 1)
    x0 = max(0, int(lo_i.min()) - pad)
    x1 = min(coarse.shape[2], int(hi_i.max()) + pad + 1)
    if y1 - y0 < 2 * pad or x1 - x0 < 2 * pad:
        return None
    jj, ii = np.mgrid[y0:y1, x0:x1]
    allowed = ((ii[None] >= lo_i[:, None, None]) & (ii[None] <= hi_i[:, None, None])
               & (jj[None] >= lo_j[:, None, None]) & (jj[None] <= hi_j[:, None, None])
               & body[k0:k1, y0:y1, x0:x1])
    if in_liver is not None:
        allowed &= ~in_liver[k0:k1, y0:y1, x0:x1]
    return y0, y1, x0, x1, allowed


def _lumen_core(chain: list, smooth: np.ndarray, cortical: np.ndarray, level_hu: float,
                grid_mm: float) -> np.ndarray:
    """The lumen of each slice of ``chain`` in the search box (``smooth``'s shape).

    Per slice: the voxels at the chain's blood level (smoothed over 2 mm, so those whose
    level is reached lie inside the wall's blur) within the fitted wall (+2 mm),
    connected to the centre.
    """
    out = np.zeros(smooth.shape, dtype=bool)
    blood = float(np.median([c[4] for c in chain]))
    lumen = (np.abs(smooth - blood) <= level_hu) & ~cortical
    for k, j, i, r, _lvl in chain:
        reach = (r + 2.0) / grid_mm
        m = int(np.ceil(reach))
        js = slice(max(0, j - m), min(smooth.shape[1], j + m + 1))
        is_ = slice(max(0, i - m), min(smooth.shape[2], i + m + 1))
        yy, xx = np.ogrid[js, is_]
        region = lumen[k, js, is_] & ((yy - j) ** 2 + (xx - i) ** 2 <= reach * reach)
        lab, _ = ndi.label(region)
        if lab[j - js.start, i - is_.start] == 0:
            continue
        out[k, js, is_] |= lab == lab[j - js.start, i - is_.start]
    return out


def _spine_anchor(coarse: np.ndarray, body: np.ndarray, grid_mm: float
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """Per slice, the vertebral body's centre line (x) and anterior edge (y), voxels.

    Cortical bone within 40 mm of the body's centre line and behind its anterior 30%
    (costal cartilage, sternum) is the spine; its median x is the centre line, and the
    most anterior point near that line of the bone holding it (above ``BONE_HU``) is the
    vertebral body's front. Slices without bone
    take the values of their neighbours; both are median-smoothed over z.
    """
    n = coarse.shape[0]
    _, cy, cx = ndi.center_of_mass(body)
    ys = np.flatnonzero(body.any(axis=(0, 2)))
    y_min = cy - 0.2 * (ys[-1] - ys[0]) if ys.size else cy
    band = 40.0 / grid_mm
    i_lo, i_hi = max(0, int(cx - band)), min(coarse.shape[2], int(cx + band) + 1)
    j_lo = max(0, int(y_min))
    xc = np.full(n, np.nan)
    front = np.full(n, np.nan)
    band_img = coarse[:, j_lo:, i_lo:i_hi]
    cortical = band_img > CORTICAL_HU
    labels, n_lab = ndi.label(ndi.gaussian_filter(band_img, (0.0, 1.0, 1.0)) > BONE_HU)
    if n_lab == 0:
        return None
    has_cortex = np.zeros(n_lab + 1, dtype=bool)
    has_cortex[np.unique(labels[cortical & (labels > 0)])] = True
    has_cortex[0] = False
    bone = has_cortex[labels]
    for k in range(n):
        bj, bi = np.nonzero(cortical[k])
        if bj.size < 3:
            continue
        c = float(np.median(bi))
        fj, fi = np.nonzero(bone[k])
        near = np.abs(fi - c) * grid_mm <= 8.0
        if not near.any():
            continue
        xc[k] = c + i_lo
        front[k] = float(fj[near].min()) + j_lo
    ok = np.isfinite(xc)
    if ok.sum() < max(3, 0.3 * n):
        return None
    idx = np.arange(n)
    xc = np.interp(idx, idx[ok], xc[ok])
    front = np.interp(idx, idx[ok], front[ok])
    size = max(3, round(10.0 / grid_mm) | 1)
    return (ndi.median_filter(xc, size=size, mode="nearest"),
            ndi.median_filter(front, size=size, mode="nearest"))


def _noise_sd(sub: np.ndarray, smooth: np.ndarray, body: np.ndarray) -> float:
    """Robust image noise SD (HU): MAD of the fine detail in soft tissue and fat."""
    resid = (sub - smooth)[body & (np.abs(smooth) < 300.0)]
    if resid.size < 100:
        return 20.0
    mad = float(np.median(np.abs(resid - np.median(resid))))
    return 1.4826 * mad / 0.8  # the detail keeps ~0.8 of white noise through sigma 1


def _shift(a: np.ndarray, dj: int, di: int, fill: float) -> np.ndarray:
    """``out[:, j, i] = a[:, j + dj, i + di]`` (``fill`` outside)."""
    out = np.full(a.shape, fill, dtype=a.dtype)
    ny, nx = a.shape[1:]
    dst_j = slice(max(0, -dj), min(ny, ny - dj))
    dst_i = slice(max(0, -di), min(nx, nx - di))
    src_j = slice(max(0, dj), min(ny, ny + dj))
    src_i = slice(max(0, di), min(nx, nx + di))
    out[:, dst_j, dst_i] = a[:, src_j, src_i]
    return out


def _disk_scores(sub, smooth, cortical, allowed, grid_mm, noise, edge_hu, level_hu):
    """Best disk per voxel: edge fraction, radius (mm) and core level (HU)."""
    best = np.zeros(sub.shape, dtype=np.float32)
    best_r = np.zeros(sub.shape, dtype=np.float32)
    best_lvl = np.zeros(sub.shape, dtype=np.float32)
    theta = np.linspace(0.0, 2.0 * np.pi, N_ANGLES, endpoint=False)
    sq = sub.astype(np.float64) ** 2
    for r_mm in AORTA_RADII_MM:
        rc = max(grid_mm, r_mm - 3.0) / grid_mm
        m = int(np.ceil(rc))
        yy, xx = np.mgrid[-m:m + 1, -m:m + 1]
        kern = (yy * yy + xx * xx <= rc * rc + 1e-6).astype(np.float64)
        kern = np.repeat(kern[None], 3, axis=0)  # three slices: the tube is vertical
        kern /= kern.sum()
        mean = ndi.correlate(sub.astype(np.float64), kern, mode="nearest")
        sd = np.sqrt(np.maximum(ndi.correlate(sq, kern, mode="nearest") - mean * mean, 0.0))
        has_bone = ndi.correlate(cortical.astype(np.float32), kern.astype(np.float32),
                                 mode="constant") > 0
        ok = (allowed & (sd <= 1.6 * noise + 5.0) & (mean > BLOOD_HU[0])
              & (mean < BLOOD_HU[1]) & ~has_bone)
        if not ok.any():
            continue
        edges = np.zeros(sub.shape, dtype=np.float32)
        on_bone = np.zeros(sub.shape, dtype=np.float32)
        for t in theta:
            c, s = np.cos(t), np.sin(t)
            dj_in, di_in = (round(v * (r_mm - 2.0) / grid_mm) for v in (s, c))
            dj_out, di_out = (round(v * (r_mm + 4.0) / grid_mm) for v in (s, c))
            inner = _shift(smooth, dj_in, di_in, np.nan)
            outer = _shift(smooth, dj_out, di_out, np.nan)
            edges += ((np.abs(inner - mean) <= level_hu)
                      & (np.abs(outer - mean) > edge_hu)).astype(np.float32)
            # a side lying on the vertebra: the wall's blur with bone reaches the inner
            # point, and bone lies beyond it
            on_bone += ((np.abs(inner - mean) > level_hu) & (inner > mean)
                        & (outer > BONE_HU) & (outer > mean + edge_hu)).astype(np.float32)
        edges += np.minimum(on_bone, MAX_BONE_SIDE * N_ANGLES)
        frac = np.where(ok, edges / N_ANGLES, 0.0)
        better = frac > best + 1e-6
        best[better] = frac[better]
        best_r[better] = r_mm
        best_lvl[better] = mean[better]
    return best, best_r, best_lvl


def _track(score, radius, level, grid_mm, edge_hu):
    """The best chain of slice candidates over z: ``[(k, j, i, radius_mm, level), ...]``.

    Candidates are the local maxima of the disk score (at least ``MIN_EDGE_FRACTION``);
    a chain links candidates of slices up to 3 apart whose centres move at most 3 mm
    plus 1 mm per mm of z gap... (kept small: the aorta is nearly vertical), radius by at
    most 4 mm and level by less than the edge contrast. Its value is the sum of scores
    minus a gap penalty. After the best chain, slices off its running median position
    are dropped.
    """
    n = score.shape[0]
    nodes = []  # (k, j, i, score, r, level)
    foot = round(8.0 / grid_mm) * 2 + 1
    for k in range(n):
        s = score[k]
        if s.max() < MIN_EDGE_FRACTION:
            continue
        peaks = (s == ndi.maximum_filter(s, size=foot)) & (s >= MIN_EDGE_FRACTION)
        pts = np.argwhere(peaks)
        order = np.argsort(-s[peaks])[:8]
        for j, i in pts[order]:
            nodes.append((k, int(j), int(i), float(s[j, i]), float(radius[k, j, i]),
                          float(level[k, j, i])))
    if not nodes:
        return None
    val = np.array([nd[3] for nd in nodes])
    prev = np.full(len(nodes), -1)
    by_k: dict[int, list[int]] = {}
    for a, nd in enumerate(nodes):
        by_k.setdefault(nd[0], []).append(a)
    for a, (k, j, i, s, r, lvl) in enumerate(nodes):
        for gap in (1, 2, 3):
            for b in by_k.get(k - gap, []):
                _kb, jb, ib, _sb, rb, lb = nodes[b]
                d = np.hypot(j - jb, i - ib) * grid_mm
                if d > 3.0 + 1.0 * gap * grid_mm or abs(r - rb) > 4.0 \
                        or abs(lvl - lb) > edge_hu:
                    continue
                # blood keeps one level along the tube (bowel content and wall do not)
                cand = val[b] + s - 0.5 * (gap - 1) - 0.5 * abs(lvl - lb) / edge_hu
                if cand > val[a]:
                    val[a], prev[a] = cand, b
    a = int(np.argmax(val))
    chain = []
    while a >= 0:
        k, j, i, _s, r, lvl = nodes[a]
        chain.append((k, j, i, r, lvl))
        a = int(prev[a])
    chain.reverse()
    c = np.array([(j, i) for _k, j, i, _r, _l in chain], dtype=float)
    if len(chain) >= 3:
        med = np.stack([ndi.median_filter(c[:, 0], size=5, mode="nearest"),
                        ndi.median_filter(c[:, 1], size=5, mode="nearest")], axis=1)
        keep = np.hypot(*(c - med).T) * grid_mm <= 4.0
        chain = [ch for ch, kp in zip(chain, keep, strict=True) if kp]
    return chain


def from_grid_mask_any(mask: np.ndarray, spacing: tuple[float, float, float],
                       grid_mm: float, coarse_shape: tuple[int, ...]) -> np.ndarray:
    """Which coarse slices (axis 0) contain any voxel of a native-grid mask."""
    native = mask.any(axis=(1, 2))
    out = np.zeros(coarse_shape[0], dtype=bool)
    k = np.clip(((np.flatnonzero(native) + 0.5) * spacing[0] / grid_mm).astype(int), 0,
                coarse_shape[0] - 1)
    out[k] = True
    return out


def _native_on_grid(mask: np.ndarray, spacing: tuple[float, float, float], grid_mm: float,
                    coarse_shape: tuple[int, ...]) -> np.ndarray:
    """A native-grid mask sampled at the coarse grid's points (nearest native voxel)."""
    idx = []
    for ax in range(3):
        first = 0.5 * (mask.shape[ax] * spacing[ax] - (coarse_shape[ax] - 1) * grid_mm)
        pos = first + np.arange(coarse_shape[ax]) * grid_mm
        idx.append(np.clip(np.floor(pos / spacing[ax]).astype(int), 0, mask.shape[ax] - 1))
    return mask[np.ix_(*idx)]
