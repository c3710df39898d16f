"""hepatrack export: features (one row per series), cohort and predictions, CSV and Parquet."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from sqlalchemy import select

from analytics.cli import main
from analytics.cohort import export, import_cohort
from analytics.errors import CohortError
from analytics.store.schema import AuditRecord, ModelRecord, Patient, Prediction
from tests.cohort.conftest import add_patient, add_scan

D = dt.date


@pytest.fixture
def filled(store, csvs):
    add_patient(store, "HT-1")
    s1 = add_scan(store, "HT-1", D(2020, 1, 1), {"liver_volume_ml": 1500.0,
                                                  "liver_hu_mean": 55.0})
    add_scan(store, "HT-1", D(2020, 1, 1), {"liver_volume_ml": 1510.0}, series_uid=s1,
             version="1.1", minutes=10)
    s2 = add_scan(store, "HT-1", D(2021, 1, 1), {"spleen_volume_ml": 250.0})
    import_cohort(store, *csvs(
        "patient_id,date,bilirubin_mg_dl,inr,creatinine_mg_dl,sodium_mmol_l\n"
        "HT-1,2020-01-01,1.5,1.1,2.7,135\n",
        "patient_id,date,event\nHT-1,2022-01-01,death\n"))
    return store, s1, s2


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_features_export_is_one_row_per_series(filled, tmp_path, suffix):
    store, s1, s2 = filled
    out = tmp_path / f"features{suffix}"
    result = export(store, "features", out)
    df = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert list(df.columns) == ["patient", "study_date", "series_uid", "liver_hu_mean",
                                "liver_volume_ml", "spleen_volume_ml"]
    assert result["rows"] == 2 and result["columns"] == list(df.columns)
    assert df["series_uid"].tolist() == [s1, s2]
    assert pd.to_datetime(df["study_date"]).dt.date.tolist() == [D(2020, 1, 1), D(2021, 1, 1)]
    assert df["liver_volume_ml"].iloc[0] == 1510.0  # the newest extractor run
    assert df["liver_hu_mean"].iloc[0] == 55.0
    assert pd.isna(df["liver_volume_ml"].iloc[1])


def test_cohort_export_has_outcomes_and_scores(filled, tmp_path):
    store, s1, _ = filled
    out = tmp_path / "cohort.parquet"
    export(store, "cohort", out)
    df = pd.read_parquet(out)
    row = df[df["series_uid"] == s1].iloc[0]
    # worked example of tests/models/test_scores.py: MELD 19, MELD-Na 20
    assert (row["meld"], row["meld_na"]) == (19.0, 20.0)
    assert row["event"] == "death"
    assert row["duration"] == pytest.approx(731 / 365.25)


def test_predictions_export(filled, tmp_path):
    store, _, _ = filled
    with store.session() as s:
        pid = s.execute(select(Patient.id).where(Patient.pseudonym == "HT-1")).scalar()
        s.add(ModelRecord(model_id="cox-1", kind="cox", event="death", horizons=[1],
                          content_sha256="a" * 64, training_data_sha256="b" * 64,
                          artifact_path="models/cox-1", features=[], training_ranges={},
                          metrics={}, card={}))
        s.flush()
        s.add_all([
            Prediction(model_id="cox-1", patient_id=pid, time_years=0.0, horizon_years=1.0,
                       risk=0.12, ci_low=0.08, ci_high=0.17,
                       explanation={"shap": {"liver_volume_ml": 0.3}}),
            Prediction(model_id="cox-1", patient_id=pid, time_years=1.0, horizon_years=1.0,
                       risk=None, reason="not assessable: liver_volume_ml missing"),
        ])
    out = tmp_path / "pred.csv"
    export(store, "predictions", out)
    df = pd.read_csv(out)
    assert df[["patient", "model_id", "time_years", "horizon_years", "risk"]].values.tolist()[
        0] == ["HT-1", "cox-1", 0.0, 1.0, 0.12]
    assert json.loads(df["explanation"].iloc[0]) == {"shap": {"liver_volume_ml": 0.3}}
    assert pd.isna(df["risk"].iloc[1])
    assert df["reason"].iloc[1] == "not assessable: liver_volume_ml missing"


def test_export_is_audited(filled, tmp_path):
    store, _, _ = filled
    export(store, "features", tmp_path / "f.csv")
    with store.session() as s:
        last = s.execute(select(AuditRecord).order_by(AuditRecord.seq.desc())).scalars().first()
    assert (last.action, last.outcome, last.detail) == (
        "export", "ok", {"what": "features", "rows": 2, "format": ".csv"})


@pytest.mark.parametrize("name, pattern", [
    ("features.xlsx", r"expected a \.csv or \.parquet file name"),
    ("no/such/dir/features.csv", r"directory .* does not exist"),
], ids=["bad_suffix", "missing_directory"])
def test_bad_output_is_refused_without_writing(store, tmp_path, name, pattern):
    with pytest.raises(CohortError, match=pattern):
        export(store, "features", tmp_path / name)
    assert list(tmp_path.glob("*.csv")) == [] and list(tmp_path.glob(".*.tmp")) == []


def test_cli_export(home, tmp_path, capsys):
    out = tmp_path / "cohort.csv"
    assert main(["--home", str(home), "export", "--what", "cohort", "--out", str(out)]) == 0
    assert "exported 0 cohort rows" in capsys.readouterr().out
    assert main(["--home", str(home), "export", "--what", "cohort", "--out",
                 str(tmp_path / "x.txt")]) == 2
    assert "expected a .csv or .parquet file name" in capsys.readouterr().err
