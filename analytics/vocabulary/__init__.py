"""One vocabulary: the label, unit, direction, ranges and source of every column.

Every page, figure, report, export, model card and validation message reads column facts
from here, so a column shows the same words everywhere and a new biomarker is defined
once. Definitions live in :mod:`analytics.vocabulary.imaging` (imaging biomarkers) and
:mod:`analytics.vocabulary.clinical` (visits-file columns, clinical scores, the model's
global history columns, the store's record columns).

Names that are not defined directly are described by rule:

- history and design columns from their base column: ``<f>_slope`` ("<label> trend",
  <unit> per year), ``<f>_worst``, ``<f>_mean_1y``, ``<f>_change``, ``<f>_x_landmark``,
  ``<f>_missing`` (missing indicator), ``<f>=<level>`` (one-hot level) and the features
  export's ``<f>__source`` (where the masks came from);
- ``radiomics_<roi>_<name>``: an IBSI radiomics feature;
- any other visits-file column: words from the name, the unit from its suffix
  (``stiffness_kpa`` -> "Stiffness", kPa), as the cohort CSV contract names them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from analytics.errors import FeatureError
from analytics.vocabulary._column import (
    CODED,
    CT,
    DERIVED,
    HIDDEN_UNITS,
    HIGHER_IS_WORSE,
    IMAGING,
    LAB,
    LOWER_IS_WORSE,
    MR,
    NEUTRAL,
    RECORD,
    SOURCES,
    Column,
)
from analytics.vocabulary.clinical import (
    CODED_DEFS,
    HISTORY_DEFS,
    LAB_DEFS,
    LANDMARK,
    LANDMARK_SQ,
    RECORD_DEFS,
    SCORE_DEFS,
)
from analytics.vocabulary.imaging import (
    CORE_FEATURES,
    IMAGING_COLUMNS,
    MR_MAP_FEATURES,
    PHASE_CODES,
    PHASE_DEPENDENT,
    RADIOMICS_PREFIX,
    STEATOSIS_CODES,
    radiomics_column,
)
from analytics.vocabulary.ultrasound import ULTRASOUND_COLUMNS, ULTRASOUND_DEFS

__all__ = [
    "CODED", "COLUMNS", "CORE_FEATURES", "CT", "DERIVED", "HIGHER_IS_WORSE", "IMAGING",
    "IMAGING_COLUMNS", "LAB", "LANDMARK", "LANDMARK_SQ", "LOWER_IS_WORSE", "LOW_IS_WORSE",
    "MR", "MR_MAP_FEATURES", "NEUTRAL", "PHASE_CODES", "PHASE_DEPENDENT", "RADIOMICS_PREFIX",
    "RECORD", "SOURCES", "STEATOSIS_CODES", "ULTRASOUND_COLUMNS",
    "Column", "FeatureInfo", "applies_to_modality", "column", "describe_column",
    "event_label", "event_words", "feature_info", "imaging_feature", "label", "label_with_unit", "low_is_worse", "normal_range", "outcome_words",
    "shown_unit", "unit", "visit_source_words",
]

#: every column defined directly, by name
COLUMNS: dict[str, Column] = {
    c.name: c for c in (*IMAGING_COLUMNS.values(), *ULTRASOUND_DEFS, *LAB_DEFS, *CODED_DEFS,
                        *SCORE_DEFS, *HISTORY_DEFS, *RECORD_DEFS)
}

#: columns for which a low value is the worse one
LOW_IS_WORSE = frozenset(n for n, c in COLUMNS.items() if c.low_is_worse)

#: history and design columns: suffix -> (label format, unit format, "" = no unit;
#: definition format), each formatted with the base column's label, unit or name
_HISTORY_RULES: tuple[tuple[str, str, str, str], ...] = (
    ("__source", "{}: mask source", "",
     "Where the masks behind {} came from (analytics.features.registry.MASK_SOURCES)."),
    ("_missing", "{} not measured yet", "",
     "1 while {} has no value yet at the landmark time, else 0 (missing indicator)."),
    ("_slope", "{} trend", "{} per year",
     "Least-squares slope per year of {} over every measurement so far (0 with one)."),
    ("_worst", "{} worst so far", "{}",
     "The worst value of {} so far: the minimum when low is worse, else the maximum."),
    ("_mean_1y", "{} mean of the last year", "{}",
     "Mean of the values of {} in the year before the landmark time."),
    ("_measured", "{} measured", "",
     "1 once a scan has measured {} (at or before the landmark time), else 0."),
    ("_years_since_scan", "{}: years since the scan", "years",
     "Years from the last scan that measured {} to the landmark time."),
    ("_scan_change", "{} change since the previous scan", "{}",
     "Value of {} at the last scan minus its value at the scan before (0 with one scan)."),
    ("_change", "{} change since the first value", "{}",
     "Last value of {} minus its first value."),
    ("_x_landmark", "{} x time since baseline", "{} x years",
     "Last value of {} times the landmark time (an interaction term)."),
)

#: unit suffixes of the cohort CSV format, longest first so "_mg_dl" wins over "_dl"
_NAME_UNITS: tuple[tuple[str, str], ...] = (
    ("_10e9_l", "×10⁹/L"), ("_mmol_l", "mmol/L"), ("_umol_l", "µmol/L"), ("_mg_dl", "mg/dL"),
    ("_g_dl", "g/dL"), ("_g_l", "g/L"), ("_u_l", "U/L"), ("_years", "years"),
    ("_db_m", "dB/m"), ("_ml", "mL"), ("_mm", "mm"), ("_hu", "HU"), ("_kpa", "kPa"),
    ("_pct", "%"), ("_s", "s"),
)
#: stored spellings of a unit -> the way clinicians write it beside a number
_WRITTEN_UNITS = {"10⁹/L": "×10⁹/L", "10^9/L": "×10⁹/L", "10e9/L": "×10⁹/L"}
#: outcome events of the cohort CSV format in a clinician's words (mid-sentence)
_EVENT_WORDS = {"hcc": "HCC", "liver_death": "liver-related death",
                "liver_related_death": "liver-related death", "censored": "no event"}
#: abbreviations kept upper-case in labels made from a name
_ACRONYMS = {"ast": "AST", "alt": "ALT", "alp": "ALP", "ggt": "GGT", "inr": "INR",
             "hu": "HU", "ct": "CT", "mr": "MR", "afp": "AFP", "meld": "MELD",
             "fib4": "FIB-4", "sd": "SD"}
_LEVEL = re.compile(r"^(?P<base>[^=]+)=(?P<level>.*)$", re.DOTALL)


def column(name: str) -> Column:
    """The definition of ``name``: defined directly, by rule from its base column, or
    from the words and unit suffix of the name (a generic visits-file column)."""
    found = COLUMNS.get(name)
    if found is not None:
        return found
    level = _LEVEL.match(name)
    if level is not None:
        base = column(level["base"])
        return Column(name, f"{base.label} = {level['level']}", "", DERIVED, NEUTRAL,
                      f"1 when {level['base']} is {level['level']!r}, else 0.")
    for suffix, label_fmt, unit_fmt, definition in _HISTORY_RULES:
        if name.endswith(suffix) and len(name) > len(suffix):
            base = column(name[: -len(suffix)])
            shown = unit_fmt.format(base.shown_unit or "units") if unit_fmt else ""
            return replace(base, name=name, label=label_fmt.format(base.label), unit=shown,
                           source=DERIVED, definition=definition.format(base.name),
                           direction=base.direction if unit_fmt else NEUTRAL,
                           normal_range=None, plausible_range=None, categorical=False,
                           codes={}, unit_aliases={}, thresholds=())
    if name.startswith(RADIOMICS_PREFIX):
        return radiomics_column(name)
    stem, suffix_unit = _split(name)
    return Column(name, _words(stem), suffix_unit or "", LAB, NEUTRAL,
                  "A visits-file column without a built-in definition.")


def label(name: str) -> str:
    """Human label of ``name``, without the unit (``"Liver volume"``)."""
    return column(name).label


def unit(name: str) -> str:
    """Unit of ``name`` as stored (``"mL"``; ``"1"`` dimensionless; ``"code"``)."""
    return column(name).unit


def shown_unit(name: str, stored_unit: str | None = None) -> str:
    """The unit shown beside a value of ``name``: ``stored_unit`` (stored with the value)
    when given, else the defined one; empty for dimensionless and coded columns. A count
    per litre is written as clinicians write it (``"×10⁹/L"``, also when stored as
    ``"10⁹/L"``)."""
    u = stored_unit or column(name).unit
    u = _WRITTEN_UNITS.get(u, u)
    return "" if u in HIDDEN_UNITS else u


def label_with_unit(name: str, stored_unit: str | None = None) -> str:
    """Display label with unit, e.g. ``"Liver volume (mL)"``, ``"Bilirubin (mg/dL)"``.

    Parameters
    ----------
    name
        Column name.
    stored_unit
        Unit stored with the value (``features.unit``); wins over the defined unit.
    """
    u = shown_unit(name, stored_unit)
    return f"{label(name)} ({u})" if u else label(name)


def event_words(event: str | None) -> str:
    """An outcome event (or a comma-joined endpoint) mid-sentence: ``"hcc"`` -> ``"HCC"``,
    ``"death,decompensation"`` -> ``"death or decompensation"``; ``"the endpoint"`` for
    none."""
    parts = [_EVENT_WORDS.get(p.strip().lower(), p.strip().replace("_", " "))
             for p in str(event or "").split(",") if p.strip()]
    if len(parts) <= 1:
        return parts[0] if parts else "the endpoint"
    return ", ".join(parts[:-1]) + " or " + parts[-1]


def outcome_words(event: str | None, time_years: float) -> str:
    """A patient's outcome mid-sentence: ``"HCC at 7.4 y"``; a patient without an event
    was followed that long: ``"no event, followed to 7.4 y"`` (not "censored", the
    statistics' word)."""
    if str(event or "").strip().lower() == "censored":
        return f"no event, followed to {time_years:.1f} y"
    return f"{event_words(event)} at {time_years:.1f} y"


def event_label(event: str | None) -> str:
    """An outcome event as a label or legend entry: ``"HCC"``, ``"No event"``,
    ``"Decompensation"``, ``"Death or decompensation"`` (the first letter raised only, so
    an abbreviation stays upper-case)."""
    words = event_words(event)
    return words[:1].upper() + words[1:]


#: where a stored visit came from (``visits.source``), in the clinic's words (the file
#: and the import day are the Visits table's ``source_file`` and ``imported_on``)
_VISIT_SOURCES = {"csv": "Imported from a cohort file (CSV)",
                  "imaging": "Recorded with a scan (DICOM)"}


def visit_source_words(source: str | None) -> str:
    """Where a visit came from: ``"csv"`` -> ``"Imported from a cohort file (CSV)"``;
    an unknown code is named as it is stored (``"Imported (lis)"``), none as ``"—"``."""
    if source is None or not str(source).strip():
        return "—"
    code = str(source).strip()
    return _VISIT_SOURCES.get(code.lower(), f"Imported ({code})")


def low_is_worse(name: str) -> bool:
    """True when a low value of ``name`` is the worse one."""
    return column(name).low_is_worse


def normal_range(name: str) -> tuple[float | None, float | None] | None:
    """The published normal range of ``name`` in its unit (None if none is defined)."""
    return column(name).normal_range


def applies_to_modality(name: str, modality: str) -> bool | None:
    """Whether imaging feature ``name`` is defined for ``modality``; None for a column
    that is not an imaging feature (it is not tied to a modality)."""
    c = column(name)
    if c.source != IMAGING:
        return None
    return modality.upper() in c.modalities


@dataclass(frozen=True)
class FeatureInfo:
    """Display and direction facts about one feature column (the model's view)."""

    name: str
    label: str
    unit: str
    low_is_worse: bool


def feature_info(name: str) -> FeatureInfo:
    """Label, shown unit and direction of concern of ``name``."""
    c = column(name)
    return FeatureInfo(name=name, label=c.label, unit=c.shown_unit,
                       low_is_worse=c.low_is_worse)


def describe_column(name: str) -> tuple[str, str]:
    """(label, shown unit) of a column, e.g. ``bilirubin_mg_dl_slope`` ->
    ("Bilirubin trend", "mg/dL per year")."""
    c = column(name)
    return c.label, c.shown_unit


def imaging_feature(name: str) -> Column:
    """The definition of imaging feature ``name`` (radiomics included).

    Raises
    ------
    FeatureError
        If ``name`` is not a registered imaging feature.
    """
    d = IMAGING_COLUMNS.get(name)
    if d is not None:
        return d
    if name.startswith(RADIOMICS_PREFIX):
        return radiomics_column(name)
    raise FeatureError(f"feature {name!r} is not in the registry; known: "
                       f"{sorted(IMAGING_COLUMNS)}")


def _split(name: str) -> tuple[str, str | None]:
    key = name.lower()
    for suffix, u in _NAME_UNITS:
        if key.endswith(suffix) and len(key) > len(suffix):
            return name[: -len(suffix)], u
    return name, None


def _words(stem: str) -> str:
    words = [_ACRONYMS.get(w.lower(), w) for w in stem.split("_") if w]
    if not words:
        return stem
    first = words[0]
    words[0] = first if first.isupper() else first[:1].upper() + first[1:]
    return " ".join(words)
