"""Named radiomics configurations: chosen on the command line or by the site, recorded with
every run, and the IBSI phantom configuration reproducing the IBSI reference values
through the same CLI and batch path as any other series."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest
from sqlalchemy import select

from analytics.cli import main
from analytics.cohort.export import export
from analytics.config import Settings, load_settings
from analytics.errors import ConfigError, FeatureError
from analytics.features import radiomics_configs
from analytics.features.extract import FeatureSettings
from analytics.features.radiomics import mirp_arguments
from analytics.store.db import open_store
from analytics.store.schema import Feature, FeatureRun
from tests.features import npz_loader
from tests.features.ibsi_store import PHANTOM_UID, store_phantom
from tests.features.test_ibsi import REFERENCE, _matches


def stored_run(settings: Settings) -> tuple[dict[str, Feature], FeatureRun]:
    store = open_store(settings)
    with store.session() as s:
        rows = {f.name: f for f in s.scalars(select(Feature))}
        run = s.scalar(select(FeatureRun))
        s.expunge_all()
    store.dispose()
    return rows, run


@pytest.fixture(scope="module")
def phantom_cli(tmp_path_factory):
    """``hepatrack features --series UID --radiomics-config ibsi-1-phantom`` on the phantom."""
    settings = Settings(home=tmp_path_factory.mktemp("ibsi") / "home")
    store_phantom(settings)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HEPATRACK_FEATURES_LOADER", npz_loader.LOADER)
        code = main(["--home", str(settings.home), "features", "--series", PHANTOM_UID,
                     "--radiomics-config", "ibsi-1-phantom", "--json"])
    rows, run = stored_run(settings)
    return code, settings, rows, run


@pytest.mark.parametrize(("name", "reference", "tolerance"), REFERENCE,
                         ids=[r[0] for r in REFERENCE])
def test_ibsi_phantom_configuration_through_the_cli_matches_the_ibsi_reference(
        phantom_cli, name, reference, tolerance) -> None:
    code, _settings, rows, _run = phantom_cli
    assert code == 0
    stored = rows.get(f"radiomics_liver_{name}")
    assert stored is not None, f"the CLI run stored no radiomics_liver_{name}"
    assert _matches(stored.value, reference, tolerance), (
        f"{name}: {stored.value} vs IBSI {reference} (tol {tolerance})")


def test_phantom_run_records_the_configuration_with_its_full_settings(phantom_cli) -> None:
    _code, _settings, rows, run = phantom_cli
    assert run.settings["radiomics"] is True
    assert run.settings["radiomics_config"] == "ibsi-1-phantom"
    used = run.settings["radiomics_settings"]
    assert (used["config"], used["config_version"]) == ("ibsi-1-phantom", 1)
    assert used["discretisation"] == "none" and used["new_spacing_mm"] is None
    assert used["glcm_distance"] == 1.0 and used["engine"].startswith("mirp ")
    assert rows["radiomics_liver_stat_mean"].flags["radiomics_config"] == "ibsi-1-phantom@1"


def test_features_export_carries_each_series_radiomics_configuration(phantom_cli,
                                                                      tmp_path) -> None:
    _code, settings, _rows, run = phantom_cli
    store = open_store(settings)
    out = tmp_path / "features.csv"
    export(store, "features", out)
    store.dispose()
    df = pd.read_csv(out)
    assert list(df.columns[-3:]) == ["radiomics_config", "radiomics_settings",
                                     "segmentation_engine"]
    assert df["radiomics_config"].tolist() == ["ibsi-1-phantom@1"]
    assert json.loads(df["radiomics_settings"].iloc[0]) == run.settings["radiomics_settings"]
    # HepaTrack's own texture at its 25 HU bins: the phantom's levels 1..9 are one bin
    assert pd.isna(df["liver_entropy"].iloc[0]) and pd.isna(df["liver_glcm_entropy"].iloc[0])
    assert df["liver_entropy__reason"].iloc[0] == (
        "texture: only one grey level in the liver after 25 HU binning")
    assert df["liver_glcm_entropy__reason"].iloc[0] == df["liver_entropy__reason"].iloc[0]


def test_default_configuration_is_recorded_by_name_in_the_stored_run(tmp_path,
                                                                     monkeypatch) -> None:
    settings = Settings(home=tmp_path / "home")
    store_phantom(settings)
    monkeypatch.setenv("HEPATRACK_FEATURES_LOADER", npz_loader.LOADER)
    assert main(["--home", str(settings.home), "features", "--series", PHANTOM_UID,
                 "--radiomics", "--json"]) == 0
    rows, run = stored_run(settings)
    assert run.settings["radiomics_config"] == "hepatrack-ct-v1"
    used = run.settings["radiomics_settings"]
    assert (used["config"], used["config_version"]) == ("hepatrack-ct-v1", 1)
    assert (used["new_spacing_mm"], used["bin_width"]) == (2.0, 25.0)
    assert rows["radiomics_liver_stat_mean"].flags["radiomics_config"] == "hepatrack-ct-v1@1"


def test_unknown_configuration_on_the_command_line_exits_2_listing_the_valid_names(
        tmp_path, capsys) -> None:
    with pytest.raises(SystemExit, match="2"):
        main(["--home", str(tmp_path), "features", "--all", "--radiomics-config", "ibsi-2"])
    err = capsys.readouterr().err
    assert "unknown radiomics configuration 'ibsi-2'" in err
    assert "expected one of: hepatrack-ct-v1, ibsi-1-phantom, ibsi-1-ct" in err


def test_help_lists_every_configuration(capsys) -> None:
    with pytest.raises(SystemExit, match="0"):
        main(["features", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for name in ("hepatrack-ct-v1", "ibsi-1-phantom", "ibsi-1-ct"):
        assert name in out


def test_unknown_configuration_in_config_toml_is_refused_naming_the_valid_ones(
        tmp_path) -> None:
    (tmp_path / "config.toml").write_text('radiomics_config = "ibsi-9"\n')
    with pytest.raises(ConfigError, match="'ibsi-9' is not a radiomics configuration; "
                                          "expected one of: hepatrack-ct-v1"):
        load_settings(tmp_path)


def test_site_setting_names_the_default_configuration(tmp_path) -> None:
    (tmp_path / "config.toml").write_text('radiomics_config = "ibsi-1-ct"\n')
    assert load_settings(tmp_path).radiomics_config == "ibsi-1-ct"


def test_feature_settings_refuse_an_unknown_configuration_name() -> None:
    with pytest.raises(FeatureError, match="unknown radiomics configuration 'ct-2mm'"):
        FeatureSettings(radiomics_config="ct-2mm")


def test_configurations_and_their_settings_are_frozen() -> None:
    config = radiomics_configs.get("ibsi-1-ct")
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field"):
        config.ct.bin_width = 10.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field"):
        config.version = 2  # type: ignore[misc]


def test_ibsi_ct_configuration_has_the_ibsi_1_configuration_c_settings() -> None:
    """IBSI reference manual, configuration C (3-D): 2 mm isotropic grid, trilinear image
    interpolation, no anti-aliasing, re-segmentation to -1000..400 HU, fixed bin size
    25 HU, intensity-volume histogram bin size 2.5 HU, distance 1."""
    args = mirp_arguments(radiomics_configs.get("ibsi-1-ct").settings_for("CT"), "CT")
    assert args["new_spacing"] == 2.0
    assert args["spline_order"] == 1 and args["anti_aliasing"] is False
    assert args["resegmentation_intensity_range"] == [-1000.0, 400.0]
    assert args["base_discretisation_method"] == "fixed_bin_size"
    assert args["base_discretisation_bin_width"] == 25.0
    assert args["ivh_discretisation_method"] == "fixed_bin_size"
    assert args["ivh_discretisation_bin_width"] == 2.5
    assert args["glcm_distance"] == 1.0 and args["ngldm_distance"] == 1.0
    assert args["by_slice"] is False


def test_ibsi_phantom_configuration_neither_resamples_nor_discretises() -> None:
    args = mirp_arguments(radiomics_configs.get("ibsi-1-phantom").settings_for("CT"), "CT")
    assert "new_spacing" not in args and "resegmentation_intensity_range" not in args
    assert args["base_discretisation_method"] == "none"
    assert args["ivh_discretisation_method"] == "none"
    assert args["glcm_distance"] == 1.0


def test_ibsi_ct_configuration_is_not_applied_to_mr() -> None:
    with pytest.raises(FeatureError, match="'ibsi-1-ct' is not defined for MR series"):
        radiomics_configs.get("ibsi-1-ct").settings_for("MR")
