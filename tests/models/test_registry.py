"""Registry round trips, integrity refusals, domain gating and trajectories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select, update

from analytics.config import load_settings
from analytics.errors import ModelError, ModelIntegrityError
from analytics.explain import patient_trajectory
from analytics.models.domain import TrainingDomain
from analytics.models.registry import load_model, training_data_hash
from analytics.models.settings import ModelSettings
from analytics.models.training import train_model
from analytics.store import open_store
from analytics.store.schema import ModelRecord
from tests.models.sim import simulate_cohort


@pytest.fixture(scope="module")
def cohort():
    return simulate_cohort(150, seed=5, transplant_rate=0.03)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cohort):
    """A Cox and a GBM model in one store (module scope: trained once)."""
    home = tmp_path_factory.mktemp("registry") / "home"
    settings = load_settings(home)
    store = open_store(settings)
    c, truth = cohort
    out = {}
    for kind in ("cox", "gbm"):
        out[kind] = train_model(store, settings, c, ModelSettings(
            kind=kind, event=("decompensation",), folds=3, repeats=1, n_bootstrap=5,
            params={"n_estimators": 80} if kind == "gbm" else {}), truth=truth)
    return settings, store, out


def test_train_payload_follows_the_contract(trained, cohort):
    _, _, out = trained
    p = out["cox"]
    for key in ("model_id", "model", "event", "n_patients", "cv", "baselines",
                "oracle_c_index"):
        assert key in p
    for key in ("folds", "c_index", "td_auc", "ibs", "calibration_slope"):
        assert key in p["cv"]
    assert p["cv"]["folds"] == 3 and set(p["cv"]["td_auc"]) == {"1", "2", "3"}
    assert p["event"] == "decompensation" and p["n_patients"] == 150
    assert "albi" in p["baselines"]  # bilirubin and albumin are in the cohort
    albi = p["baselines"]["albi"]
    assert albi["ci"]["c_index"][0] <= albi["c_index"] <= albi["ci"]["c_index"][1]
    lo, hi = p["cv"]["ci"]["c_index"]
    assert lo <= p["cv"]["c_index"] <= hi
    # the simulated hazard is learnable: close to the oracle ranking
    assert p["cv"]["c_index"] > p["oracle_c_index"] - 0.08
    json.dumps(p, allow_nan=False)  # strict JSON


def test_round_trip_gives_identical_predictions(trained, cohort):
    settings, store, out = trained
    c, _ = cohort
    pid = c.visits["patient"].iloc[0]
    for kind in ("cox", "gbm"):
        model = load_model(store, settings, out[kind]["model_id"])
        assert model.kind == kind and model.model_id == out[kind]["model_id"]
        tr = patient_trajectory(model, c.visits, pid, horizon=2.0).to_json()
        again = patient_trajectory(load_model(store, settings, out[kind]["model_id"]),
                                   c.visits, pid, horizon=2.0).to_json()
        assert tr == again
        rows = [r for r in tr["trajectory"] if r["risk"] is not None]
        assert rows and all(0 <= r["risk"] <= 1 for r in rows)
        for r in rows:
            assert r["base_value"] + sum(r["shap"].values()) == pytest.approx(
                r["model_output"], abs=1e-6)
            assert r["ci"][0] <= r["risk"] <= r["ci"][1]
            assert r["horizon"] == 2.0 and r["model_id"] == out[kind]["model_id"]


def test_registry_row_records_hashes_ranges_and_card(trained, cohort):
    settings, store, out = trained
    c, _ = cohort
    with store.session() as s:
        rec = s.execute(select(ModelRecord).where(
            ModelRecord.model_id == out["cox"]["model_id"])).scalar_one()
    import hashlib

    data = (settings.home / rec.artifact_path).read_bytes()
    assert rec.content_sha256 == hashlib.sha256(data).hexdigest()
    assert rec.training_data_sha256 == training_data_hash(c)
    assert rec.horizons == [1.0, 2.0, 3.0]
    assert rec.training_ranges["bilirubin_mg_dl"][0] <= rec.training_ranges["bilirubin_mg_dl"][1]
    assert rec.card["outcome"]["endpoint"] == ["decompensation"]
    assert "death" in rec.card["outcome"]["competing_risks"]
    assert rec.features == out["cox"]["features"]


def _copy_store(trained, tmp_path: Path):
    """A private copy of the trained home so a test may tamper with it."""
    import shutil

    settings, store, out = trained
    store.dispose()
    home = tmp_path / "home"
    shutil.copytree(settings.home, home)
    s2 = load_settings(home)
    return s2, open_store(s2), out


def _tamper_artifact(settings, store, mid):
    with store.session() as s:
        path = s.execute(select(ModelRecord.artifact_path)
                         .where(ModelRecord.model_id == mid)).scalar_one()
    p = settings.home / path
    raw = p.read_bytes()
    edited = raw.replace(b'"penalizer": "auto"', b'"penalizer": 0.6')
    assert edited != raw, "the artifact no longer holds the penalizer this test edits"
    p.write_bytes(edited)


def _set(column: str, value):
    def apply(settings, store, mid):
        with store.session() as s:
            s.execute(update(ModelRecord).where(ModelRecord.model_id == mid)
                      .values({column: value}))
    return apply


def _drop_card_section(settings, store, mid):
    with store.session() as s:
        card = s.execute(select(ModelRecord.card).where(ModelRecord.model_id == mid)).scalar_one()
    card = {k: v for k, v in card.items() if k != "limitations"}
    _set("card", card)(settings, store, mid)


def _drop_range(settings, store, mid):
    with store.session() as s:
        ranges = s.execute(select(ModelRecord.training_ranges)
                           .where(ModelRecord.model_id == mid)).scalar_one()
    _set("training_ranges", {k: v for k, v in ranges.items() if k != "bilirubin_mg_dl"})(
        settings, store, mid)


@pytest.mark.parametrize(("tamper", "match"), [
    pytest.param(_tamper_artifact, "sha256 .* does not match", id="artifact-edited"),
    pytest.param(_set("content_sha256", "0" * 64), "does not match the registry",
                 id="hash-changed"),
    pytest.param(_drop_card_section, "model card lacks limitations", id="card-incomplete"),
    pytest.param(_set("card", {}), "model card is missing", id="card-missing"),
    pytest.param(_set("horizons", [1.0, 5.0]), "horizons .* differ", id="horizons-changed"),
    pytest.param(_set("horizons", []), "horizons are missing", id="horizons-missing"),
    pytest.param(_drop_range, "no training range for bilirubin_mg_dl", id="range-missing"),
    pytest.param(_set("training_ranges", {}), "training range", id="ranges-empty"),
])
def test_loading_refuses_a_tampered_model(trained, tmp_path, tamper, match):
    settings, store, out = _copy_store(trained, tmp_path)
    mid = out["cox"]["model_id"]
    tamper(settings, store, mid)
    with pytest.raises(ModelIntegrityError, match=match):
        load_model(store, settings, mid)
    store.dispose()


def _rewrite_artifact(settings, store, mid, edit) -> None:
    """Edit the stored artifact document and re-register its hash (a consistent store)."""
    import hashlib

    with store.session() as s:
        path = s.execute(select(ModelRecord.artifact_path)
                         .where(ModelRecord.model_id == mid)).scalar_one()
    p = settings.home / path
    doc = json.loads(p.read_bytes())
    edit(doc)
    data = json.dumps(doc, sort_keys=True).encode("utf-8")
    p.write_bytes(data)
    _set("content_sha256", hashlib.sha256(data).hexdigest())(settings, store, mid)


def test_a_model_stored_in_an_older_artifact_format_asks_for_a_retrain(trained, tmp_path):
    settings, store, out = _copy_store(trained, tmp_path)
    mid = out["cox"]["model_id"]
    _rewrite_artifact(settings, store, mid,
                      lambda d: d.update(format="hepatrack-landmark-model/0"))
    with pytest.raises(ModelIntegrityError,
                       match=rf"model {mid} was trained by an older HepaTrack version .*"
                             r"retrain it"):
        load_model(store, settings, mid)
    store.dispose()


def test_stored_settings_that_no_longer_validate_ask_for_a_retrain(trained, tmp_path):
    settings, store, out = _copy_store(trained, tmp_path)
    mid = out["cox"]["model_id"]
    _rewrite_artifact(settings, store, mid, lambda d: d.update(params={"shrinkage": 0.5}))
    with pytest.raises(ModelIntegrityError,
                       match=r"stored settings are invalid \(params: shrinkage: not a "
                             r"parameter of the cox estimator.*retrain it"):
        load_model(store, settings, mid)
    store.dispose()


def test_scoring_writes_nothing_into_the_shared_model(trained, cohort):
    from analytics.explain import incidence_curves
    from analytics.usecases.model_admin import global_drivers
    from analytics.usecases.overview import cohort_risk

    settings, store, out = trained
    c, _ = cohort
    reg = load_model(store, settings, out["gbm"]["model_id"])
    fitted = reg.model

    def state():
        return ({k: id(v) for k, v in vars(fitted).items()},
                [sorted(vars(e)) for e in fitted.estimators_.values()])

    before = state()
    pid = c.visits["patient"].iloc[0]
    patient_trajectory(reg, c.visits, pid, horizon=2.0, at=1.0).to_json()
    trajectory = patient_trajectory(reg, c.visits, pid, 1.0)
    trajectory.why(0)
    cohort_risk(reg, c.visits, 3.0)
    incidence_curves(reg, trajectory, 0)
    global_drivers(reg, max_rows=5)
    assert state() == before
    with pytest.raises(AttributeError, match="cannot assign to field 'model_id'"):
        reg.model_id = "cox-other"


def test_missing_artifact_and_unknown_model(trained, tmp_path):
    settings, store, out = _copy_store(trained, tmp_path)
    with pytest.raises(ModelError, match="not in the registry"):
        load_model(store, settings, "cox-nope")
    mid = out["gbm"]["model_id"]
    import shutil

    shutil.rmtree(settings.models_dir / mid)
    with pytest.raises(ModelIntegrityError, match="is missing"):
        load_model(store, settings, mid)
    store.dispose()


def test_active_model_is_the_newest_trained(trained):
    settings, store, out = trained
    assert load_model(store, settings).model_id == out["gbm"]["model_id"]


def test_out_of_domain_visits_get_no_number(trained, cohort):
    settings, store, out = trained
    c, _ = cohort
    model = load_model(store, settings, out["cox"]["model_id"])
    counts = c.visits["patient"].value_counts()
    pid = counts.index[counts >= 4][0]
    visits = c.visits[c.visits["patient"] == pid].copy()
    last = visits.index[-1]
    visits.loc[last, "bilirubin_mg_dl"] = 500.0
    tr = patient_trajectory(model, visits, pid).to_json()
    rows = tr["trajectory"]
    assert rows[-1]["risk"] is None and rows[-1]["ci"] is None and rows[-1]["shap"] == {}
    assert "Bilirubin (bilirubin_mg_dl) 500 mg/dL outside the training range" in rows[-1]["reason"]
    assert all(r["risk"] is not None for r in rows[:-1]
               if r["time"] <= model.model.landmarks_[-1])
    # a time far beyond the landmark range is not assessable either
    far = patient_trajectory(model, visits.iloc[:-1], pid, at=40.0).to_json()["at"]
    assert far["risk"] is None and "landmark range" in far["reason"]


def test_score_gates_out_of_domain_rows_and_bounds_each_asked_risk(trained, cohort):
    from analytics.models.scoring import score

    settings, store, out = trained
    c, _ = cohort
    fitted = load_model(store, settings, out["cox"]["model_id"]).model
    pid = c.visits["patient"].value_counts().index[0]
    visits = c.visits[c.visits["patient"] == pid].copy()
    visits.loc[visits.index[-1], "bilirubin_mg_dl"] = 500.0
    times = visits["time"].to_numpy()[[0, 1, -1]]
    at = pd.DataFrame({"patient": pid, "landmark": times})
    sc = score(fitted, visits, at, 2.0, intervals=np.array([False, True, True]))
    assert sc.reasons[0] is None and sc.reasons[1] is None
    assert "outside the training range" in sc.reasons[2] and np.isnan(sc.risk[2])
    assert np.isnan(sc.ci[0]).all() and np.isnan(sc.ci[2]).all()  # not asked / refused
    assert sc.ci[1, 0] < sc.risk[1] < sc.ci[1, 1]
    assert sc.explanation is None and sc.horizon == 2.0
    with pytest.raises(ModelError, match=r"^horizon 4: the model was trained for horizons 1, 2, 3"):
        score(fitted, visits, at, 4.0)


def test_domain_checks_each_rule():
    rows = pd.DataFrame({"bilirubin_mg_dl": [1.0, 2.0, 3.0], "age_years": [50.0, 60, 70],
                         "sex": ["F", "M", "F"], "spleen_volume_ml": [200.0, 300, 400],
                         "modality": ["CT", "CT", "CT"],
                         "contrast_phase": ["portal_venous"] * 3})

    class Spec:
        columns = ("bilirubin_mg_dl", "age_years", "sex", "spleen_volume_ml")
        categorical = ("sex",)
        imaging = ("spleen_volume_ml",)

        @staticmethod
        def source_of(column: str) -> tuple[str, str]:
            return column, "last"

    dom = TrainingDomain.from_training(rows, Spec())
    new = pd.DataFrame({"bilirubin_mg_dl": [3.15, 3.3, np.nan, 2.0, 2.0, 2.0],
                        "age_years": [55.0] * 6, "sex": ["F", "F", "F", "X", "M", "M"],
                        "spleen_volume_ml": [250.0] * 6,
                        "modality": ["CT", "CT", "CT", "CT", "MR", "CT"],
                        "contrast_phase": ["portal_venous"] * 5 + ["arterial"]})
    reasons = dom.check(new)
    assert reasons[0] is None  # inside the 10 % margin (range 1-3, bound 3.2)
    assert "outside the training range [1, 3]" in reasons[1]
    assert "missing required feature" in reasons[2]
    assert "'X' not seen in training" in reasons[3]
    assert "modality MR not in the training data" in reasons[4]
    assert "contrast phase arterial not in the training data" in reasons[5]


def test_rsf_round_trips_as_json_and_an_earlier_pickled_forest_is_refused(tmp_path, cohort):
    import hashlib

    c, _ = cohort
    settings = load_settings(tmp_path / "home")
    store = open_store(settings)
    p = train_model(store, settings, c, ModelSettings(
        kind="rsf", event=("decompensation",), folds=2, repeats=1, n_bootstrap=0,
        params={"n_estimators": 15}))
    model = load_model(store, settings, p["model_id"])
    pid = c.visits["patient"].iloc[0]
    tr = patient_trajectory(model, c.visits, pid, horizon=1.0).to_json()
    row = next(r for r in tr["trajectory"] if r["risk"] is not None)
    # exact TreeSHAP of the forest's log hazard (float32 trees), no interval of its own
    assert row["shap_scale"] == "log_hazard" and row["ci"] is None
    assert row["base_value"] + sum(row["shap"].values()) == pytest.approx(
        row["model_output"], abs=1e-5)
    folder = settings.models_dir / p["model_id"]
    assert [f.name for f in folder.iterdir()] == ["model.json"]  # no pickle beside it
    # an artifact of the scikit-survival forest kept its forests in pickles: refused
    artifact = folder / "model.json"
    doc = json.loads(artifact.read_text())
    doc["estimators"]["interest"]["pickle"] = {"file": "estimator-interest.pkl",
                                               "sha256": "0" * 64}
    data = json.dumps(doc, sort_keys=True).encode("utf-8")
    artifact.write_bytes(data)
    with store.session() as s:
        s.execute(update(ModelRecord).where(ModelRecord.model_id == p["model_id"])
                  .values(content_sha256=hashlib.sha256(data).hexdigest()))
    with pytest.raises(ModelIntegrityError,
                       match=r"rsf estimator is a pickled forest of an earlier HepaTrack "
                             r"version, which this version no longer loads; retrain it "
                             r"\(hepatrack train --model rsf\)"):
        load_model(store, settings, p["model_id"])
    store.dispose()


def test_a_pickled_estimator_is_unpickled_only_when_its_hash_matches(tmp_path, cohort,
                                                                      monkeypatch):
    from analytics.models import estimators

    class PickledCox(estimators.CoxPH):
        """A Cox model that keeps its coefficients in a pickle beside the artifact."""

        pickled_attribute = "coef_"

    monkeypatch.setitem(estimators.ESTIMATORS, "cox", PickledCox)
    c, _ = cohort
    settings = load_settings(tmp_path / "home")
    store = open_store(settings)
    p = train_model(store, settings, c, ModelSettings(
        kind="cox", event=("decompensation",), folds=2, repeats=1, n_bootstrap=0))
    model = load_model(store, settings, p["model_id"])
    est = model.model.estimators_["interest"]
    assert isinstance(est, PickledCox) and est.coef_.shape == (len(model.features),)
    pkl = next((settings.models_dir / p["model_id"]).glob("estimator-interest.pkl"))
    pkl.write_bytes(pkl.read_bytes() + b"\0")
    with pytest.raises(ModelIntegrityError, match="sha256 mismatch; refusing to load"):
        load_model(store, settings, p["model_id"])
    store.dispose()


def test_registry_on_sqlite_and_postgresql(tmp_path, db_url, cohort):
    from dataclasses import replace

    c, _ = cohort
    settings = replace(load_settings(tmp_path / "home"), db_url=db_url)
    store = open_store(settings)
    p = train_model(store, settings, c, ModelSettings(
        kind="cox", event=("decompensation",), folds=2, repeats=1, n_bootstrap=0))
    model = load_model(store, settings)
    assert model.model_id == p["model_id"]
    with store.session() as s:
        rec = s.execute(select(ModelRecord)).scalar_one()
    assert rec.active and rec.metrics["cv"]["c_index"] == pytest.approx(p["cv"]["c_index"])
    store.dispose()
