"""Model administration: tables equal the stored metrics, activation and training are
permissioned and audited use cases, global drivers equal the Cox explanation by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from analytics.audit import Actor
from analytics.errors import ModelError, PermissionDeniedError
from analytics.models.settings import ModelSettings
from analytics.store.schema import AuditRecord, ModelRecord
from analytics.usecases.context import Context
from analytics.usecases.model_admin import (
    NOT_STORED,
    calibration_curves,
    calibration_summary,
    card_markdown,
    global_drivers,
    imaging_comparison,
    model_metrics,
    td_auc_by_landmark,
    validation_table,
)
from analytics.usecases.models import TrainRequest, activate_model, train
from tests import dashboard_data

ADMIN = Actor("root.admin", "admin", "s1")
RESEARCHER = Actor("ana.res", "researcher", "s2")
CLINICIAN = Actor("dr.grey", "clinician", "s3")


@pytest.fixture
def home(tmp_path_factory, tmp_path):
    t = dashboard_data.template(tmp_path_factory)
    with dashboard_data.open_copy(t, tmp_path / "home") as (settings, store):
        yield t, settings, store


def test_validation_table_is_the_stored_metrics(home):
    t, _s, store = home
    info = model_metrics(store, t.model_id)
    m = info["metrics"]
    vt = validation_table(m, info["horizons"])
    model = vt.iloc[0]
    assert model["predictor"] == "This model"
    assert model["c_index"] == m["cv"]["c_index"]
    assert [model["c_index_low"], model["c_index_high"]] == m["cv"]["ci"]["c_index"]
    assert model["td_auc_2"] == m["cv"]["td_auc"]["2"]
    assert [model["td_auc_2_low"], model["td_auc_2_high"]] == m["cv"]["ci"]["td_auc_2"]
    assert model["calibration_slope"] == m["cv"]["calibration"]["3"]["slope"]
    assert model["ici"] == m["cv"]["calibration"]["3"]["ici"]
    baselines = m["baselines"]
    assert vt["predictor"].iloc[1:].tolist() == [b["label"] for b in baselines.values()]
    meld = vt.set_index("predictor").loc["MELD"]
    assert meld["c_index"] == baselines["meld"]["c_index"]
    assert np.isnan(meld["c_index_low"])  # baselines carry no bootstrap interval
    assert meld["model_c_index_same_rows"] == baselines["meld"]["model_c_index_same_rows"]


def test_calibration_and_td_auc_data_are_the_stored_curves(home):
    t, _s, store = home
    m = model_metrics(store, t.model_id)["metrics"]
    curves = calibration_curves(m)
    c3 = curves[curves["horizon"] == 3.0]
    assert c3["predicted"].tolist() == m["cv"]["calibration"]["3"]["curve"]["predicted"]
    assert c3["observed"].tolist() == m["cv"]["calibration"]["3"]["curve"]["observed"]
    summ = calibration_summary(m).set_index("horizon")
    assert summ.loc[1.0, "slope"] == m["cv"]["calibration"]["1"]["slope"]
    td = td_auc_by_landmark(m)
    first = m["cv"]["per_landmark"][0]
    row = td[(td["landmark"] == first["landmark"]) & (td["horizon"] == 1.0)].iloc[0]
    assert row["td_auc"] == pytest.approx(first["td_auc"]["1"], nan_ok=True)
    assert row["n"] == first["n"]


def test_empty_metrics_give_empty_tables():
    assert calibration_curves({}).empty and td_auc_by_landmark({}).empty
    assert validation_table({}, [1.0])["predictor"].tolist() == ["This model"]


def test_global_drivers_of_a_cox_model_by_hand(home):
    from analytics.config import load_settings
    from analytics.models.registry import load_model

    _t, settings, store = home
    model = load_model(store, load_settings(settings.home))
    d = global_drivers(model, max_rows=50)
    est = model.model.estimators_["interest"]
    X = model.model.background_[model.features].head(50)
    cols = list(est.feature_names_in_)
    contrib = (X[cols].to_numpy() - est.mean_) * est.coef_  # exact linear SHAP
    by = pd.DataFrame(contrib, columns=cols)
    alb = [c for c in cols if c.startswith("albumin_g_dl")]
    expected = np.abs(by[alb].sum(axis=1)).mean()
    t = d.table
    assert t.set_index("feature").loc["albumin_g_dl", "mean_abs_shap"] == pytest.approx(expected)
    assert t["mean_abs_shap"].is_monotonic_decreasing
    assert (d.scale, d.n_rows) == ("log_hazard", 50)


def test_activation_is_for_admins_and_audited(home):
    _t, _s, store = home
    with store.session() as s:
        s.add(ModelRecord(model_id="cox-other", kind="cox", event="x", horizons=[1.0],
                          content_sha256="0" * 64, training_data_sha256="0" * 64,
                          artifact_path="models/none", features=[], training_ranges={},
                          metrics={}, card={}, active=False))
    with pytest.raises(PermissionDeniedError, match=r"ana.res \(researcher\) may not activate"):
        activate_model(Context(RESEARCHER, store), "cox-other")
    with pytest.raises(ModelError, match="model cox-none: not in the registry"):
        activate_model(Context(ADMIN, store), "cox-none")
    activate_model(Context(ADMIN, store), "cox-other")
    with store.session() as s:
        active = s.execute(select(ModelRecord.model_id).where(ModelRecord.active.is_(True))
                           ).scalars().all()
        trail = s.execute(select(AuditRecord.username, AuditRecord.action, AuditRecord.outcome,
                                 AuditRecord.model_version)
                          .where(AuditRecord.action == "activate_model")
                          .order_by(AuditRecord.seq)).all()
    assert active == ["cox-other"]
    assert [tuple(r) for r in trail] == [("ana.res", "activate_model", "denied", None),
                                         ("root.admin", "activate_model", "ok", "cox-other")]


def test_training_needs_the_train_permission(home):
    from analytics.cohort import build_cohort

    _t, settings, store = home
    with pytest.raises(PermissionDeniedError, match=r"dr.grey \(clinician\) may not train"):
        train(Context(CLINICIAN, store, settings),
              TrainRequest(build_cohort(store), ModelSettings(kind="cox", horizons=(1.0,))))


def test_a_researcher_trains_but_cannot_activate(home):
    from analytics.cohort import build_cohort

    t, settings, store = home
    res = train(Context(RESEARCHER, store, settings), TrainRequest(
        build_cohort(store), ModelSettings(kind="cox", horizons=(1.0, 2.0), folds=2, repeats=1,
                                           n_bootstrap=0), activate=True))
    info = model_metrics(store, res["model_id"])
    assert not info["active"] and info["created_by"] == "ana.res"
    assert model_metrics(store, t.model_id)["active"]
    with store.session() as s:
        trail = s.execute(select(AuditRecord.action, AuditRecord.outcome)
                          .where(AuditRecord.username == "ana.res")).all()
    assert ("train", "ok") in [tuple(r) for r in trail]


def test_card_markdown_has_every_section(home):
    t, _s, store = home
    md = card_markdown(model_metrics(store, t.model_id)["card"])
    for heading in ("#### Intended use", "#### Data", "#### Outcome", "#### Predictors",
                    "#### Model", "#### Validation", "#### Limitations"):
        assert heading in md
    assert t.model_id in md
    # the penalty actually used, per cause (50 / patients with that event)
    pen = model_metrics(store, t.model_id)["card"]["model"]["params"]["penalizer_by_cause"]
    assert pen and all(0.005 <= v <= 2.0 for v in pen.values())
    assert "**Penalty by cause:** " + ", ".join(f"{k} {v:.3g}" for k, v in pen.items()) in md
    card = model_metrics(store, t.model_id)["card"]
    card["predictors"]["left_out"] = {"spleen_volume_ml": "Spleen volume: measured in 3 "
                                                          "of 40 patients (< 20%)"}
    assert "**Left out:** Spleen volume: measured in 3 of 40 patients" in card_markdown(card)
    assert card_markdown({}) == "_No model card stored._"


def test_unknown_model_metrics():
    from analytics.store import open_store

    store = open_store(url="sqlite://")
    with pytest.raises(ModelError, match="model nope: not in the registry"):
        model_metrics(store, "nope")


# --------------------------------------------------------------------------- imaging
@pytest.fixture(scope="module")
def imaging_home(tmp_path_factory):
    """A copy of the dashboard home with a second (inactive) model trained on a cohort
    whose imaging feature is informative by construction (tests/models/imaging_compare_sim.py)."""
    from tests.models.imaging_compare_sim import train_imaging_model

    t = dashboard_data.template(tmp_path_factory)
    with dashboard_data.open_copy(t, tmp_path_factory.mktemp("imaging") / "home") as (
            settings, store):
        yield t, store, train_imaging_model(store, settings)


def test_what_imaging_adds_is_the_stored_comparison(imaging_home):
    from analytics.commands.models import imaging_lines
    from ui.models_view import imaging_display

    _t, store, trained = imaging_home
    info = model_metrics(store, trained["model_id"])
    stored = info["metrics"]["imaging_comparison"]
    assert stored == trained["imaging_comparison"] and stored["status"] == "compared"
    comp = imaging_comparison(info["metrics"], info["horizons"])
    assert comp.statement is None
    assert comp.features == ["Liver surface nodularity (mm)"]
    table = comp.table.set_index("rows")
    assert table["label"].tolist() == ["All patients", "Patients with scans"]
    for key in ("all", "with_scans"):
        part, row = stored[key], table.loc[key]
        assert row["c_index_with"] == part["with_imaging"]["c_index"]
        assert row["c_index_without"] == part["without_imaging"]["c_index"]
        assert row["c_index_difference"] == part["difference"]["c_index"]
        assert [row["c_index_difference_low"], row["c_index_difference_high"]] == \
            part["difference"]["c_index_ci"]
        assert row["td_auc_2_difference"] == part["difference"]["td_auc"]["2"]
        assert [row["td_auc_2_difference_low"], row["td_auc_2_difference_high"]] == \
            part["difference"]["td_auc_ci"]["2"]
        assert (row["n_patients"], row["n_events"]) == (part["n_patients"], part["n_events"])
    shown = imaging_display(comp.table, info["horizons"])
    d = stored["all"]["difference"]
    lo, hi = d["c_index_ci"]
    assert shown["C-index difference (95% CI)"].iloc[0] == \
        f"{d['c_index']:+.3f} ({lo:+.3f} to {hi:+.3f})"
    assert "Note" not in shown  # both row sets have figures
    assert set(comp.references["predictor"]) >= {"ALBI score", "Oracle (true hazard)"}
    lines = "\n".join(imaging_lines(trained["imaging_comparison"]))
    assert f"All patients ({stored['all']['n_patients']} patients" in lines
    assert f"difference {d['c_index']:+.3f} [{lo:+.3f}, {hi:+.3f}]" in lines


def test_the_card_has_a_what_imaging_adds_section(imaging_home):
    _t, store, trained = imaging_home
    info = model_metrics(store, trained["model_id"])
    section = info["card"]["imaging_comparison"]
    stored = info["metrics"]["imaging_comparison"]
    assert section["imaging_features"] == ["liver_surface_nodularity"]
    assert section["with_scans"]["c_index"]["difference"] == \
        stored["with_scans"]["difference"]["c_index"]
    assert section["all"]["td_auc"]["1"]["difference_ci"] == \
        stored["all"]["difference"]["td_auc_ci"]["1"]
    md = card_markdown(info["card"])
    assert "#### What imaging adds" in md
    assert md.index("#### Validation") < md.index("#### What imaging adds") \
        < md.index("#### Limitations")
    c = section["all"]["c_index"]
    assert (f"C-index {c['with_imaging']:.3g} with, {c['without_imaging']:.3g} without, "
            f"difference {c['difference']:+.3f}") in md


def test_a_model_without_imaging_features_says_nothing_to_compare(home):
    t, _s, store = home
    info = model_metrics(store, t.model_id)
    comp = imaging_comparison(info["metrics"], info["horizons"])
    # the sample home has CT for 2 of 36 patients: the coverage rule leaves imaging out
    assert comp.statement.startswith(
        "no imaging feature entered the model: nothing to compare (left out as too rarely "
        "measured: ")
    assert "Liver volume: measured in 2 patients (fewer than 10)" in comp.statement
    assert comp.table.empty
    md = card_markdown(info["card"])
    assert "- No imaging feature entered the model: nothing to compare" in md
    assert imaging_comparison({}, [1.0]).statement == NOT_STORED
