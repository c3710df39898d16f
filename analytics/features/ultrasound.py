"""Ultrasound measurements on one frame, with ROIs a sonographer places (all lengths in mm).

Coordinates on a frame: ``x_mm`` from the left edge of the 2-D image region, ``depth_mm``
below the transducer face (the region's reference pixel, or its top row), both from the
Sequence of Ultrasound Regions' physical delta X/Y. Grey levels are the frame's luma
(0-255 for 8-bit data): colour and palette frames are converted with ITU-R BT.601 weights.

- hepatorenal index: mean grey of a liver ROI over a right-kidney cortex ROI; a warning
  when their centres' depths differ by more than 10 mm;
- liver echo texture: first-order statistics and a 2-D GLCM (distance 1, 4 directions
  merged, grey levels in bins of 8) on the liver ROI;
- depth-intensity slope: least-squares grey level per cm of depth over the liver ROI
  (uncalibrated: gain and time-gain compensation change it; research only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydicom import Dataset
from pydicom.pixels import apply_color_lut

from analytics.errors import FeatureError
from analytics.features.texture import discretise_fixed_width, glcm_3d_merged, histogram_entropy
from analytics.ingest.ultrasound import UltrasoundRegion, tissue_regions
from analytics.vocabulary.ultrasound import ULTRASOUND_DEFS

#: depths of the liver and kidney ROIs further apart than this draw a warning (mm)
DEPTH_WARNING_MM = 10.0
#: grey-level bin width of the texture features (8-bit luma: 32 bins)
TEXTURE_BIN_WIDTH = 8.0
#: fewest pixels an ROI may hold (a 5 x 5 block)
MIN_ROI_PIXELS = 25
_LUMA = np.array([0.299, 0.587, 0.114])
ROLES = ("liver", "kidney")
SLOPE_NOTE = "uncalibrated (depends on gain and TGC), research only"


@dataclass(frozen=True)
class Roi:
    """A box or circle on a frame: centre and size in mm (``width_mm`` is the circle's
    diameter; ``height_mm`` is ignored for a circle)."""

    role: Literal["liver", "kidney"]
    shape: Literal["box", "circle"]
    x_mm: float
    depth_mm: float
    width_mm: float
    height_mm: float

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise FeatureError(f"ROI role {self.role!r}: expected one of {', '.join(ROLES)}")
        if self.shape not in ("box", "circle"):
            raise FeatureError(f"ROI shape {self.shape!r}: expected 'box' or 'circle'")
        if not (self.width_mm > 0 and (self.shape == "circle" or self.height_mm > 0)):
            raise FeatureError(f"{self.role} ROI size must be positive (width {self.width_mm} "
                               f"mm, height {self.height_mm} mm)")

    def as_dict(self) -> dict[str, Any]:
        return {"role": self.role, "shape": self.shape, "x_mm": self.x_mm,
                "depth_mm": self.depth_mm, "width_mm": self.width_mm,
                "height_mm": self.height_mm}


@dataclass(frozen=True)
class UltrasoundFrame:
    """One frame's grey levels (rows, cols) and the 2-D region its mm coordinates use."""

    grey: np.ndarray
    region: UltrasoundRegion

    @property
    def dx_mm(self) -> float:
        return float(self.region.delta_x_mm or 0.0)

    @property
    def dy_mm(self) -> float:
        return float(self.region.delta_y_mm or 0.0)

    def col(self, x_mm: float) -> float:
        return self.region.x0 + x_mm / self.dx_mm

    def row(self, depth_mm: float) -> float:
        return self.region.reference_row + (depth_mm - self.region.reference_depth_mm) / self.dy_mm

    def depth_of_rows(self) -> np.ndarray:
        rows = np.arange(self.grey.shape[0], dtype=np.float64)
        return self.region.reference_depth_mm + (rows - self.region.reference_row) * self.dy_mm

    @property
    def extent_mm(self) -> tuple[float, float, float, float]:
        """``(x_min, x_max, depth_min, depth_max)`` of the region, pixel centres (mm)."""
        r = self.region
        return (0.0, (r.x1 - r.x0) * self.dx_mm, self.region.depth_mm(r.y0),
                self.region.depth_mm(r.y1))


def luma(pixels: np.ndarray, ds: Dataset) -> np.ndarray:
    """Grey levels (float, 0-255 for 8-bit data) of decoded frame(s) of ``ds``.

    Palette colour is looked up and scaled to 8 bits; RGB (YBR is decoded to RGB) weighted
    by BT.601; MONOCHROME1 inverted.
    """
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(pixels, ds).astype(np.float64)
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        return rgb @ _LUMA * (255.0 / (2 ** bits - 1))
    if pixels.ndim >= 3 and pixels.shape[-1] == 3 and int(ds.get("SamplesPerPixel") or 1) == 3:
        return pixels.astype(np.float64) @ _LUMA
    grey = pixels.astype(np.float64)
    if photometric == "MONOCHROME1":
        grey = (2 ** int(ds.get("BitsStored") or 8) - 1) - grey
    return grey


def frame_of(ds: Dataset, frame: int = 0) -> UltrasoundFrame:
    """Frame ``frame`` (0-based) of a stored ultrasound object, in grey, with its region.

    ROI coordinates refer to the first calibrated 2-D region (the left image of a dual
    view).

    Raises
    ------
    FeatureError
        No calibrated 2-D region, or ``frame`` past the object's frames.
    """
    kept = [r for r in tissue_regions(ds) if r.calibrated]
    if not kept:
        raise FeatureError("no 2-D ultrasound region with physical delta X/Y in cm "
                           "(0018,602C/602E): the frame cannot be measured in mm")
    n = int(ds.get("NumberOfFrames") or 1)
    if not 0 <= frame < n:
        raise FeatureError(f"frame {frame + 1} does not exist: the image has {n} frame(s)")
    pixels = ds.pixel_array
    samples = int(ds.get("SamplesPerPixel") or 1)
    if n > 1 or pixels.ndim == 2 + (samples > 1) + 1:
        pixels = pixels[frame]
    return UltrasoundFrame(grey=luma(pixels, ds), region=kept[0])


def roi_mask(frame: UltrasoundFrame, roi: Roi) -> np.ndarray:
    """Boolean (rows, cols) of the pixels whose centres lie inside ``roi``.

    Raises
    ------
    FeatureError
        The ROI reaches outside the image region or holds fewer than ``MIN_ROI_PIXELS``.
    """
    cols = frame.grey.shape[1]
    x = (np.arange(cols) - frame.region.x0) * frame.dx_mm
    depth = frame.depth_of_rows()
    dx, dz = x[None, :] - roi.x_mm, depth[:, None] - roi.depth_mm
    if roi.shape == "circle":
        mask = dx ** 2 + dz ** 2 <= (roi.width_mm / 2) ** 2
    else:
        mask = (np.abs(dx) <= roi.width_mm / 2) & (np.abs(dz) <= roi.height_mm / 2)
    x0, x1, d0, d1 = frame.extent_mm
    half_w = roi.width_mm / 2
    half_h = half_w if roi.shape == "circle" else roi.height_mm / 2
    # the ROI's outline, not only its pixels, must lie on the region (half a pixel slack)
    if (roi.x_mm - half_w < x0 - frame.dx_mm / 2 or roi.x_mm + half_w > x1 + frame.dx_mm / 2
            or roi.depth_mm - half_h < d0 - frame.dy_mm / 2
            or roi.depth_mm + half_h > d1 + frame.dy_mm / 2):
        raise FeatureError(f"the {roi.role} ROI reaches outside the image region (x "
                           f"{x0:.0f}-{x1:.0f} mm, depth {d0:.0f}-{d1:.0f} mm); move or shrink it")
    if mask.sum() < MIN_ROI_PIXELS:
        raise FeatureError(f"the {roi.role} ROI holds {int(mask.sum())} pixels; at least "
                           f"{MIN_ROI_PIXELS} are needed")
    return mask


@dataclass
class Measurement:
    """The measurements of one frame; ``values`` keyed by feature name (units in
    :data:`UNITS`), ``warnings`` for the reader, ``rois`` as placed."""

    values: dict[str, float | None] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    rois: list[dict[str, Any]] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)


UNITS: dict[str, str] = {c.name: c.unit for c in ULTRASOUND_DEFS}


def hepatorenal(frame: UltrasoundFrame, liver: Roi, kidney: Roi) -> dict[str, Any]:
    """Hepatorenal index and the means it divides; a warning when depths differ > 10 mm."""
    lm = float(frame.grey[roi_mask(frame, liver)].mean())
    km = float(frame.grey[roi_mask(frame, kidney)].mean())
    if km <= 0:
        raise FeatureError("the kidney ROI is black (mean grey 0): no hepatorenal index")
    diff = abs(liver.depth_mm - kidney.depth_mm)
    warning = (f"liver and kidney ROIs are {diff:.0f} mm apart in depth (more than "
               f"{DEPTH_WARNING_MM:.0f} mm): attenuation biases the index; place them at a "
               "similar depth") if diff > DEPTH_WARNING_MM else None
    return {"us_hepatorenal_index": lm / km, "us_liver_grey_mean": lm,
            "us_kidney_grey_mean": km, "us_roi_depth_difference_mm": diff, "warning": warning}


def texture(frame: UltrasoundFrame, liver: Roi) -> dict[str, float]:
    """First-order statistics and 2-D GLCM features of the liver ROI."""
    mask = roi_mask(frame, liver)
    v = frame.grey[mask]
    mean, sd = float(v.mean()), float(v.std())
    z = (v - mean) / sd if sd > 0 else np.zeros_like(v)
    levels = discretise_fixed_width(frame.grey, TEXTURE_BIN_WIDTH, 0.0)
    out = {"us_liver_grey_sd": sd, "us_liver_grey_skewness": float((z ** 3).mean()),
           "us_liver_grey_kurtosis": float((z ** 4).mean() - 3.0),
           "us_liver_entropy": histogram_entropy(levels[mask])}
    out.update(glcm_2d(levels, mask))
    return out


def glcm_2d(levels: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Contrast, homogeneity, energy and correlation of the symmetric in-plane GLCM
    (distance 1, 4 directions merged; IBSI definitions)."""
    p = glcm_3d_merged(levels[None], mask[None])  # one slice: only in-plane pairs
    g = np.unique(levels[mask]).astype(np.float64)
    if p.size == 0:
        return {}
    i, j = np.meshgrid(g, g, indexing="ij")
    mu = float((i * p).sum())
    var = float((((i - mu) ** 2) * p).sum())
    corr = float((((i - mu) * (j - mu)) * p).sum() / var) if var > 0 else 1.0
    return {"us_liver_glcm_contrast": float((((i - j) ** 2) * p).sum()),
            "us_liver_glcm_homogeneity": float((p / (1.0 + np.abs(i - j))).sum()),
            "us_liver_glcm_energy": float((p ** 2).sum()),
            "us_liver_glcm_correlation": corr}


def depth_slope(frame: UltrasoundFrame, liver: Roi) -> float:
    """Least-squares slope of grey level over depth in the liver ROI (grey level per cm)."""
    mask = roi_mask(frame, liver)
    depth_cm = np.broadcast_to(frame.depth_of_rows()[:, None], mask.shape)[mask] / 10.0
    if np.ptp(depth_cm) <= 0:
        raise FeatureError("the liver ROI spans no depth: no depth-intensity slope")
    slope, _ = np.polyfit(depth_cm, frame.grey[mask], 1)
    return float(slope)


def measure_frame(frame: UltrasoundFrame, rois: list[Roi]) -> Measurement:
    """Every measurement the placed ROIs allow (hepatorenal needs both, the rest the liver).

    Raises
    ------
    FeatureError
        No liver ROI, two ROIs of one role, or an ROI outside the region.
    """
    by_role: dict[str, Roi] = {}
    for r in rois:
        if r.role in by_role:
            raise FeatureError(f"two {r.role} ROIs: place one of each")
        by_role[r.role] = r
    if "liver" not in by_role:
        raise FeatureError("no liver ROI: place a liver ROI on the frame")
    liver = by_role["liver"]
    out = Measurement(rois=[r.as_dict() for r in rois])
    if "kidney" in by_role:
        hri = hepatorenal(frame, liver, by_role["kidney"])
        warning = hri.pop("warning")
        if warning:
            out.warnings.append(warning)
        out.values.update(hri)
    else:
        out.values["us_liver_grey_mean"] = float(frame.grey[roi_mask(frame, liver)].mean())
        out.warnings.append("no kidney ROI: no hepatorenal index")
    out.values.update(texture(frame, liver))
    out.values["us_liver_depth_slope"] = depth_slope(frame, liver)
    out.notes["us_liver_depth_slope"] = SLOPE_NOTE
    return out


__all__ = [
    "DEPTH_WARNING_MM",
    "UNITS",
    "Measurement",
    "Roi",
    "UltrasoundFrame",
    "frame_of",
    "glcm_2d",
    "luma",
    "measure_frame",
    "roi_mask",
]
