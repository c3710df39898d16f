"""The hand-off to TotalSegmentator, both ways, on the real scans of ``tests/data``.

TotalSegmentator itself (torch and its weights) is not installed here. What is tested is
everything on HepaTrack's side of it:

- image -> TotalSegmentator: the real CT and MR, written as DICOM series and read back by
  HepaTrack's ingest and loader, turned canonical and then into the NIfTI handed to
  TotalSegmentator, must be the original NIfTI again: same voxels at the same world
  positions (TotalSegmentator trusts the affine);
- TotalSegmentator -> masks: a stand-in for ``totalsegmentator.python_api.totalsegmentator``
  returns TotalSegmentator's own reference label map for that scan, resampled by nibabel
  onto the grid of the file it was given (as TotalSegmentator returns it); the liver and
  spleen masks HepaTrack makes of it must be the reference's voxel for voxel, with the
  published volumes;
- detection: without its weights on disk it is not used, and the reason says which.
"""

from __future__ import annotations

import re
import sys
import types

import nibabel as nib
import numpy as np
import pytest
from nibabel.processing import resample_from_to

from analytics.errors import FeatureError, MissingExtraError
from analytics.features import totalseg
from analytics.features.extract import FeatureSettings, extract_series_features
from analytics.features.geometry import orientation
from analytics.features.totalseg import (
    MR_NEEDS_MASK,
    canonical_affine,
    canonical_to_nifti,
    choose_engine,
    engine_summary,
    totalsegmentator_status,
)
from analytics.ingest.loader import load_series
from analytics.ingest.pipeline import ingest_uploads
from analytics.store import open_store
from tests.realdata import (
    CT_SM,
    CT_SM_LABELS,
    MR_SM,
    MR_SM_LABELS,
    REFERENCE_ML,
    TOTAL_MR,
    TOTAL_V2,
    label_volume_ml,
    nifti_as_dicom,
)

IDS = {"CT": {v: k for k, v in TOTAL_V2.items()}, "MR": {v: k for k, v in TOTAL_MR.items()}}
SCANS = {"CT": (CT_SM, CT_SM_LABELS, "example_ct_sm"),
         "MR": (MR_SM, MR_SM_LABELS, "example_mr_sm")}


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    """The real CT and MR through HepaTrack's DICOM ingest and loader."""
    from analytics.config import load_settings

    settings = load_settings(tmp_path_factory.mktemp("home"))
    settings.ensure_home()
    store = open_store(settings)
    out = {}
    for modality, (path, _labels, name) in SCANS.items():
        files = nifti_as_dicom(path, modality=modality, patient_id=f"REAL-{modality}")
        uid = ingest_uploads(files, settings, store).series[0]["series_uid"]
        volume, masks = load_series(store, settings, uid)
        assert masks is None or not masks.masks, name
        out[modality] = volume
    store.dispose()
    return out


def _handed_over(volume) -> nib.Nifti1Image:
    orient = orientation(volume)
    image = orient.to_canonical(volume.array)
    affine = canonical_affine(volume.origin_mm, volume.direction, volume.spacing_mm,
                              orient.perm, orient.flips, image.shape)
    data, nifti_affine = canonical_to_nifti(image, orient.spacing_mm, affine)
    return nib.Nifti1Image(data, nifti_affine)


@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_the_nifti_handed_to_totalsegmentator_is_the_original_scan_voxel_for_voxel(
        volumes, modality) -> None:
    """The MR file is stored L-P-S and the CT R-A-S: both come back as the same voxels at
    the same world positions (compared in nibabel's closest-RAS view of the original)."""
    original = nib.as_closest_canonical(nib.load(str(SCANS[modality][0])))
    handed = _handed_over(volumes[modality])
    assert nib.aff2axcodes(handed.affine) == ("R", "A", "S")
    assert handed.shape == original.shape
    np.testing.assert_allclose(handed.affine, original.affine, atol=1e-3)
    assert np.array_equal(np.asarray(handed.dataobj),
                          np.asanyarray(original.dataobj).astype(np.float32))
    # the far corner voxel lies where the original file puts it (mm, RAS)
    corner = np.array(handed.shape) - 1
    np.testing.assert_allclose(nib.affines.apply_affine(handed.affine, corner),
                               nib.affines.apply_affine(original.affine, corner), atol=1e-3)


def _weights(tmp_path, monkeypatch, datasets: list[str], *, stats_off: bool = True) -> None:
    home = tmp_path / "totalseg-home"
    for name in datasets:
        fold = home / "nnunet" / "results" / name / "trainer__plans__3d_fullres" / "fold_0"
        fold.mkdir(parents=True)
        (fold / "checkpoint_final.pth").write_bytes(b"weights")
    home.mkdir(exist_ok=True)
    if stats_off:
        (home / "config.json").write_text('{"send_usage_stats": false}')
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(home))
    monkeypatch.delenv("TOTALSEG_WEIGHTS_PATH", raising=False)


CT_WEIGHTS = ["Dataset297_TotalSegmentator_total_3mm_1559subj",
              "Dataset298_TotalSegmentator_total_6mm_1559subj"]
MR_WEIGHTS = ["Dataset852_TotalSegMRI_total_3mm_1088subj"]


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """TotalSegmentator 2.18.0 on a CPU, its weights on disk, and a stand-in for its
    Python API that answers with the reference label map of the scan it was given."""
    _weights(tmp_path, monkeypatch, CT_WEIGHTS + MR_WEIGHTS)
    monkeypatch.setattr(totalseg, "_installed_version", lambda: "2.18.0")
    monkeypatch.setattr(totalseg, "_cuda_available", lambda: False)
    calls: list[dict] = []

    def totalsegmentator(input, output=None, **kw):
        given = nib.load(str(input))
        calls.append({"input_shape": given.shape, **kw})
        modality = "MR" if kw["task"] == "total_mr" else "CT"
        reference = nib.load(str(SCANS[modality][1]))
        out = resample_from_to(reference, given, order=0)
        labels = np.asarray(out.dataobj).astype(np.uint8)
        kept = [IDS[modality][name] for name in kw["roi_subset"]]
        labels[~np.isin(labels, kept)] = 0  # roi_subset: only the classes asked for
        return nib.Nifti1Image(labels, out.affine)

    api = types.ModuleType("totalsegmentator.python_api")
    api.totalsegmentator = totalsegmentator
    package = types.ModuleType("totalsegmentator")
    package.python_api = api
    monkeypatch.setitem(sys.modules, "totalsegmentator", package)
    monkeypatch.setitem(sys.modules, "totalsegmentator.python_api", api)
    return calls


@pytest.mark.parametrize(("modality", "task"), [("CT", "total"), ("MR", "total_mr")])
def test_totalsegmentator_label_map_gives_the_reference_masks_voxel_for_voxel(
        volumes, stand_in, modality, task) -> None:
    volume = volumes[modality]
    res = extract_series_features(volume, None, FeatureSettings(segmentation="auto"))
    (call,) = stand_in
    assert (call["task"], call["fast"], call["roi_subset"], call["ml"]) == (
        task, True, ["liver", "spleen"], True)
    engine = f"TotalSegmentator 2.18.0 {task} --fast"
    assert res.mask_method == engine and res.auto_masks.method == engine
    _path, labels_path, name = SCANS[modality]
    # the DICOM writer stores NIfTI voxel (i, j, k) as slice k, row j, column i
    reference = np.asanyarray(nib.load(str(labels_path)).dataobj).transpose(2, 1, 0)
    voxel_ml = float(np.prod(volume.spacing_mm)) / 1000.0
    for organ in ("liver", "spleen"):
        mask = res.auto_masks.masks[organ]
        assert np.array_equal(mask, reference == IDS[modality][organ]), organ
        assert mask.sum() * voxel_ml == pytest.approx(REFERENCE_ML[name][organ], abs=0.05)
        assert label_volume_ml(labels_path, IDS[modality][organ]) == pytest.approx(
            REFERENCE_ML[name][organ], abs=0.05)
    liver_hu = "liver_hu_mean" if modality == "CT" else "liver_mr_intensity_mean"
    assert res.values[liver_hu].value is not None
    assert res.values[liver_hu].flags["segmentation_engine"] == engine
    assert res.values[liver_hu].flags["mask_source"] == "automatic"


def _synthetic_mr():
    """A synthetic abdomen labelled MR: intensities the classical CT pipeline would
    segment (it finds this liver on CT), so only the modality can stop it."""
    from analytics.synthetic.phantom import synthesize_visit_volume

    volume = synthesize_visit_volume(1.0, np.random.default_rng(3),
                                     contrast_phase="unenhanced").to_volume()
    volume.modality, volume.contrast_phase = "MR", None
    return volume


@pytest.mark.parametrize("which", ["real", "synthetic"])
def test_classical_segmentation_never_runs_on_mr(volumes, monkeypatch, which) -> None:
    """Without TotalSegmentator an MR series without masks gets no organ values, each
    saying it needs a liver mask, whatever engine the run asks for."""
    from analytics.features import segmentation

    def refuse(*_a, **_k):
        raise AssertionError("the classical CT pipeline ran on MR")

    monkeypatch.setattr(segmentation, "classical_segmentation", refuse)
    monkeypatch.setattr(totalseg, "_installed_version", lambda: None)
    volume = volumes["MR"] if which == "real" else _synthetic_mr()
    for method in ("auto", "classical"):
        res = extract_series_features(volume, None, FeatureSettings(segmentation=method))
        assert res.auto_masks is None and res.mask_method is None
        for name in ("liver_volume_ml", "liver_mr_intensity_mean"):
            assert res.values[name].value is None
            assert res.values[name].flags["reason"] == MR_NEEDS_MASK
            assert res.values[name].flags["mask_source"] == "none"
        assert res.values["spleen_volume_ml"].flags["reason"].startswith(
            "needs a spleen mask (MR has no automatic segmentation here")
    with pytest.raises(FeatureError, match="classical segmentation is CT-only"):
        segmentation.segment_canonical(np.zeros((4, 4, 4)), (1, 1, 1), method="classical",
                                       modality="MR")
    with pytest.raises(FeatureError, match=r"needs a liver mask \(MR has no automatic"):
        segmentation.segment_canonical(np.zeros((4, 4, 4)), (1, 1, 1), modality="MR")


def test_installed_without_weights_it_is_not_used_and_the_reason_names_them(
        tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(totalseg, "_installed_version", lambda: "2.18.0")
    monkeypatch.setattr(totalseg, "_cuda_available", lambda: False)
    _weights(tmp_path, monkeypatch, CT_WEIGHTS[:1])  # the 6 mm crop model is missing
    ct, mr = totalsegmentator_status("CT"), totalsegmentator_status("MR")
    assert not ct.available and not mr.available
    assert "Dataset298_*" in ct.reason and "never downloads" in ct.reason
    assert "Dataset852_*" in mr.reason
    # the reason may be stored with a failed run: the folder is named apart, not in it
    assert str(tmp_path) not in ct.reason
    assert ct.weights_dir == tmp_path / "totalseg-home" / "nnunet" / "results"
    assert choose_engine("auto", "CT") == "classical"
    assert choose_engine("auto", "MR") is None
    summary = engine_summary("auto")
    assert summary["CT"]["engine"] == "classical-v4"
    assert summary["MR"] == {**summary["MR"], "engine": None, "reason": MR_NEEDS_MASK}
    assert "Dataset298_*" in summary["CT"]["totalsegmentator"]["reason"]
    with pytest.raises(MissingExtraError, match=r"weights .* not in .*TOTALSEG_HOME_DIR"):
        choose_engine("totalsegmentator", "CT")


def test_older_versions_use_the_older_mr_weights_and_none_runs_with_usage_statistics_on(
        tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(totalseg, "_installed_version", lambda: "2.4.0")
    monkeypatch.setattr(totalseg, "_cuda_available", lambda: False)
    _weights(tmp_path, monkeypatch, MR_WEIGHTS, stats_off=False)
    assert "Dataset732_*" in totalsegmentator_status("MR").reason
    _weights(tmp_path / "older", monkeypatch, ["Dataset732_TotalSegmentatorMRI_total_3mm_495subj"],
             stats_off=False)
    status = totalsegmentator_status("MR")
    assert not status.available
    assert re.search(r'usage statistics .* "send_usage_stats": false', status.reason)
    with pytest.raises(MissingExtraError, match="send_usage_stats"):
        choose_engine("totalsegmentator", "MR")
    (tmp_path / "older" / "totalseg-home" / "config.json").write_text('{"send_usage_stats": false}')
    status = totalsegmentator_status("MR")
    assert status.available and status.engine == "TotalSegmentator 2.4.0 total_mr --fast"


def test_with_its_weights_on_disk_it_is_chosen_and_on_a_gpu_runs_without_fast(
        tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(totalseg, "_installed_version", lambda: "2.18.0")
    monkeypatch.setattr(totalseg, "_cuda_available", lambda: True)
    full = [f"Dataset{i}_TotalSegmentator_part" for i in (291, 292, 293, 294, 295)]
    _weights(tmp_path, monkeypatch, [*full, CT_WEIGHTS[1]])
    status = totalsegmentator_status("CT")
    assert status.available and not status.fast and status.notes == ()
    assert status.engine == "TotalSegmentator 2.18.0 total"
    assert choose_engine("auto", "CT") == choose_engine("totalsegmentator", "CT") == \
        "totalsegmentator"
    assert choose_engine("classical", "CT") == "classical"


def test_not_installed_it_is_not_available_and_asking_for_it_says_how_to_install(
        monkeypatch) -> None:
    monkeypatch.setattr(totalseg, "_installed_version", lambda: None)
    assert totalsegmentator_status("CT").reason == "TotalSegmentator is not installed"
    with pytest.raises(MissingExtraError,
                       match=r"not installed: .*hepatrack\[totalsegmentator\].*weights"):
        choose_engine("totalsegmentator", "MR")
    with pytest.raises(FeatureError, match="expected auto, classical or totalsegmentator"):
        choose_engine("atlas", "CT")


def test_the_cli_says_which_engine_a_run_would_use_and_refuses_a_missing_one(
        tmp_path, monkeypatch, capsys) -> None:
    import json

    from analytics.cli import main

    monkeypatch.setattr(totalseg, "_installed_version", lambda: None)
    home = str(tmp_path / "home")
    assert main(["--home", home, "features", "--engines", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)["segmentation"]
    assert (out["CT"]["engine"], out["MR"]["engine"]) == ("classical-v4", None)
    assert out["MR"]["reason"] == MR_NEEDS_MASK
    assert out["CT"]["totalsegmentator"]["reason"] == "TotalSegmentator is not installed"
    code = main(["--home", home, "features", "--all", "--segmentation", "totalsegmentator"])
    err = capsys.readouterr().err
    assert code == 2
    assert "segmentation 'totalsegmentator' asked for, but TotalSegmentator is not " \
           "installed: install it" in err and "TOTALSEG_HOME_DIR" in err


def test_a_failing_totalsegmentator_run_fails_the_series_with_the_engine_named(
        volumes, stand_in, monkeypatch) -> None:
    def crash(*_a, **_k):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(sys.modules["totalsegmentator.python_api"], "totalsegmentator", crash)
    with pytest.raises(FeatureError, match=r"^TotalSegmentator 2\.18\.0 total --fast failed: "
                                           r"RuntimeError: CUDA out of memory"):
        extract_series_features(volumes["CT"], None, FeatureSettings())
