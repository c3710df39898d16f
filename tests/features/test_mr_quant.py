"""Quantitative MR maps: recognised from the header, read in their unit, measured inside
the liver mask and checked against the synthetic study's truth (PDFF within 1 percentage
point, stiffness within 0.2 kPa), through ingest (de-identification included) and the
batch worker, as the dashboard runs them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analytics.cli import main
from analytics.cohort.table import build_cohort
from analytics.config import load_settings
from analytics.features import mr_quant, segmentation, totalseg
from analytics.features.batch import extract_stored_series, write_outcome
from analytics.features.mr_companions import BORROWED, measurement_plans
from analytics.features.mr_quant import (
    DIXON_FAT,
    DIXON_WATER,
    PDFF,
    R2STAR,
    STIFFNESS,
    MapReading,
    read_map,
    recognise,
    resolve_scale,
)
from analytics.features.registry import FEATURES
from analytics.features.settings import FeatureSettings
from analytics.ingest.loader import load_volume
from analytics.ingest.pipeline import ingest_uploads
from analytics.store import open_store
from analytics.synthetic.mr_maps import write_mr_study
from analytics.vocabulary import column, label_with_unit

TRUTH = {"pdff_pct": 18.0, "r2star_per_s": 45.0, "stiffness_kpa": 4.2}


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """Series description -> feature values of every series of two synthetic studies:
    one whose PDFF map states its unit (RWVM), one stored per mille without any unit."""
    mp = pytest.MonkeyPatch()

    def refuse(*_a, **_k):
        raise AssertionError("the classical CT pipeline ran on MR")

    mp.setattr(segmentation, "classical_segmentation", refuse)
    mp.setattr(totalseg, "_installed_version", lambda: None)
    root = tmp_path_factory.mktemp("mrq")
    settings = load_settings(root / "home")
    settings.ensure_home()
    store = open_store(settings)
    out: dict[str, dict] = {}
    try:
        for n, encoding in enumerate(("rwvm", "per_mille")):
            series = None if encoding == "rwvm" else ("pdff",)
            study = write_mr_study(root / encoding, patient_id=f"MRQ-{n}", seed=n,
                                   pdff_encoding=encoding, **TRUTH,
                                   **({"series": series} if series else {}))
            files = [(p.name + str(i), p.read_bytes()) for i, p in enumerate(study.files())]
            report = ingest_uploads(files, settings, store)
            uids = [s["series_uid"] for s in report.series]
            plans = measurement_plans(store, settings, uids)
            for uid in uids:
                got = extract_stored_series(uid, settings, FeatureSettings())
                assert got["ok"], got
                write_outcome(store, got, FeatureSettings())
                desc = _description(store, settings, uid)
                out[desc] = {"values": got["result"]["values"], "plan": plans[uid],
                             "mask_method": got["result"]["mask_method"],
                             "truth": study.truth}
        out["cohort"] = build_cohort(store)
    finally:
        store.dispose()
        mp.undo()
    return out


def _description(store, settings, uid):
    return load_volume(store, settings, uid).meta["quant_header"]["description"]


def _value(measured, series, name):
    return measured[series]["values"][name]["value"]


def test_liver_pdff_is_within_one_percentage_point_of_the_truth(measured) -> None:
    for series in ("PDFF", "FF"):
        for name in ("liver_pdff_median_pct", "liver_pdff_mean_pct"):
            assert abs(_value(measured, series, name) - TRUTH["pdff_pct"]) <= 1.0, series


def test_a_pdff_map_without_a_unit_is_read_from_its_range_and_says_so(measured) -> None:
    flags = measured["FF"]["values"]["liver_pdff_median_pct"]["flags"]
    assert flags["unit_from"].startswith("image range: subcutaneous fat reads")
    assert "per mille" in flags["unit_from"]
    assert measured["PDFF"]["values"]["liver_pdff_median_pct"]["flags"]["unit_from"] == \
        "Real World Value Mapping (%)"


def test_mre_stiffness_is_within_0_2_kpa_of_the_truth(measured) -> None:
    for name in ("liver_mre_stiffness_median_kpa", "liver_mre_stiffness_mean_kpa"):
        assert abs(_value(measured, "MRE STIFFNESS", name) - TRUTH["stiffness_kpa"]) <= 0.2


def test_r2star_is_within_one_per_second_of_the_truth(measured) -> None:
    got = _value(measured, "R2STAR", "liver_r2star_median_per_s")
    assert abs(got - TRUTH["r2star_per_s"]) <= 1.0


def test_the_dixon_signal_fat_fraction_uses_the_water_image_of_the_same_study(measured
                                                                            ) -> None:
    got = _value(measured, "DIXON FAT", "liver_signal_fat_fraction_pct")
    assert abs(got - TRUTH["pdff_pct"]) <= 1.0
    assert "liver_signal_fat_fraction_pct" not in measured["DIXON WATER"]["values"]
    assert label_with_unit("liver_signal_fat_fraction_pct") == \
        "Liver signal fat fraction (Dixon, not PDFF) (%)"


def test_liver_volume_from_the_mr_mask_is_the_masks_voxel_volume(measured) -> None:
    truth = measured["PDFF"]["truth"].liver_volume_ml
    assert _value(measured, "PDFF", "liver_volume_ml") == pytest.approx(truth, abs=1e-6)
    # four thick MRE slices cut the liver: no partial volume shown as the liver's
    mre = measured["MRE STIFFNESS"]["values"]["liver_volume_ml"]
    assert mre["value"] is None and "partial" in mre["flags"]["reason"]


def test_a_series_without_a_mask_borrows_the_liver_mask_of_its_study(measured) -> None:
    t1 = measured["T1 VIBE"]
    assert t1["mask_method"].startswith(BORROWED)
    truth = measured["PDFF"]["truth"].liver_volume_ml
    assert t1["values"]["liver_volume_ml"]["value"] == pytest.approx(truth, abs=1e-6)
    assert t1["values"]["liver_volume_ml"]["flags"].get("automatic_segmentation") is None


def test_map_series_get_no_generic_intensity_statistics(measured) -> None:
    for series, words in (("PDFF", "PDFF map"), ("MRE STIFFNESS", "MR elastography")):
        v = measured[series]["values"]["liver_mr_intensity_mean"]
        assert v["value"] is None
        assert v["flags"]["reason"].startswith(words)
    assert measured["T1 VIBE"]["values"]["liver_mr_intensity_mean"]["value"] is not None


def test_the_ingest_plan_says_what_each_series_will_get(measured) -> None:
    assert measured["PDFF"]["plan"] == ("PDFF map: liver PDFF (median, mean) will be "
                                        "measured; >= 5 % is steatosis")
    assert measured["FF"]["plan"] == ("PDFF map: liver PDFF will be measured if the image "
                                      "range identifies its scale")
    assert measured["MRE STIFFNESS"]["plan"] == (
        "MR elastography stiffness map: liver stiffness (median, mean) will be measured; "
        ">= 5 kPa suggests cirrhosis")
    assert measured["DIXON WATER"]["plan"].startswith("Dixon water image: used with")
    # its liver mask is borrowed from a map series of the same study
    assert measured["T1 VIBE"]["plan"] == ("MR image (not a quantitative map): liver volume "
                                           "and shape will be measured")


def test_one_mr_visit_carries_pdff_and_stiffness_from_their_own_map_series(measured
                                                                          ) -> None:
    cohort = measured["cohort"]
    visits = cohort.visits.set_index("patient")
    assert len(visits) == 2  # one visit per study, not one per series
    for patient in visits.index:
        row = visits.loc[patient]
        assert abs(row["liver_pdff_median_pct"] - TRUTH["pdff_pct"]) <= 1.0
    full = visits.loc[visits["liver_mre_stiffness_median_kpa"].notna()]
    assert len(full) == 1
    row = full.iloc[0]
    assert abs(row["liver_mre_stiffness_median_kpa"] - TRUTH["stiffness_kpa"]) <= 0.2
    assert abs(row["liver_r2star_median_per_s"] - TRUTH["r2star_per_s"]) <= 1.0
    assert abs(row["liver_signal_fat_fraction_pct"] - TRUTH["pdff_pct"]) <= 1.0
    assert cohort.feature_meta["liver_pdff_median_pct"]["kind"] == "imaging"


# --------------------------------------------------------------------------- recognition
def _header(image_type=(), description=None, rwvm=(), rescale_type=None, slope=1.0,
            intercept=0.0):
    return {"image_type": list(image_type), "description": description, "protocol": None,
            "rescale_type": rescale_type, "rescale_slope": slope,
            "rescale_intercept": intercept, "rescale_uniform": True, "rwvm": list(rwvm)}


@pytest.mark.parametrize(("image_type", "description", "kind"), [
    (["DERIVED", "PRIMARY", "DIXON", "FF"], None, PDFF),  # Siemens Dixon fat fraction
    (["DERIVED", "PRIMARY", "FAT_FRACTION"], None, PDFF),
    (["DERIVED", "PRIMARY", "PDFF"], None, PDFF),  # Philips mDIXON Quant
    (["ORIGINAL", "PRIMARY", "OTHER"], "FatFrac: IDEAL IQ", PDFF),  # GE IDEAL IQ
    (["DERIVED", "PRIMARY", "R2STAR"], None, R2STAR),
    (["ORIGINAL", "PRIMARY", "OTHER"], "R2* map", R2STAR),
    (["DERIVED", "PRIMARY", "STIFFNESS"], None, STIFFNESS),
    (["DERIVED", "SECONDARY", "OTHER"], "Elastogram", STIFFNESS),
    (["DERIVED", "PRIMARY", "DIXON", "FAT"], None, DIXON_FAT),
    (["DERIVED", "PRIMARY", "DIXON", "WATER"], None, DIXON_WATER),
    (["ORIGINAL", "PRIMARY", "M", "NORM"], "T1 VIBE", None),
    (["ORIGINAL", "PRIMARY", "M", "FFE"], "T1 FFE", None),  # Philips fast field echo
])
def test_maps_are_recognised_from_image_type_and_the_vendors_descriptions(
        image_type, description, kind) -> None:
    assert recognise(_header(image_type, description)).kind == kind


def test_mre_wave_images_and_t2star_maps_are_recognised_and_not_measured() -> None:
    wave = recognise(_header(["DERIVED", "PRIMARY", "WAVE"]))
    assert (wave.kind, wave.withheld) == (
        "not_measured", "MR elastography wave image: stiffness is read on the stiffness map")
    assert recognise(_header(["ORIGINAL"], "T2* map")).withheld == (
        "T2* map: R2* is measured on R2* maps only")


def test_image_type_and_description_naming_different_maps_withhold_the_value() -> None:
    got = recognise(_header(["DERIVED", "PRIMARY", "R2STAR"], "PDFF"))
    assert got.kind == "not_measured"
    assert got.withheld == ("Image Type says R2* map, the series description says PDFF map: "
                            "the map is not identified, nothing is measured")


def _mapping(code, slope, intercept=0.0):
    return {"units_code": code, "units_meaning": None, "slope": slope,
            "intercept": intercept, "label": None, "explanation": None}


def test_the_real_world_value_mapping_applies_to_stored_values_not_rescaled_ones() -> None:
    # stored 200 -> rescaled 200 * 2 + 10 = 410 in the volume; RWVM 0.05 %/stored unit
    header = _header(["DERIVED", "PRIMARY", "PDFF"], rwvm=[_mapping("%", 0.05, 1.0)],
                     slope=2.0, intercept=10.0)
    got = resolve_scale(MapReading(PDFF), header, None)
    assert got.withheld is None
    assert got.scale.slope * 410.0 + got.scale.intercept == pytest.approx(200 * 0.05 + 1.0)


@pytest.mark.parametrize(("code", "slope", "stored", "kpa"), [
    ("kPa", 0.001, 4200, 4.2), ("Pa", 1.0, 4200, 4.2), ("kPa", 0.01, 420, 4.2)])
def test_stiffness_is_converted_from_the_stated_unit(code, slope, stored, kpa) -> None:
    got = resolve_scale(MapReading(STIFFNESS), _header(rwvm=[_mapping(code, slope)]), None)
    assert got.scale.slope * stored + got.scale.intercept == pytest.approx(kpa)


def test_a_stiffness_map_without_a_unit_is_not_measured() -> None:
    got = resolve_scale(MapReading(STIFFNESS), _header(), np.full((4, 8, 8), 4200.0))
    assert got.scale is None
    assert got.withheld == ("MR elastography stiffness map without a stated unit (no Real "
                            "World Value Mapping or Rescale Type): a kPa value cannot be "
                            "established")


def test_a_mapping_in_the_wrong_unit_withholds_the_value() -> None:
    got = resolve_scale(MapReading(PDFF), _header(rwvm=[_mapping("kPa", 1.0)]), None)
    assert got.withheld == "PDFF map: the header's Real World Value Mapping is in kPa, not %"


@pytest.mark.parametrize(("fat_value", "factor"), [(95.0, 1.0), (950.0, 0.1), (0.95, 100.0)])
def test_a_pdff_map_without_a_unit_is_read_as_percent_per_mille_or_fraction(
        fat_value, factor) -> None:
    values = np.zeros((4, 20, 20))
    values[:, :10] = fat_value
    got = read_map(_header(["DERIVED", "PRIMARY", "DIXON", "FF"]), "MR", values)
    assert got.scale.slope == factor


def test_a_pdff_map_whose_range_identifies_no_scale_is_withheld() -> None:
    values = np.full((4, 20, 20), 300.0)
    got = read_map(_header(["DERIVED", "PRIMARY", "DIXON", "FF"]), "MR", values)
    assert got.scale is None
    assert got.withheld == ("PDFF map without a stated unit, and its range (99.5th "
                            "percentile 300) does not identify percent, per mille or a "
                            "fraction")


def test_map_biomarkers_are_defined_with_their_thresholds_and_apart_from_reported_values(
        ) -> None:
    pdff = column("liver_pdff_median_pct")
    assert (pdff.unit, pdff.normal_range, pdff.modalities) == ("%", (None, 5.0), ("MR",))
    assert pdff.thresholds == ((5.0, "steatosis (PDFF >= 5 %)"),)
    mre = column("liver_mre_stiffness_median_kpa")
    assert mre.thresholds == ((5.0, "suggests cirrhosis (MRE >= 5 kPa)"),)
    assert "mre_kpa" in mre.definition and column("mre_kpa").label != mre.label
    assert column("mri_pdff_pct").label != pdff.label
    for names in mr_quant.MAP_FEATURES.values():
        assert set(names) <= set(FEATURES)


def test_the_ingest_command_reports_each_series_measurements_in_its_json(tmp_path, capsys,
                                                                          monkeypatch) -> None:
    monkeypatch.setattr(totalseg, "_installed_version", lambda: None)
    study = write_mr_study(tmp_path / "src", patient_id="MRQ-CLI", series=("mre", "t1"),
                           masks=False)
    assert main(["--home", str(tmp_path / "home"), "ingest", str(tmp_path / "src"),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    plans = sorted(s["measurements"] for s in report["series"])
    assert len(study.images) == 2
    assert plans == [
        "MR elastography stiffness map: no measurement: needs a liver mask",
        "MR image (not a quantitative map): no measurement: needs a liver mask"]
