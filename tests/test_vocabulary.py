"""One vocabulary: every column has one label and one unit, shown the same on every page."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics import vocabulary as V
from analytics.cohort.columns import CODED_COLUMNS, LAB_COLUMNS, UNIT_ALIASES
from analytics.errors import FeatureError
from analytics.features.registry import FEATURES, feature_def
from analytics.models.history_spec import GLOBAL_FEATURES, HISTORY_STATS, FeatureSpec
from analytics.models.scores import CLINICAL_SCORES
from analytics.viz.cohort import biomarker_distribution
from analytics.viz.patient import biomarker_trajectory
from analytics.viz.prep import biomarker_summary
from analytics.vocabulary import clinical, imaging

IMAGING = list(FEATURES)
LABS = list(LAB_COLUMNS)
CODED = list(CODED_COLUMNS)
SCORES = list(CLINICAL_SCORES)
CATEGORICAL = [n for n in (*IMAGING, *CODED) if V.column(n).categorical]
NUMERIC = [n for n in (*IMAGING, *V.ULTRASOUND_COLUMNS, *LABS, *CODED, *SCORES)
           if n not in CATEGORICAL]


def _model_columns() -> list[str]:
    """Every column the landmark model can be given: history columns with interactions and
    every statistic, then the design's missing indicators and one-hot levels."""
    spec = FeatureSpec(numeric=NUMERIC, categorical=CATEGORICAL, low_is_worse={},
                       interactions=True, stats=HISTORY_STATS)
    history = spec.columns
    design = [f"{c}_missing" for c in history if c not in GLOBAL_FEATURES]
    levels = [f"{c}={code}" for c in CATEGORICAL for code in V.column(c).codes]
    return [*history, *design, *levels]


PRODUCED = [*IMAGING, *V.ULTRASOUND_COLUMNS, *LABS, *CODED, *SCORES, *_model_columns(),
            *(f"{n}__source" for n in IMAGING)]


def test_every_definition_is_written_once() -> None:
    groups = (imaging.IMAGING_COLUMNS.values(), V.ULTRASOUND_COLUMNS.values(),
              clinical.LAB_DEFS, clinical.CODED_DEFS,
              clinical.SCORE_DEFS, clinical.HISTORY_DEFS, clinical.RECORD_DEFS)
    names = [c.name for g in groups for c in g]
    assert len(names) == len(set(names)) == len(V.COLUMNS)


def test_every_column_the_model_cohort_and_extraction_produce_has_one_label_and_unit() -> None:
    for name in PRODUCED:
        c = V.column(name)
        assert c.name == name
        assert c.label and c.label == V.label(name), name
        assert isinstance(c.unit, str) and c.unit == V.unit(name), name
        assert c.source in V.SOURCES, name
        assert V.label_with_unit(name).startswith(c.label), name


def test_no_two_columns_share_a_label() -> None:
    names = sorted({*PRODUCED, *V.COLUMNS})
    seen: dict[str, str] = {}
    for name in names:
        key = V.label(name).casefold()
        assert key not in seen, f"{name} and {seen[key]} are both labelled {V.label(name)!r}"
        seen[key] = name


@pytest.mark.parametrize(("column", "label", "unit"), [
    ("liver_hu_mean_slope", "Liver attenuation, mean trend", "HU per year"),
    ("platelets_10e9_l_worst", "Platelets worst so far", "×10⁹/L"),
    ("spleen_volume_ml_mean_1y", "Spleen volume mean of the last year", "mL"),
    ("meld_change", "MELD change since the first value", "points"),
    ("bilirubin_mg_dl_x_landmark", "Bilirubin x time since baseline", "mg/dL x years"),
    ("albumin_g_dl_missing", "Albumin not measured yet", ""),
    ("sex=F", "Sex = F", ""),
    ("liver_vessel_fraction_slope", "Liver vessel fraction trend", "units per year"),
])
def test_history_columns_are_labelled_by_rule_from_their_base(column, label, unit) -> None:
    assert V.describe_column(column) == (label, unit)


def test_a_history_column_keeps_the_direction_of_its_base() -> None:
    assert V.low_is_worse("platelets_10e9_l") and V.low_is_worse("platelets_10e9_l_worst")
    assert not V.low_is_worse("bilirubin_mg_dl_worst")
    assert not V.low_is_worse("platelets_10e9_l_missing")  # an indicator has no direction


def test_labs_carry_the_plausible_ranges_cohort_validation_uses() -> None:
    for name, rules in LAB_COLUMNS.items():
        lo, hi = V.column(name).plausible_range
        assert rules.plausible == (lo, hi) and lo < hi
        assert rules.label == V.label(name) and rules.unit == V.unit(name)
    assert UNIT_ALIASES["bilirubin_umol_l"] == ("bilirubin_mg_dl", 17.1)
    assert UNIT_ALIASES["alp_ukat_l"] == ("alp_u_l", pytest.approx(1 / 60))


def test_scores_read_their_label_and_unit_from_the_vocabulary() -> None:
    for name, d in CLINICAL_SCORES.items():
        assert (d.label, d.unit) == (V.label(name), V.unit(name))


def test_imaging_normal_ranges_and_strict_registry_lookup() -> None:
    assert V.normal_range("spleen_volume_ml") == (None, 314.0)
    assert V.normal_range("bilirubin_mg_dl") is None
    assert feature_def("liver_hu_mean") is V.column("liver_hu_mean")
    assert V.applies_to_modality("liver_hu_mean", "MR") is False
    assert V.applies_to_modality("bilirubin_mg_dl", "MR") is None
    with pytest.raises(FeatureError, match="not in the registry"):
        feature_def("bilirubin_mg_dl")


def _biomarkers(names: list[str]) -> pd.DataFrame:
    rows = [(t, n, 10.0 + t, None) for n in names for t in (0.0, 1.0)]
    return pd.DataFrame(rows, columns=["time_years", "name", "value", "unit"])


def test_the_same_column_has_the_same_label_on_every_figure_and_table() -> None:
    names = ["liver_hu_mean", "liver_volume_ml", "liver_vessel_fraction",
             "liver_spleen_hu_ratio", "spleen_volume_ml"]
    labs = ["bilirubin_mg_dl", "platelets_10e9_l", "prothrombin_s", "inr"]
    expected = {n: V.label_with_unit(n) for n in (*names, *labs)}
    assert expected["liver_hu_mean"] == "Liver attenuation, mean (HU)"
    assert expected["bilirubin_mg_dl"] == "Bilirubin (mg/dL)"

    trajectory = biomarker_trajectory(_biomarkers(names), names)
    titles = [trajectory.layout[f"yaxis{i + 1 if i else ''}"].title.text
              for i in range(len(names))]
    assert titles == [expected[n] for n in names]

    for n in (*names, *labs):
        patients = pd.DataFrame({"pseudonym": ["P1", "P2"], n: [1.0, 2.0],
                                 "event": ["death", "censored"]})
        assert biomarker_distribution(patients, n).layout.yaxis.title.text == expected[n]

    visits = pd.DataFrame({"time_years": [0.0, 1.0], **{n: [1.0, 2.0] for n in labs}})
    summary = biomarker_summary(_biomarkers(names), visits, imaging=names, labs=labs)
    assert dict(zip(summary["name"], summary["label"], strict=True)) == expected


def test_table_headers_use_the_vocabulary() -> None:
    pytest.importorskip("streamlit")
    from ui.format import column_config

    df = pd.DataFrame({"pseudonym": ["P1"], "follow_up_years": [1.5],
                       "liver_hu_mean": [50.0], "bilirubin_mg_dl": [np.float64(1.0)]})
    cfg = column_config(df)
    labels = {c: cfg[c]["label"] for c in df.columns}
    assert labels == {c: V.label_with_unit(c) for c in df.columns}
    assert labels["follow_up_years"] == "Follow-up (years)"


@pytest.mark.parametrize(("name", "stored", "shown"), [
    ("platelets_10e9_l", None, "×10⁹/L"),
    ("platelets_10e9_l", "10⁹/L", "×10⁹/L"),  # a unit stored before it was written so
    ("platelets_10e9_l_slope", None, "×10⁹/L per year"),
    ("neutrophils_10e9_l", None, "×10⁹/L"),  # a visits-file column named by the contract
    ("albumin_g_dl", None, "g/dL"),
])
def test_counts_per_litre_are_written_as_clinicians_write_them(name, stored, shown) -> None:
    from analytics.explain.wording import contribution_sentence, value_text

    assert V.shown_unit(name, stored) == shown
    assert V.describe_column(name)[1] == V.shown_unit(name)
    # a space between the number and the unit
    assert value_text(123.0, V.shown_unit("platelets_10e9_l")) == "123 ×10⁹/L"
    assert V.label_with_unit("platelets_10e9_l") == "Platelets (×10⁹/L)"
    assert contribution_sentence("Platelets", "×10⁹/L", 123.0, -57.0, 3.1, "platelets_10e9_l") \
        == "Platelets 123 ×10⁹/L (180 at the previous visit): +3.1 points"


@pytest.mark.parametrize(("event", "label", "words"), [
    ("hcc", "HCC", "HCC"),
    ("censored", "No event", "no event"),
    ("death", "Death", "death"),
    ("decompensation", "Decompensation", "decompensation"),
    ("transplant", "Transplant", "transplant"),
    ("death,decompensation", "Death or decompensation", "death or decompensation"),
    ("decompensation,hcc", "Decompensation or HCC", "decompensation or HCC"),
    ("liver_related_death", "Liver-related death", "liver-related death"),
])
def test_event_names_are_capitalised_consistently(event, label, words) -> None:
    from analytics.viz.prep import event_text, outcome_label

    assert V.event_label(event) == label
    assert V.event_words(event) == words
    assert event_text(event) == words
    assert outcome_label(event, 2.04) == ("No event, followed to 2.0 y" if event == "censored"
                                          else f"{label} at 2.0 y")


def test_a_patient_without_an_event_reads_no_event_not_censored() -> None:
    assert V.outcome_words("censored", 7.43) == "no event, followed to 7.4 y"
    assert V.outcome_words("hcc", 7.43) == "HCC at 7.4 y"
    assert V.outcome_words("death", 0.96) == "death at 1.0 y"
