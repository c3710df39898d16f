"""The risk dashboard under AppTest, on a copy of the trained synthetic home
(tests/dashboard_data.py): cohort risk, patient risk and explanations, key images,
models (train, activate), MDT meeting (list, notes, PDF), ingest (upload)."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from sqlalchemy import select

from analytics.config import load_settings
from analytics.store import open_store
from analytics.store.schema import AuditRecord, ModelRecord, NoteRecord
from tests.app.conftest import cohort_charts, new_app, patient_charts
from tests.dashboard_data import copied_home, template_home
from ui.session import Viewer

#: fixtures: a private copy of the trained dashboard home, and its template
home, template = copied_home, template_home

CLINICIAN = Viewer("dr.grey", "clinician", "s-clin")
RESEARCHER = Viewer("ana.res", "researcher", "s-res")
ADMIN = Viewer("root.admin", "admin", "s-admin")
JOB_TIMEOUT_S = 240


def _texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, _texts(at.error)


@pytest.fixture
def engine(home):
    """The model and cohort table of the copied home, read directly (the truth)."""
    from analytics.cohort import build_cohort
    from analytics.models.registry import load_model

    settings = load_settings(home)
    store = open_store(settings)
    yield load_model(store, settings), build_cohort(store), store
    store.dispose()


def _on(page: str, viewer: Viewer):
    at = new_app(viewer).run()
    if page != "pages/cohort.py":
        at.switch_page(page).run()
    return at


def _wait(at, job_key: str, timeout: float = JOB_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while at.session_state[job_key].running:
        assert time.monotonic() < deadline, f"{job_key} still running after {timeout} s"
        time.sleep(0.5)
    at.run()
    return at.session_state[job_key]


def _button(at, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, (label, [b.label for b in at.button])
    return found[0]


def _table(at, column: str):
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert found, column
    return found[0]


# --------------------------------------------------------------------------- cohort
def test_cohort_risk_columns_are_the_models_risks(home, engine, template):
    from analytics.usecases.overview import cohort_risk

    model, cohort, _ = engine
    at = _on("pages/cohort.py", CLINICIAN)
    _ok(at)
    table = at.dataframe[0].value.set_index("pseudonym")
    truth = cohort_risk(model, cohort.visits, 3.0).set_index("pseudonym")
    np.testing.assert_allclose(table.loc[truth.index, "risk_pct"], truth["risk"] * 100,
                               equal_nan=True)
    arrows = truth["trend"].map({"up": "↑", "down": "↓", "flat": "→"}).fillna("")
    assert table.loc[truth.index, "trend"].tolist() == arrows.tolist()
    # identified view: names for the imaging patients
    assert table.loc[template.imaging, "patient_name"].notna().all()
    # no chart at first paint: each when chosen
    assert [c.key for c in at.get("plotly_chart")] == []
    cohort_charts(at, "Current risk")
    _ok(at)
    assert [c.key for c in at.get("plotly_chart")] == ["cohort:risk_hist"]
    cohort_charts(at)
    _ok(at)
    keys = [c.key for c in at.get("plotly_chart")]
    assert {"cohort:risk_hist", "cohort:incidence", "cohort:swimmer"} <= set(keys)
    # a shorter horizon gives that horizon's risks
    at.get("button_group")[0].set_value(1.0).run()
    _ok(at)
    one = cohort_risk(model, cohort.visits, 1.0).set_index("pseudonym")
    np.testing.assert_allclose(at.dataframe[0].value.set_index("pseudonym").loc[
        one.index, "risk_pct"], one["risk"] * 100, equal_nan=True)


def _values(v) -> np.ndarray:
    """A plotly array from a figure's JSON: a list, or base64 ``bdata`` with its dtype."""
    import base64

    if isinstance(v, dict):
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
    return np.asarray(v, dtype=object)


def test_cohort_draws_no_chart_until_a_person_chooses_one(home, engine):
    from analytics.usecases.overview import cohort_risk

    model, cohort, _ = engine
    at = _on("pages/cohort.py", CLINICIAN)
    _ok(at)
    assert [c.key for c in at.get("plotly_chart")] == []
    pills = next(b for b in at.get("button_group") if b.key == "cohort:charts")
    assert pills.options == ["Current risk", "Incidence by risk group", "Follow-up",
                             "Biomarkers by outcome"]
    assert pills.value == []
    cohort_charts(at, "Current risk")
    _ok(at)
    assert [c.key for c in at.get("plotly_chart")] == ["cohort:risk_hist"]
    # the histogram holds every assessable patient's 3-year risk, in percent
    truth = cohort_risk(model, cohort.visits, 3.0)["risk"].dropna().to_numpy() * 100
    hist = _figure(at, "cohort:risk_hist")["data"][0]
    np.testing.assert_allclose(np.sort(_values(hist["x"]).astype(float)), np.sort(truth))

    cohort_charts(at, "Follow-up")
    _ok(at)
    assert [c.key for c in at.get("plotly_chart")] == ["cohort:swimmer"]
    assert "Risk across the cohort" not in _texts(at.subheader)
    # the follow-up lanes are the patients the table shows: search one, one lane
    one = at.dataframe[0].value["pseudonym"].iloc[3]
    at.text_input(key="cohort:search").input(one).run()
    _ok(at)
    lanes = {y for y in _values(_figure(at, "cohort:swimmer")["data"][0]["y"]) if y}
    assert lanes == {one}

    at.text_input(key="cohort:search").input("").run()
    cohort_charts(at, "Incidence by risk group")
    _ok(at)
    assert [c.key for c in at.get("plotly_chart")] == ["cohort:incidence"]
    assert "Risk across the cohort" in _texts(at.subheader)


def test_sort_by_risk_and_filter_rising(home):
    at = _on("pages/cohort.py", CLINICIAN)
    at.selectbox(key="cohort:sort").select("Current risk (highest first)").run()
    _ok(at)
    risk = at.dataframe[0].value["risk_pct"]
    known = risk.dropna()
    assert known.is_monotonic_decreasing and risk.isna().sum() == len(risk) - len(known)
    assert risk.iloc[: len(known)].notna().all()  # unknown risks last
    at.multiselect(key="cohort:filters").set_value(["Rising risk"]).run()
    _ok(at)
    shown = at.dataframe[0].value
    assert len(shown) > 0 and (shown["risk_change_pct"] >= 1.0 - 1e-9).all()
    assert (shown["trend"] == "↑").all()


def _not_called(*_args, **_kwargs):
    raise AssertionError("the risk order was made in memory")


def test_pages_of_a_risk_sort_are_the_whole_tables_order_cut_into_pages(home, engine,
                                                                       monkeypatch):
    from analytics.usecases.overview import cohort_risk
    from ui import cohort_view

    model, cohort, _ = engine
    monkeypatch.setattr(cohort_view, "PAGE_SIZES", (3, 100))
    # the current-risk order is the store's (its current risk table), not a sort in memory
    monkeypatch.setattr(cohort_view.loaders, "pseudonyms", _not_called)
    truth = cohort_risk(model, cohort.visits, 3.0).sort_values("pseudonym", kind="stable")
    # highest risk first, unknown last, ties by pseudonym: the order of the whole table
    order = truth.sort_values("risk", ascending=False, na_position="last", kind="stable"
                              )["pseudonym"].tolist()
    at = _on("pages/cohort.py", CLINICIAN)
    at.selectbox(key="cohort:sort").select("Current risk (highest first)").run()
    _ok(at)
    pages = -(-len(order) // 3)
    assert at.number_input(key="cohort:page").label == f"Page (of {pages})"
    for page in range(1, pages + 1):
        if page > 1:
            at.number_input(key="cohort:page").set_value(page).run()
            _ok(at)
        shown = at.dataframe[0].value
        assert shown["pseudonym"].tolist() == order[3 * (page - 1):3 * page]
        want = truth.set_index("pseudonym").loc[shown["pseudonym"], "risk"] * 100
        np.testing.assert_allclose(shown["risk_pct"], want, equal_nan=True)


def test_clinicians_search_by_name_researchers_only_by_pseudonym(home, template):
    clin = _on("pages/cohort.py", CLINICIAN)
    name = clin.dataframe[0].value.set_index("pseudonym").loc[template.imaging[0],
                                                              "patient_name"]
    family = name.split()[-1].lower()  # shown in clinical form, "Given FAMILY"
    clin.text_input(key="cohort:search").input(family).run()
    _ok(clin)
    assert clin.dataframe[0].value["pseudonym"].tolist() == [template.imaging[0]]
    res = _on("pages/cohort.py", RESEARCHER)
    assert res.text_input(key="cohort:search").label == "Search by pseudonym"
    assert "patient_name" not in res.dataframe[0].value.columns
    res.text_input(key="cohort:search").input(family).run()
    _ok(res)
    assert not res.dataframe and f"No patient matches “{family}”." in _texts(res.warning)


def test_a_model_that_fails_its_integrity_check_is_reported(home):
    from analytics.models.registry import load_model

    settings = load_settings(home)
    store = open_store(settings)
    model_id = load_model(store, settings).model_id
    (home / "models" / model_id / "model.json").write_text("{}")  # tampered artifact
    store.dispose()
    at = _on("pages/cohort.py", CLINICIAN)
    assert not at.exception
    assert [e for e in _texts(at.error) if "sha256" in e and model_id in e]
    assert "risk_pct" not in at.dataframe[0].value.columns  # the table still shows


# --------------------------------------------------------------------------- patient
def _figure(at, key: str) -> dict:
    import json

    found = [c for c in at.get("plotly_chart") if c.key == key]
    assert found, (key, [c.key for c in at.get("plotly_chart")])
    return json.loads(found[0].proto.spec)


def test_patient_explanation_is_in_risk_points_with_the_log_scale_one_click_away(
        home, engine, template):
    from analytics.explain import patient_trajectory, why_text

    model, cohort, _store = engine
    p = template.imaging[0]
    at = new_app(CLINICIAN)
    at.query_params["patient"] = p
    at.run()
    at.switch_page("pages/patient.py").run()
    _ok(at)
    view = patient_trajectory(model, cohort.visits, p, 3.0)
    i = view.latest_index()
    risk = view.points["risk"].iloc[i]
    # by default: percentage points of the 3-year risk, from the base risk to the risk
    fig = _figure(at, "patient:waterfall")
    assert fig["layout"]["xaxis"]["title"]["text"] == \
        "Contribution (percentage points of the 3-year risk)"
    bars = fig["data"][0]
    assert bars["text"][0] == f"{100 * view.base_risk(i):.1f}%"
    assert bars["text"][-1] == f"{100 * risk:.1f}%"
    assert bars["y"][0] == "Base risk" and bars["y"][-1] == "Risk"
    assert not [y for y in bars["y"] if y.startswith(("Time since baseline", "Number of visits"))]
    assert "follow_up" in view.grouped.feature_names
    captions = [c.value for c in at.caption]
    assert why_text(view.why(i)) in captions and why_text(view.why(i)).endswith(" points.")
    assert any("percentage points of the 3-year risk" in m.value for m in at.markdown)
    patient_charts(at, "Change since the last scan")
    _ok(at)
    change = _figure(at, "patient:change")
    assert "percentage points" in change["layout"]["xaxis"]["title"]["text"]
    # the outcome as clinicians write it (HCC, No event, Death, ...)
    event = cohort.outcomes.set_index("patient")["event"].get(p)
    if event is not None:
        expected = {"hcc": "HCC", "censored": "No event", "death": "Death",
                    "decompensation": "Decompensation", "transplant": "Transplant"}[event]
        assert {m.label: m.value for m in at.metric}["Outcome"] == expected
    # one click: the model's log relative hazard, base value to model output
    at.toggle(key="patient:log_scale").set_value(True).run()
    _ok(at)
    fig = _figure(at, "patient:waterfall")
    assert fig["layout"]["xaxis"]["title"]["text"] == "Contribution (log relative hazard)"
    bars = fig["data"][0]
    assert bars["text"][-1] == f"{view.points['model_output'].iloc[i]:.2f}"
    assert bars["y"][0] == "Base value" and bars["y"][-1] == "Model output"
    assert why_text(view.why(i, scale="log_hazard")) in [c.value for c in at.caption]
    change = _figure(at, "patient:change")
    assert change["layout"]["xaxis"]["title"]["text"] == \
        "Change of contribution (log relative hazard)"
    # and back
    at.toggle(key="patient:log_scale").set_value(False).run()
    assert _figure(at, "patient:waterfall")["layout"]["xaxis"]["title"]["text"] == \
        "Contribution (percentage points of the 3-year risk)"


def test_patient_risk_horizon_and_visit(home, engine, template):
    from analytics.explain import patient_trajectory

    model, cohort, store = engine
    p = template.imaging[0]
    at = new_app(CLINICIAN)
    at.query_params["patient"] = p
    at.run()
    at.switch_page("pages/patient.py").run()
    _ok(at)
    view = patient_trajectory(model, cohort.visits, p, 3.0)
    i = int(np.flatnonzero(view.points["assessable"])[-1])
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Risk within 3 y"] == f"{100 * view.points['risk'].iloc[i]:.1f}%"
    keys = {c.key for c in at.get("plotly_chart")}
    # the risk and its explanation at first paint; the timeline, the change and the
    # biomarker trends when chosen
    assert {"patient:risk", "patient:waterfall"} <= keys
    assert not {"patient:timeline", "patient:change", "patient:trajectory"} & keys
    patient_charts(at)
    _ok(at)
    keys = {c.key for c in at.get("plotly_chart")}
    assert {"patient:timeline", "patient:risk", "patient:waterfall", "patient:change",
            "patient:trajectory"} <= keys
    assert "Why: " + "; ".join(view.why(i)) + "." in [c.value for c in at.caption]
    # change the horizon
    next(b for b in at.get("button_group") if b.key == "patient:horizon").set_value(1.0).run()
    _ok(at)
    v1 = patient_trajectory(model, cohort.visits, p, 1.0)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Risk within 1 y"] == f"{100 * v1.points['risk'].iloc[i]:.1f}%"
    # explain the first visit instead
    first = int(np.flatnonzero(v1.points["assessable"])[0])
    at.select_slider(key=f"patient:visit-{p}").set_value(first).run()
    _ok(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Risk within 1 y"] == f"{100 * v1.points['risk'].iloc[first]:.1f}%"
    assert metrics["Visit"] == f"{v1.points['time'].iloc[first]:.1f} y"
    # the view and the prediction were audited once each per change, with the model
    with store.session() as s:
        rows = s.execute(select(AuditRecord.action, AuditRecord.patient_pseudonym,
                                AuditRecord.model_version, AuditRecord.detail)
                         .where(AuditRecord.username == "dr.grey")
                         .order_by(AuditRecord.seq)).all()
    assert [(r.action, r.patient_pseudonym) for r in rows].count(("view_patient", p)) == 1
    preds = [r for r in rows if r.action == "predict"]
    assert [r.detail["horizon"] for r in preds] == [3.0, 1.0]
    assert {r.model_version for r in preds} == {template.model_id}


def test_key_image_slider_and_window(home, template):
    p = template.imaging[0]
    at = new_app(CLINICIAN)
    at.query_params["patient"] = p
    at.run()
    at.switch_page("pages/patient.py").run()
    _ok(at)
    assert len(at.get("image")) == 1
    uid = at.selectbox(key=f"patient:series-{p}").value
    slider = at.slider(key=f"patient:slice-{uid}")
    key_slice = slider.value
    captions = " ".join(_texts(at.caption))
    assert f"Slice {key_slice} of" in captions and "Overlay: Liver" in captions
    # the slider counts the slices around the liver, the scan picker the whole series
    assert f"Slice {key_slice} of the {int(slider.max)} around the liver" in captions
    total = int(at.selectbox(key=f"patient:series-{p}").format_func(uid)
                .rsplit(" · ", 1)[1].split()[0])
    assert (f"(the series has {total})" in captions) == (total > int(slider.max))
    slider.set_value(1).run()
    at.radio(key="patient:window").set_value("narrow").run()
    _ok(at)
    assert "Slice 1 of" in " ".join(_texts(at.caption))


def test_researcher_sees_no_identity_on_the_patient_page(home, template):
    at = new_app(RESEARCHER)
    at.query_params["patient"] = template.imaging[0]
    at.run()
    at.switch_page("pages/patient.py").run()
    _ok(at)
    real = next(k for k, v in template.pseudonyms.items() if v == template.imaging[0])
    page_text = " ".join(_texts(at.caption) + _texts(at.subheader) + _texts(at.markdown))
    assert real not in page_text and "Pseudonymised view" in page_text


# --------------------------------------------------------------------------- models
def test_models_page_shows_validation_against_baselines(home, engine):
    from analytics.usecases.model_admin import model_metrics

    _m, _c, store = engine
    at = _on("pages/models.py", RESEARCHER)
    _ok(at)
    table = _table(at, "C-index (95% CI)")
    cv = model_metrics(store, _m.model_id)["metrics"]["cv"]
    lo, hi = cv["ci"]["c_index"]
    assert table["C-index (95% CI)"].iloc[0] == f"{cv['c_index']:.3f} ({lo:.3f}-{hi:.3f})"
    assert "MELD" in table["Predictor"].tolist()
    # the estimate with its interval gets a medium-width column, so "(lo-hi)" is not cut
    config = json.loads(next(d for d in at.dataframe if "C-index (95% CI)" in d.value.columns)
                        .proto.columns)
    assert config["C-index (95% CI)"]["width"] == "medium"
    # the endpoint in words, not the stored codes
    assert _table(at, "Endpoint")["Endpoint"].tolist() == ["Death, decompensation or HCC"]
    assert any(" · endpoint death, decompensation or HCC · " in c for c in _texts(at.caption))
    # calibration: readable headers with an explanation and the stored numbers
    cal = _table(at, "ICI (integrated calibration index)")
    assert list(cal.columns) == [
        "Horizon (y)", "Calibration slope", "Calibration intercept",
        "ICI (integrated calibration index)", "E50 (median absolute error)",
        "E90 (90th percentile of the absolute error)", "Visits (n)"]
    stored = cv["calibration"]["3"]
    row = cal.set_index("Horizon (y)").loc[3.0]
    assert row["ICI (integrated calibration index)"] == pytest.approx(stored["ici"])
    assert row["E50 (median absolute error)"] == pytest.approx(stored["e50"])
    cal_config = json.loads(next(d for d in at.dataframe if "Visits (n)" in d.value.columns)
                            .proto.columns)
    assert cal_config["E50 (median absolute error)"]["help"] == (
        "Median absolute difference between predicted and observed risk")
    keys = {c.key for c in at.get("plotly_chart")}
    assert {"models:calibration", "models:td_auc", "models:drivers"} <= keys
    # the global drivers on the clinic's scale first: percentage points of the 3-year
    # risk, the numbers of clinical_importance at that horizon
    from analytics.explain import clinical_importance
    from tests.app.test_models_forest import _numbers

    drivers = json.loads(next(c for c in at.get("plotly_chart") if c.key == "models:drivers")
                         .proto.spec)
    assert drivers["layout"]["xaxis"]["title"]["text"].startswith(
        "Mean size of the contribution (percentage points of the 3-year risk), ")
    truth = clinical_importance(_m, 3.0).table.sort_values("mean_abs_points",
                                                            ascending=False)
    assert drivers["data"][0]["y"][0] == truth["label"].iloc[0]
    assert _numbers(drivers["data"][0]["x"])[0] == pytest.approx(
        truth["mean_abs_points"].iloc[0], rel=1e-9)
    assert any(c.startswith("Mean absolute contribution to the risk within 3 years, in "
                            "percentage points") for c in _texts(at.caption))
    # the log relative hazard is one click away
    at.toggle(key="models:drivers_log").set_value(True).run()
    _ok(at)
    drivers = json.loads(next(c for c in at.get("plotly_chart") if c.key == "models:drivers")
                         .proto.spec)
    assert drivers["layout"]["xaxis"]["title"]["text"].startswith(
        "Mean size of the effect on the log relative hazard (mean |SHAP|), ")
    assert any("On the log relative hazard: an effect of 0.1 multiplies the hazard by about "
               "1.1 (e^0.1), one of 0.7 doubles it." in c for c in _texts(at.caption))


def test_train_as_researcher_then_activate_as_admin(home, engine):
    _m, _c, store = engine
    at = _on("pages/models.py", RESEARCHER)
    at.number_input(key="models:folds").set_value(2)
    at.number_input(key="models:repeats").set_value(1)
    at.number_input(key="models:bootstrap").set_value(0)
    assert at.checkbox(key="models:activate").disabled  # researchers cannot activate
    at.multiselect(key="models:horizons").set_value([1.0, 2.0])
    _button(at, "Train").click().run()
    job = _wait(at, "models:job")
    assert job.error is None, job.error
    new_id = job.result["model_id"]
    _ok(at)
    assert any(f"Model {new_id} trained" in t for t in _texts(at.success))
    with store.session() as s:
        rows = dict(s.execute(select(ModelRecord.model_id, ModelRecord.active)).all())
    assert rows[new_id] is False and sum(rows.values()) == 1
    admin = _on("pages/models.py", ADMIN)
    admin.selectbox(key="models:model").select(new_id).run()
    admin.button(key="models:make_active").click().run()
    _ok(admin)
    with store.session() as s:
        active = s.execute(select(ModelRecord.model_id).where(ModelRecord.active.is_(True))
                           ).scalars().all()
    assert active == [new_id]


# --------------------------------------------------------------------------- MDT
def test_mdt_meeting_notes_and_pack(home, engine, template):
    from pypdf import PdfReader

    _m, _c, store = engine
    at = _on("pages/mdt.py", CLINICIAN)
    _ok(at)
    patients = [template.imaging[0], template.pseudonyms["SYN3-0010"],
                template.pseudonyms["SYN3-0011"]]
    at.multiselect(key="mdt:patients").set_value(patients).run()
    _ok(at)
    assert at.selectbox(key="mdt:current").value == patients[0]
    assert any(m.label.startswith("Risk within 3 y") for m in at.metric)
    # the outcome in a clinician's words: a patient without an event was followed up
    outcome = _c.outcomes.set_index("patient").loc[patients[0]]
    from analytics.vocabulary import event_words

    years = f"{outcome['duration']:.1f} y"
    written = (f"no event, followed to {years}" if outcome["event"] == "censored"
               else f"{event_words(outcome['event'])} at {years}")
    assert any(f" · outcome {written}" in c for c in _texts(at.caption)), _texts(at.caption)
    assert not any("censored" in c.lower() for c in _texts(at.caption))
    assert any(t.startswith("**Why:**") for t in _texts(at.markdown))
    from analytics.explain import patient_trajectory

    trajectory = patient_trajectory(_m, _c.visits, patients[0], 3.0)
    why = "**Why:** " + "; ".join(trajectory.why(trajectory.latest_index())) + "."
    assert why in _texts(at.markdown)
    at.text_area(key="mdt:note").input("Discussed: repeat CT in 6 months.")
    _button(at, "Save note").click().run()
    _ok(at)
    at.button(key="mdt:next").click().run()
    assert at.selectbox(key="mdt:current").value == patients[1]
    at.toggle(key="mdt:large").set_value(True).run()
    _ok(at)
    at.button(key="mdt:export").click().run()
    job = _wait(at, "mdt:job")
    assert job.error is None, job.error
    _ok(at)
    assert at.get("download_button")
    reader = PdfReader(io.BytesIO(job.result.pdf))
    assert len(reader.pages) == 3 and job.result.identified
    with store.session() as s:
        notes = s.execute(select(NoteRecord.text, NoteRecord.author, NoteRecord.meeting)).all()
    assert [(n.text, n.author) for n in notes] == [("Discussed: repeat CT in 6 months.",
                                                   "dr.grey")]
    assert notes[0].meeting.endswith("Hepatology MDT")


def test_mdt_page_names_imported_imaging_values_and_says_no_images_are_stored(home, template):
    # a labs-only patient whose visits file also brought spleen volumes (no series stored)
    from analytics.cohort import build_cohort
    from analytics.explain import patient_trajectory
    from analytics.models.registry import load_model
    from analytics.store.repo_patient import patient_detail
    from analytics.store.schema import Patient, Visit

    p = template.pseudonyms["SYN3-0010"]
    settings = load_settings(home)
    store = open_store(settings)
    try:
        with store.session() as s:
            pid = s.execute(select(Patient.id).where(Patient.pseudonym == p)).scalar()
            rows = s.execute(select(Visit).where(Visit.patient_id == pid)
                             .order_by(Visit.time_years)).scalars().all()
            for r, ml in zip(rows[-3:-1], (780.0, 1020.0), strict=True):
                r.values = {**r.values, "spleen_volume_ml": ml}
        visits = patient_detail(store, p, identified=True).visits
        latest = visits.loc[visits["spleen_volume_ml"].notna(), "visit_date"].iloc[-1]
        model, cohort = load_model(store, settings), build_cohort(store)
    finally:
        store.dispose()
    view = patient_trajectory(model, cohort.visits, p, 3.0)
    i = view.latest_index()
    assert view.imaging_since(i) == "previous imported measurement"
    at = _on("pages/mdt.py", CLINICIAN)
    at.multiselect(key="mdt:patients").set_value([p]).run()
    _ok(at)
    captions = _texts(at.caption)
    assert ("No CT or MR images stored: imaging values were imported from the cohort file "
            f"(latest {latest.date().isoformat()}).") in captions, captions
    assert "No complete CT or MR series stored." not in captions
    why = "**Why:** " + "; ".join(view.why(i)) + "."
    assert why in _texts(at.markdown)
    assert "previous scan" not in why


def test_pasted_pseudonyms_are_added_to_the_meeting_list_and_unknown_ones_named(home, template):
    at = _on("pages/mdt.py", CLINICIAN)
    _ok(at)
    first = template.imaging[0]
    p10, p11, p12 = (template.pseudonyms[f"SYN3-00{n}"] for n in (10, 11, 12))
    at.multiselect(key="mdt:patients").set_value([first]).run()
    at.text_area(key="mdt:paste").input(f"{p10}, {first}\nNOBODY-1 {p11}").run()
    at.button(key="mdt:add_pasted").click().run()
    _ok(at)
    assert at.multiselect(key="mdt:patients").value == [first, p10, p11]
    assert any("Not in the store: NOBODY-1" in w for w in _texts(at.warning))
    at.text_area(key="mdt:paste").input(p12).run()
    at.button(key="mdt:add_pasted").click().run()  # a second paste appends again
    _ok(at)
    assert at.multiselect(key="mdt:patients").value[-1] == p12
    assert not any("Not in the store" in w for w in _texts(at.warning))


@pytest.mark.parametrize(("page", "viewer"), [
    ("pages/mdt.py", RESEARCHER), ("pages/ingest.py", RESEARCHER), ("pages/mdt.py", ADMIN),
])
def test_pages_are_not_offered_to_roles_they_are_not_for(home, page, viewer):
    at = new_app(viewer).run()
    _ok(at)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(page)


# --------------------------------------------------------------------------- ingest
def test_upload_reports_new_duplicate_and_refused_files(home, template):
    files = sorted((template.holdout / "CT").glob("*.dcm"))
    already = next(p for p in (template.synth / "dicom").glob("*/*/CT/*.dcm")
                   if template.holdout not in p.parents)
    at = _on("pages/ingest.py", CLINICIAN)
    _ok(at)
    uploads = [(f.name, f.read_bytes(), "application/dicom") for f in files]
    uploads += [("again.dcm", already.read_bytes(), "application/dicom"),
                ("notes.txt", b"not a DICOM file at all", "text/plain")]
    at.file_uploader(key="ingest:files").set_value(uploads).run()
    at.checkbox(key="ingest:extract").uncheck().run()
    at.button(key="ingest:go").click().run()
    job = _wait(at, "ingest:job")
    assert job.error is None, job.error
    _ok(at)
    result = _table(at, "outcome")
    outcome = dict(zip(result["item"], result["outcome"], strict=True))
    assert "accepted" in outcome.values() and "duplicate" in outcome.values()
    assert outcome["notes.txt"] == "rejected"
    reason = result.set_index("item").loc["notes.txt", "reason"]
    assert "not a DICOM file" in reason
    new = result[result["outcome"] == "accepted"].iloc[0]
    assert new["slices"] == template.holdout_truth["shape"][0]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Series stored"] == "1" and metrics["Refused"] == "1"


def test_upload_of_a_real_export_without_patient_id_is_filed_under_the_typed_patient(home):
    from tests.realdata import ct_dicom_files

    uploads = [(p.name, p.read_bytes(), "application/dicom") for p in ct_dicom_files()]
    at = _on("pages/ingest.py", CLINICIAN)
    _ok(at)
    at.file_uploader(key="ingest:files").set_value(uploads).run()
    at.checkbox(key="ingest:extract").uncheck().run()
    at.button(key="ingest:go").click().run()  # no patient named: every file refused
    _wait(at, "ingest:job")
    _ok(at)
    refused = _table(at, "outcome")
    assert set(refused["outcome"]) == {"rejected"} and len(refused) == 20
    assert refused["reason"].str.contains("Patient ID (0010,0020) is missing or empty",
                                     regex=False).all()
    at.text_input(key="ingest:assign").input("BASEL-0001").run()
    at.button(key="ingest:go").click().run()
    job = _wait(at, "ingest:job")
    assert job.error is None, job.error
    _ok(at)
    result = _table(at, "outcome")
    (row,) = result.itertuples()
    assert row.outcome == "accepted" and row.slices == 20
    assert "identifiers derived" in row.warning
    assert any("1 series stored with identifiers HepaTrack filled in" in str(w.value)
               for w in at.warning)
