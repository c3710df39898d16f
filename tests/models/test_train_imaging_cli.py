"""``hepatrack train`` reports what imaging adds, in text and in ``--json`` (new key
``imaging_comparison``; the contract's keys stay), or says plainly there is nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analytics.cli import main
from analytics.models.imaging_comparison import NOTHING_TO_COMPARE
from tests.models.imaging_compare_sim import IMAGING, simulate_imaging_cohort

TRAIN = ["train", "--cv", "3", "--repeats", "1", "--bootstrap", "20"]


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


@pytest.fixture(scope="module")
def csvs(tmp_path_factory) -> Path:
    """Visits and outcomes CSVs with an informative imaging column beside the labs."""
    d = tmp_path_factory.mktemp("imaging-cli")
    cohort, _truth = simulate_imaging_cohort(n_patients=120, seed=0)
    v = cohort.visits.rename(columns={"patient": "patient_id"})
    v[["patient_id", "time", "bilirubin_mg_dl", "albumin_g_dl", "age_years", "sex",
       IMAGING]].to_csv(d / "visits.csv", index=False)
    cohort.outcomes.rename(columns={"patient": "patient_id", "duration": "time"}).to_csv(
        d / "outcomes.csv", index=False)
    return d


def _home(csvs: Path, tmp_path: Path, columns: list[str] | None = None) -> str:
    visits = csvs / "visits.csv"
    if columns is not None:
        import pandas as pd

        visits = tmp_path / "visits.csv"
        pd.read_csv(csvs / "visits.csv")[columns].to_csv(visits, index=False)
    home = str(tmp_path / "home")
    assert main(["--home", home, "import-cohort", "--visits", str(visits),
                 "--outcomes", str(csvs / "outcomes.csv")]) == 0
    return home


def test_train_json_keeps_the_contract_and_adds_the_comparison(csvs, tmp_path, capsys):
    home = _home(csvs, tmp_path)
    capsys.readouterr()
    code, out = _run(capsys, "--home", home, *TRAIN, "--json")
    assert code == 0
    res = json.loads(out)
    for key in ("model_id", "model", "event", "n_patients", "cv", "baselines"):
        assert key in res, key
    assert {"folds", "c_index", "td_auc", "ibs", "calibration_slope"} <= set(res["cv"])
    comp = res["imaging_comparison"]
    assert comp["status"] == "compared" and comp["imaging_features"] == [IMAGING]
    # the default history of an imaging biomarker: its last value and a measured flag
    assert set(comp["dropped_columns"]) == {IMAGING, f"{IMAGING}_measured"}
    assert (comp["folds"], comp["repeats"], comp["n_bootstrap"]) == (3, 1, 20)
    for key in ("all", "with_scans"):
        part = comp[key]
        assert {"label", "n_patients", "n_events", "n_landmark_rows", "n_events_in_window",
                "with_imaging", "without_imaging", "difference", "references"} <= set(part)
        for m in ("with_imaging", "without_imaging", "difference"):
            assert set(part[m]) == {"c_index", "c_index_ci", "td_auc", "td_auc_ci"}
            assert set(part[m]["td_auc"]) == {"1", "2", "3"}
        assert part["difference"]["c_index"] > 0
    assert comp["all"]["with_imaging"]["c_index"] == pytest.approx(res["cv"]["c_index"])
    assert comp["all"]["n_patients"] == res["n_patients_modelled"]
    assert comp["with_scans"]["n_patients"] < comp["all"]["n_patients"]


def test_train_text_shows_the_differences(csvs, tmp_path, capsys):
    home = _home(csvs, tmp_path)
    capsys.readouterr()
    code, out = _run(capsys, "--home", home, *TRAIN)
    assert code == 0
    assert ("  what imaging adds (liver_surface_nodularity; with - without imaging, paired "
            "bootstrap 95% CI):") in out
    assert "    All patients (120 patients, " in out
    assert "    Patients with scans (" in out and "      td-AUC difference 1 y +" in out


def test_train_says_plainly_when_no_imaging_feature_entered_the_model(csvs, tmp_path, capsys):
    home = _home(csvs, tmp_path, ["patient_id", "time", "bilirubin_mg_dl", "albumin_g_dl",
                                  "age_years", "sex"])
    capsys.readouterr()
    code, out = _run(capsys, "--home", home, *TRAIN, "--json")
    assert code == 0
    assert json.loads(out)["imaging_comparison"] == {
        "status": "nothing_to_compare", "message": NOTHING_TO_COMPARE,
        "imaging_features": [], "imaging_left_out": {}}
    code, out = _run(capsys, "--home", home, *TRAIN)
    assert f"  what imaging adds: {NOTHING_TO_COMPARE}\n" in out + "\n"
    assert "0.000" not in out.split("what imaging adds")[1]  # no zeros shown instead
