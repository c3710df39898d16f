"""Imaging biomarkers: one definition per feature the extraction computes.

Core names are fixed (ARCHITECTURE.md); others may be added, never renamed. Each normal
range is quoted only where a published source gives one, and the source is named in the
definition. The extraction (``analytics.features``) computes them family by family; this
module only says what they are.
"""

from __future__ import annotations

from typing import Any

from analytics.vocabulary._column import (
    CT,
    HIGHER_IS_WORSE,
    IMAGING,
    LOWER_IS_WORSE,
    MR,
    NEUTRAL,
    Column,
)

_ERODE = ("measured inside the mask eroded by 3 voxels (alternating 6- and 26-connected "
          "erosions, an octagonal approximation of a 3-voxel ball)")
_PARENCHYMA = (f"liver parenchyma: liver mask minus vessel and lesion voxels (each dilated "
               f"by 1 voxel), {_ERODE}")

STEATOSIS_CODES = {0: "none", 1: "mild", 2: "moderate-severe"}
PHASE_CODES = {0: "unenhanced", 1: "arterial", 2: "portal_venous", 3: "delayed"}


def _imaging(name: str, label: str, unit: str, definition: str, direction: str,
             modalities: tuple[str, ...], **more: Any) -> Column:
    return Column(name, label, unit, IMAGING, direction, definition, modalities, **more)


_DEFS: tuple[Column, ...] = (
    _imaging(
        "liver_volume_ml", "Liver volume", "mL",
        "Voxel count of the whole-liver mask (vessels and lesions included) times the voxel "
        "volume. Typical adult liver volume is about 1,000-1,800 mL (Heinemann et al., "
        "Forensic Sci Int 1999); volume depends on body size, so no fixed normal range is "
        "applied.",
        NEUTRAL, (CT, MR)),
    _imaging(
        "spleen_volume_ml", "Spleen volume", "mL",
        "Voxel count of the spleen mask times the voxel volume. Splenomegaly is commonly "
        "taken as a CT volume above about 314 mL (upper limit of normal in Prassopoulos et "
        "al., Eur Radiol 1997); portal hypertension enlarges the spleen.",
        HIGHER_IS_WORSE, (CT, MR), normal_range=(None, 314.0)),
    _imaging(
        "liver_hu_mean", "Liver attenuation, mean", "HU",
        f"Mean CT number of the {_PARENCHYMA}. On unenhanced CT a liver attenuation below "
        "40 HU indicates moderate-severe steatosis (Boyce et al., AJR 2010; Pickhardt et al., "
        "AJR 2012); normal unenhanced liver is about 55-65 HU.",
        LOWER_IS_WORSE, (CT,), normal_range=(40.0, None)),
    _imaging(
        "liver_hu_median", "Liver attenuation, median", "HU",
        f"Median CT number of the {_PARENCHYMA}.",
        LOWER_IS_WORSE, (CT,)),
    _imaging(
        "liver_hu_sd", "Liver attenuation, SD", "HU",
        f"Standard deviation of the CT numbers of the {_PARENCHYMA}; reflects image noise "
        "and parenchymal heterogeneity.",
        HIGHER_IS_WORSE, (CT,)),
    _imaging(
        "spleen_hu_mean", "Spleen attenuation, mean", "HU",
        f"Mean CT number of the spleen, {_ERODE}.",
        NEUTRAL, (CT,)),
    _imaging(
        "spleen_hu_median", "Spleen attenuation, median", "HU",
        f"Median CT number of the spleen, {_ERODE}.",
        NEUTRAL, (CT,)),
    _imaging(
        "spleen_hu_sd", "Spleen attenuation, SD", "HU",
        f"Standard deviation of the CT numbers of the spleen, {_ERODE}.",
        NEUTRAL, (CT,)),
    _imaging(
        "liver_spleen_hu_diff", "Liver minus spleen attenuation", "HU",
        "liver_hu_mean minus spleen_hu_mean. On unenhanced CT a difference below -10 HU "
        "indicates moderate-severe steatosis (Park et al., Radiology 2006; Boyce et al., "
        "AJR 2010); after contrast the difference depends on timing and is not graded.",
        LOWER_IS_WORSE, (CT,), normal_range=(-10.0, None)),
    _imaging(
        "liver_spleen_hu_ratio", "Liver/spleen attenuation ratio", "1",
        "liver_hu_mean / spleen_hu_mean. On unenhanced CT a ratio below 1.0 indicates "
        "steatosis (Kodama et al., AJR 2007; Park et al., Radiology 2006). Not computed when "
        "spleen attenuation is below 10 HU (a ratio of small numbers is unstable).",
        LOWER_IS_WORSE, (CT,), normal_range=(1.0, None)),
    _imaging(
        "steatosis_grade", "Steatosis grade (unenhanced CT)", "code",
        "Computed only on unenhanced CT, combining published thresholds: 2 = "
        "moderate-severe if liver_hu_mean < 40 HU (Boyce et al., AJR 2010) or "
        "liver_spleen_hu_diff < -10 HU (Park et al., Radiology 2006; Boyce 2010); 1 = mild "
        "if liver_spleen_hu_ratio < 1.0 (Kodama et al., AJR 2007; Park 2006) or "
        "liver_hu_mean < 48 HU (Pickhardt et al., AJR 2012); 0 = none. Attenuation is "
        "insensitive to mild steatosis (< ~10-20% fat), so 0 does not exclude it.",
        HIGHER_IS_WORSE, (CT,), categorical=True, codes=STEATOSIS_CODES,
        requires=("unenhanced",)),
    _imaging(
        "contrast_phase", "Contrast phase", "code",
        "Decided once, at ingest, from the DICOM header as received (series and protocol "
        "description, ContrastBolusAgent, bolus start to acquisition delay) before "
        "de-identification, and stored with the series; feature extraction reads it from "
        "the store and never re-derives it. Empty when the header did not state it. On CT "
        "the aortic attenuation then gives an estimate (< 100 HU unenhanced, > 200 HU "
        "arterial, otherwise portal venous), recorded in the flags (aorta_estimate, "
        "aorta_hu) and used for phase-dependent features, which are flagged "
        "contrast_phase_estimated; it is never stored as the phase.",
        NEUTRAL, (CT, MR), categorical=True, codes=PHASE_CODES),
    _imaging(
        "liver_surface_nodularity", "Liver surface nodularity", "mm",
        "Per axial slice (slices with at least 25% of the largest liver cross-section), the "
        "outer liver contour is compared with a low-pass version of itself (cubic "
        "Savitzky-Golay fit along the contour over 40 mm); the score is the mean distance "
        "between them in mm (per-point distances capped at 5 mm so fissures do not "
        "dominate), modelled on the LSN score of Smith et al. (Radiology 2016), who report "
        "LSN in tenths of a millimetre. Higher means a more nodular surface "
        "(fibrosis/cirrhosis). No normal range: values depend on the method and are not "
        "interchangeable with LSN.",
        HIGHER_IS_WORSE, (CT, MR)),
    _imaging(
        "liver_vessel_fraction", "Liver vessel fraction", "1",
        "Vessel volume / whole-liver volume. CT without a vessel mask: vessels are traced "
        "on the liver smoothed by 1.5 mm (seeds beyond 4 noise SDs, hysteresis to 2 SDs, "
        "tubular components kept by a Hessian vesselness); their volume is the excess "
        "attenuation summed over the traced vessels dilated by 2 mm divided by (blood - "
        "parenchyma), a partial-volume integration that sizes vessels thinner than the "
        "blur. Blood: the liver's vessel trunks on enhanced CT, the aorta on unenhanced CT. "
        "Not measurable (no value, reason given) when 4 mm vessels reach under 2 smoothed "
        "noise SDs or, with the aorta's blood level, the contrast is under 40 HU: usually "
        "the case on unenhanced CT except in severe steatosis. A delivered vessel mask is "
        "used instead when present (voxel count).",
        NEUTRAL, (CT, MR)),
    _imaging(
        "liver_vessel_tortuosity", "Liver vessel tortuosity", "1",
        "Mean over skeleton branches (longer than 5 mm) of path length / chord length of the "
        "vessel skeleton (3-D thinning on a 1.5 mm isotropic grid).",
        HIGHER_IS_WORSE, (CT, MR)),
    _imaging(
        "liver_vessel_branch_density", "Liver vessel branch density", "1/L",
        "Branch points of the vessel skeleton (voxels with 3 or more skeleton neighbours, "
        "adjacent ones counted once) per litre of liver.",
        NEUTRAL, (CT, MR)),
    _imaging(
        "liver_entropy", "Liver first-order entropy", "bits",
        "IBSI intensity-histogram entropy (log2) of the liver parenchyma after fixed-bin-width "
        "discretisation: 25 HU bins from -1000 HU on CT; 32 equal bins over the ROI range on "
        "MR (IBSI, Zwanenburg et al., Radiology 2020). Withheld with the reason when the "
        "parenchyma has one grey level after binning or fewer than 27 voxels.",
        HIGHER_IS_WORSE, (CT, MR)),
    _imaging(
        "liver_glcm_entropy", "Liver GLCM entropy", "bits",
        "IBSI joint entropy (log2) of the grey-level co-occurrence matrix of the liver "
        "parenchyma: 3-D, 13 directions merged, distance 1, symmetric; same discretisation "
        "as liver_entropy (Zwanenburg et al., Radiology 2020). Withheld as liver_entropy, "
        "and when no two parenchyma voxels are neighbours.",
        HIGHER_IS_WORSE, (CT, MR)),
    _imaging(
        "lesion_count", "Lesion count", "1",
        "Number of 26-connected components of the delivered lesion mask inside the image; "
        "only when a lesion mask is present.",
        HIGHER_IS_WORSE, (CT, MR)),
    _imaging(
        "lesion_volume_ml", "Total lesion volume", "mL",
        "Voxel count of the delivered lesion mask times the voxel volume; only when a lesion "
        "mask is present.",
        HIGHER_IS_WORSE, (CT, MR)),
    _imaging(
        "liver_mr_intensity_mean", "Liver MR intensity, mean", "a.u.",
        f"Mean stored MR signal of the {_PARENCHYMA}. Arbitrary units: comparable only "
        "within one scanner and protocol.",
        NEUTRAL, (MR,)),
    _imaging(
        "liver_mr_intensity_median", "Liver MR intensity, median", "a.u.",
        f"Median stored MR signal of the {_PARENCHYMA}.",
        NEUTRAL, (MR,)),
    _imaging(
        "liver_mr_intensity_sd", "Liver MR intensity, SD", "a.u.",
        f"Standard deviation of the stored MR signal of the {_PARENCHYMA}.",
        NEUTRAL, (MR,)),
    _imaging(
        "spleen_mr_intensity_mean", "Spleen MR intensity, mean", "a.u.",
        f"Mean stored MR signal of the spleen, {_ERODE}.",
        NEUTRAL, (MR,)),
    _imaging(
        "liver_spleen_mr_intensity_ratio", "Liver/spleen MR intensity ratio", "1",
        "liver_mr_intensity_mean / spleen_mr_intensity_mean (same series, so scanner gain "
        "cancels).",
        NEUTRAL, (MR,)),
)

_MAP_ROI = ("inside the liver mask eroded in-plane by 3 pixels on each slice (maps are often "
            "a few thick slices), the map recognised from Image Type or the series "
            "description and read in its unit from the header's Real World Value Mapping or "
            "Rescale Type (analytics.features.mr_quant)")
_FROM_IMAGE = ("Measured by HepaTrack on the image; a value stated in a report and "
               "imported with the visits is the separate column {} (its own source).")
_MR_MAP_DEFS: tuple[Column, ...] = (
    _imaging(
        "liver_pdff_median_pct", "Liver PDFF, median (MR map)", "%",
        f"Median proton-density fat fraction of the vendor's PDFF map {_MAP_ROI}. A map "
        "without a stated unit is read as percent, per mille or a fraction only when its "
        "range says so (subcutaneous fat near 100 %); otherwise withheld. PDFF >= 5 % is "
        "steatosis (Reeder et al., J Magn Reson Imaging 2011; Castera et al., "
        "Gastroenterology 2019). " + _FROM_IMAGE.format("mri_pdff_pct"),
        HIGHER_IS_WORSE, (MR,), normal_range=(None, 5.0),
        thresholds=((5.0, "steatosis (PDFF >= 5 %)"),)),
    _imaging(
        "liver_pdff_mean_pct", "Liver PDFF, mean (MR map)", "%",
        f"Mean proton-density fat fraction of the vendor's PDFF map {_MAP_ROI}. PDFF >= 5 % "
        "is steatosis (Reeder et al., J Magn Reson Imaging 2011). "
        + _FROM_IMAGE.format("mri_pdff_pct"),
        HIGHER_IS_WORSE, (MR,), normal_range=(None, 5.0),
        thresholds=((5.0, "steatosis (PDFF >= 5 %)"),)),
    _imaging(
        "liver_r2star_median_per_s", "Liver R2*, median (MR map)", "1/s",
        f"Median R2* of the vendor's R2* map {_MAP_ROI}. R2* rises with liver iron; its "
        "normal range depends on field strength (about 2x higher at 3 T than at 1.5 T), "
        "so none is applied (Wood et al., Blood 2005; Hernando et al., Magn Reson Med "
        "2014). A map without a stated unit is not measured.",
        HIGHER_IS_WORSE, (MR,)),
    _imaging(
        "liver_mre_stiffness_median_kpa", "Liver stiffness, median (MR elastography map)",
        "kPa",
        f"Median shear stiffness of the MR elastography stiffness map (elastogram) "
        f"{_MAP_ROI}. About 2-3 kPa in normal livers; >= 5 kPa suggests cirrhosis "
        "(Castera et al., Gastroenterology 2019; Rinella et al., AASLD practice guidance, "
        "Hepatology 2023). Not interchangeable with transient elastography (lsm_kpa). "
        "Confidence masks are not read: the whole eroded liver on the map's slices counts. "
        "A map without a stated unit is not measured. " + _FROM_IMAGE.format("mre_kpa"),
        HIGHER_IS_WORSE, (MR,),
        thresholds=((5.0, "suggests cirrhosis (MRE >= 5 kPa)"),)),
    _imaging(
        "liver_mre_stiffness_mean_kpa", "Liver stiffness, mean (MR elastography map)", "kPa",
        f"Mean shear stiffness of the MR elastography stiffness map {_MAP_ROI}; >= 5 kPa "
        "suggests cirrhosis (Castera et al., Gastroenterology 2019). "
        + _FROM_IMAGE.format("mre_kpa"),
        HIGHER_IS_WORSE, (MR,),
        thresholds=((5.0, "suggests cirrhosis (MRE >= 5 kPa)"),)),
    _imaging(
        "liver_signal_fat_fraction_pct", "Liver signal fat fraction (Dixon, not PDFF)", "%",
        "Median of F/(F+W) voxel by voxel, from two-point Dixon fat (F) and water (W) "
        f"magnitude images of the same grid, {_MAP_ROI.split(', the map')[0]}; measured on "
        "the fat image with the water image of the same study. Not PDFF: T1 weighting, T2* "
        "decay and the magnitude noise floor bias it, most at high fat fractions, so the "
        "PDFF thresholds are not applied (Reeder et al., J Magn Reson Imaging 2011).",
        HIGHER_IS_WORSE, (MR,)),
)

#: biomarkers of quantitative MR maps: each measured on its own map series, so a study's
#: visit takes each from whichever of its series measured it
MR_MAP_FEATURES: tuple[str, ...] = tuple(d.name for d in _MR_MAP_DEFS)

#: the names fixed by ARCHITECTURE.md
CORE_FEATURES: tuple[str, ...] = (
    "liver_volume_ml", "spleen_volume_ml", "liver_hu_mean", "liver_hu_median", "liver_hu_sd",
    "spleen_hu_mean", "liver_spleen_hu_diff", "liver_spleen_hu_ratio",
    "liver_surface_nodularity", "liver_vessel_fraction", "liver_vessel_tortuosity",
    "liver_vessel_branch_density",
)

#: CT attenuation biomarkers: their value depends on the contrast phase, so a value is
#: compared only with one of the same phase, and the published (unenhanced-CT) normal
#: ranges and steatosis thresholds apply to unenhanced scans only
PHASE_DEPENDENT: frozenset[str] = frozenset({
    "liver_hu_mean", "liver_hu_median", "liver_hu_sd", "spleen_hu_mean", "spleen_hu_median",
    "spleen_hu_sd", "liver_spleen_hu_diff", "liver_spleen_hu_ratio", "steatosis_grade",
})

#: IBSI radiomics columns: ``radiomics_<roi>_<MIRP feature name>``
RADIOMICS_PREFIX = "radiomics_"

IMAGING_COLUMNS: dict[str, Column] = {d.name: d for d in (*_DEFS, *_MR_MAP_DEFS)}


def radiomics_column(name: str) -> Column:
    """The generic definition of an IBSI radiomics column."""
    return Column(name, name.removeprefix(RADIOMICS_PREFIX).replace("_", " "), "1",
                  IMAGING, NEUTRAL, "IBSI radiomics feature computed by MIRP (research "
                  "mode); the settings are stored in the feature run.", (CT, MR))
