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
from collections.abc import Mapping
from dataclasses import dataclass

from analytics import vocabulary
from analytics.cohort.reader import cell_text
from analytics.errors import CohortError

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

#: spellings of "not recorded" for coded columns (stored as missing, no warning)
CODED_MISSING = frozenset({"u", "unknown", "x", "unk", "not known", "not recorded"})

_BINARY_ALIASES: dict[str, object] = {"n": 0.0, "false": 0.0, "y": 1.0, "true": 1.0}
#: spellings real files use for the vocabulary's codes, beyond each code and its meaning
#: as :mod:`analytics.vocabulary.clinical` writes them (``CODED_DEFS``, which alone says
#: what a code means): column -> {spelling: code}. Compared after :func:`code_key`.
CODE_ALIASES: dict[str, dict[str, object]] = {
    "sex": {"man": "M", "woman": "F"},
    "dialysis": _BINARY_ALIASES,
    "diabetes": _BINARY_ALIASES,
    # the Mayo PBC data as published: R survival's pbc/pbcseq (0 / 0.5 / 1), JM's pbc2
    # labels and the N/S/Y letters of the trial's widely shared "cirrhosis" file; "yes"
    # is refused, it does not say whether diuretics resolved the edema (0.5 or 1)
    "edema": {"no": 0.0, "absent": 0.0, "n": 0.0,
              "edema no diuretics": 0.5, "edema without diuretics": 0.5,
              "edema resolved by diuretics": 0.5, "untreated or successfully treated": 0.5,
              "s": 0.5,
              "despite diuretics": 1.0, "edema despite diuretic therapy": 1.0, "y": 1.0},
}

_SEPARATORS = re.compile(r"[\s_\-]+")
_NUMBER_TEXT = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)$")
#: a :func:`code_key` that is a number (``%g`` form)
_NUMBER_KEY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$")


def code_key(cell: object) -> str:
    """How a coded cell is compared: numbers by value (``"1.0"``, ``1``, ``" 1 "`` and
    ``"1,0"`` are ``"1"``; ``".5"`` is ``"0.5"``), words in lower case with runs of
    spaces, underscores and hyphens as one space (``"No_Edema"`` is ``"no edema"``)."""
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, int | float):
        return f"{float(cell):g}"
    text = str(cell).strip()
    if _NUMBER_TEXT.match(text):
        return f"{float(text.replace(',', '.')):g}"
    return _SEPARATORS.sub(" ", text.lower()).strip()


def _spellings(column: vocabulary.Column) -> dict[str, object]:
    """Every accepted spelling of a coded column: each vocabulary code and its meaning,
    then the aliases (each also with "oedema" for "edema")."""
    accepted: dict[str, object] = {}

    def add(spelling: object, code: object) -> None:
        key = code_key(spelling)
        for k in dict.fromkeys((key, key.replace("edema", "oedema"))):
            if accepted.setdefault(k, code) != code:
                raise ValueError(f"{column.name}: {k!r} would mean both {accepted[k]!r} "
                                 f"and {code!r}")

    for code, meaning in column.codes.items():
        add(code, code)
        add(meaning, code)
    for spelling, code in CODE_ALIASES.get(column.name, {}).items():
        if code not in column.codes:
            raise ValueError(f"{column.name}: alias {spelling!r} names {code!r}, which is not "
                             f"one of the vocabulary's codes {list(column.codes)}")
        add(spelling, code)
    return accepted


#: columns with a fixed set of codes: column -> {accepted spelling (:func:`code_key`):
#: stored value}, derived from the vocabulary's codes and :data:`CODE_ALIASES`
CODED_COLUMNS: dict[str, dict[str, object]] = {
    c.name: _spellings(c) for c in vocabulary.COLUMNS.values() if c.source == vocabulary.CODED
}


def accepted_codes(column: str) -> str:
    """The codes of a coded column with their meanings, as a message lists them:
    ``M (male), F (female), O (other)``."""
    codes = vocabulary.column(column).codes
    return ", ".join(f"{code_key(code).upper()} ({meaning})" for code, meaning in codes.items())


def read_code(column: str, cell: object, sex_coding: Mapping[str, str] | None = None
              ) -> tuple[object | None, str | None]:
    """The stored value of a coded cell.

    Parameters
    ----------
    column
        A coded column (a key of :data:`CODED_COLUMNS`).
    cell
        The cell as read (not missing).
    sex_coding
        The file's declared numeric sex convention (:func:`parse_sex_coding`), if any.

    Returns
    -------
    tuple
        ``(value, None)``; ``(None, None)`` for a spelling of "not recorded"; or
        ``(None, reason)`` when the code is unknown: the value is left empty and
        ``reason`` (the value and the accepted codes) becomes a warning.
    """
    key, shown = code_key(cell), cell_text(cell)
    if key in CODED_MISSING:
        return None, None
    if column == "sex" and sex_coding and key in sex_coding:
        return sex_coding[key], None
    if key in CODED_COLUMNS[column]:
        return CODED_COLUMNS[column][key], None
    if column == "sex" and _NUMBER_KEY.match(key):
        if not sex_coding:
            return None, (f"sex {shown!r} is a numeric code and no convention is declared for "
                          "the file; declare it (import-cohort --sex-coding 1=M,2=F) or "
                          f"write {accepted_codes('sex')}; left empty")
        return None, (f"sex {shown!r} is not one of the declared numeric codes "
                      f"({format_sex_coding(sex_coding)}) nor {accepted_codes('sex')}; "
                      "left empty")
    return None, (f"{column} {shown!r} is not a known code; expected "
                  f"{accepted_codes(column)}, or a spelling of them; left empty")


def parse_sex_coding(text: str, *, name: str = "sex coding") -> dict[str, str]:
    """A file's declared numeric sex convention: ``"1=M,2=F"`` -> ``{"1": "M", "2": "F"}``.

    Numeric sex codes mean different things in different registries, so they are read
    only with a declaration; the sex side may be any accepted spelling (``1=male``).

    Parameters
    ----------
    text
        ``CODE=SEX`` pairs separated by commas; CODE a whole number.
    name
        How messages name the declaration (``--sex-coding`` on the command line).

    Returns
    -------
    dict
        :func:`code_key` of each number -> the vocabulary's sex code.

    Raises
    ------
    CohortError
        If a pair is malformed, a code is not a whole number, a sex is not a known one, or
        a number or a sex is given twice.
    """
    example = "expected CODE=SEX pairs separated by commas, e.g. 1=M,2=F"
    pairs = [p.strip() for p in str(text).split(",")]
    declared: dict[str, str] = {}
    for pair in pairs:
        number, eq, sex = (part.strip() for part in pair.partition("="))
        why = None
        if not eq or not number or not sex:
            why = f"{pair!r} is not CODE=SEX"
        elif not re.fullmatch(r"[+-]?\d+", number):
            why = f"{number!r} is not a whole number"
        elif code_key(sex) not in CODED_COLUMNS["sex"] or _NUMBER_TEXT.match(sex):
            why = f"{sex!r} is not a sex code ({accepted_codes('sex')})"
        elif code_key(number) in declared:
            why = f"{number} is declared twice"
        elif CODED_COLUMNS["sex"][code_key(sex)] in declared.values():
            why = f"two numbers mean {CODED_COLUMNS['sex'][code_key(sex)]}"
        if why is not None:
            raise CohortError(f"{name} {str(text)!r}: {why}; {example}",
                              hint="declare how the file's numeric sex codes read")
        declared[code_key(number)] = str(CODED_COLUMNS["sex"][code_key(sex)])
    return declared


def format_sex_coding(declared: dict[str, str]) -> str:
    """``{"1": "M", "2": "F"}`` -> ``"1=M,2=F"``."""
    return ",".join(f"{k}={v}" for k, v in declared.items())


KIND_IMAGING = "imaging"
#: imaging biomarkers a visits file may carry as imported measurements (a site's own
#: imaging reports, or another tool's segmentation), under the feature registry's names;
#: the cohort table reads them as imaging biomarkers, the same columns the extractor fills
IMPORTED_IMAGING_COLUMNS: dict[str, ColumnDef] = {c.name: c for c in (
    ColumnDef("liver_volume_ml", KIND_IMAGING, positive=True, reject_above=20000.0),
    ColumnDef("spleen_volume_ml", KIND_IMAGING, positive=True, reject_above=10000.0),
    ColumnDef("liver_hu_mean", KIND_IMAGING, reject_below=-1024.0, reject_above=3071.0),
    ColumnDef("spleen_hu_mean", KIND_IMAGING, reject_below=-1024.0, reject_above=3071.0),
    ColumnDef("liver_spleen_hu_diff", KIND_IMAGING, reject_below=-4095.0,
              reject_above=4095.0),
    ColumnDef("liver_surface_nodularity", KIND_IMAGING, reject_above=50.0),
)}

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
