"""The header facts that say what an MR series' pixel values mean.

Quantitative MR maps (fat fraction, R2*, elastography stiffness) and Dixon fat/water images
are told apart by Image Type, the series description and the units the header states:
Real World Value Mapping (0040,9096) with its Measurement Units Code Sequence
(0040,08EA), or the Rescale Type (0028,1054). This module only reads those facts into a
small JSON-able dict; :mod:`analytics.features.mr_quant` decides what the series is.

Enhanced (multi-frame) objects carry the mapping in the shared or the first per-frame
functional group; a classic image at the top level.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset

__all__ = ["quant_header", "rescaled_quant_header"]


def _text(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    return str(value).strip() or None


def _words(ds: Dataset, keyword: str) -> list[str]:
    value = ds.get(keyword)
    if value is None:
        return []
    values = [value] if isinstance(value, str) else list(value)
    return [str(v).strip().upper() for v in values if str(v).strip()]


def _number(ds: Dataset, keyword: str) -> float | None:
    value = ds.get(keyword)
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _mapping(item: Dataset) -> dict[str, Any]:
    units = item.get("MeasurementUnitsCodeSequence") or []
    code = units[0] if len(units) else Dataset()
    return {"units_code": _text(code, "CodeValue"), "units_meaning": _text(code, "CodeMeaning"),
            "slope": _number(item, "RealWorldValueSlope"),
            "intercept": _number(item, "RealWorldValueIntercept"),
            "label": _text(item, "LUTLabel"), "explanation": _text(item, "LUTExplanation")}


def _mappings(ds: Dataset) -> list[dict[str, Any]]:
    """Real World Value Mappings at the top level, else in the shared or first per-frame
    functional group."""
    places = [ds]
    for seq in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = ds.get(seq) or []
        if len(groups):
            places.append(groups[0])
    for place in places:
        found = place.get("RealWorldValueMappingSequence") or []
        if len(found):
            return [_mapping(item) for item in found]
    return []


def quant_header(ds: Dataset) -> dict[str, Any]:
    """What the header says about the meaning of the pixel values.

    Parameters
    ----------
    ds
        A parsed image header (pixel data not needed).

    Returns
    -------
    dict
        ``image_type`` (upper-case words), ``description``, ``protocol``,
        ``manufacturer``, ``rescale_type``, ``rescale_slope``, ``rescale_intercept``
        and ``rwvm`` (list of ``units_code``, ``units_meaning``, ``slope``, ``intercept``,
        ``label``, ``explanation``).
    """
    frame_type: list[str] = []
    shared = ds.get("SharedFunctionalGroupsSequence") or []
    for group in (shared[0] if len(shared) else Dataset(),):
        for seq in ("MRImageFrameTypeSequence", "CTImageFrameTypeSequence"):
            items = group.get(seq) or []
            if len(items):
                frame_type = _words(items[0], "FrameType")
    return {
        "image_type": _words(ds, "ImageType") or frame_type,
        "description": _text(ds, "SeriesDescription"),
        "protocol": _text(ds, "ProtocolName"),
        "manufacturer": _text(ds, "Manufacturer"),
        "rescale_type": _text(ds, "RescaleType"),
        "rescale_slope": _number(ds, "RescaleSlope"),
        "rescale_intercept": _number(ds, "RescaleIntercept"),
        "rwvm": _mappings(ds),
    }


def rescaled_quant_header(ds: Dataset, geometries: list) -> dict[str, Any]:
    """:func:`quant_header` with the rescale the volume's values already carry.

    ``geometries`` are the frames' geometries (``slope``, ``intercept``) as the volume was
    built from them; ``rescale_uniform`` is False when they differ between frames (a Real
    World Value Mapping of the stored values then cannot be applied to the volume).
    """
    out = quant_header(ds)
    pairs = {(float(g.slope), float(g.intercept)) for g in geometries} or {(1.0, 0.0)}
    slope, intercept = sorted(pairs)[0]
    out.update(rescale_slope=slope, rescale_intercept=intercept,
               rescale_uniform=len(pairs) == 1)
    return out
