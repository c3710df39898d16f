"""Model settings: validated by field name, frozen, and the one source of every default."""

from __future__ import annotations

import dataclasses

import pytest

from analytics.errors import ModelError
from analytics.models.estimators import ESTIMATORS
from analytics.models.landmark import LandmarkSettings
from analytics.models.settings import KINDS, ModelSettings, SettingsError


@pytest.mark.parametrize(("values", "match"), [
    pytest.param({"fold": 3}, r"^fold: not a model setting \(settings: event, folds",
                 id="unknown-field"),
    pytest.param({"kind": "svm"}, r"^kind: expected one of cox, gbm, rsf, got 'svm'",
                 id="kind"),
    pytest.param({"folds": 1}, r"^folds: expected at least 2 folds \(an integer >= 2\), got 1",
                 id="one-fold"),
    pytest.param({"folds": 2.5}, r"^folds: expected at least 2 folds .*got 2.5",
                 id="fractional-folds"),
    pytest.param({"repeats": 0}, r"^repeats: expected at least 1 repeat", id="repeats"),
    pytest.param({"n_bootstrap": -1}, r"^n_bootstrap: .*>= 0\), got -1", id="bootstrap"),
    pytest.param({"seed": True}, r"^seed: expected a seed", id="seed-bool"),
    pytest.param({"interval_refits": -2}, r"^interval_refits: .*got -2", id="refits"),
    pytest.param({"horizons": (1.0, 0.0)}, r"^horizons: expected positive years", id="zero"),
    pytest.param({"horizons": "1,x"}, r"^horizons: expected positive years, got '1,x'",
                 id="not-numbers"),
    pytest.param({"horizons": ()}, r"^horizons: expected positive years", id="none"),
    pytest.param({"event": 3}, r"^event: expected event names", id="event"),
    pytest.param({"params": {"n_trees": 5}},
                 r"^params: n_trees: not a parameter of the cox estimator \(known: .*"
                 r"penalizer", id="estimator-param"),
    pytest.param({"landmark": {"stride": 1}}, r"^landmark: expected LandmarkSettings fields",
                 id="landmark"),
])
def test_bad_settings_are_refused_naming_the_field(values, match):
    with pytest.raises(SettingsError, match=match) as err:
        ModelSettings.from_mapping(values)
    assert isinstance(err.value, ValueError) and isinstance(err.value, ModelError)
    assert err.value.field == next(iter(values))


def test_from_mapping_normalises_text_and_keeps_defaults_for_missing_values():
    s = ModelSettings.from_mapping({"event": "death, hcc,death", "horizons": "1,2.5",
                                    "folds": 3.0, "seed": None})
    assert s.event == ("death", "hcc") and s.horizons == (1.0, 2.5)
    assert s.folds == 3 and isinstance(s.folds, int) and s.seed == ModelSettings().seed
    assert ModelSettings(event=[]).event is None  # no names: the default endpoint


def test_settings_are_frozen_and_their_params_read_only():
    s = ModelSettings(kind="gbm", params={"n_estimators": 30})
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'folds'"):
        s.folds = 3
    with pytest.raises(TypeError, match="does not support item assignment"):
        s.params["n_estimators"] = 1


def test_landmark_settings_follow_the_horizons():
    s = ModelSettings(horizons=(2.0, 4.0), landmark={"step": 1.0})
    assert s.landmark_settings() == LandmarkSettings(horizons=(2.0, 4.0), step=1.0)
    assert ModelSettings(horizons=(5.0,)).landmark_settings() == LandmarkSettings(horizons=(5.0,))


def test_every_estimator_kind_is_a_setting():
    assert set(KINDS) == set(ESTIMATORS)


def test_the_cli_and_the_models_page_take_their_defaults_from_the_settings():
    from analytics.cli import build_parser
    from analytics.commands.models import settings_from_args
    from ui.models_view import DEFAULTS, train_settings

    defaults = ModelSettings()
    assert defaults.n_bootstrap == 50 and defaults.folds == 5 and defaults.repeats == 2
    args = build_parser().parse_args(["train"])
    assert settings_from_args(args) == defaults
    assert defaults == DEFAULTS
    form = train_settings(kind="cox", events=[], horizons=[3.0, 1.0, 2.0], folds=5, repeats=2,
                          n_bootstrap=DEFAULTS.n_bootstrap)
    assert form == defaults


def test_a_bad_cli_value_names_the_flag_and_the_field():
    from analytics.cli import build_parser
    from analytics.commands.models import settings_from_args

    args = build_parser().parse_args(["train", "--cv", "1"])
    with pytest.raises(SettingsError, match=r"^--cv 1 \(folds\): expected at least 2 folds"):
        settings_from_args(args)
    args = build_parser().parse_args(["train", "--bootstrap", "-5"])
    with pytest.raises(SettingsError, match=r"^--bootstrap -5 \(n_bootstrap\): expected a"):
        settings_from_args(args)
