"""Core biomarkers against ground truth: analytic phantoms and the synthetic CT model."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from analytics.errors import FeatureError
from analytics.features.attenuation import steatosis_grade
from analytics.features.extract import WITHHELD_MASKS, extract_series_features
from analytics.features.families import FAMILIES
from analytics.features.nodularity import surface_nodularity
from analytics.features.registry import CORE_FEATURES, FEATURES, feature_def
from analytics.ingest.volume import MaskSet, Volume
from analytics.synthetic import anatomy as A
from analytics.synthetic.phantom import synthesize_visit_volume
from analytics.vocabulary import label, unit
from tests.features.phantoms import abdomen, reoriented

SIZE_KEYS = ("liver_volume_ml", "spleen_volume_ml")
HU_KEYS = ("liver_hu_mean", "spleen_hu_mean")


@pytest.fixture(scope="module")
def synthetic_series():
    """Synthetic CT visits of different stages and both phases (3.5 x 2.4 x 2.4 mm), with
    their SEG-equivalent masks (liver, spleen, lesion; no vessel mask)."""
    cases = []
    for i, (stage, phase) in enumerate([(0.0, "unenhanced"), (1.2, "unenhanced"),
                                        (3.0, "unenhanced"), (0.5, "portal_venous"),
                                        (2.5, "portal_venous"), (4.0, "portal_venous")]):
        sv = synthesize_visit_volume(stage, np.random.default_rng(40 + i),
                                     shape=(64, 160, 160), spacing_mm=(3.5, 2.4, 2.4),
                                     contrast_phase=phase, lesions=2)
        m = sv.masks()
        masks = MaskSet({k: m[k] for k in ("liver", "spleen", "lesion")}, source="seg")
        cases.append((sv, extract_series_features(sv.to_volume(), masks)))
    return cases


def test_synthetic_volumes_within_3_percent(synthetic_series) -> None:
    for sv, res in synthetic_series:
        for key in SIZE_KEYS:
            assert res.value(key) == pytest.approx(sv.truth[key], rel=0.03), key


def test_synthetic_attenuation_within_2_hu_and_difference_within_3(synthetic_series) -> None:
    for sv, res in synthetic_series:
        for key in HU_KEYS:
            assert abs(res.value(key) - sv.truth[key]) <= 2.0, (key, sv.truth["latent_stage"])
        assert abs(res.value("liver_spleen_hu_diff") - sv.truth["liver_spleen_hu_diff"]) <= 3.0


def test_synthetic_lesions_counted_and_measured(synthetic_series) -> None:
    for sv, res in synthetic_series:
        assert res.value("lesion_count") == sv.truth["lesion_count"]
        assert res.value("lesion_volume_ml") == pytest.approx(sv.truth["lesion_volume_ml"])


def test_steatosis_grade_only_on_unenhanced(synthetic_series) -> None:
    for sv, res in synthetic_series:
        grade = res.value("steatosis_grade")
        if sv.contrast_phase == "unenhanced":
            liver, diff = res.value("liver_hu_mean"), res.value("liver_spleen_hu_diff")
            assert grade == steatosis_grade(liver, diff, res.value("liver_spleen_hu_ratio"))
        else:
            assert grade is None
            assert "unenhanced" in res.values["steatosis_grade"].flags["reason"]


@pytest.mark.parametrize(("liver", "diff", "ratio", "grade"), [
    (58.0, 11.0, 1.23, 0),     # normal
    (45.0, -2.0, 0.96, 1),     # L/S < 1.0 (Kodama 2007)
    (46.0, 1.0, 1.02, 1),      # liver < 48 HU (Pickhardt 2012)
    (42.0, -11.0, 0.79, 2),    # L-S < -10 HU (Park 2006)
    (35.0, -5.0, 0.875, 2),    # liver < 40 HU (Boyce 2010)
], ids=["normal", "ratio-below-1", "below-48", "diff-below-minus-10", "below-40"])
def test_steatosis_grade_thresholds(liver, diff, ratio, grade) -> None:
    assert steatosis_grade(liver, diff, ratio) == grade


def test_vessel_fraction_within_15_percent_on_enhanced_ct() -> None:
    """Vesselness path (no vessel mask delivered), portal-venous phase, 1.5 mm pixels."""
    for i, stage in enumerate((0.5, 2.0, 3.5)):
        sv = synthesize_visit_volume(stage, np.random.default_rng(70 + i), shape=(56, 224, 224),
                                     spacing_mm=(3.0, 1.7, 1.7),
                                     contrast_phase="portal_venous")
        m = sv.masks()
        res = extract_series_features(sv.to_volume(), MaskSet({"liver": m["liver"],
                                                                "spleen": m["spleen"]}))
        truth = sv.truth["liver_vessel_fraction"]
        assert res.value("liver_vessel_fraction") == pytest.approx(truth, rel=0.15), stage
        assert res.values["liver_vessel_fraction"].flags["vessel_source"] == "vesselness"
        assert 1.0 <= res.value("liver_vessel_tortuosity") < 2.0
        assert res.value("liver_vessel_branch_density") > 0


def test_delivered_vessel_mask_is_used_as_is() -> None:
    sv = synthesize_visit_volume(1.0, np.random.default_rng(3), contrast_phase="unenhanced")
    res = extract_series_features(sv.to_volume(), sv.to_maskset())
    assert res.value("liver_vessel_fraction") == pytest.approx(sv.truth["liver_vessel_fraction"])
    assert res.values["liver_vessel_fraction"].flags["vessel_source"] == "delivered_mask"


def _with_trunk(sv) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic liver and a portal-vein-like trunk: a 3 x 3 voxel tube leaving the
    liver sideways, 3 voxels of its length inside (as a hand-renamed TotalSegmentator
    portal/splenic vein, which reaches the hilum, would be)."""
    liver = sv.masks()["liver"]
    zc = int(np.median(np.nonzero(liver)[0]))
    yc = int(np.median(np.nonzero(liver[zc])[0]))
    x1 = int(np.nonzero(liver[zc, yc])[0].max())
    trunk = np.zeros_like(liver)
    trunk[zc - 1:zc + 2, yc - 1:yc + 2, x1 - 2:x1 + 26] = True
    return liver, trunk


@pytest.mark.parametrize("name", ["liver_vessels", "portal_splenic_vein"],
                         ids=["renamed-as-liver-vessels", "named-as-a-trunk"])
def test_a_vessel_trunk_outside_the_liver_is_withheld_not_a_zero_fraction(name) -> None:
    sv = synthesize_visit_volume(1.0, np.random.default_rng(3), contrast_phase="portal_venous")
    liver, trunk = _with_trunk(sv)
    assert 0 < np.count_nonzero(trunk & liver) < 0.5 * np.count_nonzero(trunk)
    masks = MaskSet({"liver": liver, "spleen": sv.masks()["spleen"], name: trunk})
    res = extract_series_features(sv.to_volume(), masks)
    fv = res.values["liver_vessel_fraction"]
    expected = ("lies mostly outside the liver" if name == "liver_vessels"
                else "portal splenic vein masks are vessel trunks outside the liver")
    assert expected in fv.flags["delivered_vessel_mask_withheld"]
    assert fv.flags["vessel_source"] == "vesselness"  # the detector measures instead
    assert fv.value == pytest.approx(sv.truth["liver_vessel_fraction"], rel=0.15)
    assert any("delivered vessel mask not used" in w for w in res.warnings)


def test_on_mr_a_withheld_vessel_trunk_leaves_no_vessel_value_and_says_why() -> None:
    ph = abdomen(phase="unenhanced", spacing_mm=(5.0, 3.0, 3.0), vessels=False)
    masks = ph.masks()
    outside = np.zeros_like(masks.masks["liver"])
    outside[:, :3, :3] = True
    masks.masks["liver_vessels"] = outside
    vol = Volume(array=ph.hu + 1100.0, spacing_mm=ph.spacing_mm, modality="MR")
    fv = extract_series_features(vol, masks).values["liver_vessel_fraction"]
    assert fv.value is None
    assert fv.flags["reason"] == ("delivered vessel mask withheld: the delivered vessel mask "
                                  "lies entirely outside the liver (a vessel trunk, not the "
                                  "intra-hepatic vessel tree)")


def test_a_failed_delivered_mask_is_not_replaced_by_automatic_segmentation() -> None:
    ph = abdomen(spacing_mm=(5.0, 3.0, 3.0), vessels=False)
    vol = ph.volume()
    vol.meta["mask_errors"] = ["seg 1: cannot decode its pixel data (RLE Lossless)"]
    res = extract_series_features(vol, None)
    assert res.mask_source == "failed" and not res.mask_automatic and res.auto_masks is None
    for name in ("liver_volume_ml", "spleen_volume_ml", "liver_hu_mean"):
        reason = res.values[name].flags["reason"]
        assert res.values[name].value is None
        assert "the delivered mask failed (seg 1: cannot decode its pixel data" in reason
        assert reason.endswith("automatic segmentation is not used in its place")


def test_unenhanced_healthy_liver_vessels_are_not_measurable() -> None:
    """Blood 42 HU against a 58 HU liver: no number, a reason (see tests/features/
    test_vessels.py for the sweep)."""
    sv = synthesize_visit_volume(0.0, np.random.default_rng(5), contrast_phase="unenhanced")
    m = sv.masks()
    res = extract_series_features(sv.to_volume(), MaskSet({"liver": m["liver"],
                                                            "spleen": m["spleen"]}))
    fv = res.values["liver_vessel_fraction"]
    assert fv.value is None
    assert fv.flags["reason"].startswith("not measurable: ")


def test_nodularity_rises_with_true_nodularity() -> None:
    truth, score = [], []
    for i, nod in enumerate([0.1, 0.5, 0.9, 1.3, 1.7, 2.1, 0.3, 1.1, 1.9]):
        anat = A.draw_anatomy(np.random.default_rng(200 + i), n_cysts=0,
                              solid_lesion_stage=99.0)
        sv = synthesize_visit_volume(2.0, np.random.default_rng(i), nodularity_mm=nod,
                                     anatomy=anat)
        truth.append(nod)
        score.append(surface_nodularity(sv.masks()["liver"], sv.spacing_mm))
    assert spearmanr(truth, score).statistic >= 0.9


@pytest.fixture(scope="module")
def phantom():
    return abdomen(phase="portal_venous", lesion=True, spacing_mm=(2.5, 1.5, 1.5))


def test_phantom_values_against_construction_truth(phantom) -> None:
    res = extract_series_features(phantom.volume("portal_venous"),
                                  phantom.masks("liver", "spleen", "lesion"))
    t = phantom.truth
    assert res.value("liver_volume_ml") == pytest.approx(t["liver_volume_ml"], rel=1e-12)
    assert res.value("spleen_volume_ml") == pytest.approx(t["spleen_volume_ml"], rel=1e-12)
    assert abs(res.value("liver_hu_mean") - t["liver_hu_mean"]) <= 1.0
    assert abs(res.value("spleen_hu_mean") - t["spleen_hu_mean"]) <= 1.0
    assert res.value("liver_vessel_fraction") == pytest.approx(t["liver_vessel_fraction"],
                                                               rel=0.15)
    assert res.value("lesion_count") == 2
    assert res.value("contrast_phase") == 2  # portal venous code, the phase given at ingest
    assert res.phase_source == "ingest" and res.phase_estimate is None
    # delivered SEG masks: every mask-based feature says so; the phase needs no mask
    flags = {n: fv.flags for n, fv in res.values.items()}
    assert flags["liver_volume_ml"]["mask_source"] == "seg"
    assert flags["liver_spleen_hu_diff"]["mask_source"] == "seg"
    assert flags["lesion_count"]["mask_source"] == "seg"
    assert flags["contrast_phase"]["mask_source"] == "header"
    assert res.mask_sources["liver"] == "seg"
    # every value carries the vocabulary's unit, and every CT feature is produced
    assert {n: fv.unit for n, fv in res.values.items()} == {n: unit(n) for n in res.values}
    assert set(res.values) == {n for n, d in FEATURES.items() if "CT" in d.modalities}


def test_every_registered_feature_belongs_to_exactly_one_family() -> None:
    owned = [n for family in FAMILIES for n in family.features]
    assert len(owned) == len(set(owned))
    assert set(owned) == set(FEATURES)
    assert all(callable(family.compute) for family in FAMILIES)


@pytest.mark.parametrize(("feet_first", "transpose_xy", "anisotropic"), [
    (True, False, False), (False, True, False), (True, True, False), (False, False, True),
], ids=["feet-first", "rows-columns-swapped", "both", "anisotropic"])
def test_orientation_and_anisotropy_give_the_same_values(feet_first, transpose_xy,
                                                         anisotropic) -> None:
    spacing = (4.0, 0.9, 1.6) if anisotropic else (2.5, 1.5, 1.5)
    ph = abdomen(phase="portal_venous", spacing_mm=spacing)
    ref = extract_series_features(ph.volume("portal_venous"), ph.masks())
    if anisotropic:
        t = ph.truth
        assert ref.value("liver_volume_ml") == pytest.approx(t["liver_volume_ml"], rel=1e-12)
        assert abs(ref.value("liver_hu_mean") - t["liver_hu_mean"]) <= 1.0
        assert abs(ref.value("spleen_hu_mean") - t["spleen_hu_mean"]) <= 1.0
        return
    vol, masks = reoriented(ph, feet_first=feet_first, transpose_xy=transpose_xy,
                            phase="portal_venous")
    other = extract_series_features(vol, masks)
    for name in ("liver_volume_ml", "spleen_volume_ml", "liver_hu_mean", "liver_hu_median",
                 "liver_hu_sd", "spleen_hu_mean", "liver_spleen_hu_diff",
                 "liver_vessel_fraction", "liver_surface_nodularity", "liver_entropy"):
        assert other.value(name) == pytest.approx(ref.value(name), rel=1e-6, abs=1e-9), name


def test_phase_unknown_at_ingest_is_estimated_beside_it_never_stored_as_the_phase() -> None:
    for phase in ("unenhanced", "portal_venous", "arterial"):
        ph = abdomen(phase=phase, spacing_mm=(2.5, 1.5, 1.5))
        res = extract_series_features(ph.volume(None), ph.masks())
        assert res.value("contrast_phase") is None, phase
        assert res.contrast_phase is None
        assert (res.phase_estimate, res.phase_source) == (phase, "aorta_estimate")
        flags = res.values["contrast_phase"].flags
        assert flags["aorta_estimate"] == phase and flags["aorta_hu"] == res.aorta_hu
        assert flags["reason"].startswith("phase not stated in the DICOM header at ingest; "
                                          f"the aorta suggests {phase}")
        # features that depend on the phase say they used an estimate
        assert res.values["liver_spleen_hu_diff"].flags["contrast_phase_estimated"] is True


def test_phase_given_at_ingest_wins_over_a_disagreeing_aorta() -> None:
    ph = abdomen(phase="unenhanced", spacing_mm=(2.5, 1.5, 1.5))
    res = extract_series_features(ph.volume("portal_venous"), ph.masks())
    assert res.contrast_phase == "portal_venous" and res.value("contrast_phase") == 2
    assert res.phase_source == "ingest"
    assert res.values["steatosis_grade"].value is None  # graded on unenhanced CT only
    assert "contrast_phase_estimated" not in res.values["liver_spleen_hu_diff"].flags


def test_phase_estimated_on_synthetic_ct(synthetic_series) -> None:
    """Never a wrong phase; when the aorta is not found the phase stays unknown."""
    found = 0
    for sv, _ in synthetic_series:
        vol = sv.to_volume()
        vol.contrast_phase = None
        m = sv.masks()
        res = extract_series_features(vol, MaskSet({"liver": m["liver"],
                                                    "spleen": m["spleen"]}))
        assert res.contrast_phase is None and res.value("contrast_phase") is None
        if res.phase_estimate is None:
            assert "no aorta found" in res.values["contrast_phase"].flags["reason"]
            continue
        found += 1
        assert res.phase_estimate == sv.contrast_phase
        assert res.phase_source == "aorta_estimate"
    assert found >= 5


def test_mr_gets_intensity_statistics_only() -> None:
    ph = abdomen(phase="unenhanced", spacing_mm=(5.0, 3.0, 3.0))
    vol = Volume(array=ph.hu + 1100.0, spacing_mm=ph.spacing_mm, modality="MR",
                 series_uid="1.2.3.mr")
    res = extract_series_features(vol, ph.masks())
    assert not any(n in res.values for n in ("liver_hu_mean", "steatosis_grade",
                                             "liver_spleen_hu_diff"))
    assert res.value("liver_mr_intensity_mean") == pytest.approx(58.0 + 1100.0, abs=1.5)
    assert res.value("liver_volume_ml") == pytest.approx(ph.truth["liver_volume_ml"])
    # no phase from ingest and no aorta estimate on MR: the reason says only that
    assert res.phase_estimate is None and res.phase_source is None
    assert res.values["contrast_phase"].flags["reason"] == (
        "phase not stated in the DICOM header at ingest")


def _bad(kind: str) -> tuple[Volume, MaskSet | None]:
    ph = abdomen(spacing_mm=(5.0, 3.0, 3.0), vessels=False)
    vol = ph.volume()
    masks = ph.masks()
    if kind == "spacing":
        vol.spacing_mm = (0.0, 3.0, 3.0)
    elif kind == "modality":
        vol.modality = "PT"
    elif kind == "mask-shape":
        masks.masks["liver"] = masks.masks["liver"][:-1]
    elif kind == "direction":
        vol.direction = np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 0, 1.0]])
    elif kind == "2d":
        vol.array = vol.array[0]
    return vol, masks


@pytest.mark.parametrize(("kind", "message"), [
    ("spacing", "spacing_mm must be 3 positive numbers"),
    ("modality", "modality 'PT' is not supported"),
    ("mask-shape", "mask 'liver' has shape"),
    ("direction", "degenerate"),
    ("2d", "must be a 3-D array"),
], ids=["zero-spacing", "pet-modality", "mask-shape-mismatch", "degenerate-direction",
        "2d-image"])
def test_bad_input_is_a_clear_feature_error(kind, message) -> None:
    vol, masks = _bad(kind)
    with pytest.raises(FeatureError, match=message):
        extract_series_features(vol, masks)


def test_registry_covers_core_names_with_units_and_labels() -> None:
    for name in CORE_FEATURES:
        d = feature_def(name)
        assert d.unit and d.label and d.definition and d.direction
    assert unit("liver_volume_ml") == "mL" and unit("liver_hu_mean") == "HU"
    assert label("liver_spleen_hu_diff") == "Liver minus spleen attenuation"
    assert FEATURES["steatosis_grade"].requires == ("unenhanced",)
    assert "MR" not in FEATURES["liver_hu_mean"].modalities
    with pytest.raises(FeatureError, match="not in the registry"):
        feature_def("liver_magic")


@pytest.mark.parametrize(("n", "window"), [(13, 5), (200, 41), (400, 81)])
def test_periodic_savitzky_golay_equals_scipy(n, window) -> None:
    from scipy.signal import savgol_filter

    from analytics.features.nodularity import savgol_wrap

    x = np.random.default_rng(n).normal(size=n).cumsum()
    assert np.allclose(savgol_wrap(x, window, 3), savgol_filter(x, window, 3, mode="wrap"),
                       rtol=0, atol=1e-10)


def test_withheld_organ_is_not_segmented_automatically_and_its_features_say_why() -> None:
    ph = abdomen(phase="portal_venous", spacing_mm=(5.0, 3.0, 3.0), vessels=False)
    vol = ph.volume("portal_venous")
    vol.meta[WITHHELD_MASKS] = {"liver": "the delivered SEG could not be read"}
    res = extract_series_features(vol, ph.masks("spleen"))
    assert res.auto_masks is None and "liver" not in res.segments
    assert res.mask_sources == {"spleen": "seg", "liver": "withheld"}
    liver = res.values["liver_volume_ml"]
    assert liver.value is None and liver.flags["mask_source"] == "withheld"
    assert liver.flags["reason"] == "liver mask withheld: the delivered SEG could not be read"
    assert res.values["liver_spleen_hu_diff"].flags["mask_source"] == "withheld"
    spleen = res.values["spleen_volume_ml"]
    assert spleen.value == pytest.approx(ph.truth["spleen_volume_ml"], rel=1e-12)
    assert spleen.flags["mask_source"] == "seg"
