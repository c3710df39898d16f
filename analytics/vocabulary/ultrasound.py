"""Ultrasound biomarkers: measured on one frame with ROIs a sonographer places.

They are imaging features (a visit at the study date, like CT and MR), computed by
:mod:`analytics.features.ultrasound` from the ROIs stored with the series, not by the
volume extraction. Grey levels are the frame's luma (0-255): they depend on the scanner,
its gain and time-gain compensation, so only ratios taken on one frame (the hepatorenal
index) carry a published threshold.
"""

from __future__ import annotations

from analytics.vocabulary._column import HIGHER_IS_WORSE, IMAGING, NEUTRAL, Column

US = "US"
_FRAME = ("on the frame the sonographer chose, inside the liver ROI (a box or circle placed "
          "in mm on the calibrated image region)")
_GLCM = ("of the symmetric 2-D grey-level co-occurrence matrix (distance 1 pixel, 4 in-plane "
         "directions merged; grey levels in bins of 8) " + _FRAME + "; IBSI definition")


def _us(name: str, label: str, unit: str, definition: str, direction: str = NEUTRAL,
        **more) -> Column:
    return Column(name, label, unit, IMAGING, direction, definition, (US,), **more)


ULTRASOUND_DEFS: tuple[Column, ...] = (
    _us("us_hepatorenal_index", "Hepatorenal index (ultrasound)", "ratio",
        "Mean grey level of a liver ROI over that of a right-kidney cortex ROI at a similar "
        "depth, on one frame. A hepatorenal index above 1.28 detected steatosis above 5 % "
        "with a sensitivity of 100 % (Marshall et al., AJR 2012); Webb et al. (AJR 2009) "
        "found 1.49 for at least 5 % steatosis. A warning is stored when the two ROIs' "
        "depths differ by more than 10 mm.",
        HIGHER_IS_WORSE, normal_range=(None, 1.28)),
    _us("us_liver_grey_mean", "Liver echo level, mean (ultrasound)", "grey level",
        f"Mean grey level {_FRAME}. Depends on scanner gain: compare within one scanner "
        "and preset only."),
    _us("us_kidney_grey_mean", "Kidney cortex echo level, mean (ultrasound)", "grey level",
        "Mean grey level inside the right-kidney cortex ROI on the same frame."),
    _us("us_roi_depth_difference_mm", "Liver-kidney ROI depth difference (ultrasound)", "mm",
        "Absolute difference of the depths of the liver and kidney ROI centres below the "
        "transducer face; above 10 mm the hepatorenal index is biased by attenuation."),
    _us("us_liver_grey_sd", "Liver echo level, SD (ultrasound)", "grey level",
        f"Standard deviation of the grey levels {_FRAME}."),
    _us("us_liver_grey_skewness", "Liver echo level, skewness (ultrasound)", "1",
        f"Skewness of the grey levels {_FRAME} (IBSI first-order)."),
    _us("us_liver_grey_kurtosis", "Liver echo level, excess kurtosis (ultrasound)", "1",
        f"Excess kurtosis of the grey levels {_FRAME} (IBSI first-order)."),
    _us("us_liver_entropy", "Liver echo entropy (ultrasound)", "bits",
        f"Entropy of the grey-level histogram (bins of 8) {_FRAME}."),
    _us("us_liver_glcm_contrast", "Liver echo GLCM contrast (ultrasound)", "1",
        f"Contrast {_GLCM}."),
    _us("us_liver_glcm_homogeneity", "Liver echo GLCM homogeneity (ultrasound)", "1",
        f"Inverse difference {_GLCM}."),
    _us("us_liver_glcm_energy", "Liver echo GLCM energy (ultrasound)", "1",
        f"Angular second moment {_GLCM}."),
    _us("us_liver_glcm_correlation", "Liver echo GLCM correlation (ultrasound)", "1",
        f"Correlation {_GLCM}."),
    _us("us_liver_depth_slope", "Liver depth-intensity slope (ultrasound, uncalibrated)",
        "grey level/cm",
        f"Least-squares slope of grey level over depth {_FRAME}. Uncalibrated: it depends "
        "on gain, time-gain compensation and focus, so it is for research only, not an "
        "attenuation coefficient in dB/cm/MHz."),
)

ULTRASOUND_COLUMNS: dict[str, Column] = {c.name: c for c in ULTRASOUND_DEFS}

__all__ = ["ULTRASOUND_COLUMNS", "ULTRASOUND_DEFS", "US"]
