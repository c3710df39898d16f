"""Splitting an organ candidate where it narrows, and the ball structuring elements of the
classical segmentation (``analytics.features.segmentation``)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

_BALL_CACHE: dict[int, np.ndarray] = {}


def ball(radius_vox: int) -> np.ndarray:
    """A 3-D ball of this radius (voxels), cached."""
    if radius_vox not in _BALL_CACHE:
        r = radius_vox
        z, y, x = np.ogrid[-r:r + 1, -r:r + 1, -r:r + 1]
        _BALL_CACHE[r] = (z * z + y * y + x * x) <= r * r
    return _BALL_CACHE[radius_vox]


def split_at_necks(core: np.ndarray, ratio: float) -> tuple[np.ndarray, int, np.ndarray]:
    """Split every component of ``core`` where it narrows: returns the label image of the
    pieces, their number and, per piece, the component it came from (index 0 unused).

    Markers are the maxima of the distance map; the watershed of the inverted distance
    map grows them into regions, and neighbouring regions are merged back, widest neck
    first, while the neck's radius is at least ``ratio`` times the smaller of the two
    regions' largest radii (a lobe of the organ stays, an organ touching it goes).
    ``ratio <= 0`` leaves the components whole.
    """
    labels, n = ndi.label(core)
    if n == 0 or ratio <= 0:
        return labels, n, np.arange(n + 1)
    out = np.zeros(core.shape, dtype=np.int32)
    origin = [0]
    total = 0
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        sl = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in sl)
        parts, k = _split_one(labels[sl] == i, ratio)
        out[sl][parts > 0] = parts[parts > 0] + total
        total += k
        origin += [i] * k
    return out, total, np.asarray(origin)


def _split_one(m: np.ndarray, ratio: float) -> tuple[np.ndarray, int]:
    from skimage.segmentation import watershed

    dist = ndi.distance_transform_edt(m)
    maxima = m & (dist >= ndi.maximum_filter(dist, footprint=ball(2))) & (dist >= 1.5)
    markers, n = ndi.label(maxima, structure=np.ones((3, 3, 3)))
    if n < 2:
        return m.astype(np.int32), 1
    ws = watershed(-dist, markers, mask=m)
    radius = np.zeros(n + 1)
    radius[1:] = ndi.maximum(dist, ws, index=np.arange(1, n + 1))
    # neck radius between two regions: the widest point of their common border
    keys, vals = [], []
    for ax in range(3):
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[ax], b[ax] = slice(0, -1), slice(1, None)
        la, lb = ws[tuple(a)], ws[tuple(b)]
        sel = (la != lb) & (la > 0) & (lb > 0)
        if sel.any():
            lo = np.minimum(la[sel], lb[sel]).astype(np.int64)
            hi = np.maximum(la[sel], lb[sel]).astype(np.int64)
            keys.append(lo * (n + 1) + hi)
            vals.append(np.minimum(dist[tuple(a)][sel], dist[tuple(b)][sel]))
    parent = np.arange(n + 1)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    if keys:
        pairs, inv = np.unique(np.concatenate(keys), return_inverse=True)
        neck = np.zeros(pairs.size)
        np.maximum.at(neck, inv, np.concatenate(vals))
        for j in np.argsort(neck)[::-1]:
            ra, rb = find(int(pairs[j] // (n + 1))), find(int(pairs[j] % (n + 1)))
            if ra != rb and neck[j] >= ratio * min(radius[ra], radius[rb]):
                parent[rb] = ra
                radius[ra] = max(radius[ra], radius[rb])
    roots = np.array([find(i) for i in range(n + 1)])
    roots[0] = 0
    _, relabel = np.unique(roots, return_inverse=True)
    return relabel[ws].astype(np.int32), int(relabel.max())
