"""Synthetic longitudinal abdominal CT cohort: DICOM CT + SEG, labs, outcomes and truth.

The generator is what the demo, the tests and the benchmarks run on. Public API:

- ``CohortConfig``, ``generate_cohort(out_dir, config) -> CohortManifest``,
  ``load_cohort_config(path)``;
- ``synthesize_visit_volume(stage, rng, *, shape, spacing_mm, nodularity_mm=None,
  contrast_phase="unenhanced", lesions=0, ...) -> SyntheticVolume`` (HU, exclusive
  ``LABELS`` map, spacing, truth) for tests that need volumes without DICOM;
- ``render_imaging(config)``: every series of a cohort config, rendered in memory;
- ``write_ct_series(...)``, ``write_seg(...)``.

Output layout of ``generate_cohort``::

    labs.csv      patient_id, date, bilirubin_mg_dl, albumin_g_dl, inr, platelets_10e9_l,
                  ast_u_l, alt_u_l, creatinine_mg_dl, sodium_mmol_l, age_years, sex,
                  bmi_kg_m2, diabetes (0/1), lsm_kpa, cap_db_m (one row per visit, ~5 % of
                  lab values empty; lab-only visits between scans; liver stiffness and
                  CAP only at the visits of the transient-elastography pathway,
                  ``elastography.py``)
    imaging.csv   patient_id, date, liver_volume_ml, spleen_volume_ml, liver_hu_mean,
                  spleen_hu_mean, liver_spleen_hu_diff, liver_surface_nodularity: imported
                  imaging measurements at every scan visit of the patients without CT +
                  SEG whose first-visit FIB-4 is at least ``measured_fib4_min``
                  (written only when there are any; ``measurements.py``)
    outcomes.csv  patient_id, date, event (decompensation | hcc | death | transplant |
                  censored)
    truth.json    see below
    dicom/<patient_id>/S<nn>_<YYYYMMDD>/CT/IM0001.dcm ...   one CT series per study
    dicom/<patient_id>/S<nn>_<YYYYMMDD>/SEG/SEG0001.dcm     its SEG (Liver, Spleen,
                                                            Hepatic vessels, Liver lesion)

``truth.json`` (``format`` = "hepatrack-synthetic-truth", ``version`` = 1)::

    config             the CohortConfig used (plus shape, spacing_mm)
    event_of_interest  "decompensation"; causes: all event names
    hazard_formula     log h_c(t) = log_h0 + beta_stage * s(t) + ln RR(s(t))
                                    + beta_age_per_decade * (age(t) - age_ref_years) / 10
                                    + beta_portal * portal_pressure_z
                                      * smoothstep(portal_knots, s(t)),
                       ln RR linear in s between (stage_knots, ln stage_rr): published
                       fibrosis-stage rate ratios at healthy, F0..F4 (disease.py)
    labels             LABELS of the voxel label map
    patients[]         patient_id, sex, birth_date, baseline_date, age_at_baseline_years,
                       follow_up_end_date, stage0, progression_per_year
                       (s(t) = clip(stage0 + progression_per_year * t, 0, 4)),
                       fat_fraction_max_pct, healthy_liver_hu, spleen_hu_unenhanced,
                       portal_pressure_z (latent: SD of portal pressure above the
                       stage's; enters the hazards), spleen_baseline_factor,
                       spleen_response, nodularity_response, atrophy_response (imaging
                       only), hazards{cause: {log_h0, beta_stage, beta_age_per_decade,
                       age_ref_years, stage_knots, stage_rr, beta_portal,
                       portal_knots}}, event, event_date,
                       event_time_years, imaging, imported_imaging (has imported
                       measurements), bmi_kg_m2, diabetes, lsm_offset (the patient's
                       log-scale stiffness offset), vcte_referred,
                       visits[]: date, time_years, latent_stage, age_years, has_scan,
                       series_uid (or null), true_log_hazard (log hazard per year of
                       the event of interest), true_log_hazard_by_cause{cause: value},
                       measurements{column: value} (imported imaging, when measured),
                       elastography{lsm_kpa, cap_db_m} (a VCTE examination, null values
                       when it failed)
    series[]           per CT series: patient_id, study_uid, series_uid,
                       frame_of_reference_uid, seg_sop_instance_uid, study_date,
                       time_years, series_dir, seg_file (relative to the cohort
                       directory), instances, slice_order, slice_thickness_mm, origin_mm,
                       latent_stage, contrast_phase, spacing_mm [z, y, x], shape [z, y, x],
                       liver_volume_ml (whole liver incl. vessels and lesions),
                       spleen_volume_ml, liver_hu_mean (noise-free parenchymal HU, no
                       vessels or lesions), spleen_hu_mean, liver_spleen_hu_diff,
                       liver_spleen_hu_ratio, liver_surface_nodularity (RMS surface
                       undulation of the generator, mm), liver_vessel_fraction (vessel
                       voxels / whole-liver voxels), lesion_count, lesion_volume_ml,
                       liver_fat_fraction_pct, liver_volume_factor, spleen_volume_factor,
                       vessel_pruning_fraction, vessel_segments, noise_sd_hu,
                       liver_texture_rms_hu (zero-mean parenchymal heterogeneity),
                       voxel_counts{label: n}

Volumes are voxel counts of the very label map written to the SEG times the voxel
volume, so they are exact. Times are years since the patient's baseline (days / 365.25).
The oracle risk ranking of a visit is its ``true_log_hazard`` (higher = riskier).
"""

from analytics.synthetic.cohort import generate_cohort, render_imaging
from analytics.synthetic.config import CohortConfig, CohortManifest, load_cohort_config
from analytics.synthetic.dicom_writer import DicomIdentity, write_ct_series, write_seg
from analytics.synthetic.phantom import LABELS, SyntheticVolume, synthesize_visit_volume

__all__ = [
    "LABELS",
    "CohortConfig",
    "CohortManifest",
    "DicomIdentity",
    "SyntheticVolume",
    "generate_cohort",
    "load_cohort_config",
    "render_imaging",
    "synthesize_visit_volume",
    "write_ct_series",
    "write_seg",
]
