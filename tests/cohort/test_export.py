"""hepatrack export: features (one row per series), cohort and predictions, CSV and Parquet."""

from __future__ import annotations

import datetime as dt
import json
import math

import pandas as pd
import pytest
from sqlalchemy import select

from analytics.cli import main
from analytics.cohort import export, import_cohort
from analytics.cohort.export import _absent_reason
from analytics.errors import CohortError
from analytics.store.schema import (
    AuditRecord,
    Feature,
    FeatureRun,
    Mask,
    ModelRecord,
    Patient,
    Prediction,
    Series,
)
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
    features = ["liver_hu_mean", "liver_volume_ml", "spleen_volume_ml"]
    # identifiers and feature columns first, as before; provenance columns after them
    assert list(df.columns) == ["patient", "study_date", "series_uid", *features] + [
        f"{f}{suffix}" for f in features for suffix in ("__source", "__reason")] + [
        "segmentation_engine"]
    assert result["rows"] == 2 and result["columns"] == list(df.columns)
    assert df["series_uid"].tolist() == [s1, s2]
    assert pd.to_datetime(df["study_date"]).dt.date.tolist() == [D(2020, 1, 1), D(2021, 1, 1)]
    assert df["liver_volume_ml"].iloc[0] == 1510.0  # the newest extractor run
    assert df["liver_hu_mean"].iloc[0] == 55.0
    assert pd.isna(df["liver_volume_ml"].iloc[1])
    # the second scan has no liver row at all: no source, and a reason for the empty cell
    assert pd.isna(df["liver_volume_ml__source"].iloc[1])
    assert df["liver_volume_ml__reason"].iloc[1] == (
        "not computed for this series by its newest extractor run")
    assert pd.isna(df["liver_volume_ml__reason"].iloc[0])  # a value needs no reason


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
    from analytics.usecases.cohort import ExportRequest
    from analytics.usecases.cohort import export as export_use_case
    from analytics.usecases.context import Context

    store, _, _ = filled
    export_use_case(Context.cli(store), ExportRequest("features", tmp_path / "f.csv"))
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


def _add_rows(store, series_uid: str, rows: dict[str, tuple[float | None, dict]], *,
              mask_format: str | None = None, run: dict | None = None,
              modality: str = "CT") -> None:
    """Feature rows with flags on an existing series (and its masks row and run)."""
    with store.session() as s:
        series = s.scalar(select(Series).where(Series.series_uid == series_uid))
        series.modality = modality
        mask_id = None
        if mask_format is not None:
            m = Mask(series_id=series.id, format=mask_format, path=f"m/{series_uid}",
                     content_sha256=series_uid, segments={}, automatic=False)
            s.add(m)
            s.flush()
            mask_id = m.id
        for name, (value, flags) in rows.items():
            s.add(Feature(series_id=series.id, name=name, value=value, unit="1",
                          extractor_version="1.2.0", mask_id=mask_id, flags=flags))
        if run is not None:
            s.add(FeatureRun(series_id=series.id, extractor_version="1.2.0", **run))


def test_features_export_names_each_values_mask_source_and_each_empty_values_reason(
        store, tmp_path):
    add_patient(store, "HT-2")
    seg = add_scan(store, "HT-2", D(2020, 1, 1), {})
    auto = add_scan(store, "HT-2", D(2021, 1, 1), {})
    held = add_scan(store, "HT-2", D(2022, 1, 1), {})
    mr = add_scan(store, "HT-2", D(2023, 1, 1), {})
    _add_rows(store, seg, {
        "liver_volume_ml": (1500.0, {"mask_source": "seg"}),
        "liver_hu_mean": (55.0, {"mask_source": "seg"}),
        "liver_vessel_tortuosity": (None, {"mask_source": "seg", "reason":
                                           "no vessel branch long enough to measure"}),
        "radiomics_liver_stat_mean": (61.5, {"radiomics": True, "mask_source": "seg"}),
    }, mask_format="seg", run={"status": "done", "settings": {"radiomics": True}})
    _add_rows(store, auto, {
        "liver_volume_ml": (1490.0, {"mask_source": "automatic",
                                     "automatic_segmentation": True,
                                     "segmentation_engine": "TotalSegmentator 2.18.0 total"}),
        "liver_vessel_tortuosity": (1.21, {"mask_source": "automatic"}),
    }, run={"status": "done", "settings": {"radiomics": True, "radiomics_error":
                                           "radiomics need the optional MIRP package"}})
    _add_rows(store, held, {
        "liver_volume_ml": (None, {"mask_source": "withheld", "reason":
                                   "liver mask withheld: the delivered SEG could not be read"}),
        # a row written before mask_source existed: the automatic flag still says it
        "liver_vessel_tortuosity": (1.3, {"automatic_segmentation": True}),
    }, run={"status": "done", "settings": {"radiomics": False}})
    _add_rows(store, mr, {"liver_volume_ml": (1400.0, {})}, mask_format="nifti",
              modality="MR", run={"status": "done", "settings": {}})
    out = tmp_path / "features.csv"
    export(store, "features", out)
    df = pd.read_csv(out).set_index("series_uid")
    assert df.loc[[seg, auto, held, mr], "liver_volume_ml__source"].tolist() == [
        "seg", "automatic", "withheld", "nifti"]
    assert df.loc[[seg, auto, held], "liver_vessel_tortuosity__source"].tolist() == [
        "seg", "automatic", "automatic"]
    # the engine behind the automatic values; none where every mask was delivered
    assert df.loc[auto, "segmentation_engine"] == "TotalSegmentator 2.18.0 total"
    assert df.loc[[seg, mr], "segmentation_engine"].isna().all()
    assert df.loc[seg, "liver_vessel_tortuosity__reason"] == (
        "no vessel branch long enough to measure")
    assert df.loc[held, "liver_volume_ml__reason"] == (
        "liver mask withheld: the delivered SEG could not be read")
    assert pd.isna(df.loc[held, "liver_volume_ml"])
    assert df.loc[auto, "radiomics_liver_stat_mean__reason"] == (
        "radiomics failed: radiomics need the optional MIRP package")
    assert df.loc[held, "radiomics_liver_stat_mean__reason"] == (
        "radiomics not requested for this series (hepatrack features --radiomics)")
    assert df.loc[mr, "liver_hu_mean__reason"] == "not defined for MR"  # HU: CT only
    assert df.loc[mr, "liver_vessel_tortuosity__reason"] == (
        "not computed for this series by its newest extractor run")
    assert df.loc[seg, "radiomics_liver_stat_mean"] == 61.5
    assert pd.isna(df.loc[seg, "radiomics_liver_stat_mean__reason"])


def test_features_export_neutralises_formula_text(store, tmp_path):
    add_patient(store, "HT-3")
    uid = add_scan(store, "HT-3", D(2020, 1, 1), {})
    _add_rows(store, uid, {"liver_volume_ml": (None, {"mask_source": "seg",
                                                      "reason": "=HYPERLINK(\"x\")"})})
    out = tmp_path / "features.csv"
    export(store, "features", out)
    df = pd.read_csv(out)
    assert df["liver_volume_ml__reason"].iloc[0] == "'=HYPERLINK(\"x\")"


def test_elastography_columns_flow_from_import_to_the_cohort_export_scores(store, csvs,
                                                                          tmp_path):
    add_patient(store, "HT-2")
    s = add_scan(store, "HT-2", D(2021, 3, 1), {"liver_volume_ml": 1700.0})
    report = import_cohort(store, *csvs(
        "patient_id,date,lsm_kpa,cap_db_m,ast_u_l,diabetes,bmi_kg_m2\n"
        "HT-2,2021-03-01,12.0,300,50,yes,32\n",
        "patient_id,date,event\nHT-2,2023-03-01,censored\n"))
    assert report.rejected == []
    out = tmp_path / "cohort.csv"
    export(store, "cohort", out)
    row = pd.read_csv(out).set_index("series_uid").loc[s]
    assert (row["lsm_kpa"], row["cap_db_m"], row["diabetes"]) == (12.0, 300.0, 1.0)
    # FAST by hand: x = -1.65 + 1.07 ln 12 + 2.66e-8 * 300^3 - 63.3 / 50
    x = -1.65 + 1.07 * math.log(12.0) + 2.66e-8 * 300.0**3 - 63.3 / 50.0
    assert row["fast"] == pytest.approx(1 / (1 + math.exp(-x)), rel=1e-9)
    assert row["baveno_vii_lsm_band"] == 1.0  # 10 <= 12 <= 15 kPa


def test_an_ultrasound_biomarker_on_a_ct_series_is_explained_as_not_defined_for_ct():
    assert _absent_reason("us_hepatorenal_index", "CT", None) == "not defined for CT"
    assert _absent_reason("liver_hu_mean", "US", None) == "not defined for US"
