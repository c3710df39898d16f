"""Known cohort CSV columns: units, plausibility ranges with their sources, event names.

A value outside its column's *plausible* range is imported as given and reported as a
warning (with a hint when it fits a common wrong unit, e.g. bilirubin in umol/L in a
``_mg_dl`` column); a value that is physically impossible (a negative concentration, an
INR of zero, an age over 130 years) rejects its row. The plausible ranges are deliberately
wide: they bracket extreme but real values seen in liver disease (acute liver failure,
massive hepatocellular necrosis, dialysis-dependent renal failure), so that a warning
means "check the unit", not "this patient is very ill".

Sources (cited per column below):

- [Kratz] Kratz A, Ferraro M, Sluss PM, Lewandrowski KB. Laboratory reference values.
  N Engl J Med 2004;351:1548-63 (adult reference intervals).
- [Kwo] Kwo PY, Cohen SM, Lim JK. ACG clinical guideline: evaluation of abnormal liver
  chemistries. Am J Gastroenterol 2017;112:18-35 (aminotransferases above 10,000 U/L in
  ischaemic and toxic hepatitis; cholestatic ALP elevations).
- [OGrady] O'Grady JG et al. Early indicators of prognosis in fulminant hepatic failure.
  Gastroenterology 1989;97:439-45 (King's College criteria: bilirubin > 300 umol/L,
  i.e. 17.5 mg/dL, is common in acute liver failure; INR/PT far above normal).
- [Polson] Polson J, Lee WM. AASLD position paper: the management of acute liver
  failure. Hepatology 2005;41:1179-97 (INR >= 1.5 defines ALF; much higher values occur).
- [Holbrook] Holbrook A et al. Evidence-based management of anticoagulant therapy.
  Chest 2012;141(2 Suppl):e152S-84S (INR above 10 in over-anticoagulation).
- [KDIGO] KDIGO clinical practice guideline for acute kidney injury. Kidney Int Suppl
  2012;2:1-138 (stage 3 AKI at creatinine >= 4.0 mg/dL; higher values in renal failure).
- [OPTN] OPTN policy 9.1.D (MELD creatinine capped at 4.0 mg/dL; values exist above).
- [Pugh] Pugh RN et al. Transection of the oesophagus for bleeding oesophageal varices.
  Br J Surg 1973;60:646-9 (albumin < 2.8 g/dL: worst Child-Pugh class).
- [Spasovski] Spasovski G et al. Clinical practice guideline on diagnosis and treatment
  of hyponatraemia. Eur J Endocrinol 2014;170:G1-47 (profound hyponatraemia < 125 mmol/L).
- [Adrogue] Adrogue HJ, Madias NE. Hypernatremia. N Engl J Med 2000;342:1493-9.
- [Rodeghiero] Rodeghiero F et al. Standardization of terminology, definitions and
  outcome criteria in immune thrombocytopenic purpura. Blood 2009;113:2386-93
  (platelets far below 10 x 10^9/L occur).
- [Arber] Arber DA et al. The 2016 revision to the WHO classification of myeloid
  neoplasms and acute leukemia. Blood 2016;127:2391-405 (essential thrombocythaemia
  >= 450 x 10^9/L; counts above 1,000 x 10^9/L occur).
- [Dickson] Dickson ER et al. Prognosis in primary biliary cirrhosis: model for decision
  making. Hepatology 1989;10:1-7 (prothrombin time in seconds; edema 0 / 0.5 / 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KIND_LAB = "lab"
KIND_CLINICAL = "clinical"  # demographic and modifier columns: age, sex, dialysis, edema


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
    """A known visits.csv column.

    Attributes
    ----------
    name
        Column name (unit in the name, as in the cohort CSV contract).
    label, unit
        Human label and unit.
    kind
        ``"lab"`` or ``"clinical"``.
    plausible
        ``(low, high)``: outside it a value is imported with a warning.
    reject_below
        A value below this (or at it, when ``positive``) is impossible: the row is rejected.
    positive
        True when zero is impossible too.
    reject_above
        A value above this is impossible: the row is rejected.
    alt_units
        Common wrong units, used to explain a value outside ``plausible``.
    source
        Where the range comes from (keys of the module docstring's source list).
    """

    name: str
    label: str
    unit: str
    kind: str
    plausible: tuple[float, float]
    reject_below: float = 0.0
    positive: bool = False
    reject_above: float | None = None
    alt_units: tuple[AltUnit, ...] = ()
    source: str = ""


_UMOL_BILI = AltUnit("umol/L", 17.1)
_UMOL_CREAT = AltUnit("umol/L", 88.4)
_UKAT = AltUnit("ukat/L", 1 / 60.0, note="1 ukat/L = 60 U/L")

LAB_COLUMNS: dict[str, ColumnDef] = {c.name: c for c in (
    ColumnDef("bilirubin_mg_dl", "Total bilirubin", "mg/dL", KIND_LAB, (0.1, 30.0),
              alt_units=(_UMOL_BILI,),
              source="reference ~0.3-1.2 mg/dL [Kratz]; > 17.5 mg/dL common in acute liver "
                     "failure [OGrady]; > 30 mg/dL (513 umol/L) is rare, and a mg/dL "
                     "column holding umol/L shows values 17.1x too high"),
    ColumnDef("albumin_g_dl", "Albumin", "g/dL", KIND_LAB, (1.0, 6.0), positive=True,
              alt_units=(AltUnit("g/L", 10.0),),
              source="reference ~3.5-5.0 g/dL [Kratz]; < 2.8 g/dL worst Child-Pugh class "
                     "[Pugh]; < 1.0 g/dL only in analbuminaemia; > 6.0 g/dL not seen in "
                     "serum, g/L values are 10x"),
    ColumnDef("inr", "INR", "1", KIND_LAB, (0.7, 12.0), positive=True,
              alt_units=(AltUnit("a Quick ratio in % or a prothrombin time in s", None,
                                 12.0, 150.0, "neither converts to INR by a factor; "
                                 "seconds belong in prothrombin_s"),),
              source="reference ~0.8-1.2 [Kratz]; >= 1.5 defines acute liver failure "
                     "[Polson]; > 10 in over-anticoagulation [Holbrook]"),
    ColumnDef("prothrombin_s", "Prothrombin time", "s", KIND_LAB, (8.0, 120.0),
              positive=True,
              alt_units=(AltUnit("INR (use the inr column)", None, 0.5, 8.0),),
              source="reference ~11-13.5 s [Kratz]; markedly prolonged in acute liver "
                     "failure [OGrady]; seconds as in [Dickson]"),
    ColumnDef("creatinine_mg_dl", "Creatinine", "mg/dL", KIND_LAB, (0.1, 25.0),
              positive=True, alt_units=(_UMOL_CREAT,),
              source="reference ~0.5-1.2 mg/dL [Kratz]; >= 4.0 mg/dL stage 3 AKI [KDIGO] "
                     "and the MELD cap [OPTN]; > 25 mg/dL is rare, umol/L values are "
                     "88.4x"),
    ColumnDef("sodium_mmol_l", "Sodium", "mmol/L", KIND_LAB, (100.0, 180.0), positive=True,
              source="reference ~135-145 mmol/L [Kratz]; profound hyponatraemia < 125 "
                     "[Spasovski]; severe hypernatraemia [Adrogue]; mmol/L = mEq/L"),
    ColumnDef("platelets_10e9_l", "Platelets", "10^9/L", KIND_LAB, (1.0, 2000.0),
              alt_units=(AltUnit("/uL", 1000.0),),
              source="reference ~150-400 x 10^9/L [Kratz]; < 10 in severe ITP "
                     "[Rodeghiero]; > 1,000 in thrombocythaemia [Arber]; counts per uL "
                     "are 1000x"),
    ColumnDef("ast_u_l", "AST", "U/L", KIND_LAB, (2.0, 20000.0), alt_units=(_UKAT,),
              source="reference ~10-40 U/L [Kratz]; > 10,000 U/L in ischaemic and toxic "
                     "hepatitis [Kwo]; ukat/L values are 60x smaller"),
    ColumnDef("alt_u_l", "ALT", "U/L", KIND_LAB, (2.0, 20000.0), alt_units=(_UKAT,),
              source="reference ~7-40 U/L [Kratz]; > 10,000 U/L in ischaemic and toxic "
                     "hepatitis [Kwo]; ukat/L values are 60x smaller"),
    ColumnDef("alp_u_l", "Alkaline phosphatase", "U/L", KIND_LAB, (5.0, 5000.0),
              alt_units=(_UKAT,),
              source="reference ~40-130 U/L [Kratz]; marked cholestatic elevations [Kwo]; "
                     "ukat/L values are 60x smaller"),
    ColumnDef("age_years", "Age", "years", KIND_CLINICAL, (0.0, 110.0), reject_above=130.0,
              source="ages above 110 are exceptional; above 130 impossible"),
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
}
#: spellings of "not recorded" for coded columns (stored as missing)
CODED_MISSING = {"u", "unknown", "x"}

KNOWN_COLUMNS = (*LAB_COLUMNS, *CODED_COLUMNS)
UNITS: dict[str, str] = {
    **{c.name: c.unit for c in LAB_COLUMNS.values()},
    "sex": "", "dialysis": "", "edema": "",
}

#: other-unit spellings of known labs: column -> (known column, factor), known = value / factor
#: (bilirubin 17.1 and creatinine 88.4 umol/L per mg/dL; 1 ukat/L = 60 U/L)
UNIT_ALIASES: dict[str, tuple[str, float]] = {
    "bilirubin_umol_l": ("bilirubin_mg_dl", 17.1),
    "creatinine_umol_l": ("creatinine_mg_dl", 88.4),
    "albumin_g_l": ("albumin_g_dl", 10.0),
    "sodium_meq_l": ("sodium_mmol_l", 1.0),
    "platelets_10e3_ul": ("platelets_10e9_l", 1.0),
    "ast_ukat_l": ("ast_u_l", 1 / 60),
    "alt_ukat_l": ("alt_u_l", 1 / 60),
    "alp_ukat_l": ("alp_u_l", 1 / 60),
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
