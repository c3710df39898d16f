"""Research-mode radiomics: MIRP values named per ROI, settings stored with the run."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from sqlalchemy import select

from analytics.cli import main
from analytics.config import Settings
from analytics.errors import MissingExtraError
from analytics.features import radiomics_configs, texture
from analytics.features.batch import _series_to_run, run_batch, write_outcome
from analytics.features.extract import FeatureSettings, extract_series_features
from analytics.features.radiomics import RadiomicsSettings, radiomics_features
from analytics.store.db import open_store
from analytics.store.schema import Feature, FeatureRun, Patient, Series, Study
from tests.features import npz_loader
from tests.features.phantoms import abdomen


@pytest.fixture(scope="module")
def small_radiomics():
    """Two ROIs (3 mm voxels, 25 HU bins, no resampling): statistics, histogram, GLCM."""
    ph = abdomen(spacing_mm=(5.0, 3.0, 3.0), vessels=False)
    ph.hu = np.rint(ph.hu)  # CT numbers are integers (MIRP rounds CT on import)
    settings = RadiomicsSettings(families=("statistics", "intensity_histogram", "glcm"),
                                 new_spacing_mm=None)
    values, used = radiomics_features(ph.hu, {"liver": ph.labels["liver"],
                                              "spleen": ph.labels["spleen"]},
                                      ph.spacing_mm, "CT", settings)
    return ph, values, used


def test_radiomics_named_per_roi_with_settings(small_radiomics) -> None:
    ph, values, used = small_radiomics
    # IBSI statistics mean equals the plain mean of the ROI voxels (MIRP works in float32)
    assert values["radiomics_liver_stat_mean"] == pytest.approx(
        float(ph.hu[ph.labels["liver"]].astype(np.float64).mean()), abs=0.01)
    assert values["radiomics_spleen_stat_mean"] == pytest.approx(
        float(ph.hu[ph.labels["spleen"]].astype(np.float64).mean()), abs=0.01)
    # our own texture features use the same IBSI discretisation: MIRP agrees
    own = texture.texture_features(ph.hu, ph.labels["liver"], "CT")
    assert values["radiomics_liver_ih_entropy_fbs_w25.0"] == pytest.approx(
        own["liver_entropy"], rel=1e-6)
    assert values["radiomics_liver_cm_joint_entr_d1_3d_v_mrg_fbs_w25.0"] == pytest.approx(
        own["liver_glcm_entropy"], rel=1e-6)
    assert used["bin_width"] == 25.0 and used["discretisation"] == "fixed_bin_size"
    assert used["engine"].startswith("mirp ")


def test_radiomics_rows_and_resume_rule(small_radiomics, tmp_path) -> None:
    ph, values, used = small_radiomics
    settings = Settings(home=tmp_path / "home")
    store = open_store(settings)
    uid = "1.2.826.0.1.3680043.8.498.300"
    with store.session() as s:
        p = Patient(pseudonym="R1")
        s.add(p)
        s.flush()
        st = Study(study_uid=uid + ".0", patient_id=p.id)
        s.add(st)
        s.flush()
        s.add(Series(series_uid=uid, source_key="r1", study_id=st.id, modality="CT",
                     storage_dir="dicom/r1"))
    vol = ph.volume()
    res = extract_series_features(vol, ph.masks())
    plain = FeatureSettings()
    write_outcome(store, {"ok": True, "series_uid": uid, "result": res.as_dict(),
                          "auto_mask": None, "radiomics": {}, "seconds": 1.0}, plain)
    # done without radiomics: skipped for a plain run, redone when radiomics are asked for
    assert _series_to_run(store, None, radiomics=False) == ([], [uid])
    assert _series_to_run(store, None, radiomics=True) == ([uid], [])
    # the resume rule reads the run's record: name it as a configured run would be
    named = {**used, **radiomics_configs.get("hepatrack-ct-v1").record("CT")}
    with_rad = FeatureSettings(radiomics=True, radiomics_config="hepatrack-ct-v1")
    write_outcome(store, {"ok": True, "series_uid": uid, "result": res.as_dict(),
                          "auto_mask": None, "radiomics": {"values": values, "settings": named},
                          "seconds": 2.0}, with_rad)
    assert _series_to_run(store, None, radiomics=True) == ([], [uid])
    # radiomics of another configuration are not the ones asked for: redone
    assert _series_to_run(store, None, True, "ibsi-1-phantom") == ([uid], [])
    with store.session() as s:
        rows = {f.name: f for f in s.scalars(select(Feature))}
        run = s.scalar(select(FeatureRun))
    assert rows["radiomics_liver_stat_mean"].value == pytest.approx(
        values["radiomics_liver_stat_mean"])
    assert rows["radiomics_liver_stat_mean"].flags == {"radiomics": True,
                                                       "radiomics_config": "hepatrack-ct-v1@1"}
    assert rows["liver_volume_ml"].unit == "mL"
    assert len(rows) == len(res.values) + len(values)  # rewritten, not duplicated
    assert run.status == "done" and run.settings["radiomics"] is True
    assert run.settings["radiomics_settings"]["bin_width"] == 25.0
    assert run.settings["radiomics_config"] == "hepatrack-ct-v1"
    assert np.isclose(run.seconds, 2.0)
    store.dispose()


@pytest.fixture
def stored_phantom(tmp_path):
    """One stored series (small phantom, delivered masks) the npz test loader can read."""
    settings = Settings(home=tmp_path / "home")
    settings.ensure_home()
    store = open_store(settings)
    ph = abdomen(phase="portal_venous", spacing_mm=(5.0, 3.0, 3.0), vessels=False)
    uid = "1.2.826.0.1.3680043.8.498.301"
    vol = ph.volume("portal_venous")
    vol.series_uid = uid
    npz_loader.save(settings, vol, ph.masks())
    with store.session() as s:
        p = Patient(pseudonym="R2")
        s.add(p)
        s.flush()
        st = Study(study_uid=uid + ".0", patient_id=p.id)
        s.add(st)
        s.flush()
        s.add(Series(series_uid=uid, source_key="r2", study_id=st.id, modality="CT",
                     storage_dir="dicom/r2", contrast_phase="portal_venous"))
    yield settings, store, uid, vol, ph
    store.dispose()


def test_missing_radiomics_extra_fails_only_the_radiomics_and_says_how_to_install(
        stored_phantom, monkeypatch) -> None:
    settings, store, uid, vol, ph = stored_phantom
    monkeypatch.setitem(sys.modules, "mirp", None)  # ``import mirp`` now raises ImportError
    report = run_batch(store, settings, series_uids=[uid], radiomics=True,
                       loader=npz_loader.LOADER,
                       feature_settings=FeatureSettings())
    assert report.series_done == [uid] and report.series_failed == []
    assert [f["series_uid"] for f in report.radiomics_failed] == [uid]
    reason = report.radiomics_failed[0]["reason"]
    assert "MIRP package, which is not installed" in reason
    assert reason.endswith("install it with: pip install 'hepatrack[radiomics]'")
    assert report.missing_extra == "pip install 'hepatrack[radiomics]'"
    assert report.as_payload()["radiomics_failed"] == report.radiomics_failed
    # the core features are stored, with their true values; no radiomics rows
    expected = extract_series_features(vol, ph.masks())
    with store.session() as s:
        rows = {f.name: f.value for f in s.scalars(select(Feature))}
        run = s.scalar(select(FeatureRun))
    assert rows["liver_volume_ml"] == pytest.approx(ph.truth["liver_volume_ml"], rel=1e-12)
    assert rows.keys() == expected.values.keys()
    assert run.status == "done" and run.settings["radiomics_error"] == reason
    # the run does not count as having radiomics: asked again, the series is redone
    assert _series_to_run(store, None, radiomics=True) == ([uid], [])
    assert _series_to_run(store, None, radiomics=False) == ([], [uid])


def test_radiomics_require_mirp_raises_a_typed_error_naming_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mirp", None)
    ph = abdomen(spacing_mm=(5.0, 3.0, 3.0), vessels=False)
    with pytest.raises(MissingExtraError, match=r"pip install 'hepatrack\[radiomics\]'"):
        radiomics_features(ph.hu, {"liver": ph.labels["liver"]}, ph.spacing_mm, "CT")


def test_cli_features_with_radiomics_but_no_mirp_exits_2_with_core_features_stored(
        stored_phantom, monkeypatch, capsys) -> None:
    settings, _store, uid, _vol, _ph = stored_phantom
    monkeypatch.setitem(sys.modules, "mirp", None)
    monkeypatch.setenv("HEPATRACK_FEATURES_LOADER", npz_loader.LOADER)
    code = main(["--home", str(settings.home), "features", "--series", uid, "--radiomics",
                 "--json"])
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert code == 2
    assert out["series_done"] == 1 and out["series_failed"] == []
    assert out["radiomics_failed"][0]["series_uid"] == uid
    assert "pip install 'hepatrack[radiomics]'" in captured.err
    assert "core features stored" in captured.err
