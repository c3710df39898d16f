"""The image volume handed from ingest to feature extraction.

Arrays are indexed ``[z, y, x]`` (slice, row, column) in the order the slices lie along the
slice normal. ``spacing_mm`` is ``(z, y, x)``. ``direction`` is the 3x3 matrix whose
columns are the patient-space (LPS) unit vectors of the x (column), y (row) and z (slice)
axes, so a voxel index ``(k, j, i)`` maps to ``origin + direction @ ([i, j, k] * spacing_xyz)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Volume:
    """One image series as a 3-D array with its geometry.

    Attributes
    ----------
    array
        Voxel values ``[z, y, x]``: HU (float32) for CT, stored intensity for MR.
    spacing_mm
        ``(z, y, x)`` voxel spacing in mm; z is the centre-to-centre slice distance.
    origin_mm
        Patient-space (LPS) position of voxel ``(0, 0, 0)``, in mm.
    direction
        3x3 matrix, columns = unit vectors of the x, y, z array axes in LPS.
    modality
        ``"CT"`` or ``"MR"``.
    """

    array: np.ndarray
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    modality: str = "CT"
    series_uid: str | None = None
    frame_of_reference_uid: str | None = None
    contrast_phase: str | None = None  # unenhanced | arterial | portal_venous | delayed | None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def voxel_volume_ml(self) -> float:
        z, y, x = self.spacing_mm
        return float(z * y * x) / 1000.0

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]


@dataclass
class MaskSet:
    """Binary masks on a volume's grid, keyed by canonical structure name.

    Canonical names: ``liver``, ``spleen``, ``liver_vessels``, ``lesion`` (see
    ``analytics.ingest.structures.SYNONYMS``). ``automatic`` is True when the masks come from
    HepaTrack's own segmentation rather than from a delivered SEG/RTSTRUCT/NIfTI.
    """

    masks: dict[str, np.ndarray]
    source: str = "seg"  # seg | rtstruct | nifti | auto
    automatic: bool = False
    method: str | None = None

    def get(self, name: str) -> np.ndarray | None:
        return self.masks.get(name)
