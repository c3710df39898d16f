"""A researcher trains the random survival forest from the Models page: the option names
the xgboost forest, training finishes, and the new model shows its validation, its global
drivers (TreeSHAP over the 200-row training sample) and a card that names the forest."""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import pandas as pd
import pytest
import shap

from analytics.config import load_settings
from analytics.explain.contributions import clinical_group, clinical_label
from analytics.models.registry import load_model
from analytics.store import open_store
from tests.app.conftest import new_app
from tests.dashboard_data import copied_home, template_home
from ui.session import Viewer

#: fixtures: a private copy of the trained dashboard home, and its template
home, template = copied_home, template_home

RESEARCHER = Viewer("ana.res", "researcher", "s-res")
JOB_KEY = "models:job"
TIMEOUT_S = 300


def test_a_researcher_trains_the_forest_and_sees_its_drivers_and_card(home):
    at = new_app(RESEARCHER).run()
    at.switch_page("pages/models.py").run()
    assert not at.exception, [e.value for e in at.exception]
    kind = at.selectbox(key="models:kind")
    assert "Random survival forest (xgboost)" in kind.options
    kind.set_value("rsf")
    at.number_input(key="models:folds").set_value(2)
    at.number_input(key="models:repeats").set_value(1)
    at.number_input(key="models:bootstrap").set_value(0)
    at.multiselect(key="models:horizons").set_value([1.0, 2.0])
    next(b for b in at.button if b.label == "Train").click().run()
    deadline = time.monotonic() + TIMEOUT_S
    while at.session_state[JOB_KEY].running:
        assert time.monotonic() < deadline, "training still running"
        time.sleep(0.5)
    job = at.session_state[JOB_KEY]
    assert job.error is None, job.error
    new_id = job.result["model_id"]
    assert job.result["model"] == "rsf" and new_id.startswith("rsf-")
    at.run()
    assert any(f"Model {new_id} trained" in str(s.value) for s in at.success)
    at.selectbox(key="models:model").select(new_id).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert any(str(c.value).startswith("rsf · endpoint") for c in at.caption)
    # the global drivers: TreeSHAP of the forest's log hazard over 200 training rows,
    # the top bar recomputed here with shap's own TreeExplainer on the stored booster
    # (the model's scale, one click from the percentage points shown first)
    assert _figure(at, "models:drivers")["layout"]["xaxis"]["title"]["text"] == (
        "Mean size of the contribution (percentage points of the 2-year risk), "
        "200 training rows")
    at.toggle(key="models:drivers_log").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    drivers = _figure(at, "models:drivers")
    assert drivers["layout"]["xaxis"]["title"]["text"] == (
        "Mean size of the effect on the log relative hazard (mean |SHAP|), 200 training rows")
    top = _top_driver(home, new_id)
    assert drivers["data"][0]["y"][0] == top[0]
    assert _numbers(drivers["data"][0]["x"])[0] == pytest.approx(top[1], abs=1e-5)
    card = "\n".join(str(m.value) for m in at.markdown)
    assert "random survival forest (xgboost random-forest mode" in card
    assert "exact TreeSHAP (xgboost pred_contribs) on the forest's log relative hazard" in card


def _figure(at, key: str) -> dict:
    found = [c for c in at.get("plotly_chart") if c.key == key]
    assert found, (key, [c.key for c in at.get("plotly_chart")])
    return json.loads(found[0].proto.spec)


def _numbers(v) -> np.ndarray:
    """A plotly JSON array: a list, or typed binary data (``{"dtype", "bdata"}``)."""
    if isinstance(v, dict):
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
    return np.asarray(v, float)


def _top_driver(home, model_id: str) -> tuple[str, float]:
    """(label, mean |SHAP|) of the clinical feature with the largest mean |SHAP| over the
    model's first 200 training-sample rows, by shap.TreeExplainer."""
    settings = load_settings(home)
    store = open_store(settings)
    try:
        model = load_model(store, settings, model_id).model
    finally:
        store.dispose()
    X = model.background_[model.features].head(200)
    values = shap.TreeExplainer(model.estimators_["interest"].booster_).shap_values(
        X.to_numpy())
    groups = [clinical_group(model.feature_groups_[c]) for c in model.features]
    summed = pd.DataFrame(values, columns=groups).T.groupby(level=0).sum().T
    mean_abs = summed.abs().mean()
    return clinical_label(str(mean_abs.idxmax()))[0], float(mean_abs.max())
