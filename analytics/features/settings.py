"""Extraction settings and the constants shared by the extraction's modules.

A leaf: the extraction (:mod:`analytics.features.extract`), its mask handling
(:mod:`analytics.features.organ_masks`) and its feature families
(:mod:`analytics.features.families`) all import from here, never the other way round.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from analytics.features import radiomics_configs

#: bump when any computed value may change; stored with every feature row
EXTRACTOR_VERSION = "1.5.0"
#: ``volume.meta`` key naming organs whose delivered mask failed: ``{organ: reason}``; they
#: are not segmented automatically and their features are withheld (source ``withheld``)
WITHHELD_MASKS = "withheld_masks"


@dataclass(frozen=True)
class FeatureSettings:
    """Parameters of the extraction, stored with each feature run.

    Attributes
    ----------
    erosion_voxels
        Erosion of liver and spleen masks before intensity statistics.
    exclusion_dilation_voxels
        Dilation of vessel and lesion masks removed from the liver parenchyma.
    ct_bin_width_hu, ct_bin_lower_hu
        IBSI fixed-bin-width discretisation for CT texture.
    mr_bins
        IBSI fixed bin number for MR texture.
    nodularity_window_mm, nodularity_min_area_fraction, nodularity_cap_mm
        Surface nodularity parameters (see ``analytics.features.nodularity``).
    vessel_grid_mm, vessel_sigmas_mm, vessel_min_branch_mm
        Vessel analysis parameters (see ``analytics.features.vessels``).
    use_vessel_mask
        Use a delivered vessel mask when present (else always the vesselness filter).
    segmentation
        ``"auto"`` (TotalSegmentator if installed with weights, else classical on CT and
        nothing on MR), ``"classical"`` (CT only) or ``"totalsegmentator"``; used only
        for organs without a mask (``analytics.features.totalseg``).
    radiomics
        Also compute IBSI radiomics with MIRP (research mode).
    radiomics_config
        Name of the radiomics configuration
        (:mod:`analytics.features.radiomics_configs`); None means the site's default
        (``Settings.radiomics_config``), which the batch runner fills in before the run
        is recorded.
    """

    erosion_voxels: int = 3
    exclusion_dilation_voxels: int = 1
    ct_bin_width_hu: float = 25.0
    ct_bin_lower_hu: float = -1000.0
    mr_bins: int = 32
    nodularity_window_mm: float = 40.0
    nodularity_min_area_fraction: float = 0.25
    nodularity_cap_mm: float = 5.0
    vessel_grid_mm: float = 1.5
    vessel_sigmas_mm: tuple[float, ...] = (2.5, 3.0)
    vessel_min_branch_mm: float = 5.0
    use_vessel_mask: bool = True
    segmentation: str = "auto"
    radiomics: bool = False
    radiomics_config: str | None = None

    def __post_init__(self) -> None:
        if self.radiomics_config is not None:
            radiomics_configs.get(self.radiomics_config)  # unknown name: FeatureError

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["vessel_sigmas_mm"] = list(self.vessel_sigmas_mm)
        d["extractor_version"] = EXTRACTOR_VERSION
        return d
