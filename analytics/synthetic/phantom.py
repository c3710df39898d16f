"""One synthetic CT volume: tissue map -> HU image with blur and noise, labels and truth.

``synthesize_visit_volume`` is the entry point feature tests use to make volumes without
writing DICOM. HU values are those a reader gets back from the DICOM series (integers,
``[-1024, 3071]``); the label map is exclusive (see ``LABELS``) and the whole liver is
``liver | liver_vessels | lesion``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from analytics.errors import ConfigError
from analytics.ingest.volume import MaskSet, Volume
from analytics.synthetic import anatomy as A
from analytics.synthetic.disease import ImagingPhenotype, PatientDisease, imaging_phenotype
from analytics.synthetic.render import render_tissue

#: exclusive voxel labels of ``SyntheticVolume.labels`` (0 = air around the body and table)
LABELS: dict[str, int] = {
    "liver": 1, "spleen": 2, "liver_vessels": 3, "lesion": 4, "kidney": 5, "aorta": 6,
    "ivc": 7, "vertebra": 8, "muscle": 9, "subcutaneous_fat": 10, "visceral_fat": 11,
    "bowel": 12, "gallbladder": 13, "lung": 14, "spinal_canal": 15, "rib": 16, "table": 17,
}
CONTRAST_PHASES = ("unenhanced", "portal_venous")
DEFAULT_SHAPE = (44, 128, 128)
DEFAULT_SPACING_MM = (5.0, 3.0, 3.0)
HU_MIN, HU_MAX = -1024, 3071  # 12-bit unsigned storage with RescaleIntercept -1024

_TISSUE_LABEL = np.zeros(A.N_TISSUES, np.uint8)
for _t, _l in {
    A.LIVER: "liver", A.SPLEEN: "spleen", A.LIVER_VESSEL: "liver_vessels", A.CYST: "lesion",
    A.SOLID_LESION: "lesion", A.KIDNEY: "kidney", A.AORTA: "aorta", A.IVC: "ivc",
    A.BONE_CORTEX: "vertebra", A.BONE_MARROW: "vertebra", A.CSF: "spinal_canal",
    A.MUSCLE: "muscle", A.SUBCUT_FAT: "subcutaneous_fat", A.VISCERAL_FAT: "visceral_fat",
    A.BOWEL_WALL: "bowel", A.BOWEL_FLUID: "bowel", A.BOWEL_GAS: "bowel",
    A.GALLBLADDER: "gallbladder", A.LUNG: "lung", A.RIB: "rib", A.TABLE: "table",
}.items():
    _TISSUE_LABEL[_t] = LABELS[_l]

# (unenhanced, portal venous) HU of tissues not driven by the disease model
_FIXED_HU = {
    A.AIR: (-1000, -1000), A.LIVER_VESSEL: (42, 170), A.CYST: (6, 9),
    A.SOLID_LESION: (40, 88), A.KIDNEY: (32, 165), A.AORTA: (42, 160), A.IVC: (40, 130),
    A.BONE_CORTEX: (650, 655), A.BONE_MARROW: (230, 240), A.CSF: (10, 12),
    A.MUSCLE: (50, 62), A.SUBCUT_FAT: (-105, -103), A.VISCERAL_FAT: (-95, -92),
    A.BOWEL_WALL: (35, 80), A.BOWEL_FLUID: (12, 15), A.BOWEL_GAS: (-960, -960),
    A.GALLBLADDER: (10, 12), A.LUNG: (-860, -855), A.RIB: (520, 525), A.TABLE: (90, 90),
}
SPLEEN_ENHANCEMENT_HU = 70.0


def tissue_hu(phenotype: ImagingPhenotype, contrast_phase: str) -> np.ndarray:
    """Noise-free HU of every tissue class for a phenotype and contrast phase."""
    col = CONTRAST_PHASES.index(contrast_phase)
    table = np.zeros(A.N_TISSUES, np.float32)
    for t, values in _FIXED_HU.items():
        table[t] = values[col]
    enhanced = col == 1
    table[A.LIVER] = phenotype.liver_hu_unenhanced + (
        phenotype.liver_enhancement_hu if enhanced else 0.0)
    table[A.SPLEEN] = phenotype.spleen_hu_unenhanced + (
        SPLEEN_ENHANCEMENT_HU if enhanced else 0.0)
    return table


@dataclass
class SyntheticVolume:
    """A synthetic CT volume with its exclusive label map and ground truth.

    Attributes
    ----------
    hu
        int16 HU ``[z, y, x]``, z ascending (inferior to superior).
    labels
        uint8 ``[z, y, x]``, values of ``LABELS``.
    spacing_mm
        ``(z, y, x)`` voxel spacing in mm.
    origin_mm
        LPS position (mm) of voxel ``(0, 0, 0)``; axes are aligned with LPS.
    contrast_phase
        ``"unenhanced"`` or ``"portal_venous"``.
    truth
        Ground-truth quantities (see ``analytics.synthetic`` for the keys).
    """

    hu: np.ndarray
    labels: np.ndarray
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]
    contrast_phase: str
    truth: dict[str, Any] = field(default_factory=dict)

    def masks(self) -> dict[str, np.ndarray]:
        """Boolean masks keyed by canonical name; ``liver`` is the whole organ."""
        lab = self.labels
        vessels = lab == LABELS["liver_vessels"]
        lesion = lab == LABELS["lesion"]
        return {
            "liver": (lab == LABELS["liver"]) | vessels | lesion,
            "spleen": lab == LABELS["spleen"],
            "liver_vessels": vessels,
            "lesion": lesion,
        }

    def to_volume(self) -> Volume:
        """The image as the ingest hand-over type (HU float32)."""
        return Volume(array=self.hu.astype(np.float32), spacing_mm=self.spacing_mm,
                      origin_mm=self.origin_mm, direction=np.eye(3), modality="CT",
                      contrast_phase=self.contrast_phase, meta={"synthetic": True})

    def to_maskset(self) -> MaskSet:
        """The reference masks as the ingest hand-over type."""
        return MaskSet(masks=self.masks(), source="seg", automatic=False,
                       method="synthetic ground truth")


def visit_shape(stage: float, phenotype: ImagingPhenotype, *, nodularity_mm: float | None,
                lesions: int | None, liver_volume_factor: float | None = None,
                spleen_volume_factor: float | None = None,
                vessel_pruning: float | None = None) -> A.VisitShape:
    """Combine the stage phenotype with explicit overrides into render parameters."""
    lvf = phenotype.liver_volume_factor if liver_volume_factor is None else liver_volume_factor
    svf = (phenotype.spleen_volume_factor if spleen_volume_factor is None
           else spleen_volume_factor)
    return A.VisitShape(
        liver_scale=float(lvf) ** (1.0 / 3.0),
        left_lobe_factor=phenotype.left_lobe_factor,
        nodularity_mm=phenotype.nodularity_mm if nodularity_mm is None else float(nodularity_mm),
        spleen_scale=float(svf) ** (1.0 / 3.0),
        vessel_pruning=phenotype.vessel_pruning if vessel_pruning is None else vessel_pruning,
        n_lesions=lesions,
        stage=float(stage),
    )


def _grid(shape: tuple[int, int, int], spacing: tuple[float, float, float],
          centre: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel-centre body coordinates ``(zs, ys, xs)``; ``centre`` is ``(x, y, z)`` mm."""
    nz, ny, nx = shape
    sz, sy, sx = spacing
    return ((np.arange(nz) - (nz - 1) / 2.0) * sz + centre[2],
            (np.arange(ny) - (ny - 1) / 2.0) * sy + centre[1],
            (np.arange(nx) - (nx - 1) / 2.0) * sx + centre[0])


def _gaussian_kernel_power(sigma: float) -> float:
    """Sum of squared weights of scipy's 1-D Gaussian kernel (noise variance factor)."""
    if sigma <= 0:
        return 1.0
    radius = int(4.0 * sigma + 0.5)
    w = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    w /= w.sum()
    return float((w**2).sum())


def _check(shape: tuple[int, int, int], spacing: tuple[float, float, float], phase: str,
           noise_sd: float) -> None:
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"shape: expected three positive sizes (z, y, x), got {shape!r}")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ConfigError(f"spacing_mm: expected three positive values (z, y, x), "
                          f"got {spacing!r}")
    if phase not in CONTRAST_PHASES:
        raise ConfigError(f"contrast_phase: expected one of {CONTRAST_PHASES}, got {phase!r}")
    if noise_sd < 0:
        raise ConfigError(f"noise_sd_hu: expected >= 0, got {noise_sd!r}")


def synthesize_visit_volume(
    stage: float,
    rng: np.random.Generator,
    *,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    spacing_mm: tuple[float, float, float] = DEFAULT_SPACING_MM,
    nodularity_mm: float | None = None,
    contrast_phase: str = "unenhanced",
    lesions: int | None = 0,
    anatomy: A.PatientAnatomy | None = None,
    disease: PatientDisease | None = None,
    noise_sd_hu: float = 12.0,
    liver_volume_factor: float | None = None,
    spleen_volume_factor: float | None = None,
    vessel_pruning: float | None = None,
    body_offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
    scanner_offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> SyntheticVolume:
    """Synthesize one abdominal CT volume of a patient at a latent disease stage.

    Parameters
    ----------
    stage
        Latent stage in [0, 4] (drives fat, volumes, nodularity, pruning; see
        ``analytics.synthetic.disease``).
    rng
        Random generator: draws the anatomy when none is given, then the image noise.
    shape, spacing_mm
        Grid ``(z, y, x)`` in voxels and mm. The field of view is centred on the body.
    nodularity_mm
        RMS liver-surface undulation in mm; default from the stage.
    contrast_phase
        ``"unenhanced"`` or ``"portal_venous"`` (vessels, parenchyma, spleen, kidneys and
        aorta enhance).
    lesions
        Number of liver lesions; ``None`` shows the anatomy's lesions that have appeared
        by ``stage`` (cohort use). With a drawn anatomy, lesions are simple cysts.
    anatomy, disease
        The patient's fixed anatomy and disease traits (drawn / typical when omitted).
    noise_sd_hu
        Standard deviation of the (slightly in-plane correlated) Gaussian noise, HU.
    liver_volume_factor, spleen_volume_factor, vessel_pruning
        Overrides of the stage phenotype (volume factors relative to the healthy organ).
    body_offset_mm
        ``(x, y, z)`` position of the field-of-view centre in body coordinates
        (patient positioning between visits).
    scanner_offset_mm
        ``(x, y, z)`` LPS position of the body origin (table position).

    Returns
    -------
    SyntheticVolume

    Raises
    ------
    ConfigError
        If the grid, phase or noise level is invalid.
    """
    shape = tuple(int(s) for s in shape)  # type: ignore[assignment]
    spacing = tuple(float(s) for s in spacing_mm)
    _check(shape, spacing, contrast_phase, noise_sd_hu)  # type: ignore[arg-type]
    if anatomy is None:
        anatomy = A.draw_anatomy(rng, n_cysts=int(lesions or 0), solid_lesion_stage=99.0)
    phen = imaging_phenotype(stage, disease)
    vshape = visit_shape(stage, phen, nodularity_mm=nodularity_mm, lesions=lesions,
                         liver_volume_factor=liver_volume_factor,
                         spleen_volume_factor=spleen_volume_factor,
                         vessel_pruning=vessel_pruning)
    grid = _grid(shape, spacing, body_offset_mm)  # type: ignore[arg-type]
    tissue = render_tissue(anatomy, vshape, grid)
    table = tissue_hu(phen, contrast_phase)
    hu, texture_rms = _scan(tissue, table, anatomy, grid, phen, rng, noise_sd_hu,
                            spacing)  # type: ignore[arg-type]
    truth = _truth(tissue, table, vshape, phen, anatomy, stage, contrast_phase, spacing, shape,
                   noise_sd_hu, texture_rms)
    return SyntheticVolume(hu=hu, labels=_TISSUE_LABEL[tissue],
                           spacing_mm=spacing,  # type: ignore[arg-type]
                           origin_mm=_origin_mm(grid, scanner_offset_mm),
                           contrast_phase=contrast_phase, truth=truth)


def _scan(tissue: np.ndarray, table: np.ndarray, anat: A.PatientAnatomy,
          grid: tuple[np.ndarray, np.ndarray, np.ndarray], phen: ImagingPhenotype,
          rng: np.random.Generator, noise_sd: float, spacing: tuple[float, float, float]
          ) -> tuple[np.ndarray, float]:
    """The int16 HU image of a tissue map, and the RMS (HU) of the liver texture added.

    Tissue HU from ``table``, parenchymal texture, the scanner's in-plane blur, then noise
    drawn from ``rng``; rounded and clipped to the stored HU range.
    """
    image = table[tissue]
    texture_rms = _add_liver_texture(image, tissue, anat, grid, phen.liver_texture_hu)
    # scanner point-spread function, ~1 mm in-plane (the slice profile is left sharp)
    psf = (0.0, 0.9 / spacing[1], 0.9 / spacing[2])
    ndimage.gaussian_filter(image, psf, output=image, mode="nearest")
    _add_noise(image, rng, noise_sd, spacing)
    np.rint(image, out=image)
    np.clip(image, HU_MIN, HU_MAX, out=image)
    return image.astype(np.int16), texture_rms


def _origin_mm(grid: tuple[np.ndarray, np.ndarray, np.ndarray],
               scanner_offset_mm: tuple[float, float, float]) -> tuple[float, float, float]:
    """LPS position (mm) of voxel ``(0, 0, 0)``: the grid's first centre plus the table's."""
    origin = (grid[2][0] + scanner_offset_mm[0], grid[1][0] + scanner_offset_mm[1],
              grid[0][0] + scanner_offset_mm[2])
    return tuple(float(v) for v in origin)  # type: ignore[return-value]


def _add_liver_texture(image: np.ndarray, tissue: np.ndarray, anat: A.PatientAnatomy,
                       grid: tuple[np.ndarray, np.ndarray, np.ndarray], rms_hu: float) -> float:
    """Add zero-mean parenchymal heterogeneity, in place; returns its realised RMS (HU).

    The texture is centred on the parenchyma voxels actually present, so the mean
    parenchymal HU stays exactly the table value recorded as ``liver_hu_mean``.
    """
    if anat.liver_texture is None or rms_hu <= 0:
        return 0.0
    idx = np.nonzero((tissue == A.LIVER).any(axis=(1, 2)))[0]
    if idx.size == 0:
        return 0.0
    ks = slice(int(idx[0]), int(idx[-1]) + 1)
    rows = np.nonzero((tissue[ks] == A.LIVER).any(axis=(0, 2)))[0]
    cols = np.nonzero((tissue[ks] == A.LIVER).any(axis=(0, 1)))[0]
    js, ist = slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)
    parenchyma = tissue[ks, js, ist] == A.LIVER
    field = anat.liver_texture.on_grid((grid[0][ks], grid[1][js], grid[2][ist]))[parenchyma]
    field = (field - field.mean()) * np.float32(rms_hu)
    image[ks, js, ist][parenchyma] += field
    return float(np.sqrt(np.mean(field.astype(np.float64) ** 2)))


def _add_noise(image: np.ndarray, rng: np.random.Generator, sd: float,
               spacing: tuple[float, float, float]) -> None:
    """Add Gaussian noise of SD ``sd``, correlated in-plane over ~1 pixel, in place."""
    if sd <= 0:
        return
    sigma = 0.6  # pixels: a slightly correlated noise texture, as after reconstruction
    gain = sd / _gaussian_kernel_power(sigma)  # 2-D separable: SD factor = sum(w^2)
    for k0 in range(0, image.shape[0], 16):
        slab = rng.standard_normal(image[k0:k0 + 16].shape, dtype=np.float32)
        ndimage.gaussian_filter(slab, (0, sigma, sigma), output=slab, mode="wrap")
        image[k0:k0 + 16] += gain * slab


def _truth(tissue: np.ndarray, table: np.ndarray, vshape: A.VisitShape,
           phen: ImagingPhenotype, anat: A.PatientAnatomy, stage: float, phase: str,
           spacing: tuple[float, ...], shape: tuple[int, ...], noise_sd: float,
           texture_rms: float) -> dict:
    counts = np.bincount(tissue.ravel(), minlength=A.N_TISSUES)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    lesion_vox = int(counts[A.CYST] + counts[A.SOLID_LESION])
    liver_vox = int(counts[A.LIVER] + counts[A.LIVER_VESSEL]) + lesion_vox
    n_lesions = 0
    if lesion_vox:
        _lab, n_lesions = ndimage.label((tissue == A.CYST) | (tissue == A.SOLID_LESION))
    liver_hu, spleen_hu = float(table[A.LIVER]), float(table[A.SPLEEN])
    kept = anat.vessels.kept(vshape.vessel_pruning)
    return {
        "latent_stage": round(float(stage), 6),
        "contrast_phase": phase,
        "spacing_mm": [float(s) for s in spacing],
        "shape": [int(s) for s in shape],
        "liver_volume_ml": liver_vox * voxel_ml,
        "spleen_volume_ml": int(counts[A.SPLEEN]) * voxel_ml,
        "liver_hu_mean": liver_hu,
        "spleen_hu_mean": spleen_hu,
        "liver_spleen_hu_diff": liver_hu - spleen_hu,
        "liver_spleen_hu_ratio": liver_hu / spleen_hu if spleen_hu else None,
        "liver_surface_nodularity": float(vshape.nodularity_mm),
        "liver_vessel_fraction": int(counts[A.LIVER_VESSEL]) / liver_vox if liver_vox else 0.0,
        "lesion_count": int(n_lesions),
        "lesion_volume_ml": lesion_vox * voxel_ml,
        "liver_fat_fraction_pct": round(float(phen.fat_fraction_pct), 4),
        "liver_volume_factor": round(float(vshape.liver_scale**3), 6),
        "spleen_volume_factor": round(float(vshape.spleen_scale**3), 6),
        "vessel_pruning_fraction": round(float(vshape.vessel_pruning), 6),
        "vessel_segments": int(kept.sum()),
        "noise_sd_hu": float(noise_sd),
        "voxel_counts": {name: int(counts[lab_id == _TISSUE_LABEL].sum())
                         for name, lab_id in LABELS.items()},
        "liver_texture_rms_hu": texture_rms,
    }
