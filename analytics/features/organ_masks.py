"""The organ masks of one series: delivered masks checked, missing organs segmented, and
every liver and spleen mask through the quality gate.

Masks that come with the series come first; an organ without a delivered mask is segmented
automatically by the run's engine (``FeatureSettings.segmentation``), unless a delivered
mask of the series could not be read (``volume.meta["mask_errors"]``): then nothing is
segmented in its place. The quality gate (``analytics.features.quality``) withholds an
organ cut by the scan's edge from its volume only, and an automatic mask that fails its
checks from every number, with the reason.
"""

from __future__ import annotations

import numpy as np

from analytics.errors import FeatureError
from analytics.features.field_of_view import field_of_view, scan_findings
from analytics.features.geometry import Orientation
from analytics.features.quality import body_for, check_organ, check_pair
from analytics.features.segmentation import segment_canonical
from analytics.features.settings import EXTRACTOR_VERSION, WITHHELD_MASKS, FeatureSettings
from analytics.features.totalseg import (
    CLASSICAL,
    CLASSICAL_METHOD,
    MR_NEEDS_MASK,
    canonical_affine,
    choose_engine,
)
from analytics.ingest.volume import MaskSet, Volume

__all__ = ["check_mask", "mask_failure", "needs_mask", "organ_masks", "quality_gate",
           "segment_missing"]


def check_mask(name: str, mask: np.ndarray, volume: Volume) -> np.ndarray:
    """Mask ``name`` as a boolean array on the image grid.

    Raises
    ------
    FeatureError
        If its shape is not the image's.
    """
    m = np.asarray(mask)
    if m.shape != volume.array.shape:
        raise FeatureError(f"series {volume.series_uid}: mask {name!r} has shape {m.shape}, "
                           f"expected the image shape {volume.array.shape}")
    return m.astype(bool, copy=False)


def organ_masks(volume: Volume, masks: MaskSet | None, modality: str,
                orient: Orientation, settings: FeatureSettings,
                warnings: list[str]) -> tuple[dict[str, np.ndarray], dict[str, bool],
                                              MaskSet | None, str | None]:
    """Canonical masks by name, which ones are automatic, the auto MaskSet and its method."""
    canon: dict[str, np.ndarray] = {}
    automatic: dict[str, bool] = {}
    delivered = masks.masks if masks is not None else {}
    for name, m in delivered.items():
        if m is None:
            continue
        checked = check_mask(name, m, volume)
        if checked.any():
            canon[name] = orient.to_canonical(checked)
            automatic[name] = bool(masks.automatic) if masks is not None else False
    withheld = volume.meta.get(WITHHELD_MASKS) or {}
    for organ, why in withheld.items():
        if organ not in canon:
            warnings.append(f"{organ} features withheld: {why}")
    missing = [o for o in ("liver", "spleen") if o not in canon and o not in withheld]
    auto_set, method = None, masks.method if masks is not None and masks.automatic else None
    failed = mask_failure(volume)
    if missing and failed:
        warnings.append(f"no {' or '.join(missing)} mask: the delivered mask failed "
                        f"({failed}); automatic segmentation is not used in its place")
    elif missing:
        auto_set, method = segment_missing(volume, orient, modality, settings, missing,
                                           canon, automatic, warnings)
    return canon, automatic, auto_set, method


def segment_missing(volume: Volume, orient: Orientation, modality: str,
                    settings: FeatureSettings, missing: list[str],
                    canon: dict[str, np.ndarray], automatic: dict[str, bool],
                    warnings: list[str]) -> tuple[MaskSet | None, str | None]:
    """Segment the ``missing`` organs with the run's engine, into ``canon`` and
    ``automatic``; returns the automatic MaskSet and the engine label. An MR series gets
    no engine without TotalSegmentator (never the classical CT pipeline): a warning per
    organ, and its features say that they need a delivered mask."""
    engine = (None if modality != "CT" and settings.segmentation == CLASSICAL
              else choose_engine(settings.segmentation, modality))
    if engine is None:
        for organ in missing:
            warnings.append(f"no delivered {organ} mask: {needs_mask(organ)}")
        return None, None
    image_c = orient.to_canonical(volume.array)
    affine = canonical_affine(volume.origin_mm, volume.direction, volume.spacing_mm,
                              orient.perm, orient.flips, image_c.shape)
    seg = segment_canonical(image_c, orient.spacing_mm, method=engine, modality=modality,
                            affine_lps=affine)
    method = (f"{seg.method} (HepaTrack extractor {EXTRACTOR_VERSION})"
              if seg.method == CLASSICAL_METHOD else seg.method)
    for organ in missing:
        m = seg.masks.get(organ)
        if m is not None and m.any():
            canon[organ] = m
            automatic[organ] = True
        else:
            warnings.append(f"automatic segmentation found no {organ}")
    for name in ("aorta",):
        if name in seg.masks and name not in canon:
            canon[name] = seg.masks[name]
            automatic[name] = True
            missing.append(name)
    # every automatic mask is kept (``analytics.features.automask``), also those the
    # quality gate withholds later: the key image shows what was measured
    auto_set = MaskSet(masks={k: orient.from_canonical(v) for k, v in seg.masks.items()
                              if k in missing},
                       source="auto", automatic=True, method=method)
    return auto_set, method


def needs_mask(organ: str) -> str:
    """Why an MR organ without a delivered mask has no values (no engine for MR here)."""
    return MR_NEEDS_MASK.replace("a liver mask", f"a {organ} mask", 1)


def quality_gate(canon: dict[str, np.ndarray], automatic: dict[str, bool],
                 image: np.ndarray, spacing: tuple[float, float, float],
                 withheld: dict[str, str], warnings: list[str],
                 searched: tuple[str, ...] = (), modality: str = "CT") -> dict[str, str]:
    """Check the liver and spleen masks (``analytics.features.quality``), each on its own
    and then against each other.

    An organ that fails is removed from ``canon`` and ``automatic`` and named in
    ``withheld`` with the reason, so every number from it is withheld. An organ in
    ``searched`` (automatic segmentation looked for it and found nothing) is named in
    ``withheld`` too when the scan shows no abdomen at all. Returns the organs whose
    volume only is withheld (cut by the scan's edge), with the reason.
    """
    found = {}
    body = fov = None
    missing = [o for o in searched if o not in canon and o not in withheld]
    if missing and modality == "CT":  # the field of view is judged by Hounsfield units
        body, fov = body_for(image, modality), field_of_view(image, spacing)
        scan = scan_findings(image, body, fov)
        for organ in missing if scan else ():
            withheld[organ] = f"automatic segmentation found no {organ}: {'; '.join(scan)}"
    for organ in ("liver", "spleen"):
        mask = canon.get(organ)
        if mask is None:
            continue
        auto = bool(automatic.get(organ))
        if auto and body is None:
            body = body_for(image, modality)
            fov = field_of_view(image, spacing) if modality == "CT" else None
        found[organ] = check_organ(organ, mask, image, spacing, automatic=auto, body=body,
                                   modality=modality, fov=fov)
    liver_ok = "liver" in found and found["liver"].in_abdomen
    disagree = check_pair(canon.get("liver"), canon.get("spleen"), liver_trusted=liver_ok,
                          spleen_automatic=bool(automatic.get("spleen")),
                          liver_automatic=bool(automatic.get("liver")))
    partial: dict[str, str] = {}
    for organ, q in found.items():
        if not q.withhold_all:
            q.withhold_all.extend(disagree.get(organ, []))
        if q.withhold_all:
            why = q.reason(volume=False)
            canon.pop(organ)
            automatic.pop(organ, None)
            withheld[organ] = why
            warnings.append(why)
        elif q.withhold_volume:
            partial[organ] = q.reason(volume=True)
    return partial


def mask_failure(volume: Volume) -> str | None:
    """Why the series' delivered masks (some of them) could not be read, or None."""
    errors = volume.meta.get("mask_errors") if isinstance(volume.meta, dict) else None
    return "; ".join(str(e) for e in errors) if errors else None
