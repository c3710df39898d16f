"""Models page: registered models, cross-validated validation against clinical baselines,
what imaging adds (the model with and without its imaging features), calibration, time-dependent AUC, global SHAP drivers, the model card, the active model,
and training (in a background job)."""

import streamlit as st

from analytics import viz
from analytics.auth import Permission, allowed
from analytics.errors import HepaTrackError
from analytics.models.registry import list_models
from analytics.usecases.model_admin import (
    calibration_curves,
    calibration_summary,
    card_markdown,
    imaging_comparison,
    model_metrics,
    td_auc_by_landmark,
    validation_table,
)
from analytics.usecases.models import activate_model
from analytics.vocabulary import event_words
from ui import dash, jobs, models_view, shell
from ui.format import fmt_horizon
from ui.session import key

MODELS = "models"
JOB_KEY = key(MODELS, "job")

ctx = shell.page_start()
st.title("Models")
who = dash.actor(ctx)


@st.fragment(run_every=1.0)
def train_panel() -> None:
    job: jobs.Job | None = st.session_state.get(JOB_KEY)
    if job is None:
        return
    result = dash.settled_job(job, done_text="trained")
    if result is None:
        return
    if not st.session_state.get(key(MODELS, f"seen-{job.id}")):
        st.session_state[key(MODELS, f"seen-{job.id}")] = True
        st.session_state[key(MODELS, "model")] = result["model_id"]
        dash.clear()
        st.rerun(scope="app")
    cv = result["cv"]
    st.success(f"Model {result['model_id']} trained on {result['n_patients']} "
               f"patients: cross-validated C-index {cv['c_index']:.3f}.",
               icon=":material/check_circle:")


with shell.guard():
    models = list_models(ctx.store)

if allowed(who, Permission.TRAIN):
    with st.expander("Train a model", expanded=not models), \
            st.form(key(MODELS, "train")):
        with shell.guard():
            events = sorted(set(dash.cohort(ctx).outcomes["event"].astype(str))
                            - {"censored"})
        c = st.columns(3)
        kind = c[0].selectbox("Model", list(models_view.KINDS),
                              format_func=models_view.KINDS.get, key=key(MODELS, "kind"))
        chosen_events = c[1].multiselect(
            "Endpoint (events of interest)", events, key=key(MODELS, "events"),
            placeholder="default: every event except transplant",
            help="The chosen events form one endpoint; every other event is a competing "
                 "risk with its own hazard model")
        horizons = c[2].multiselect("Horizons (years)", models_view.HORIZON_CHOICES,
                                    default=list(models_view.DEFAULTS.horizons),
                                    key=key(MODELS, "horizons"))
        c = st.columns(4)
        d = models_view.DEFAULTS
        folds = c[0].number_input("CV folds", 2, 10, d.folds, key=key(MODELS, "folds"))
        repeats = c[1].number_input("CV repeats", 1, 5, d.repeats, key=key(MODELS, "repeats"))
        boot = c[2].number_input("Bootstrap replicates (95% CI)", 0, 500, d.n_bootstrap,
                                 step=10, key=key(MODELS, "bootstrap"))
        can_activate = allowed(who, Permission.ACTIVATE_MODEL)
        activate = c[3].checkbox("Make it the active model", value=can_activate,
                                 disabled=not can_activate, key=key(MODELS, "activate"),
                                 help=None if can_activate else
                                 "only an administrator can change the active model")
        busy = bool(st.session_state.get(JOB_KEY)) and st.session_state[JOB_KEY].running
        go = st.form_submit_button("Train", type="primary", disabled=busy,
                                   icon=":material/model_training:")
    if go:
        if not horizons:
            st.error("Choose at least one horizon.", icon=":material/error:")
        else:
            with shell.guard():
                chosen = models_view.train_settings(
                    kind=kind, events=chosen_events, horizons=[float(h) for h in horizons],
                    folds=int(folds), repeats=int(repeats), n_bootstrap=int(boot))
                st.session_state[JOB_KEY] = jobs.start(
                    "Training", lambda job: models_view.train_job(
                        job, ctx.store, ctx.settings, who, chosen, activate=bool(activate)))
    train_panel()

if not models:
    st.info("No model trained yet." + ("" if allowed(who, Permission.TRAIN) else
                                       " Ask a researcher or administrator to train one."),
            icon=":material/model_training:")
    st.stop()

st.subheader("Registered models")
st.dataframe(models_view.models_display(models), hide_index=True, key=key(MODELS, "list"))
ids = [m["model_id"] for m in models]
active = next((m["model_id"] for m in models if m["active"]), ids[0])
if st.session_state.get(key(MODELS, "model")) not in ids:
    st.session_state[key(MODELS, "model")] = active
model_id = st.selectbox("Model", ids, key=key(MODELS, "model"),
                        format_func=lambda m: f"{m} (active)" if m == active else m)

with shell.guard():
    info = model_metrics(ctx.store, model_id)
metrics, horizons = info["metrics"], info["horizons"]
can_switch = model_id != active and allowed(who, Permission.ACTIVATE_MODEL)
if can_switch and st.button(f"Make {model_id} the active model",
                            key=key(MODELS, "make_active"),
                            icon=":material/published_with_changes:"):
    with shell.guard():
        activate_model(dash.use_case_context(ctx), model_id)
    dash.clear()
    st.rerun()
st.caption(f"{info['kind']} · endpoint {event_words(info['event'])} · horizons "
           f"{', '.join(f'{h:g}' for h in horizons)} y · trained by "
           f"{info['created_by'] or 'the command line'} on {(info['created_at'] or '?')[:10]}")

st.subheader("Validation")
if not metrics.get("cv"):
    st.warning("No validation metrics stored with this model.", icon=":material/warning:")
else:
    vt = validation_table(metrics, horizons)
    shown = models_view.validation_display(vt, horizons)
    st.dataframe(shown, hide_index=True, key=key(MODELS, "validation"),
                 column_config=models_view.validation_column_config(shown))
    st.caption("Cross-validated, grouped by patient (out-of-fold predictions); 95% intervals "
               "by patient bootstrap. Clinical scores are validated on the same folds, each "
               "recalibrated to the endpoint; 'Model C-index on the same rows' compares the "
               "model on the visits where the score can be computed.")
    left, right = st.columns(2)
    with left:
        st.markdown("**Calibration**")
        st.plotly_chart(viz.calibration_plot(calibration_curves(metrics)),
                        key=key(MODELS, "calibration"))
        cal_table, cal_config = models_view.calibration_display(calibration_summary(metrics))
        st.dataframe(cal_table, hide_index=True, key=key(MODELS, "calibration_table"),
                     column_config=cal_config)
    with right:
        st.markdown("**Discrimination over landmark times**")
        st.plotly_chart(viz.td_auc_plot(td_auc_by_landmark(metrics)),
                        key=key(MODELS, "td_auc"))

st.subheader("What imaging adds")
comparison = imaging_comparison(metrics, horizons)
if comparison.statement:
    st.info(comparison.statement[:1].upper() + comparison.statement[1:] + ".",
            icon=":material/info:")
else:
    st.dataframe(models_view.imaging_display(comparison.table, horizons), hide_index=True,
                 key=key(MODELS, "imaging"))
    st.caption(f"The model with imaging ({', '.join(comparison.features)}) against the same "
               f"model without them: {comparison.method}. 'Patients with scans' keeps the "
               "landmark visits of patients with at least one scan at or before them; "
               "n events counts patients with the endpoint event.")
    st.plotly_chart(viz.imaging_difference_plot(comparison.table, horizons),
                    key=key(MODELS, "imaging_plot"))
    if not comparison.references.empty:
        with st.expander("Clinical scores and the true hazard on the same rows"):
            st.dataframe(models_view.imaging_references_display(comparison.references,
                                                                horizons),
                         hide_index=True, key=key(MODELS, "imaging_references"))

st.subheader("Global drivers")
c = st.columns([2, 2], vertical_alignment="bottom")
driver_horizon = c[0].segmented_control(
    "Risk within", horizons, default=max(horizons), format_func=fmt_horizon,
    key=key(MODELS, "drivers_horizon")) or max(horizons)
on_model_scale = c[1].toggle("Show on the model's scale (log relative hazard)",
                             key=key(MODELS, "drivers_log"))
try:
    with st.spinner("Explaining the training sample…"):
        drivers = dash.drivers(ctx, model_id, float(driver_horizon))
    st.plotly_chart(viz.drivers_bar(drivers, scale="model" if on_model_scale else "points"),
                    key=key(MODELS, "drivers"))
    st.caption(models_view.drivers_caption(drivers, on_model_scale))
except HepaTrackError as err:
    shell.show_error(err)

with st.expander("Model card", expanded=False):
    st.markdown(card_markdown(info["card"]))
