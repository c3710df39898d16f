"""Sections of the model card, each from what training knows."""

from __future__ import annotations

from analytics.models.card import (
    REQUIRED_SECTIONS,
    _outcome,
    _predictors,
    _validation,
    build_card,
    check_card,
)


def test_outcome_names_each_competing_cause_and_its_events() -> None:
    section = _outcome({"of_interest": ["decompensation"],
                        "competing": {"death": ["death"], "transplant": ["transplant"]}},
                       "decompensation", [1.0, 3.0])
    assert section["endpoint"] == ["decompensation"]
    assert section["competing_risks"].startswith(
        "Competing events (death: death; transplant: transplant) are modelled")
    assert section["censoring"].startswith("administrative at s + 3 years")


def test_outcome_without_competing_events_says_risk_is_one_minus_exp_minus_h() -> None:
    section = _outcome({"of_interest": ["hcc"], "competing": {}}, "hcc", [2.0])
    assert section["competing_risks"] == ("No competing events were observed; "
                                          "risk is 1 - exp(-H(t)).")


def test_predictors_give_label_and_unit_and_name_what_was_left_out() -> None:
    section = _predictors(["liver_volume_ml"], {"medians": {"liver_volume_ml": 1500.0}},
                          {"spleen_volume_ml": "constant in training"})
    assert section["features"] == [{"name": "liver_volume_ml", "label": "Liver volume",
                                    "unit": "mL"}]
    assert section["left_out"] == {"spleen_volume_ml": "Spleen volume: constant in training"}
    assert section["imputation_medians"] == {"liver_volume_ml": 1500.0}


def test_validation_drops_calibration_curves_and_keeps_baseline_metrics() -> None:
    section = _validation({"repeats": 2, "folds": 5,
                           "calibration": {1.0: {"slope": 0.9, "curve": [[0.1, 0.2]]}}},
                          {"meld": {"c_index": 0.6, "extra": 1}}, None)
    assert section["method"].startswith("2x repeated 5-fold cross-validation")
    assert section["calibration"] == {1.0: {"slope": 0.9}}
    assert section["baselines"] == {"meld": {"c_index": 0.6, "td_auc": None,
                                             "model_c_index_same_rows": None}}


def test_a_built_card_has_every_required_section_and_passes_its_check() -> None:
    card = build_card(model_id="m1", kind="cox", params={}, events={"of_interest": ["death"]},
                      horizons=[1.0, 2.0], landmarks=[0.0], features=["liver_volume_ml"],
                      design={}, n_patients=10, n_rows=20, n_events=3,
                      event_counts={"death": 3}, training_data_sha256="0" * 64, cv={},
                      baselines={}, oracle_c_index=None, created="2026-01-01",
                      explainer="shap")
    assert list(card)[:3] == ["model_id", "created", "title"]
    assert all(card[s] for s in REQUIRED_SECTIONS)
    assert card["title"] == "Landmark cox model for death within 1, 2 years"
    check_card(card, "m1", [1.0, 2.0])
