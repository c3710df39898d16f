"""Does the scan show the abdomen where an organ was found? Anatomy of the field of view.

An automatic liver or spleen can only be right where the scan shows an adult upper
abdomen. Three facts of anatomy decide it. Each axial slice the organ occupies is judged
(a head, a neck or limb, the chest, or possibly the abdomen); when the slices that are not
abdominal hold more than half of the organ, the scan shows no abdomen at its level. The
whole scan is judged the same way, by the body's share of each slice, for an organ the
segmentation did not find. A field of view smaller than ``MIN_TRUNK_AREA_CM2`` holds no
abdomen at all.

- **the trunk's cross-section.** An adult's lower chest and upper abdomen, where the liver
  and spleen lie, measure about 70 cm around or more even in a very thin adult (an area of
  ~350 cm² or more); a neck, arm or thigh is smaller. A body cross-section under
  ``MIN_TRUNK_AREA_CM2``, or a field of view smaller than that, holds no abdomen.
- **the skull.** A head's cross-section (at most about 17 x 21 cm, ~280 cm², close to the
  trunk's) is told apart by its closed ring of bone: in an axial slice of the trunk the
  ribs never close a ring around the liver or spleen (intercostal spaces, the boneless
  anterior abdominal wall), while the skull closes one around the brain.
- **the lungs.** Below the diaphragm only the posterior lung recesses reach beside the
  liver and spleen; in the chest, air-filled lung takes a third or more of the trunk's
  cross-section. Lung is told from air outside the body and from bowel gas by its density:
  aerated lung parenchyma is about -850 HU (-950 to -600 HU, with vessels), whereas air
  and gas are about -1000 HU. Each connected air-density region is judged by its median.

Arrays are canonical (axis 0 inferior -> superior, 1 anterior -> posterior, 2 patient
right -> left).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

#: soft tissue, fat and bone are denser than this; lung and gas are not
TISSUE_MIN_HU = -400.0
#: air-density voxels (lung, gas, outside air)
AIR_MAX_HU = -500.0
#: median density of an aerated lung region; air and bowel gas lie below, at ~-1000 HU
LUNG_MEDIAN_HU = (-960.0, -600.0)
#: an air-density region smaller than this is a sinus, a bowel loop or noise, not a lung
MIN_LUNG_ML = 100.0
#: an adult upper abdomen's cross-section is larger (see the module docstring)
MIN_TRUNK_AREA_CM2 = 250.0
#: lung filling more than this fraction of the trunk at the organ's level: the chest (below
#: the diaphragm the lung recesses take a tenth or less)
MAX_LUNG_FRACTION = 0.2
#: cortical and trabecular bone are denser than this (blood, even enhanced, rarely is)
BONE_HU = 300.0
#: more than this fraction of a slice of the organ (or of the body) inside a closed ring of
#: bone: inside a skull (in the trunk only the spinal canal and marrow are, a few percent)
MAX_ENCLOSED_FRACTION = 0.3


@dataclass(frozen=True)
class FieldOfView:
    """The scan-wide anatomy the organ-level findings need.

    Attributes
    ----------
    lungs
        Canonical mask of aerated lung (air-density regions of lung density).
    spacing_mm
        Canonical voxel spacing, mm.
    """

    lungs: np.ndarray
    spacing_mm: tuple[float, float, float]


def field_of_view(image: np.ndarray, spacing: tuple[float, float, float]) -> FieldOfView:
    """Find the lungs of a canonical CT image (HU).

    Parameters
    ----------
    image
        Canonical HU image.
    spacing
        Canonical voxel spacing, mm.

    Returns
    -------
    FieldOfView
        The lung mask and spacing.
    """
    air = image < AIR_MAX_HU
    labels, n = ndi.label(air)
    lungs = np.zeros(image.shape, dtype=bool)
    if n:
        voxel_ml = float(np.prod(spacing)) / 1000.0
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        big = np.flatnonzero(sizes * voxel_ml >= MIN_LUNG_ML)
        big = big[big > 0]
        if big.size:
            medians = ndi.median(image, labels, big)
            keep = big[(np.asarray(medians) >= LUNG_MEDIAN_HU[0])
                       & (np.asarray(medians) <= LUNG_MEDIAN_HU[1])]
            lungs = np.isin(labels, keep)
    return FieldOfView(lungs=lungs, spacing_mm=tuple(float(s) for s in spacing))


def _weighted_median(values: list[float], weights: list[float]) -> float:
    order = np.argsort(values)
    v, w = np.asarray(values)[order], np.asarray(weights, dtype=float)[order]
    return float(v[np.searchsorted(np.cumsum(w), 0.5 * w.sum())])


def _slice_measures(image: np.ndarray, lungs: np.ndarray, organ: np.ndarray
                    ) -> tuple[float, float, bool, float]:
    """One slice: trunk pixels, lung pixels in it, whether it touches the image edge, and
    the organ's pixels inside a closed ring of bone.

    The trunk is the connected tissue-or-lung region holding most of the organ, holes
    filled (so a cropped field of view that cuts the lungs still counts them).
    """
    labels, n = ndi.label((image >= TISSUE_MIN_HU) | lungs)
    if n == 0:
        return 0.0, 0.0, False, 0.0
    hit = np.bincount(labels[organ], minlength=n + 1)
    hit[0] = 0
    trunk = ndi.binary_fill_holes(labels == int(np.argmax(hit)))
    edge = bool(trunk[[0, -1], :].any() or trunk[:, [0, -1]].any())
    bone = image >= BONE_HU
    enclosed = ndi.binary_fill_holes(bone) & ~bone
    return (float(trunk.sum()), float((trunk & lungs).sum()), edge,
            float((enclosed & organ).sum()))


def level_findings(organ: str, mask: np.ndarray, image: np.ndarray,
                   fov: FieldOfView) -> list[str]:
    """Reasons why the scan shows no abdomen at the level of ``organ`` (empty if it does).

    Parameters
    ----------
    organ
        ``liver`` or ``spleen`` (used in the sentences).
    mask, image
        Canonical organ mask and HU image of the same shape.
    fov
        The scan's :class:`FieldOfView`.

    Returns
    -------
    list of str
        Sentences starting "no abdomen in the field of view".
    """
    return _findings(mask, image, fov, where=f"at the {organ}'s level", what=f"the {organ}")


def scan_findings(image: np.ndarray, body: np.ndarray, fov: FieldOfView) -> list[str]:
    """Reasons why the scan shows no abdomen (empty if it may): the same anatomy as
    :func:`level_findings`, judged over the whole body (``body``: canonical body mask)."""
    return _findings(body, image, fov, where="in the scan", what="the body")


def _findings(mask: np.ndarray, image: np.ndarray, fov: FieldOfView, *, where: str,
              what: str) -> list[str]:
    """Judge each slice of ``mask`` (a head, a neck or limb, the chest, or possibly the
    abdomen); when slices holding most of ``mask`` are not abdominal, say why."""
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    if zs.size == 0:
        return []
    pixel_cm2 = fov.spacing_mm[1] * fov.spacing_mm[2] / 100.0
    fov_cm2 = image.shape[1] * image.shape[2] * pixel_cm2
    if fov_cm2 < MIN_TRUNK_AREA_CM2:
        width = image.shape[2] * fov.spacing_mm[2] / 10.0
        depth = image.shape[1] * fov.spacing_mm[1] / 10.0
        return [f"no abdomen in the field of view: it is {width:.0f} x {depth:.0f} cm "
                f"({fov_cm2:.0f} cm²), smaller than an adult abdomen's cross-section "
                f"(over {MIN_TRUNK_AREA_CM2:.0f} cm²)"]
    rows = []  # weight, skull, small, chest, area cm2, lung fraction
    for z in zs:
        trunk, lung, edge, inside = _slice_measures(image[z], fov.lungs[z], mask[z])
        weight = float(mask[z].sum())
        area, fraction = trunk * pixel_cm2, (lung / trunk if trunk else 0.0)
        rows.append((weight, inside / weight > MAX_ENCLOSED_FRACTION,
                     area < MIN_TRUNK_AREA_CM2 and not edge, fraction > MAX_LUNG_FRACTION,
                     area, fraction))
    table = np.array(rows, dtype=float)
    w = table[:, 0] / table[:, 0].sum()
    verdicts = table[:, 1:4] > 0.5
    if float(w[verdicts.any(axis=1)].sum()) <= 0.5:
        return []
    out = []
    share = [float(w[verdicts[:, k]].sum()) for k in range(3)]
    if share[0] > 0.25:
        out.append(f"no abdomen in the field of view: in slices holding {100 * share[0]:.0f}% "
                   f"of {what}, a closed ring of bone encloses it, as the skull encloses the "
                   "brain")
    if share[1] > 0.25:
        area = float(np.median(table[verdicts[:, 1], 4]))
        out.append(f"no abdomen in the field of view: the body's cross-section {where} is "
                   f"{area:.0f} cm², smaller than an adult abdomen's (over "
                   f"{MIN_TRUNK_AREA_CM2:.0f} cm²): a head, neck or limb")
    if share[2] > 0.25:
        lung = float(np.median(table[verdicts[:, 2], 5]))
        out.append(f"no abdomen in the field of view: aerated lung fills {100 * lung:.0f}% "
                   f"of the body's cross-section {where}: the chest, above the diaphragm")
    return out or [f"no abdomen in the field of view {where}: neither head, limb nor chest "
                   "holds most of it, but together they do"]
