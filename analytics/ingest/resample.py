"""Nearest-neighbour resampling of a label grid onto a reference volume, in patient space.

Grids are described by 4x4 affines mapping voxel index ``(i, j, k, 1)`` (column, row,
slice) to LPS millimetres; arrays are indexed ``[k, j, i]`` as in :class:`Volume`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from analytics.ingest.volume import Volume

_INT_TOL = 1e-3


def index_affine(origin: Sequence[float], direction: np.ndarray,
                 spacing_zyx: Sequence[float]) -> np.ndarray:
    """4x4 affine: index (i, j, k) -> LPS, for spacing given as (z, y, x) like Volume."""
    sz, sy, sx = spacing_zyx
    a = np.eye(4)
    a[:3, :3] = np.asarray(direction, dtype=float) @ np.diag([sx, sy, sz])
    a[:3, 3] = np.asarray(origin, dtype=float)
    return a


def volume_affine(vol: Volume) -> np.ndarray:
    return index_affine(vol.origin_mm, vol.direction, vol.spacing_mm)


def resample_nearest(src: np.ndarray, src_affine: np.ndarray, reference: Volume) -> np.ndarray:
    """``src`` ([k, j, i], affine ``src_affine``) sampled at every voxel of ``reference``.

    Voxels of the reference that fall outside ``src`` are False/0. When the grids coincide
    up to a whole-voxel shift, this is a copy of the overlapping block.
    """
    m = np.linalg.inv(src_affine) @ volume_affine(reference)  # ref index -> src index
    nz, ny, nx = reference.shape
    out = np.zeros((nz, ny, nx), dtype=src.dtype)
    lin, t = m[:3, :3], m[:3, 3]
    if np.abs(lin - np.eye(3)).max() < _INT_TOL and np.abs(t - np.round(t)).max() < _INT_TOL:
        di, dj, dk = (round(v) for v in t)
        sk, sj, si = src.shape
        k0, k1 = max(0, -dk), min(nz, sk - dk)
        j0, j1 = max(0, -dj), min(ny, sj - dj)
        i0, i1 = max(0, -di), min(nx, si - di)
        if k0 < k1 and j0 < j1 and i0 < i1:
            out[k0:k1, j0:j1, i0:i1] = src[k0 + dk:k1 + dk, j0 + dj:j1 + dj, i0 + di:i1 + di]
        return out
    jj, ii = np.mgrid[0:ny, 0:nx]
    sk, sj, si = src.shape
    for k in range(nz):
        # floor(x + 0.5): ties go up, the same rule in every direction
        s_i = np.floor(lin[0, 0] * ii + lin[0, 1] * jj + lin[0, 2] * k + t[0] + 0.5).astype(np.intp)
        s_j = np.floor(lin[1, 0] * ii + lin[1, 1] * jj + lin[1, 2] * k + t[1] + 0.5).astype(np.intp)
        s_k = np.floor(lin[2, 0] * ii + lin[2, 1] * jj + lin[2, 2] * k + t[2] + 0.5).astype(np.intp)
        ok = (s_i >= 0) & (s_i < si) & (s_j >= 0) & (s_j < sj) & (s_k >= 0) & (s_k < sk)
        out[k][ok] = src[s_k[ok], s_j[ok], s_i[ok]]
    return out
