"""Ultrasound biomarkers are features of the risk model like CT ones: a hepatorenal index
measured on stored ultrasound frames (ROIs saved by a clinician) joins each patient's
visits at the study date, enters the trained model and appears in the SHAP explanation
of ``hepatrack predict``."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from analytics.audit import Actor
from analytics.cli import main
from analytics.config import load_settings
from analytics.features.ultrasound import Roi
from analytics.ingest.pipeline import ingest_sources
from analytics.store import open_store
from analytics.synthetic.ultrasound import default_truth, render_frame, ultrasound_dataset
from analytics.usecases import ultrasound as us_uc
from analytics.usecases.context import Context
from tests.ingest.conftest import to_bytes

N_PATIENTS = 36
FEATURE = "us_hepatorenal_index"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("us-model")
    rng = np.random.default_rng(3)
    start = dt.date(2020, 1, 1)
    visits, outcomes, hri = [], [], {}
    (root / "us").mkdir()
    for k in range(N_PATIENTS):
        pid = f"USP{k:03d}"
        base = start + dt.timedelta(days=int(rng.integers(0, 200)))
        hri[pid] = float(rng.uniform(0.9, 2.4))
        visits.append({"patient_id": pid, "date": base.isoformat(),
                       "bilirubin_mg_dl": round(float(rng.uniform(0.4, 1.2)), 2),
                       "albumin_g_dl": round(float(rng.uniform(3.6, 4.6)), 2),
                       "age_years": int(rng.integers(40, 75)), "sex": "F" if k % 2 else "M"})
        # a steatotic liver (high index) progresses sooner
        years = float(rng.exponential(4.0 * np.exp(-1.8 * (hri[pid] - 1.5))))
        event = "decompensation" if years < 4.0 else "censored"
        end = base + dt.timedelta(days=int(365.25 * min(years, 4.0)) + 30)
        outcomes.append({"patient_id": pid, "date": end.isoformat(), "event": event})
        truth = default_truth(liver_level=hri[pid] * 60.0, kidney_level=60.0,
                              liver_slope_per_cm=0.0)
        ds = ultrasound_dataset([render_frame(truth, np.random.default_rng(k))], truth,
                                patient_id=pid, patient_sex=visits[-1]["sex"],
                                study_date=base + dt.timedelta(days=7))
        (root / "us" / f"{pid}.dcm").write_bytes(to_bytes(ds))
    pd.DataFrame(visits).to_csv(root / "visits.csv", index=False)
    pd.DataFrame(outcomes).to_csv(root / "outcomes.csv", index=False)
    home = root / "home"
    assert main(["--home", str(home), "import-cohort", "--visits", str(root / "visits.csv"),
                 "--outcomes", str(root / "outcomes.csv")]) == 0
    settings = load_settings(home=home)
    store = open_store(settings)
    report = ingest_sources([str(root / "us")], settings, store)
    assert report.series_ingested == N_PATIENTS, report.as_dict()
    ctx = Context(Actor("dr.grey", "clinician", "s-us"), store, settings)
    truth = default_truth()
    kx, kd = truth.kidney_centre_mm
    rois = (Roi("liver", "box", 20.0, kd, 20.0, 12.0), Roi("kidney", "circle", kx, kd, 10.0, 0.0))
    measured = {}
    for row in us_uc.series_list(ctx):
        m = us_uc.save(ctx, us_uc.RoiRequest(row.series_uid, 0, rois))
        measured[row.patient] = m.values[FEATURE]
    store.dispose()
    assert sorted(measured.values()) == pytest.approx(sorted(hri.values()), rel=0.03)
    return home


def test_the_hepatorenal_index_enters_the_model_and_its_shap_explanation(home, capsys):
    assert main(["--home", str(home), "train", "--model", "cox", "--cv", "3", "--repeats",
                 "1", "--bootstrap", "10", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert FEATURE in trained["imaging_comparison"]["imaging_features"]
    assert main(["--home", str(home), "predict", "--all", "--json"]) == 0
    predictions = json.loads(capsys.readouterr().out)
    scored = [p for pat in predictions for p in pat["trajectory"] if p["risk"] is not None]
    assert scored
    with_us = [p for p in scored if any(k.startswith(FEATURE) for k in p["shap"])]
    assert with_us, sorted(scored[0]["shap"])
    point = with_us[-1]
    assert point["base_value"] + sum(point["shap"].values()) == pytest.approx(
        point["model_output"], abs=1e-6)
