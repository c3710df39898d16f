"""Columns of the visits file (labs, age, coded fields), clinical scores, the model's
global history columns and the store's record columns.

A lab's *plausible* range brackets extreme but real values seen in liver disease (acute
liver failure, massive hepatocellular necrosis, dialysis-dependent renal failure), so that
a value outside it means "check the unit", not "this patient is very ill"; cohort
validation (``analytics.cohort.validate``) warns outside it.

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
- [Sasso] Sasso M et al. Controlled attenuation parameter (CAP): a novel VCTE guided
  ultrasonic attenuation measurement. Ultrasound Med Biol 2010;36:1825-35 (CAP is
  reported from 100 to 400 dB/m).
- [Castera] Castera L, Friedrich-Rust M, Loomba R. Noninvasive assessment of liver
  disease in patients with nonalcoholic fatty liver disease. Gastroenterology
  2019;156:1264-81 (transient elastography reports 1.5-75 kPa; MR elastography about
  2-3 kPa in normal livers, > 5 kPa in cirrhosis; MRI-PDFF > 5 % is steatosis).
- [Bastard] Bastard C et al. A novel FibroScan examination dedicated to spleen stiffness
  measurement. Ultrasound Med Biol 2018;44:1616-26 (spleen-dedicated probe: up to 100 kPa).
- [deFranchis] de Franchis R et al. Baveno VII - renewing consensus in portal
  hypertension. J Hepatol 2022;76:959-74 (liver stiffness rule of five 10/15/20/25 kPa;
  spleen stiffness 40 kPa).
- [Lichtinghagen] Lichtinghagen R et al. The Enhanced Liver Fibrosis (ELF) score: normal
  values, influence factors and proposed cut-off values. J Hepatol 2013;59:236-42.
- [WHO-BMI] WHO. Obesity: preventing and managing the global epidemic. WHO Technical
  Report Series 894, 2000 (BMI classes).
- [Angulo] Angulo P et al. The NAFLD fibrosis score. Hepatology 2007;45:846-54
  (impaired fasting glucose or diabetes as one yes/no input).
- [Dickson] Dickson ER et al. Prognosis in primary biliary cirrhosis: model for decision
  making. Hepatology 1989;10:1-7 (prothrombin time in seconds; edema 0 / 0.5 / 1).
"""

from __future__ import annotations

from typing import Any

from analytics.vocabulary._column import (
    CODED,
    DERIVED,
    HIGHER_IS_WORSE,
    LAB,
    LOWER_IS_WORSE,
    NEUTRAL,
    RECORD,
    Column,
)

#: bilirubin 17.1 and creatinine 88.4 umol/L per mg/dL; 1 ukat/L = 60 U/L
_UKAT = 1 / 60


def _lab(name: str, label: str, unit: str, direction: str, plausible: tuple[float, float],
         definition: str, **more: Any) -> Column:
    return Column(name, label, unit, LAB, direction, definition,
                  plausible_range=plausible, **more)


LAB_DEFS: tuple[Column, ...] = (
    _lab("bilirubin_mg_dl", "Bilirubin", "mg/dL", HIGHER_IS_WORSE, (0.1, 30.0),
         "reference ~0.3-1.2 mg/dL [Kratz]; > 17.5 mg/dL common in "
         "acute liver failure [OGrady]; > 30 mg/dL (513 umol/L) is rare, and a mg/dL column "
         "holding umol/L shows values 17.1x too high",
         unit_aliases={"bilirubin_umol_l": 17.1}),
    _lab("albumin_g_dl", "Albumin", "g/dL", LOWER_IS_WORSE, (1.0, 6.0),
         "reference ~3.5-5.0 g/dL [Kratz]; < 2.8 g/dL worst Child-Pugh class "
         "[Pugh]; < 1.0 g/dL only in analbuminaemia; > 6.0 g/dL not seen in serum, g/L "
         "values are 10x",
         unit_aliases={"albumin_g_l": 10.0}),
    _lab("inr", "INR", "1", HIGHER_IS_WORSE, (0.7, 12.0),
         "reference ~0.8-1.2 [Kratz]; >= 1.5 defines acute "
         "liver failure [Polson]; > 10 in over-anticoagulation [Holbrook]"),
    _lab("prothrombin_s", "Prothrombin time", "s", HIGHER_IS_WORSE, (8.0, 120.0),
         "reference ~11-13.5 s [Kratz]; markedly prolonged in "
         "acute liver failure [OGrady]; seconds as in [Dickson]"),
    _lab("creatinine_mg_dl", "Creatinine", "mg/dL", HIGHER_IS_WORSE, (0.1, 25.0),
         "reference ~0.5-1.2 mg/dL [Kratz]; >= 4.0 mg/dL stage 3 AKI "
         "[KDIGO] and the MELD cap [OPTN]; > 25 mg/dL is rare, umol/L values are 88.4x",
         unit_aliases={"creatinine_umol_l": 88.4}),
    _lab("sodium_mmol_l", "Sodium", "mmol/L", LOWER_IS_WORSE, (100.0, 180.0),
         "reference ~135-145 mmol/L [Kratz]; profound hyponatraemia < 125 "
         "[Spasovski]; severe hypernatraemia [Adrogue]; mmol/L = mEq/L",
         unit_aliases={"sodium_meq_l": 1.0}),
    _lab("platelets_10e9_l", "Platelets", "×10⁹/L", LOWER_IS_WORSE, (1.0, 2000.0),
         "reference ~150-400 x 10^9/L [Kratz]; < 10 in severe ITP "
         "[Rodeghiero]; > 1,000 in thrombocythaemia [Arber]; counts per uL are 1000x",
         unit_aliases={"platelets_10e3_ul": 1.0}),
    _lab("ast_u_l", "AST", "U/L", HIGHER_IS_WORSE, (2.0, 20000.0),
         "reference ~10-40 U/L [Kratz]; > 10,000 U/L in "
         "ischaemic and toxic hepatitis [Kwo]; ukat/L values are 60x smaller",
         unit_aliases={"ast_ukat_l": _UKAT}),
    _lab("alt_u_l", "ALT", "U/L", HIGHER_IS_WORSE, (2.0, 20000.0),
         "reference ~7-40 U/L [Kratz]; > 10,000 U/L in ischaemic "
         "and toxic hepatitis [Kwo]; ukat/L values are 60x smaller",
         unit_aliases={"alt_ukat_l": _UKAT}),
    _lab("alp_u_l", "Alkaline phosphatase", "U/L", HIGHER_IS_WORSE, (5.0, 5000.0),
         "reference ~40-130 U/L [Kratz]; marked cholestatic "
         "elevations [Kwo]; ukat/L values are 60x smaller",
         unit_aliases={"alp_ukat_l": _UKAT}),
    _lab("age_years", "Age", "years", HIGHER_IS_WORSE, (0.0, 110.0),
         "ages above 110 are exceptional; above 130 impossible"),
    _lab("bmi_kg_m2", "BMI", "kg/m²", NEUTRAL, (12.0, 70.0),
         "body-mass index; obesity from 30 kg/m² [WHO-BMI]; outside 12-70 kg/m² suggests "
         "a unit or entry error"),
    _lab("lsm_kpa", "Liver stiffness (transient elastography)", "kPa", HIGHER_IS_WORSE,
         (1.5, 75.0),
         "vibration-controlled transient elastography; the device reports 1.5-75 kPa "
         "[Castera]; 10/15/20/25 kPa are the Baveno VII rule-of-five cut-offs "
         "[deFranchis]"),
    _lab("cap_db_m", "Controlled attenuation parameter", "dB/m", HIGHER_IS_WORSE,
         (100.0, 400.0),
         "ultrasonic attenuation measured with transient elastography; reported from "
         "100 to 400 dB/m [Sasso]"),
    _lab("spleen_stiffness_kpa", "Spleen stiffness (transient elastography)", "kPa",
         HIGHER_IS_WORSE, (1.5, 100.0),
         "spleen-dedicated transient elastography reports up to 100 kPa [Bastard]; "
         "40 kPa is the Baveno VII cut-off [deFranchis]"),
    _lab("mre_kpa", "Liver stiffness (MR elastography)", "kPa", HIGHER_IS_WORSE,
         (0.5, 20.0),
         "MR elastography shear stiffness: about 2-3 kPa in normal livers, > 5 kPa in "
         "cirrhosis [Castera]; a value outside 0.5-20 kPa suggests another quantity "
         "(e.g. a transient-elastography value)"),
    _lab("mri_pdff_pct", "Liver fat (MRI-PDFF)", "%", HIGHER_IS_WORSE, (0.0, 50.0),
         "proton-density fat fraction; > 5 % is steatosis [Castera]; above 50 % is rare; "
         "a fraction cannot exceed 100 %"),
    _lab("elf_score", "ELF score", "1", HIGHER_IS_WORSE, (5.0, 15.0),
         "Enhanced Liver Fibrosis test; cut-offs 7.7, 9.8 and 11.3 "
         "[Lichtinghagen]; values outside 5-15 are not seen"),
)

CODED_DEFS: tuple[Column, ...] = (
    Column("sex", "Sex", "", CODED, NEUTRAL, "Sex as recorded: M, F or O (numeric codes "
           "only with the file's declared convention, e.g. 1=M,2=F).",
           categorical=True, codes={"M": "male", "F": "female", "O": "other"}),
    Column("dialysis", "Dialysis", "", CODED, HIGHER_IS_WORSE,
           "Dialysis at least twice (or 24 h CVVHD) in the prior week (OPTN policy 9.1.D).",
           codes={0.0: "no", 1.0: "yes"}),
    Column("edema", "Edema", "", CODED, HIGHER_IS_WORSE,
           "Dickson 1989: 0 none, 0.5 edema without diuretics or resolved by them, 1 edema "
           "despite diuretics.",
           codes={0.0: "no edema", 0.5: "edema without diuretics, or resolved by diuretics",
                  1.0: "edema despite diuretics"}),
    Column("diabetes", "Diabetes", "", CODED, HIGHER_IS_WORSE,
           "Type 2 diabetes or impaired fasting glucose, yes (1) or no (0), as the NAFLD "
           "fibrosis score and Agile scores take it [Angulo].",
           codes={0.0: "no", 1.0: "yes"}),
)


def _score(name: str, label: str, unit: str, definition: str) -> Column:
    return Column(name, label, unit, DERIVED, HIGHER_IS_WORSE, definition)


#: clinical scores computed from the labs (``analytics.models.scores`` computes them)
SCORE_DEFS: tuple[Column, ...] = (
    _score("meld", "MELD", "points", "Model for end-stage liver disease (Kamath 2001)."),
    _score("meld_na", "MELD-Na", "points", "MELD with serum sodium (Kim 2008)."),
    _score("fib4", "FIB-4", "1", "Fibrosis-4 index (Sterling 2006)."),
    _score("apri", "APRI", "1", "AST to platelet ratio index (Wai 2003)."),
    _score("albi", "ALBI score", "1", "Albumin-bilirubin score (Johnson 2015)."),
    _score("albi_grade", "ALBI grade", "grade", "Albumin-bilirubin grade 1-3 (Johnson 2015)."),
    _score("mayo_pbc", "Mayo PBC risk score", "1", "Mayo risk score for primary biliary "
           "cholangitis (Dickson 1989)."),
    _score("fast", "FAST score", "1", "FibroScan-AST score: probability (0-1) of "
           "fibrotic NASH from liver stiffness, CAP and AST (Newsome 2020)."),
    _score("agile_3plus", "Agile 3+", "1", "Probability (0-1) of advanced fibrosis (F3+) "
           "from liver stiffness, AST/ALT, platelets, diabetes, sex and age (Sanyal 2023)."),
    _score("agile_4", "Agile 4", "1", "Probability (0-1) of cirrhosis (F4) from liver "
           "stiffness, AST/ALT, platelets, diabetes and sex (Sanyal 2023)."),
    _score("nfs", "NAFLD fibrosis score", "1", "NAFLD fibrosis score from age, BMI, "
           "diabetes, AST/ALT, platelets and albumin (Angulo 2007)."),
    _score("baveno_vii_lsm_band", "Baveno VII stiffness band", "band",
           "Liver stiffness band of the Baveno VII rule of five: 0 < 10, 1 10-15, "
           "2 15-20, 3 20-25, 4 >= 25 kPa (de Franchis 2022)."),
)

LANDMARK = "landmark_years"
LANDMARK_SQ = "landmark_years_sq"

#: the landmark model's global history columns (``analytics.models.history``)
HISTORY_DEFS: tuple[Column, ...] = (
    Column(LANDMARK, "Time since baseline", "years", DERIVED, NEUTRAL,
           "Landmark time: years from the patient's first visit to the prediction time."),
    Column(LANDMARK_SQ, "Time since baseline, squared", "years²", DERIVED, NEUTRAL,
           "The landmark time squared (a smooth baseline in the landmark time)."),
    Column("n_visits", "Number of visits", "1", DERIVED, NEUTRAL,
           "Visits so far (at the prediction time, or in the patient's record)."),
    Column("years_since_last_visit", "Time since last visit", "years", DERIVED, NEUTRAL,
           "Years from the last visit to the prediction time."),
)


def _record(name: str, label: str, unit: str = "") -> Column:
    return Column(name, label, unit, RECORD)


#: identifiers, dates and counts of the store's tables, as shown in the pages' tables
RECORD_DEFS: tuple[Column, ...] = (
    _record("pseudonym", "Pseudonym"),
    _record("patient_name", "Name"),
    _record("patient_id", "Patient ID"),
    _record("patient", "Patient"),
    _record("birth_date", "Birth date"),
    _record("birth_year", "Birth year"),
    _record("n_studies", "Studies"),
    _record("n_series", "Series"),
    _record("first_scan", "First scan"),
    _record("last_scan", "Last scan"),
    _record("event", "Outcome"),
    _record("follow_up_years", "Follow-up", "years"),
    _record("outcome_date", "Outcome date"),
    _record("time_years", "Years since baseline"),
    _record("study_date", "Study date"),
    _record("visit_date", "Visit date"),
    _record("series_uid", "Series UID"),
    _record("study_uid", "Study UID"),
    _record("modality", "Modality"),
    _record("description", "Description"),
    _record("n_instances", "Instances"),
    _record("n_slices", "Slices"),
    _record("rows", "Rows"),
    _record("columns", "Columns"),
    _record("status", "Status"),
    _record("status_reason", "Status reason"),
    _record("n_masks", "Masks"),
    _record("mask_formats", "Mask formats"),
    _record("n_features", "Feature values"),
    _record("source", "Source"),
    _record("source_file", "Source file"),
    _record("imported_on", "Imported on"),
)
