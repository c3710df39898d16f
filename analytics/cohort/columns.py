"""Known cohort CSV columns: validation rules, event names.

Labels, units, plausible ranges and their sources are the vocabulary's
(:mod:`analytics.vocabulary.clinical`); this module adds what cohort validation does
with them. A value outside its column's *plausible* range is imported as given and
reported as a warning (with a hint when it fits a common wrong unit, e.g. bilirubin in
umol/L in a ``_mg_dl`` column); a value that is physically impossible (a negative
concentration, an INR of zero, an age over 130 years) rejects its row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from analytics import vocabulary

KIND_LAB = "lab"
KIND_CLINICAL = "clinical"  # demographic, modifier and elastography/MR columns


@dataclass(frozen=True)
class AltUnit:
    """A wrong unit a value may be in; ``factor`` converts it: canonical = value / factor.

    Without a factor (non-linear scales such as Quick %), ``low``-``high`` is the range of
    values that suggests this unit.
    """

    unit: str
    factor: float | None = None
    low: float | None = None
    high: float | None = None
    note: str = ""


@dataclass(frozen=True)
class ColumnDef:
    """Validation rules of a known visits.csv column; its label, unit, plausible range and
    sources come from the vocabulary.

    Attributes
    ----------
    name
        Column name (unit in the name, as in the cohort CSV contract).
    kind
        ``"lab"`` or ``"clinical"``.
    reject_below
        A value below this (or at it, when ``positive``) is impossible: the row is rejected.
    positive
        True when zero is impossible too.
    reject_above
        A value above this is impossible: the row is rejected.
    alt_units
        Common wrong units, used to explain a value outside ``plausible``.
    """

    name: str
    kind: str
    reject_below: float = 0.0
    positive: bool = False
    reject_above: float | None = None
    alt_units: tuple[AltUnit, ...] = ()

    @property
    def label(self) -> str:
        """Human label (the vocabulary's)."""
        return vocabulary.label(self.name)

    @property
    def unit(self) -> str:
        """Unit (the vocabulary's)."""
        return vocabulary.unit(self.name)

    @property
    def plausible(self) -> tuple[float, float]:
        """``(low, high)``: outside it a value is imported with a warning."""
        rng = vocabulary.column(self.name).plausible_range
        return rng if rng is not None else (float("-inf"), float("inf"))

    @property
    def source(self) -> str:
        """Where the range comes from (the vocabulary's definition, with its citations)."""
        return vocabulary.column(self.name).definition


_UMOL_BILI = AltUnit("umol/L", 17.1)
_UMOL_CREAT = AltUnit("umol/L", 88.4)
_UKAT = AltUnit("ukat/L", 1 / 60.0, note="1 ukat/L = 60 U/L")

LAB_COLUMNS: dict[str, ColumnDef] = {c.name: c for c in (
    ColumnDef("bilirubin_mg_dl", KIND_LAB, alt_units=(_UMOL_BILI,)),
    ColumnDef("albumin_g_dl", KIND_LAB, positive=True, alt_units=(AltUnit("g/L", 10.0),)),
    ColumnDef("inr", KIND_LAB, positive=True,
              alt_units=(AltUnit("a Quick ratio in % or a prothrombin time in s", None,
                                 12.0, 150.0, "neither converts to INR by a factor; "
                                 "seconds belong in prothrombin_s"),)),
    ColumnDef("prothrombin_s", KIND_LAB, positive=True,
              alt_units=(AltUnit("INR (use the inr column)", None, 0.5, 8.0),)),
    ColumnDef("creatinine_mg_dl", KIND_LAB, positive=True, alt_units=(_UMOL_CREAT,)),
    ColumnDef("sodium_mmol_l", KIND_LAB, positive=True),
    ColumnDef("platelets_10e9_l", KIND_LAB, alt_units=(AltUnit("/uL", 1000.0),)),
    ColumnDef("ast_u_l", KIND_LAB, alt_units=(_UKAT,)),
    ColumnDef("alt_u_l", KIND_LAB, alt_units=(_UKAT,)),
    ColumnDef("alp_u_l", KIND_LAB, alt_units=(_UKAT,)),
    ColumnDef("age_years", KIND_CLINICAL, reject_above=130.0),
    ColumnDef("bmi_kg_m2", KIND_CLINICAL, positive=True),
    ColumnDef("lsm_kpa", KIND_CLINICAL, positive=True),
    ColumnDef("cap_db_m", KIND_CLINICAL, positive=True),
    ColumnDef("spleen_stiffness_kpa", KIND_CLINICAL, positive=True),
    ColumnDef("mre_kpa", KIND_CLINICAL, positive=True,
              alt_units=(AltUnit("a transient-elastography value (use lsm_kpa)", None,
                                 20.0, 75.0),)),
    ColumnDef("mri_pdff_pct", KIND_CLINICAL, reject_above=100.0),
    ColumnDef("elf_score", KIND_CLINICAL, positive=True),
)}

#: columns with a fixed set of codes: column -> {accepted spelling: stored value}
CODED_COLUMNS: dict[str, dict[str, object]] = {
    "sex": {"m": "M", "male": "M", "f": "F", "female": "F", "o": "O", "other": "O"},
    # OPTN 9.1.D: dialysis at least twice (or 24 h CVVHD) in the prior week
    "dialysis": {"0": 0.0, "1": 1.0, "no": 0.0, "yes": 1.0, "false": 0.0, "true": 1.0,
                 "n": 0.0, "y": 1.0, "0.0": 0.0, "1.0": 1.0},
    # Dickson 1989: 0 none, 0.5 edema without diuretics or resolved by them,
    # 1 edema despite diuretics
    "edema": {"0": 0.0, "0.5": 0.5, "1": 1.0, "0.0": 0.0, "1.0": 1.0, ".5": 0.5},
    # Angulo 2007 / Sanyal 2023: type 2 diabetes or impaired fasting glucose, yes or no
    "diabetes": {"0": 0.0, "1": 1.0, "no": 0.0, "yes": 1.0, "false": 0.0, "true": 1.0,
                 "n": 0.0, "y": 1.0, "0.0": 0.0, "1.0": 1.0},
}
#: spellings of "not recorded" for coded columns (stored as missing)
CODED_MISSING = {"u", "unknown", "x"}

KNOWN_COLUMNS = (*LAB_COLUMNS, *CODED_COLUMNS)

#: other-unit spellings of known labs: column -> (known column, factor), known = value / factor
UNIT_ALIASES: dict[str, tuple[str, float]] = {
    alias: (name, factor) for name in LAB_COLUMNS
    for alias, factor in vocabulary.column(name).unit_aliases.items()
}
#: names a visits file may not use for a feature: identifiers of the cohort table and the
#: outcome columns
RESERVED_FEATURE_NAMES = frozenset({"patient", "series_uid", "modality", "contrast_phase",
                                    "duration", "event"})

ID_COLUMN = "patient_id"
TIME_COLUMN = "time"
DATE_COLUMN = "date"
EVENT_COLUMN = "event"
RESERVED = frozenset({ID_COLUMN, TIME_COLUMN, DATE_COLUMN})

#: event names HepaTrack knows; other identifier-like names import with a warning
KNOWN_EVENTS = frozenset({
    "death", "liver_death", "liver_related_death", "transplant", "decompensation",
    "ascites", "variceal_bleeding", "hepatic_encephalopathy", "jaundice", "hcc",
    "cirrhosis", "liver_related_event", "progression", "acute_on_chronic_liver_failure",
})
#: spellings that mean "no event" and must be written as "censored" to avoid a silent guess
CENSORING_SYNONYMS = frozenset({
    "alive", "censor", "none", "no_event", "event_free", "lost", "lost_to_follow_up",
    "end_of_study", "no",
})
EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def normalise_event(raw: str) -> str:
    """Lower-case, trim, and join words with underscores (``"Variceal bleeding"``)."""
    return re.sub(r"[\s\-]+", "_", raw.strip().lower())
