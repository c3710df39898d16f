"""Patient-space orientation of a volume: which array axis points where.

Feature code works on a *canonical view* of the arrays: axis 0 runs inferior -> superior,
axis 1 anterior -> posterior, axis 2 patient right -> patient left (DICOM LPS). The view is
a transpose plus flips of the original array (no copy, no resampling), chosen from the
volume's direction matrix, so a feet-first or a sagittal acquisition gives the same
measurements as a head-first axial one. Oblique axes are matched to the nearest patient
axis; positions are then approximate, volumes and intensities are unaffected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.errors import FeatureError
from analytics.ingest.volume import Volume


@dataclass(frozen=True)
class Orientation:
    """How to turn a ``[z, y, x]`` array into the canonical ``[S, P, L]`` view.

    Attributes
    ----------
    perm
        ``canonical = original.transpose(perm)`` before flipping.
    flips
        Canonical axes to reverse after transposing.
    spacing_mm
        Voxel spacing along the canonical axes (S, P, L), mm.
    """

    perm: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    spacing_mm: tuple[float, float, float]

    def to_canonical(self, array: np.ndarray) -> np.ndarray:
        """A view of ``array`` (on the volume grid) in canonical orientation."""
        out = np.transpose(array, self.perm)
        idx = tuple(slice(None, None, -1) if f else slice(None) for f in self.flips)
        return out[idx]

    def from_canonical(self, array: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_canonical`: back onto the volume's own grid."""
        idx = tuple(slice(None, None, -1) if f else slice(None) for f in self.flips)
        out = array[idx]
        inverse = tuple(int(i) for i in np.argsort(self.perm))
        return np.transpose(out, inverse)


def orientation(volume: Volume) -> Orientation:
    """The canonical orientation of ``volume`` from its direction matrix.

    Raises
    ------
    FeatureError
        If the direction matrix is not 3x3 or two axes point along the same patient axis.
    """
    d = np.asarray(volume.direction, dtype=float)
    if d.shape != (3, 3) or not np.all(np.isfinite(d)):
        raise FeatureError(f"series {volume.series_uid}: direction must be a finite 3x3 "
                           f"matrix, got shape {d.shape}")
    # numpy axis a (0=z, 1=y, 2=x) has patient-space vector d[:, 2 - a]
    vectors = [d[:, 2 - a] for a in range(3)]
    dominant = [int(np.argmax(np.abs(v))) for v in vectors]  # 0=L, 1=P, 2=S
    if sorted(dominant) != [0, 1, 2]:
        raise FeatureError(f"series {volume.series_uid}: direction matrix {d.tolist()} is "
                           "degenerate (two array axes along the same patient axis)")
    # canonical axis k holds the patient component 2 - k (S, P, L)
    perm = tuple(dominant.index(2 - k) for k in range(3))
    flips = tuple(bool(vectors[perm[k]][2 - k] < 0) for k in range(3))
    spacing = tuple(float(volume.spacing_mm[perm[k]]) for k in range(3))
    return Orientation(perm=perm, flips=flips, spacing_mm=spacing)  # type: ignore[arg-type]


def bbox(mask: np.ndarray, margin: int | tuple[int, int, int] = 0) -> tuple[slice, ...] | None:
    """Bounding box of the True voxels of ``mask`` grown by ``margin`` voxels, or None."""
    if not mask.any():
        return None
    margins = (margin,) * mask.ndim if isinstance(margin, int) else margin
    out = []
    for ax in range(mask.ndim):
        other = tuple(i for i in range(mask.ndim) if i != ax)
        hit = np.flatnonzero(mask.any(axis=other))
        out.append(slice(max(0, int(hit[0]) - margins[ax]),
                         min(mask.shape[ax], int(hit[-1]) + 1 + margins[ax])))
    return tuple(out)
