"""Human labels with units for feature and column names.

Feature names carry their unit (``liver_volume_ml``, ``bilirubin_mg_dl``); the UI and the
report show "Liver volume (mL)". A unit stored with the value (``features.unit``) wins
over one read from the name.
"""

from __future__ import annotations

#: core biomarkers (ARCHITECTURE.md) and their display names; unit None = read from store
CORE_LABELS: dict[str, tuple[str, str | None]] = {
    "liver_volume_ml": ("Liver volume", "mL"),
    "spleen_volume_ml": ("Spleen volume", "mL"),
    "liver_hu_mean": ("Liver attenuation, mean", "HU"),
    "liver_hu_median": ("Liver attenuation, median", "HU"),
    "liver_hu_sd": ("Liver attenuation, SD", "HU"),
    "spleen_hu_mean": ("Spleen attenuation, mean", "HU"),
    "liver_spleen_hu_diff": ("Liver minus spleen attenuation", "HU"),
    "liver_spleen_hu_ratio": ("Liver/spleen attenuation ratio", None),
    "liver_surface_nodularity": ("Liver surface nodularity", None),
    "liver_vessel_fraction": ("Liver vessel fraction", None),
    "liver_vessel_tortuosity": ("Liver vessel tortuosity", None),
    "liver_vessel_branch_density": ("Liver vessel branch density", None),
    # cohort CSV lab columns whose names are not a plain unit suffix
    "inr": ("INR", None),
    "age_years": ("Age", "years"),
    "sex": ("Sex", None),
}

#: unit suffixes of the cohort CSV format, longest first so "_mg_dl" wins over "_dl"
UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_10e9_l", "10⁹/L"),
    ("_mmol_l", "mmol/L"),
    ("_umol_l", "µmol/L"),
    ("_mg_dl", "mg/dL"),
    ("_g_dl", "g/dL"),
    ("_g_l", "g/L"),
    ("_u_l", "U/L"),
    ("_years", "years"),
    ("_ml", "mL"),
    ("_mm", "mm"),
    ("_hu", "HU"),
    ("_kpa", "kPa"),
    ("_pct", "%"),
    ("_s", "s"),
)

#: non-feature columns of repository tables
COLUMN_LABELS: dict[str, str] = {
    "pseudonym": "Pseudonym",
    "patient_name": "Name",
    "patient_id": "Patient ID",
    "birth_date": "Birth date",
    "birth_year": "Birth year",
    "sex": "Sex",
    "n_studies": "Studies",
    "n_series": "Series",
    "n_visits": "Visits",
    "first_scan": "First scan",
    "last_scan": "Last scan",
    "event": "Outcome",
    "follow_up_years": "Follow-up (years)",
    "outcome_date": "Outcome date",
    "time_years": "Years since baseline",
    "study_date": "Study date",
    "visit_date": "Visit date",
    "series_uid": "Series UID",
    "study_uid": "Study UID",
    "modality": "Modality",
    "description": "Description",
    "contrast_phase": "Contrast phase",
    "n_instances": "Instances",
    "n_slices": "Slices",
    "rows": "Rows",
    "columns": "Columns",
    "status": "Status",
    "status_reason": "Status reason",
    "n_masks": "Masks",
    "mask_formats": "Mask formats",
    "n_features": "Feature values",
    "source": "Source",
}

# lab abbreviations kept upper-case in labels
_ACRONYMS = {"ast": "AST", "alt": "ALT", "alp": "ALP", "ggt": "GGT", "inr": "INR",
             "hu": "HU", "afp": "AFP", "meld": "MELD", "fib4": "FIB-4", "sd": "SD"}


def _split(name: str) -> tuple[str, str | None]:
    key = name.lower()
    for suffix, unit in UNIT_SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            return name[: -len(suffix)], unit
    return name, None


def _words(stem: str) -> str:
    words = [_ACRONYMS.get(w.lower(), w) for w in stem.split("_") if w]
    if not words:
        return stem
    first = words[0]
    words[0] = first if first.isupper() else first[:1].upper() + first[1:]
    return " ".join(words)


def feature_unit(name: str, unit: str | None = None) -> str | None:
    """The unit of a feature: ``unit`` if given, else the known or name-suffix unit."""
    if unit:
        return unit
    if name in CORE_LABELS:
        return CORE_LABELS[name][1]
    return _split(name)[1]


def feature_label(name: str, unit: str | None = None) -> str:
    """Display label with unit, e.g. ``"Liver volume (mL)"``, ``"Bilirubin (mg/dL)"``.

    Parameters
    ----------
    name
        Feature or column name.
    unit
        Unit stored with the value; overrides the unit read from the name.
    """
    if name in COLUMN_LABELS:
        return COLUMN_LABELS[name]
    if name in CORE_LABELS:
        text = CORE_LABELS[name][0]
    else:
        stem, _ = _split(name)
        text = _words(stem)
    u = feature_unit(name, unit)
    return f"{text} ({u})" if u and u not in ("1", "ratio", "") else text
