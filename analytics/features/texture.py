"""Heterogeneity of the liver parenchyma: IBSI first-order and GLCM entropy.

Discretisation follows the IBSI reference manual (Zwanenburg et al., Radiology 2020):
CT uses a fixed bin width (25 HU, bins counted from -1000 HU, so values are comparable
across patients); MR intensities have no absolute scale and use a fixed bin number (32
bins over the ROI range). The GLCM is 3-D, distance 1 (Chebyshev), 13 directions merged
into one symmetric matrix ("3D merged", IBSI:IAZD). Entropies are in bits (log2).
"""

from __future__ import annotations

import numpy as np

from analytics.features.geometry import bbox

#: the 13 unique directions of a 26-neighbourhood, as (dz, dy, dx)
DIRECTIONS_3D: tuple[tuple[int, int, int], ...] = (
    (0, 0, 1), (0, 1, -1), (0, 1, 0), (0, 1, 1),
    (1, -1, -1), (1, -1, 0), (1, -1, 1), (1, 0, -1), (1, 0, 0), (1, 0, 1),
    (1, 1, -1), (1, 1, 0), (1, 1, 1),
)


def discretise_fixed_width(values: np.ndarray, width: float, lower: float) -> np.ndarray:
    """IBSI fixed bin size: ``floor((x - lower) / width) + 1`` (bins start at 1)."""
    return (np.floor((np.asarray(values, dtype=np.float64) - lower) / width) + 1).astype(np.int64)


def discretise_fixed_count(values: np.ndarray, n_bins: int) -> np.ndarray:
    """IBSI fixed bin number over the range of ``values``: levels 1..``n_bins``."""
    v = np.asarray(values, dtype=np.float64)
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return np.ones(v.shape, dtype=np.int64)
    levels = np.floor(n_bins * (v - lo) / (hi - lo)).astype(np.int64) + 1
    return np.minimum(levels, n_bins)


def histogram_entropy(levels: np.ndarray) -> float:
    """IBSI intensity-histogram entropy (bits) of discretised ``levels``."""
    _, counts = np.unique(np.asarray(levels).ravel(), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def glcm_3d_merged(levels: np.ndarray, roi: np.ndarray) -> np.ndarray:
    """Symmetric 3-D GLCM (distance 1, 13 directions merged) as joint probabilities.

    Parameters
    ----------
    levels
        Discretised grey levels (positive integers) on the image grid.
    roi
        Boolean region of interest on the same grid; pairs count only if both voxels are
        inside it.

    Returns
    -------
    numpy.ndarray
        ``(G, G)`` matrix over the distinct grey levels present in the ROI (in increasing
        order), summing to 1; empty ``(0, 0)`` if the ROI has no neighbouring voxels.
    """
    box = bbox(roi)
    if box is None:
        return np.zeros((0, 0))
    roi = roi[box]
    present, compact = np.unique(levels[box][roi], return_inverse=True)
    g = present.size
    # codes 1..G inside the ROI, 0 outside; padded so every shift stays in bounds
    coded = np.zeros(roi.shape, dtype=np.int32)
    coded[roi] = compact.astype(np.int32) + 1
    coded = np.pad(coded, 1)
    counts = np.zeros((g + 1) * (g + 1), dtype=np.int64)
    core = tuple(slice(1, n + 1) for n in roi.shape)
    a = coded[core]
    a_in = a > 0
    a_scaled = a * (g + 1)
    for dz, dy, dx in DIRECTIONS_3D:
        b = coded[1 + dz:1 + dz + roi.shape[0], 1 + dy:1 + dy + roi.shape[1],
                  1 + dx:1 + dx + roi.shape[2]]
        both = a_in & (b > 0)
        pairs = np.bincount((a_scaled + b)[both], minlength=counts.size)
        # symmetric matrix: count (i, j) and (j, i)
        counts += pairs
        counts += pairs.reshape(g + 1, g + 1).T.ravel()
    matrix = counts.reshape(g + 1, g + 1)[1:, 1:].astype(np.float64)
    total = matrix.sum()
    return matrix / total if total > 0 else np.zeros((0, 0))


def glcm_joint_entropy(levels: np.ndarray, roi: np.ndarray) -> float | None:
    """IBSI GLCM joint entropy (bits), 3-D merged; None if the ROI has no voxel pairs."""
    p = glcm_3d_merged(levels, roi)
    if p.size == 0:
        return None
    nz = p[p > 0]
    return float(-(nz * np.log2(nz)).sum())


#: fewest ROI voxels for texture: one 3x3x3 block; below it a histogram or a 13-direction
#: co-occurrence matrix has too few samples to describe texture
MIN_TEXTURE_VOXELS = 27
TEXTURE_FEATURES = ("liver_entropy", "liver_glcm_entropy")


def texture_features(image: np.ndarray, roi: np.ndarray, modality: str, *,
                     bin_width: float = 25.0, lower: float = -1000.0,
                     n_bins: int = 32) -> dict[str, float | None]:
    """``liver_entropy`` and ``liver_glcm_entropy`` (None where degenerate).

    See :func:`texture_with_reasons`, which also says why a value is None.
    """
    return texture_with_reasons(image, roi, modality, bin_width=bin_width, lower=lower,
                                n_bins=n_bins)[0]


def texture_with_reasons(image: np.ndarray, roi: np.ndarray, modality: str, *,
                         bin_width: float = 25.0, lower: float = -1000.0, n_bins: int = 32,
                         organ: str = "liver", min_voxels: int = MIN_TEXTURE_VOXELS,
                         ) -> tuple[dict[str, float | None], dict[str, str]]:
    """Texture of ``image`` inside ``roi``, withheld (None, with a reason) when degenerate.

    A texture value is withheld rather than reported as 0 when the region cannot have
    texture at these settings: fewer than ``min_voxels`` voxels, a single grey level after
    discretisation (both entropies would be 0 whatever the tissue), or (GLCM only) no two
    neighbouring voxels.

    Parameters
    ----------
    image
        Intensities (HU on CT).
    roi
        Boolean parenchyma mask on the same grid.
    modality
        ``"CT"`` uses fixed bin width ``bin_width`` (HU) from ``lower``; anything else uses
        ``n_bins`` bins over the ROI range.
    organ
        Name used in the reasons.
    min_voxels
        Fewest voxels for a texture value.

    Returns
    -------
    tuple
        ``{"liver_entropy": bits | None, "liver_glcm_entropy": bits | None}`` and
        ``{feature: reason}`` for each None.
    """
    box = bbox(roi)
    n = 0 if box is None else int(np.count_nonzero(roi[box]))
    if n < min_voxels:
        why = (f"texture: {n} voxel{'s' if n != 1 else ''} in the {organ} parenchyma, "
               f"fewer than the {min_voxels} needed")
        return dict.fromkeys(TEXTURE_FEATURES), dict.fromkeys(TEXTURE_FEATURES, why)
    sub_roi = roi[box]
    values = image[box][sub_roi]
    if modality.upper() == "CT":
        lv = discretise_fixed_width(values, bin_width, lower)
        binning = f"{bin_width:g} HU binning"
    else:
        lv = discretise_fixed_count(values, n_bins)
        binning = f"discretisation into {n_bins} bins"
    if np.unique(lv).size < 2:
        why = f"texture: only one grey level in the {organ} after {binning}"
        return dict.fromkeys(TEXTURE_FEATURES), dict.fromkeys(TEXTURE_FEATURES, why)
    levels = np.zeros(sub_roi.shape, dtype=np.int64)
    levels[sub_roi] = lv
    out: dict[str, float | None] = {"liver_entropy": histogram_entropy(lv),
                                    "liver_glcm_entropy": glcm_joint_entropy(levels, sub_roi)}
    reasons = {}
    if out["liver_glcm_entropy"] is None:
        reasons["liver_glcm_entropy"] = (f"texture: no two neighbouring voxels in the "
                                         f"{organ} parenchyma")
    return out, reasons
