"""Analytic CT phantoms with known truth for the feature tests.

Shapes are defined in patient millimetres (LPS: x to the patient's left, y posterior, z
superior) and rendered on any grid, so the same phantom can be stored with anisotropic
voxels, feet-first or in another axis order and must give the same measurements.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analytics.ingest.volume import MaskSet, Volume

HU = {"fat": -100.0, "muscle": 50.0, "bone": 700.0, "marrow": 240.0, "air": -1000.0}
PHASE_BLOOD_HU = {"unenhanced": 40.0, "portal_venous": 170.0, "arterial": 300.0}
PHASE_LIVER_GAIN = {"unenhanced": 0.0, "portal_venous": 50.0, "arterial": 15.0}
PHASE_SPLEEN_GAIN = {"unenhanced": 0.0, "portal_venous": 65.0, "arterial": 40.0}


@dataclass
class Phantom:
    """A rendered phantom and its truth."""

    hu: np.ndarray  # [z, y, x] on the rendering grid (z superior, y posterior, x left)
    labels: dict[str, np.ndarray]
    spacing_mm: tuple[float, float, float]  # (z, y, x)
    truth: dict[str, float] = field(default_factory=dict)

    def volume(self, phase: str | None = "unenhanced") -> Volume:
        return Volume(array=self.hu.copy(), spacing_mm=self.spacing_mm, modality="CT",
                      series_uid="1.2.826.0.1.3680043.8.498.1", contrast_phase=phase)

    def masks(self, *names: str) -> MaskSet:
        names = names or ("liver", "spleen")
        return MaskSet(masks={n: self.labels[n].copy() for n in names}, source="seg")


def _grid(shape: tuple[int, int, int], spacing: tuple[float, float, float]):
    """Voxel-centre coordinates (x, y, z) in mm, body centred at the origin."""
    zs = (np.arange(shape[0]) - (shape[0] - 1) / 2) * spacing[0]
    ys = (np.arange(shape[1]) - (shape[1] - 1) / 2) * spacing[1]
    xs = (np.arange(shape[2]) - (shape[2] - 1) / 2) * spacing[2]
    return xs[None, None, :], ys[None, :, None], zs[:, None, None]


def _ellipsoid(x, y, z, c, r) -> np.ndarray:
    return ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2 <= 1.0


def abdomen(*, extent_mm: tuple[float, float, float] = (200.0, 260.0, 340.0),
            spacing_mm: tuple[float, float, float] = (2.5, 1.5, 1.5),
            phase: str = "unenhanced", liver_hu: float = 58.0, spleen_hu: float = 47.0,
            noise_hu: float = 8.0, vessels: bool = True, lesion: bool = False,
            bumps_mm: float = 0.0, seed: int = 0) -> Phantom:
    """An abdomen: body with fat and muscle wall, spine, aorta, kidneys, liver, spleen.

    Parameters
    ----------
    extent_mm
        Field of view (z, y, x) in mm.
    spacing_mm
        Voxel spacing (z, y, x) in mm.
    phase
        ``unenhanced``, ``portal_venous`` or ``arterial``: sets blood and organ HU.
    liver_hu, spleen_hu
        Unenhanced parenchymal attenuation; contrast gains are added per phase.
    bumps_mm
        Amplitude of a radial surface undulation of the liver (nodularity).
    """
    shape = tuple(max(8, round(e / s)) for e, s in zip(extent_mm, spacing_mm, strict=True))
    x, y, z = _grid(shape, spacing_mm)
    rng = np.random.default_rng(seed)
    hu = np.full(shape, HU["air"], dtype=np.float32)
    body = (x / 160.0) ** 2 + (y / 115.0) ** 2 <= 1.0
    body = np.broadcast_to(body, shape)
    hu[body] = HU["fat"]
    inner = np.broadcast_to((x / 150.0) ** 2 + (y / 105.0) ** 2 <= 1.0, shape)
    hu[body & ~inner] = HU["muscle"]
    spine = np.broadcast_to((x / 18.0) ** 2 + ((y - 60.0) / 16.0) ** 2 <= 1.0, shape)
    marrow = np.broadcast_to((x / 14.0) ** 2 + ((y - 60.0) / 12.0) ** 2 <= 1.0, shape)
    hu[spine] = HU["bone"]
    hu[marrow] = HU["marrow"]
    blood = PHASE_BLOOD_HU[phase]
    aorta = np.broadcast_to(((x - 20.0) / 11.0) ** 2 + ((y - 30.0) / 11.0) ** 2 <= 1.0, shape)
    hu[aorta] = blood
    kidney_hu = 30.0 + {"unenhanced": 0.0, "portal_venous": 120.0, "arterial": 90.0}[phase]
    kidneys = _ellipsoid(x, y, z, (-70.0, 55.0, -30.0), (25, 22, 45)) | _ellipsoid(
        x, y, z, (75.0, 55.0, -25.0), (25, 22, 45))
    hu[kidneys] = kidney_hu

    lc, lr = (-65.0, -5.0, 20.0), (80.0, 75.0, 60.0)
    # radial surface relief: r_eff = 1 + bumps / mean radius * pattern(angle)
    dx, dy, dz = (x - lc[0]) / lr[0], (y - lc[1]) / lr[1], (z - lc[2]) / lr[2]
    rho = np.sqrt(dx * dx + dy * dy + dz * dz)
    theta = np.arctan2(dy, dx)
    pattern = np.sin(14 * theta + 1.3) * np.cos(9 * np.arctan2(dz, np.hypot(dx, dy)))
    liver = rho <= 1.0 + (bumps_mm / 70.0) * pattern
    liver &= ~_ellipsoid(x, y, z, (-20.0, 45.0, -15.0), (40, 40, 40))  # kidney notch
    sc, sr = (85.0, 40.0, 35.0), (28.0, 45.0, 50.0)
    spleen = _ellipsoid(x, y, z, sc, sr) & ~liver
    liver_value = liver_hu + PHASE_LIVER_GAIN[phase]
    spleen_value = spleen_hu + PHASE_SPLEEN_GAIN[phase]
    hu[liver] = liver_value
    hu[spleen] = spleen_value

    vessel = np.zeros(shape, dtype=bool)
    if vessels:
        # a tree of straight and curved tubes (radius 3-5 mm) inside the liver
        zz = np.broadcast_to(z, shape)
        for cx, cy, r, amp in ((-65.0, -5.0, 5.0, 0.0), (-95.0, -20.0, 3.5, 8.0),
                               (-40.0, 15.0, 3.5, 6.0), (-80.0, 25.0, 3.0, 0.0)):
            wx = cx + amp * np.sin(zz / 12.0)
            vessel |= ((x - wx) ** 2 + (y - cy) ** 2 <= r * r) & np.broadcast_to(
                np.abs(z - lc[2]) < 45.0, shape)
        vessel &= liver
        hu[vessel] = blood
    les = np.zeros(shape, dtype=bool)
    if lesion:
        les = (_ellipsoid(x, y, z, (-90.0, -35.0, 30.0), (10, 10, 10))
               | _ellipsoid(x, y, z, (-40.0, -40.0, 5.0), (7, 7, 7))) & liver & ~vessel
        hu[les] = liver_value - 30.0
    hu += rng.normal(0.0, noise_hu, size=shape).astype(np.float32)
    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    parenchyma = liver & ~vessel & ~les
    truth = {
        "liver_volume_ml": float(liver.sum()) * voxel_ml,
        "spleen_volume_ml": float(spleen.sum()) * voxel_ml,
        "liver_hu_mean": liver_value,
        "spleen_hu_mean": spleen_value,
        "liver_spleen_hu_diff": liver_value - spleen_value,
        "liver_vessel_fraction": float(vessel.sum()) / float(liver.sum()),
        "lesion_count": 2.0 if lesion else 0.0,
        "lesion_volume_ml": float(les.sum()) * voxel_ml,
        "parenchyma_voxels": float(parenchyma.sum()),
    }
    labels = {"liver": liver, "spleen": spleen, "liver_vessels": vessel, "lesion": les,
              "aorta": np.ascontiguousarray(aorta)}
    return Phantom(hu=hu, labels=labels, spacing_mm=spacing_mm, truth=truth)


def reoriented(ph: Phantom, *, feet_first: bool = False, transpose_xy: bool = False,
               phase: str | None = "unenhanced") -> tuple[Volume, MaskSet]:
    """The same phantom stored another way: slices reversed (feet-first) or rows/columns
    swapped, with the direction matrix describing it."""
    arr = ph.hu
    labels = dict(ph.labels)
    direction = np.eye(3)
    spacing = ph.spacing_mm
    if feet_first:
        arr = arr[::-1]
        labels = {k: v[::-1] for k, v in labels.items()}
        direction[:, 2] = [0.0, 0.0, -1.0]
    if transpose_xy:
        arr = np.transpose(arr, (0, 2, 1))
        labels = {k: np.transpose(v, (0, 2, 1)) for k, v in labels.items()}
        direction[:, [0, 1]] = direction[:, [1, 0]]
        spacing = (spacing[0], spacing[2], spacing[1])
    vol = Volume(array=np.ascontiguousarray(arr), spacing_mm=spacing, direction=direction,
                 modality="CT", series_uid="1.2.826.0.1.3680043.8.498.2", contrast_phase=phase)
    masks = MaskSet(masks={k: np.ascontiguousarray(labels[k]) for k in ("liver", "spleen")},
                    source="seg")
    return vol, masks
