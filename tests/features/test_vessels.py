"""Liver vessel fraction against the synthetic truth: reported only where measurable.

Sweep: synthetic livers at stages 0-4, unenhanced and portal-venous, noise SD 12 and
20 HU, 224 x 224 x 56 voxels of 1.7 x 1.7 x 3 mm, liver and spleen masks delivered (no
vessel mask: the detector runs, the blood level comes from the aorta or the liver's
vessel trunks). Every portal-venous case is reported within 15% of the truth. On
unenhanced CT blood (42 HU) differs from these livers (58 HU healthy, 28 HU at stage 1,
18 HU with steatosis) by 14-24 HU; measured, none of the 10 unenhanced cases is
measurable: either 4 mm vessels reach under 2 smoothed noise SDs (healthy, mild
steatosis, and steatosis at 20 HU noise) or, at 12 HU noise in steatosis (vessel CNR 2.6),
the contrast is under 40 HU, where a 3 HU error of the aorta's blood level alone would
cost 7.5% of the fraction (the aorta read 44.5-45.5 HU on those volumes against 42 HU
blood, which biased the fraction by -12% to -17% before that rule). A severely fatty
liver (around -6 HU, contrast ~48 HU) is measurable unenhanced and checked separately.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from analytics.features.extract import extract_series_features
from analytics.ingest.volume import MaskSet
from analytics.synthetic.disease import draw_patient_disease
from analytics.synthetic.phantom import LABELS, synthesize_visit_volume

STAGES = (0.0, 1.0, 2.0, 3.0, 4.0)
PHASES = ("unenhanced", "portal_venous")
NOISES = (12.0, 20.0)
VESSEL_FEATURES = ("liver_vessel_fraction", "liver_vessel_tortuosity",
                   "liver_vessel_branch_density")


def _run(stage: float, phase: str, noise: float, seed: int, *, aorta: bool = False, **kw):
    sv = synthesize_visit_volume(stage, np.random.default_rng(seed), shape=(56, 224, 224),
                                 spacing_mm=(3.0, 1.7, 1.7), contrast_phase=phase,
                                 noise_sd_hu=noise, **kw)
    m = sv.masks()
    masks = {"liver": m["liver"], "spleen": m["spleen"]}
    if aorta:
        masks["aorta"] = sv.labels == LABELS["aorta"]
    res = extract_series_features(sv.to_volume(), MaskSet(masks))
    return sv.truth["liver_vessel_fraction"], res


@pytest.fixture(scope="module")
def sweep():
    out = {}
    for i, stage in enumerate(STAGES):
        for phase in PHASES:
            for noise in NOISES:
                out[stage, phase, noise] = _run(stage, phase, noise, 100 + i)
    return out


def test_every_reported_fraction_is_within_15_percent_of_truth(sweep) -> None:
    reported = 0
    for key, (truth, res) in sweep.items():
        value = res.value("liver_vessel_fraction")
        if value is not None:
            reported += 1
            assert value == pytest.approx(truth, rel=0.15), key
    assert reported >= len(STAGES) * len(NOISES)


def test_every_portal_venous_case_is_reported(sweep) -> None:
    for (stage, phase, noise), (_truth, res) in sweep.items():
        if phase != "portal_venous":
            continue
        flags = res.values["liver_vessel_fraction"].flags
        assert res.value("liver_vessel_fraction") is not None, (stage, noise, flags)
        assert flags["blood_hu_source"] == "liver_vessels"
        assert abs(flags["blood_hu"] - 170.0) <= 10.0  # portal-venous blood of the phantom
        assert 1.0 <= res.value("liver_vessel_tortuosity") < 2.0
        assert res.value("liver_vessel_branch_density") > 0


def test_unreported_cases_carry_the_reason(sweep) -> None:
    unreported = 0
    for key, (_truth, res) in sweep.items():
        if res.value("liver_vessel_fraction") is not None:
            continue
        unreported += 1
        for name in VESSEL_FEATURES:
            fv = res.values[name]
            assert fv.value is None, (key, name)
            why = fv.flags["not_measurable"]
            assert "unenhanced CT" in why or "no aorta found" in why, (key, why)
            assert fv.flags["reason"] == "not measurable: " + why
    # measured on this sweep: every unenhanced case (see the module docstring)
    assert unreported == len(STAGES) * len(NOISES)


def test_polarity_follows_blood_minus_parenchyma(sweep) -> None:
    """Healthy unenhanced liver (58 HU) > blood: dark vessels; fatty (18 HU): bright."""
    for noise in NOISES:
        flags = sweep[0.0, "unenhanced", noise][1].values["liver_vessel_fraction"].flags
        if "blood_hu" in flags:  # the aorta was found
            assert flags["vessel_polarity"] == "dark"
        flags = sweep[3.0, "unenhanced", noise][1].values["liver_vessel_fraction"].flags
        if "blood_hu" in flags:
            assert flags["vessel_polarity"] == "bright"
        assert sweep[0.0, "portal_venous", noise][1].values[
            "liver_vessel_fraction"].flags["vessel_polarity"] == "bright"


def test_severely_fatty_liver_is_measurable_unenhanced() -> None:
    """Fat fraction 40%: parenchyma ~-6 HU against 42 HU blood, contrast ~48 HU.

    The aorta mask is delivered (as a SEG or a whole-body segmentation would): the aorta
    finder of ``analytics.features.landmarks`` misses or mislocates the unenhanced aorta
    on these volumes, and then the blood level is unknown or wrong (12-16 HU here), which
    leaves the case not measurable rather than wrong."""
    disease = dataclasses.replace(draw_patient_disease(np.random.default_rng(1), 60.0),
                                  fat_fraction_max_pct=40.0, healthy_liver_hu=58.0)
    truth, res = _run(3.0, "unenhanced", 12.0, 104, aorta=True, disease=disease)
    flags = res.values["liver_vessel_fraction"].flags
    assert flags["vessel_polarity"] == "bright"
    assert res.value("liver_vessel_fraction") == pytest.approx(truth, rel=0.15), flags
