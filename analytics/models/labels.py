"""Labels, units and directions of concern of feature and history columns.

Facts come from ``analytics.features.registry`` when it knows a feature; otherwise from
the built-in lab table below and the unit suffix of the column name (``_mg_dl`` ->
mg/dL). History columns (``_slope``, ``_worst``, ``_missing`` ...) are described from
their base feature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: labs for which a low value is the worse one; every other feature: high is worse
LOW_IS_WORSE = frozenset({"platelets_10e9_l", "albumin_g_dl", "sodium_mmol_l"})
LANDMARK = "landmark_years"
LANDMARK_SQ = "landmark_years_sq"

_UNIT_SUFFIXES = {
    "_mg_dl": "mg/dL", "_g_dl": "g/dL", "_mmol_l": "mmol/L", "_umol_l": "µmol/L",
    "_10e9_l": "10⁹/L", "_u_l": "U/L", "_ml": "mL", "_hu": "HU", "_years": "years",
    "_s": "s", "_kpa": "kPa", "_mm": "mm", "_pct": "%", "_db_m": "dB/m",
}
_LABELS = {
    "bilirubin_mg_dl": "Bilirubin", "albumin_g_dl": "Albumin", "inr": "INR",
    "prothrombin_s": "Prothrombin time", "creatinine_mg_dl": "Creatinine",
    "sodium_mmol_l": "Sodium", "platelets_10e9_l": "Platelets", "ast_u_l": "AST",
    "alt_u_l": "ALT", "alp_u_l": "Alkaline phosphatase", "age_years": "Age", "sex": "Sex",
    LANDMARK: "Time since baseline", "n_visits": "Number of visits",
    "years_since_last_visit": "Time since last visit",
}


@dataclass(frozen=True)
class FeatureInfo:
    """Display and direction facts about one feature column."""

    name: str
    label: str
    unit: str
    low_is_worse: bool


def feature_info(name: str) -> FeatureInfo:
    """Label, unit and direction of concern of a feature.

    Uses ``analytics.features.registry`` when it knows the feature; otherwise the
    built-in lab table and the unit suffix of the column name (``_mg_dl`` -> mg/dL).
    """
    reg = _registry_entry(name)
    if reg is not None:
        return reg
    unit = ""
    for suffix, u in _UNIT_SUFFIXES.items():
        if name.endswith(suffix):
            unit = u
            break
    label = _LABELS.get(name)
    if label is None:
        stem = name
        for suffix in _UNIT_SUFFIXES:
            if unit and stem.endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        label = stem.replace("_", " ").strip().capitalize()
        label = re.sub(r"\bHu\b", "HU", re.sub(r"\bCt\b", "CT", label))
    return FeatureInfo(name=name, label=label, unit=unit, low_is_worse=name in LOW_IS_WORSE)


def describe_column(column: str) -> tuple[str, str]:
    """(label, unit) of a history or model-matrix column, e.g. ``bilirubin_mg_dl_slope``
    -> ("Bilirubin trend", "mg/dL per year")."""
    if column == LANDMARK_SQ:
        return "Time since baseline (squared term)", "years²"
    if "=" in column:
        base, level = column.split("=", 1)
        return f"{feature_info(base).label} = {level}", ""
    for suffix, label_fmt, unit_fmt in (
        ("_missing", "{} not measured yet", ""),
        ("_slope", "{} trend", "{} per year"),
        ("_worst", "{} worst so far", "{}"),
        ("_mean_1y", "{} mean of the last year", "{}"),
        ("_change", "{} change since the first value", "{}"),
        ("_x_landmark", "{} x time since baseline", "{} x years"),
    ):
        if column.endswith(suffix):
            info = feature_info(column[: -len(suffix)])
            unit = unit_fmt.format(info.unit or "units") if unit_fmt else ""
            return label_fmt.format(info.label), unit
    info = feature_info(column)
    return info.label, info.unit


def _registry_entry(name: str) -> FeatureInfo | None:
    """The feature registry's facts about ``name``, if the registry exists and knows it."""
    try:
        from analytics.features import registry  # written by the features stage
    except ImportError:
        return None
    from analytics.errors import FeatureError

    try:
        d = registry.feature_def(name)
    except (FeatureError, AttributeError, KeyError):
        return None
    low = str(getattr(d, "direction", "")) == getattr(registry, "LOWER_IS_WORSE", "lower is worse")
    unit = "" if d.unit in ("1", "code") else d.unit
    return FeatureInfo(name=name, label=d.label, unit=unit, low_is_worse=low)


def applies_to_modality(name: str, modality: str) -> bool | None:
    """Whether the registry defines ``name`` for ``modality``; None when it cannot say."""
    try:
        from analytics.errors import FeatureError
        from analytics.features import registry

        return bool(registry.applies_to(name, modality))
    except (ImportError, AttributeError, FeatureError, KeyError):
        return None
