"""Branching portal and hepatic vein trees inside the synthetic liver.

Trees grow from their trunks by repeated bifurcation. Child radii follow Murray's law
(``r^3 = r1^3 + r2^3``) with a random asymmetry, branching angles follow the
minimum-work optimum for those radii, and branches near the liver surface are steered
back inside. Segments are stored parent-before-child, so pruning (cirrhotic rarefaction
of peripheral branches) can drop a branch together with everything downstream of it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from analytics.synthetic.fields import Grid1D

PORTAL, HEPATIC = 0, 1
SdfFn = Callable[[np.ndarray], np.ndarray]  # (N, 3) points (x, y, z) mm -> (N,) mm


@dataclass(frozen=True)
class VesselTree:
    """Line segments with radii, in body coordinates of the patient's reference liver.

    Attributes
    ----------
    start, end
        ``(N, 3)`` segment end points ``(x, y, z)`` in mm.
    radius
        ``(N,)`` radius in mm.
    parent
        ``(N,)`` index of the parent segment, -1 for a trunk; parents precede children.
    prune_rank
        ``(N,)`` uniform [0, 1): a peripheral segment is pruned when its rank is below
        the visit's pruning fraction, so pruning only ever grows over a patient's visits.
    kind
        ``(N,)`` ``PORTAL`` or ``HEPATIC``.
    """

    start: np.ndarray
    end: np.ndarray
    radius: np.ndarray
    parent: np.ndarray
    prune_rank: np.ndarray
    kind: np.ndarray

    def __len__(self) -> int:
        return len(self.radius)

    def kept(self, pruning: float, prunable_radius_mm: float = 2.5) -> np.ndarray:
        """Boolean mask of the segments that survive a pruning fraction in [0, 1]."""
        drop = (self.radius < prunable_radius_mm) & (self.prune_rank < pruning)
        for i, p in enumerate(self.parent):
            if p >= 0 and drop[p]:
                drop[i] = True
        return ~drop


def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation of ``v`` about the unit ``axis``."""
    return (v * np.cos(angle) + np.cross(axis, v) * np.sin(angle)
            + axis * np.dot(axis, v) * (1.0 - np.cos(angle)))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def _gradient(sdf: SdfFn, p: np.ndarray, eps: float = 1.0) -> np.ndarray:
    offsets = np.vstack([np.eye(3), -np.eye(3)]) * eps
    vals = sdf(p[None, :] + offsets)
    return _unit(vals[:3] - vals[3:])


def _murray_angles(r: float, r1: float, r2: float) -> tuple[float, float]:
    """Minimum-work bifurcation angles (radians) of two children of a parent of radius r."""
    c1 = (r**4 + r1**4 - r2**4) / (2 * r**2 * r1**2)
    c2 = (r**4 + r2**4 - r1**4) / (2 * r**2 * r2**2)
    return float(np.arccos(np.clip(c1, -1, 1))), float(np.arccos(np.clip(c2, -1, 1)))


def grow_tree(rng: np.random.Generator, sdf: SdfFn,
              trunks: list[tuple[tuple[float, float, float], tuple[float, float, float], float,
                                 int]],
              *, min_radius_mm: float = 1.2, max_segments: int = 700) -> VesselTree:
    """Grow vessel trees from ``trunks`` = ``[(point, direction, radius_mm, kind), ...]``.

    Parameters
    ----------
    rng
        Random generator (the patient's).
    sdf
        Signed distance (mm, negative inside) of the liver the vessels must stay in.
    min_radius_mm
        Branches thinner than this are not grown.
    max_segments
        Cap on the total number of segments (growth is breadth-first, so the thinnest
        generations are the ones left out).
    """
    starts, ends, radii, parents, kinds = [], [], [], [], []
    queue = deque((np.asarray(p, float), _unit(np.asarray(d, float)), r, -1, k)
                  for p, d, r, k in trunks)
    while queue and len(radii) < max_segments:
        p0, d, r, parent, kind = queue.popleft()
        length = float(np.clip(r * rng.uniform(5.0, 9.0), 5.0, 35.0))
        p1 = p0 + d * length
        if sdf(p1[None, :])[0] > -max(r, 2.0):
            p1 = p0 + d * length * 0.5
            if sdf(p1[None, :])[0] > -max(r, 2.0):
                continue
        idx = len(radii)
        starts.append(p0)
        ends.append(p1)
        radii.append(r)
        parents.append(parent)
        kinds.append(kind)
        alpha = rng.uniform(0.55, 1.0)
        r1 = r / (1.0 + alpha**3) ** (1.0 / 3.0)
        r2 = alpha * r1
        th1, th2 = _murray_angles(r, r1, r2)
        axis = _unit(np.cross(d, _unit(rng.normal(size=3))))
        near_surface = sdf(p1[None, :])[0] > -20.0
        grad = _gradient(sdf, p1) if near_surface else None
        for child_r, angle in ((r1, th1), (r2, -th2)):
            if child_r < min_radius_mm:
                continue
            cd = _rotate(d, axis, angle + rng.normal(0.0, 0.08))
            if grad is not None:
                cd = cd - 0.8 * max(float(np.dot(cd, grad)), 0.0) * grad
            queue.append((p1, _unit(cd), float(child_r), idx, kind))
    n = len(radii)
    return VesselTree(
        start=np.asarray(starts, float).reshape(n, 3),
        end=np.asarray(ends, float).reshape(n, 3),
        radius=np.asarray(radii, float),
        parent=np.asarray(parents, int),
        prune_rank=rng.uniform(0.0, 1.0, size=n),
        kind=np.asarray(kinds, int),
    )


def rasterize_segments(start: np.ndarray, end: np.ndarray, radius: np.ndarray,
                       grid: Grid1D) -> np.ndarray:
    """Voxels whose centre lies within ``radius`` of a segment (capsules), ``[z, y, x]``.

    Each capsule is evaluated only inside its own bounding box, so the cost scales with
    the vessels' volume, not the grid's.
    """
    zs, ys, xs = (np.asarray(a, np.float64) for a in grid)
    out = np.zeros((len(zs), len(ys), len(xs)), dtype=bool)
    axes = (xs, ys, zs)
    for a, b, r in zip(start, end, radius, strict=True):
        lo = np.minimum(a, b) - r
        hi = np.maximum(a, b) + r
        sl = []
        for dim, coords in enumerate(axes):
            i0 = int(np.searchsorted(coords, lo[dim], side="left"))
            i1 = int(np.searchsorted(coords, hi[dim], side="right"))
            sl.append(slice(i0, i1))
        if any(s.stop <= s.start for s in sl):
            continue
        x = xs[sl[0]][None, None, :] - a[0]
        y = ys[sl[1]][None, :, None] - a[1]
        z = zs[sl[2]][:, None, None] - a[2]
        ab = b - a
        denom = max(float(ab @ ab), 1e-9)
        t = np.clip((x * ab[0] + y * ab[1] + z * ab[2]) / denom, 0.0, 1.0)
        d2 = (x - t * ab[0]) ** 2 + (y - t * ab[1]) ** 2 + (z - t * ab[2]) ** 2
        out[sl[2], sl[1], sl[0]] |= d2 <= r * r
    return out
