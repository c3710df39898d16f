"""IBSI radiomics (research mode) through MIRP.

MIRP (Zwanenburg et al.) implements the IBSI reference manual and is validated against
its reference values; pyradiomics does not build here. MIRP reads images from files, so
the image and ROI are written as NIfTI (canonical orientation, true spacing) to a
temporary directory. The settings used are returned with the values and stored in the
feature run, so every number can be reproduced.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from analytics.errors import FeatureError, MissingExtraError
from analytics.features import radiomics_configs as configs
from analytics.features.radiomics_configs import (
    DEFAULT_FAMILIES,
    RadiomicsConfig,
    RadiomicsSettings,
)
from analytics.features.registry import RADIOMICS_PREFIX

__all__ = ["DEFAULT_FAMILIES", "RadiomicsSettings", "ibsi_features", "radiomics_features",
           "require_mirp", "settings_record"]

#: how to install what research-mode radiomics need
INSTALL_HINT = "pip install 'hepatrack[radiomics]'"

#: MIRP column prefixes that hold feature values (everything else is metadata)
FEATURE_PREFIXES = ("morph_", "loc_", "stat_", "ih_", "ivh_", "cm_", "rlm_", "szm_", "dzm_",
                    "ngt_", "ngl_")


def settings_record(settings: RadiomicsSettings) -> dict[str, Any]:
    """The settings as stored with a run, with the MIRP version that applied them."""
    return {**settings.as_dict(), "engine": f"mirp {_mirp_version()}"}


def require_mirp():
    """The ``mirp`` module.

    Raises
    ------
    MissingExtraError
        If MIRP (the ``radiomics`` extra) is not installed; the message says how to
        install it.
    """
    try:
        import mirp
    except ImportError as e:
        raise MissingExtraError(
            f"radiomics need the optional MIRP package, which is not installed "
            f"({type(e).__name__}: {e}); install it with: {INSTALL_HINT}",
            hint=INSTALL_HINT) from e
    return mirp


def _mirp_version() -> str:
    try:
        from importlib.metadata import version

        return version("mirp")
    except Exception:  # metadata missing: report it rather than fail the extraction
        return "unknown"


@contextlib.contextmanager
def _quiet_mirp() -> Iterator[None]:
    """MIRP calls logging.basicConfig(INFO, stdout): keep it off stdout (JSON output)."""
    root = logging.getLogger()
    added = None
    if not root.handlers:
        added = logging.NullHandler()
        root.addHandler(added)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if added is not None:
            root.removeHandler(added)


def _write_nifti(array: np.ndarray, spacing_zyx: tuple[float, float, float], path: Path,
                 dtype) -> None:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=dtype))
    img.SetSpacing((float(spacing_zyx[2]), float(spacing_zyx[1]), float(spacing_zyx[0])))
    sitk.WriteImage(img, str(path))


def mirp_arguments(settings: RadiomicsSettings, modality: str = "CT") -> dict[str, Any]:
    """The keyword arguments of ``mirp.extract_features`` that carry ``settings``."""
    zone = settings.glszm_spatial_method
    kwargs: dict[str, Any] = {
        "image_modality": "mr" if modality.upper() == "MR" else "ct",
        "base_feature_families": list(settings.families),
        "base_discretisation_method": settings.discretisation,
        "glcm_distance": float(settings.glcm_distance),
        "glcm_spatial_method": list(settings.glcm_spatial_method),
        "glrlm_spatial_method": list(settings.glrlm_spatial_method),
        "glszm_spatial_method": zone, "gldzm_spatial_method": zone,
        "ngtdm_spatial_method": zone, "ngldm_spatial_method": zone,
        "ngldm_distance": float(settings.ngldm_distance),
        "ibsi_compliant": True,
        "by_slice": False,
    }
    if settings.discretisation == "fixed_bin_size":
        kwargs["base_discretisation_bin_width"] = float(settings.bin_width)
    elif settings.discretisation == "fixed_bin_number":
        kwargs["base_discretisation_n_bins"] = int(settings.n_bins)
    if settings.new_spacing_mm is not None:
        kwargs["new_spacing"] = float(settings.new_spacing_mm)
        kwargs["spline_order"] = int(settings.spline_order)
        kwargs["anti_aliasing"] = bool(settings.anti_aliasing)
    if settings.resegmentation_range is not None:
        kwargs["resegmentation_intensity_range"] = [float(x) for x in
                                                    settings.resegmentation_range]
    if settings.ivh_discretisation is not None:
        kwargs["ivh_discretisation_method"] = settings.ivh_discretisation
        if settings.ivh_bin_width is not None:
            kwargs["ivh_discretisation_bin_width"] = float(settings.ivh_bin_width)
    return kwargs


def ibsi_features(image: np.ndarray, roi: np.ndarray, spacing_mm: tuple[float, float, float],
                  *, modality: str = "CT",
                  settings: RadiomicsSettings | None = None) -> dict[str, float]:
    """IBSI features of ``image`` inside ``roi``, computed by MIRP.

    Parameters
    ----------
    image
        Intensities ``[z, y, x]`` (HU on CT).
    roi
        Boolean mask on the same grid.
    spacing_mm
        ``(z, y, x)`` spacing, mm.
    modality
        ``"CT"`` or ``"MR"``.
    settings
        MIRP configuration; defaults to :class:`RadiomicsSettings`.

    Returns
    -------
    dict
        MIRP feature name (e.g. ``"cm_joint_entr_d1_3d_v_mrg"``) -> value.

    Raises
    ------
    FeatureError
        If the ROI is empty or MIRP fails on the input.
    """
    settings = settings or RadiomicsSettings()
    roi = np.asarray(roi, dtype=bool)
    if roi.shape != image.shape or not roi.any():
        raise FeatureError(f"radiomics: ROI must be a non-empty mask of shape {image.shape}")
    mirp = require_mirp()

    kwargs = mirp_arguments(settings, modality)
    with tempfile.TemporaryDirectory(prefix="hepatrack-mirp-") as tmp:
        img_path, roi_path = Path(tmp) / "image.nii.gz", Path(tmp) / "roi.nii.gz"
        _write_nifti(image, spacing_mm, img_path, np.float32)
        _write_nifti(roi, spacing_mm, roi_path, np.uint8)
        try:
            with _quiet_mirp():
                tables = mirp.extract_features(image=str(img_path), mask=str(roi_path),
                                               **kwargs)
        except (ValueError, TypeError, RuntimeError, IndexError) as e:
            raise FeatureError(f"radiomics: MIRP failed: {type(e).__name__}: {e}") from e
    if not tables:
        raise FeatureError("radiomics: MIRP returned no feature table")
    row = tables[0].iloc[0]
    out: dict[str, float] = {}
    for col, value in row.items():
        if str(col).startswith(FEATURE_PREFIXES):
            try:
                v = float(value)
            except (TypeError, ValueError):
                continue
            if np.isfinite(v):
                out[str(col)] = v
    return out


def radiomics_features(image: np.ndarray, rois: dict[str, np.ndarray],
                       spacing_mm: tuple[float, float, float], modality: str,
                       settings: RadiomicsSettings | None = None, *,
                       config: RadiomicsConfig | None = None,
                       ) -> tuple[dict[str, float], dict[str, Any]]:
    """Radiomics of several ROIs, named ``radiomics_<roi>_<mirp name>``, plus settings.

    Parameters
    ----------
    image, rois, spacing_mm, modality
        As for :func:`ibsi_features`; ``rois`` maps an ROI name to its mask.
    settings
        Unnamed settings (tests and experiments); ignored when ``config`` is given.
    config
        A named configuration (``analytics.features.radiomics_configs``); with neither,
        the default configuration.

    Returns
    -------
    tuple
        ``{feature name: value}`` and the record of what was used: the configuration's
        name, version and reference (when named), every setting, and the MIRP version.

    Raises
    ------
    MissingExtraError
        If MIRP is not installed.
    FeatureError
        If the configuration has no settings for ``modality`` or MIRP fails on an ROI.
    """
    require_mirp()  # fail before any work when the extra is missing
    if config is None and settings is None:
        config = configs.get(configs.DEFAULT_CONFIG)
    if config is not None:
        settings = config.settings_for(modality)
        used = {**config.record(modality), "engine": f"mirp {_mirp_version()}"}
    else:
        used = settings_record(settings)
    values: dict[str, float] = {}
    for roi_name, roi in rois.items():
        if roi is None or not np.any(roi):
            continue
        for k, v in ibsi_features(image, roi, spacing_mm, modality=modality,
                                  settings=settings).items():
            values[f"{RADIOMICS_PREFIX}{roi_name}_{k}"] = v
    return values, used
