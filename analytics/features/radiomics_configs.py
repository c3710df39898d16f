"""Named, versioned radiomics configurations (research mode).

A radiomics value means nothing without the processing behind it (resampling grid,
interpolation, re-segmentation range, discretisation, texture distance and aggregation).
Each configuration here is frozen and has a name and a version; the name is what the
CLI (``--radiomics-config``), the site setting (``radiomics_config`` in config.toml) and
the stored feature runs use, and its full settings are stored with every run.

Configurations:

- ``hepatrack-ct-v1``: HepaTrack's defaults before configurations were named (2 mm
  isotropic resampling with MIRP's default cubic spline, 25 HU bins from -1000 HU; MR:
  32 bins), kept so earlier runs can be reproduced.
- ``ibsi-1-phantom``: the IBSI 1 digital phantom configuration: no resampling, no
  discretisation (the phantom's levels 1..9 are already discrete), distance 1.
- ``ibsi-1-ct``: IBSI 1 configuration C for CT (3-D, 2 mm isotropic resampling with
  trilinear interpolation and no anti-aliasing, re-segmentation range -1000..400 HU,
  fixed bin size 25 HU, intensity-volume histogram bins of 2.5 HU, distance 1).

Source of the IBSI values: Zwanenburg et al., "The Image Biomarker Standardization
Initiative", Radiology 2020 (reference manual arXiv:1612.07003, table of image processing
configurations A-E), as used by MIRP's own IBSI 1 conformance tests.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from analytics.errors import FeatureError

DEFAULT_FAMILIES = ("morphology", "statistics", "intensity_histogram", "glcm", "glrlm",
                    "glszm", "gldzm", "ngtdm", "ngldm")
DISCRETISATIONS = ("fixed_bin_size", "fixed_bin_number", "none")


@dataclass(frozen=True)
class RadiomicsSettings:
    """What MIRP is asked to do; stored alongside the values.

    Attributes
    ----------
    families
        MIRP feature-family tags.
    discretisation
        ``"fixed_bin_size"`` (CT), ``"fixed_bin_number"`` (MR) or ``"none"`` (already
        discrete images such as the IBSI digital phantom).
    bin_width
        Bin width for ``fixed_bin_size`` (HU on CT; bins start at -1000 HU).
    n_bins
        Number of bins for ``fixed_bin_number``.
    new_spacing_mm
        Isotropic resampling grid (mm), or None for no resampling.
    spline_order
        Image interpolation when resampling: 1 is trilinear, 3 cubic (MIRP's default).
    anti_aliasing
        Gaussian anti-aliasing before down-sampling (MIRP's default is on; IBSI 1 off).
    resegmentation_range
        ``(low, high)`` intensity range kept in the ROI (HU on CT), or None.
    ivh_discretisation, ivh_bin_width
        Discretisation of the intensity-volume histogram (``"none"`` keeps MIRP's own).
    glcm_distance, ngldm_distance
        Chebyshev neighbour distance (voxels) of the GLCM and NGLDM.
    glcm_spatial_method, glrlm_spatial_method
        IBSI aggregation methods of the texture matrices.
    glszm_spatial_method
        Aggregation of the zone and neighbourhood matrices (GLSZM, GLDZM, NGTDM, NGLDM).
    """

    families: tuple[str, ...] = DEFAULT_FAMILIES
    discretisation: str = "fixed_bin_size"
    bin_width: float = 25.0
    n_bins: int = 32
    new_spacing_mm: float | None = 1.0
    spline_order: int = 3
    anti_aliasing: bool = True
    resegmentation_range: tuple[float, float] | None = None
    ivh_discretisation: str | None = None
    ivh_bin_width: float | None = None
    glcm_distance: float = 1.0
    ngldm_distance: float = 1.0
    glcm_spatial_method: tuple[str, ...] = ("3d_volume_merge",)
    glrlm_spatial_method: tuple[str, ...] = ("3d_volume_merge",)
    glszm_spatial_method: str = "3d"

    def __post_init__(self) -> None:
        if self.discretisation not in DISCRETISATIONS:
            raise FeatureError(f"radiomics settings: discretisation {self.discretisation!r} "
                               f"is not one of {list(DISCRETISATIONS)}")

    def as_dict(self) -> dict[str, Any]:
        """JSON-able settings (tuples as lists)."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


@dataclass(frozen=True)
class RadiomicsConfig:
    """A named, versioned radiomics configuration.

    Attributes
    ----------
    name, version
        Identity; a change of any setting needs a new version (or name).
    description
        One line for the CLI help and the settings page.
    reference
        Where the values come from.
    ct, mr
        Settings for CT and MR series; None where the configuration does not apply.
    """

    name: str
    version: int
    description: str
    reference: str
    ct: RadiomicsSettings | None
    mr: RadiomicsSettings | None

    @property
    def label(self) -> str:
        """``name@version``, as stored on each radiomics feature row."""
        return f"{self.name}@{self.version}"

    def settings_for(self, modality: str) -> RadiomicsSettings:
        """The settings for ``modality`` (``"CT"`` or ``"MR"``).

        Raises
        ------
        FeatureError
            If the configuration has no settings for that modality.
        """
        s = self.mr if modality.upper() == "MR" else self.ct
        if s is None:
            raise FeatureError(f"radiomics configuration {self.name!r} is not defined for "
                               f"{modality.upper()} series")
        return s

    def record(self, modality: str) -> dict[str, Any]:
        """Everything stored with a run: identity, reference and the settings used."""
        return {"config": self.name, "config_version": self.version,
                "config_reference": self.reference, "modality": modality.upper(),
                **self.settings_for(modality).as_dict()}


_HEPATRACK_CT = RadiomicsSettings(new_spacing_mm=2.0)
CONFIGS: dict[str, RadiomicsConfig] = {c.name: c for c in (
    RadiomicsConfig(
        "hepatrack-ct-v1", 1,
        "HepaTrack defaults: 2 mm isotropic (cubic), 25 HU bins (MR: 32 bins)",
        "HepaTrack 1.3 defaults (not an IBSI configuration)",
        ct=_HEPATRACK_CT,
        mr=replace(_HEPATRACK_CT, discretisation="fixed_bin_number")),
    RadiomicsConfig(
        "ibsi-1-phantom", 1,
        "IBSI 1 digital phantom: no resampling, no discretisation, distance 1",
        "IBSI reference manual (Zwanenburg et al., Radiology 2020), digital phantom",
        ct=RadiomicsSettings(discretisation="none", new_spacing_mm=None,
                             anti_aliasing=False, ivh_discretisation="none",
                             glcm_spatial_method=("3d_average", "3d_volume_merge"),
                             glrlm_spatial_method=("3d_average", "3d_volume_merge")),
        mr=None),
    RadiomicsConfig(
        "ibsi-1-ct", 1,
        "IBSI 1 configuration C: 2 mm isotropic (trilinear), -1000..400 HU, 25 HU bins",
        "IBSI reference manual (Zwanenburg et al., Radiology 2020), configuration C",
        ct=RadiomicsSettings(new_spacing_mm=2.0, spline_order=1, anti_aliasing=False,
                             resegmentation_range=(-1000.0, 400.0), bin_width=25.0,
                             ivh_discretisation="fixed_bin_size", ivh_bin_width=2.5,
                             glcm_spatial_method=("3d_average", "3d_volume_merge"),
                             glrlm_spatial_method=("3d_average", "3d_volume_merge")),
        mr=None),
)}
#: the configuration used when neither the command line nor the site setting names one
DEFAULT_CONFIG = "hepatrack-ct-v1"


def names() -> list[str]:
    """Names of the registered configurations."""
    return list(CONFIGS)


def get(name: str) -> RadiomicsConfig:
    """The configuration called ``name``.

    Raises
    ------
    FeatureError
        If there is none; the message lists the valid names.
    """
    try:
        return CONFIGS[name]
    except KeyError:
        raise FeatureError(f"unknown radiomics configuration {name!r}; expected one of: "
                           f"{', '.join(CONFIGS)}") from None


def help_text() -> str:
    """One line per configuration, for ``--help`` and the settings page."""
    return "; ".join(f"{c.name} ({c.description})" for c in CONFIGS.values())
