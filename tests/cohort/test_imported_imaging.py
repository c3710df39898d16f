"""Imported imaging measurements: a visits file's core biomarker columns are imaging
biomarkers of the cohort table, checked like the labs, row and column named."""

from __future__ import annotations

from analytics.cohort import build_cohort, import_cohort
from analytics.models.history_spec import feature_spec

OUTCOMES = "patient_id,time,event\nP1,3,decompensation\nP2,3,censored\n"


def test_imported_biomarkers_are_imaging_columns_of_the_cohort_with_the_registry_units(
        store, csvs):
    v, o = csvs("patient_id,time,platelets_10e9_l\nP1,0,150\nP1,1,140\nP2,0,250\n", OUTCOMES)
    import_cohort(store, v, o)
    v, o = csvs("patient_id,time,spleen_volume_ml,liver_surface_nodularity,liver_hu_mean\n"
                "P1,0,310,0.62,48.5\nP1,1,355,0.66,47.0\n", OUTCOMES)
    rep = import_cohort(store, v, o)
    assert rep.rejected == [] and rep.visits_updated == 2
    cohort = build_cohort(store)
    meta = cohort.feature_meta
    assert meta["spleen_volume_ml"] == {"kind": "imaging", "unit": "mL", "categorical": False,
                                        "imported": True}
    assert meta["liver_surface_nodularity"]["unit"] == "mm"
    assert meta["liver_hu_mean"]["kind"] == "imaging"
    assert meta["platelets_10e9_l"]["kind"] == "lab"
    assert cohort.visits["spleen_volume_ml"].dropna().tolist() == [310.0, 355.0]
    # the landmark model gives them the scan history of an imaging biomarker
    spec = feature_spec(cohort)
    assert set(spec.imaging) == {"spleen_volume_ml", "liver_surface_nodularity",
                                 "liver_hu_mean"}


def test_an_impossible_or_unreadable_imported_measurement_rejects_its_row_naming_row_and_column(
        store, csvs):
    v, o = csvs("patient_id,time,liver_volume_ml,spleen_volume_ml,liver_hu_mean\n"
                "P1,0,1500,-20,50\n"
                "P1,1,large,300,50\n"
                "P1,2,1400,300,-2000\n"
                "P2,0,1600,210,55\n", OUTCOMES)
    rep = import_cohort(store, v, o)
    got = [(i.file, i.row, i.line, i.reason) for i in rep.rejected]
    assert got == [
        ("visits.csv", 1, 2, "spleen_volume_ml -20: impossible; expected > 0 mL"),
        ("visits.csv", 2, 3, "liver_volume_ml 'large': expected a number"),
        ("visits.csv", 3, 4, "liver_hu_mean -2000: impossible; expected >= -1024 HU"),
    ]
    assert rep.visits == 1
