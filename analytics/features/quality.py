"""Quality gate for organ masks: withhold a number rather than show a wrong one.

Every liver and spleen mask is checked before its numbers are reported. Two kinds of
finding:

- **coverage** (any mask, delivered or automatic): an organ that reaches the first or last
  slice of the scan, or the edge of the field of view, with more than
  ``EDGE_AREA_FRACTION`` of its largest cross-section continues outside the scan. Its
  volume would be partial, so the volume (and what derives from it) is withheld;
  attenuation measured inside the part that was scanned still stands.
- **plausibility** (automatic masks only, since a delivered mask is a person's or a
  validated tool's decision): a volume outside the published adult range, an organ on the
  wrong side of the body, attenuation spread or content that no liver or spleen has (bone,
  air or fat inside the mask), or a mask in pieces. Any of these means the method cannot
  be sure of the organ, and every number from that mask is withheld. On MR (automatic
  masks come only from TotalSegmentator) the intensity checks are left out: MR signal
  has no physical scale; volume, side and pieces are checked as on CT.
- **field of view** (automatic masks, CT): no abdomen where the organ was found (a head, a
  limb, the chest above the diaphragm, or a field of view too small for an abdomen; see
  ``analytics.features.field_of_view``). Every number is withheld.
- **agreement** (automatic masks, :func:`check_pair`): independent cues must agree. The
  spleen lies beside the liver, under the left hemidiaphragm, so an automatic spleen
  needs a liver (delivered, or automatic and found in the abdomen, even if its own numbers
  are withheld) at its level and on its right; a liver found on the left of the spleen
  makes both doubtful.

The thresholds are anatomical and physical facts, not fitted to any scan:

- adult liver volume about 0.6-4 L (normal ~1.0-2.0 L; atrophic cirrhotic livers rarely
  below 0.6 L, hepatomegaly rarely above 4 L); spleen 30 mL-2.5 L (normal ~0.1-0.3 L,
  massive splenomegaly above 1.5 L);
- parenchymal attenuation on CT between -100 HU (severe steatosis) and 250 HU (the densest
  enhancement); bone and dense bolus lie above 300 HU, fat and air below -100 HU;
- the liver lies on the patient's right of the midline, the spleen on the left (a
  situs inversus patient needs a delivered mask);
- a liver or spleen is one connected organ (an accessory spleen is small);
- the spleen's craniocaudal extent (vertebral levels T10-L1) lies within the liver's
  (T8-L3): they always share axial slices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from analytics.features.field_of_view import FieldOfView, field_of_view, level_findings
from analytics.features.landmarks import body_mask
from analytics.features.measure import largest_component

#: an organ whose cross-section in an edge slice exceeds this fraction of its largest one
#: continues beyond the scan (a tip cut by the edge loses only a few mL)
EDGE_AREA_FRACTION = 0.15
#: an automatic mask ending this close to the scan's first or last slice may have stopped
#: short of an organ that continues: judged as reaching the edge
AUTO_EDGE_MARGIN_MM = 10.0
PLAUSIBLE_ML = {"liver": (600.0, 4000.0), "spleen": (30.0, 2500.0)}
PARENCHYMA_HU = (-100.0, 250.0)
#: more than this fraction of the mask outside PARENCHYMA_HU: bone, air or fat inside it
FOREIGN_FRACTION = 0.05
#: robust spread ((P84 - P16) / 2) of a liver or spleen, vessels included, stays below this
MAX_SPREAD_HU = 45.0
#: the largest connected piece holds at least this fraction of the mask
MIN_MAIN_PIECE = 0.9
SIDE = {"liver": "right", "spleen": "left"}


@dataclass
class OrganQuality:
    """What the gate found for one organ mask.

    ``withhold_all`` lists reasons that withhold every number of the organ;
    ``withhold_volume`` reasons that withhold only its volume. ``in_abdomen`` is False when
    the scan shows no abdomen where the organ was found.
    """

    organ: str
    automatic: bool
    withhold_all: list[str] = field(default_factory=list)
    withhold_volume: list[str] = field(default_factory=list)
    in_abdomen: bool = True

    @property
    def ok(self) -> bool:
        return not self.withhold_all and not self.withhold_volume

    def reason(self, *, volume: bool) -> str | None:
        """The sentence shown for a withheld number (``volume``: for the organ's volume)."""
        found = self.withhold_all + (self.withhold_volume if volume else [])
        if not found:
            return None
        what = "automatic " if self.automatic else ""
        head = (f"{what}{self.organ} segmentation failed its quality check" if self.withhold_all
                else f"{self.organ} volume not measurable")
        return f"{head}: {'; '.join(found)}"


def _edge_findings(mask: np.ndarray, organ: str, margin: int) -> list[str]:
    """Coverage: the organ cut by the scan's first/last slice or the in-plane field.

    ``margin`` slices next to each end count as the end (automatic masks may stop short).
    """
    areas = mask.sum(axis=(1, 2))
    largest = float(areas.max())
    out = []
    n = len(areas)
    for end, where in ((areas[:margin + 1], "lowest"), (areas[max(0, n - 1 - margin):], "highest")):
        edge = float(end.max())
        if edge > EDGE_AREA_FRACTION * largest:
            near = "reaches" if margin == 0 else "reaches or nearly reaches"
            out.append(f"the {organ} {near} the scan's {where} slice "
                       f"({100 * edge / largest:.0f}% of its largest cross-section), "
                       "so it continues outside the scan and its volume would be partial")
    border = np.zeros(mask.shape[1:], dtype=bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    rim = int((mask & border[None]).sum())
    if rim > EDGE_AREA_FRACTION * np.sqrt(largest) * mask.shape[0]:
        out.append(f"the {organ} touches the edge of the field of view ({rim} voxels), so "
                   "part of it was not imaged")
    return out


def check_organ(organ: str, mask: np.ndarray, image: np.ndarray,
                spacing: tuple[float, float, float], *, automatic: bool,
                body: np.ndarray | None = None, modality: str = "CT",
                fov: FieldOfView | None = None) -> OrganQuality:
    """Check one organ mask (canonical orientation: inferior->superior, anterior->
    posterior, patient right->left).

    Parameters
    ----------
    organ
        ``liver`` or ``spleen``.
    mask, image
        Canonical boolean mask and HU image of the same shape.
    spacing
        Canonical voxel spacing, mm.
    automatic
        True for a mask from automatic segmentation (plausibility is checked too).
    body
        The body mask (for the midline); derived from the image when None.
    modality
        ``"CT"`` or ``"MR"``: MR intensities have no physical scale, so on MR the
        attenuation content and spread are not checked (volume, side and pieces are).
    fov
        The scan's lungs (``field_of_view.field_of_view``); derived when None.

    Returns
    -------
    OrganQuality
        The reasons to withhold all numbers or only the volume (empty when it passes).
    """
    q = OrganQuality(organ=organ, automatic=automatic)
    if not mask.any():
        q.withhold_all.append(f"no {organ} voxels")
        return q
    margin = int(AUTO_EDGE_MARGIN_MM // spacing[0]) if automatic else 0
    edges = _edge_findings(mask, organ, margin)
    q.withhold_volume.extend(edges)
    if not automatic:
        return q
    if modality == "CT":  # lungs and bone are found by their Hounsfield units
        fov = fov if fov is not None else field_of_view(image, spacing)
        outside = level_findings(organ, mask, image, fov)
        q.withhold_all.extend(outside)
        q.in_abdomen = not outside
    volume = float(mask.sum()) * float(np.prod(spacing)) / 1000.0
    lo, hi = PLAUSIBLE_ML[organ]
    if volume > hi or (volume < lo and not edges):  # a partial organ may be small
        q.withhold_all.append(f"volume {volume / 1000:.2f} L outside {lo / 1000:g}-{hi / 1000:g} L")
    if modality == "CT":
        _check_attenuation(q, organ, image[mask])
    labels, n = ndi.label(mask)
    if n > 1:
        main = float(np.bincount(labels.ravel())[1:].max()) / float(mask.sum())
        if main < MIN_MAIN_PIECE:
            q.withhold_all.append(f"the mask is in {n} pieces (largest {100 * main:.0f}%)")
    body = body if body is not None else body_for(image, modality)
    side = _side(mask, body)
    if side is not None and side != SIDE[organ]:
        q.withhold_all.append(f"its centre lies on the patient's {side}, expected the "
                              f"{SIDE[organ]}")
    return q


def _check_attenuation(q: OrganQuality, organ: str, values: np.ndarray) -> None:
    """CT only: bone, air or fat inside the mask, or more than one tissue."""
    foreign = float(np.mean((values < PARENCHYMA_HU[0]) | (values > PARENCHYMA_HU[1])))
    if foreign > FOREIGN_FRACTION:
        q.withhold_all.append(f"{100 * foreign:.0f}% of the mask is below {PARENCHYMA_HU[0]:g} "
                              f"or above {PARENCHYMA_HU[1]:g} HU (fat, air or bone, not "
                              f"{organ} tissue)")
    p16, p84 = np.percentile(values, [16, 84])
    spread = float(p84 - p16) / 2.0
    if spread > MAX_SPREAD_HU:
        q.withhold_all.append(f"attenuation spread {spread:.0f} HU over {MAX_SPREAD_HU:g} HU: "
                              f"more than one tissue")


def check_pair(liver: np.ndarray | None, spleen: np.ndarray | None, *,
               liver_trusted: bool, spleen_automatic: bool, liver_automatic: bool
               ) -> dict[str, list[str]]:
    """Do the liver and spleen masks agree with each other? (canonical masks)

    Parameters
    ----------
    liver, spleen
        The masks still standing after :func:`check_organ`, or None.
    liver_trusted
        The liver mask is delivered, or automatic and found where the scan shows an
        abdomen (``OrganQuality.in_abdomen``).
    spleen_automatic, liver_automatic
        Which masks come from automatic segmentation (a delivered mask is not doubted).

    Returns
    -------
    dict
        Organ -> reasons to withhold all its numbers (only organs with a finding).
    """
    out: dict[str, list[str]] = {}
    if spleen is None or not spleen.any() or not spleen_automatic:
        return out
    spleen_z = np.flatnonzero(spleen.any(axis=(1, 2)))
    if liver is None or not liver.any() or not liver_trusted:
        out["spleen"] = ["no liver was found to confirm it: the spleen lies beside the "
                         "liver, under the left hemidiaphragm"]
        return out
    liver_z = np.flatnonzero(liver.any(axis=(1, 2)))
    if spleen_z[0] > liver_z[-1] or spleen_z[-1] < liver_z[0]:
        out["spleen"] = ["it shares no axial slice with the liver, whereas the spleen always "
                         "lies at the level of the liver"]
        return out
    liver_x = float(np.argwhere(liver)[:, 2].mean())
    spleen_x = float(np.argwhere(spleen)[:, 2].mean())
    if liver_x >= spleen_x:  # canonical columns run from the patient's right to left
        why = ("the liver's centre lies on the patient's left of the spleen's: the two "
               "masks disagree on the sides")
        out["spleen"] = [why]
        if liver_automatic:
            out["liver"] = [why]
    return out


#: MR body: above this fraction of the image's 99th intensity percentile (air is dark)
MR_BODY_FRACTION = 0.1


def body_for(image: np.ndarray, modality: str = "CT") -> np.ndarray:
    """The patient's body for the midline: above -400 HU on CT; on MR, the largest
    component brighter than a tenth of the 99th intensity percentile, holes filled."""
    if modality == "CT":
        return body_mask(image)
    body = largest_component(image > MR_BODY_FRACTION * float(np.percentile(image, 99)))
    for k in range(body.shape[0]):
        body[k] = ndi.binary_fill_holes(body[k])
    return body


def _side(mask: np.ndarray, body: np.ndarray) -> str | None:
    """``right`` or ``left`` of the body's midline, per slice where the organ lies."""
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    cols = np.arange(mask.shape[2])
    offsets = []
    for z in zs:
        b = body[z].sum(axis=0)
        if not b.any():
            continue
        midline = float((b * cols).sum() / b.sum())
        m = mask[z].sum(axis=0)
        offsets.append((float((m * cols).sum() / m.sum()) - midline) * float(m.sum()))
    if not offsets:
        return None
    return "left" if sum(offsets) > 0 else "right"
