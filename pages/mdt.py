"""MDT meeting page: build the meeting list, walk through one-screen patient summaries
(projector mode: one patient per 1280 x 720 screen), record each patient's question,
discussion and decision, keep notes, export the PDF pack."""

import datetime as dt

import streamlit as st

from analytics import viz
from analytics.auth import Permission, allowed
from analytics.errors import HepaTrackError
from analytics.usecases.mdt import (
    MdtRecordRequest,
    NoteRequest,
    add_note,
    meeting_name,
    notes_for,
    record_discussion,
    records_for,
)
from analytics.usecases.mdt_facts import clinical_facts, no_series_text
from analytics.vocabulary import outcome_words
from ui import dash, jobs, loaders, mdt_view, patient_view, shell, tables
from ui.format import fmt_horizon
from ui.mdt_view import CURRENT_KEY, LIST_KEY, MDT
from ui.session import key

JOB_KEY = key(MDT, "job")

ctx = shell.page_start()
who = dash.actor(ctx)
if not dash.page_allowed(ctx, "pages/mdt.py"):
    dash.deny(ctx, "open the MDT meeting page")
large = st.session_state.get(key(MDT, "large"), False)
if large:
    st.html(mdt_view.LARGE_FONT_CSS)
else:
    st.title("MDT meeting")
if shell.empty_state(ctx):
    st.stop()

with shell.guard():
    patients = loaders.patients(ctx)
options, label = tables.patient_choices(patients)


# ----------------------------------------------------------------------------- meeting
# in projector mode the set-up folds away (its widgets stay drawn, so they keep their state)
setup = st.expander("Meeting set-up, horizon and PDF pack", expanded=False,
                    icon=":material/settings:") if large else st.container()
with setup:
    c = st.columns([1, 2])
    day = c[0].date_input("Meeting date", value=dt.date.today(), key=key(MDT, "date"))
    title = c[1].text_input("Meeting", value="Hepatology MDT", key=key(MDT, "title"))
    meeting = meeting_name(day, title)
    st.multiselect("Patients to discuss", options, key=LIST_KEY, format_func=label,
                   placeholder="choose patients, in discussion order")
    mdt_view.paste_list(options)
chosen = list(st.session_state.get(LIST_KEY) or [])
if not chosen:
    st.info("Add patients to the meeting list to see their summaries and export the pack.",
            icon=":material/groups:")
    st.stop()

# ----------------------------------------------------------------------------- model
model = view = None
horizon = None
with shell.guard():
    model_id = dash.active_model_id(ctx)
with setup:
    if model_id is not None:
        try:
            model = dash.model(ctx, model_id)
            horizon = st.segmented_control(
                "Horizon", model.horizons, default=max(model.horizons),
                format_func=fmt_horizon, key=key(MDT, "horizon")) or max(model.horizons)
        except HepaTrackError as err:
            shell.show_error(err)
            model = None

    # ------------------------------------------------------------------------- export
    left, right = st.columns([2, 3])
    busy = bool(st.session_state.get(JOB_KEY)) and st.session_state[JOB_KEY].running
    if left.button(f"Build the PDF pack ({len(chosen)} page(s))", type="primary",
                   disabled=busy, key=key(MDT, "export"), icon=":material/picture_as_pdf:"):
        visits = dash.cohort(ctx).visits if model is not None else None
        st.session_state[JOB_KEY] = jobs.start("MDT pack", lambda job: mdt_view.pdf_job(
            job, ctx.store, ctx.settings, who, chosen, model=model, visits=visits,
            horizon=horizon, meeting=meeting))
    with right:
        mdt_view.export_panel(JOB_KEY)
        pack = st.session_state.get(JOB_KEY)
        if pack is not None and pack.status == jobs.DONE:
            mdt_view.download_button(pack.result, ctx.store, who, day)

# ----------------------------------------------------------------------------- summary
if not large:
    st.divider()
if st.session_state.get(CURRENT_KEY) not in chosen:
    st.session_state[CURRENT_KEY] = chosen[0]
nav = st.columns([1.3, 4, 1.3, 2.2], vertical_alignment="center")
# at either end of the list the button that would go nowhere is greyed out
shown = st.session_state[CURRENT_KEY]
nav[0].button("Previous", on_click=mdt_view.step, args=(-1,), key=key(MDT, "prev"),
              icon=":material/arrow_back:", width="stretch", disabled=shown == chosen[0])
pseudonym = nav[1].selectbox("Patient", chosen, key=CURRENT_KEY, format_func=label,
                             label_visibility="collapsed")
nav[2].button("Next", on_click=mdt_view.step, args=(1,), key=key(MDT, "next"),
              icon=":material/arrow_forward:", width="stretch", disabled=shown == chosen[-1])
nav[3].toggle("Large font (projector)", key=key(MDT, "large"))

with shell.guard():
    dash.audit_once(ctx, "view_patient", patient=pseudonym)
    detail = loaders.patient(ctx, pseudonym)
facts = clinical_facts(detail, dt.date.today())
uc = dash.use_case_context(ctx)
identified = allowed(who, Permission.VIEW_IDENTIFIED)
record = None
if identified:
    with shell.guard():
        saved = records_for(uc, [pseudonym], meeting=meeting)
    record = saved[0] if saved else None
name = facts.name or "Name not recorded"
st.subheader(f"{name} · {pseudonym}" if detail.identified else pseudonym, anchor=False)
pos = chosen.index(pseudonym) + 1
outcome = detail.outcome
# in its own box: projector mode sets it at the body text's size, not the caption's
st.container(key=key(MDT, "facts")).caption(
    f"Patient {pos} of {len(chosen)} · sex {detail.sex or '—'} · "
    + (f"outcome {outcome_words(outcome.event, outcome.time_years)} · " if outcome
       else "no outcome recorded · ") + facts.line)

if model is not None:
    try:
        dash.audit_once(ctx, "predict", patient=pseudonym, model_version=model_id,
                        detail={"horizon": float(horizon)})
        view = dash.trajectory(ctx, model_id, pseudonym, horizon)
    except HepaTrackError as err:
        shell.show_error(err)
font = mdt_view.LARGE_FIGURE_FONT if large else None

top_left, top_right = st.columns([3, 2])
with top_left:
    if view is not None:
        i = view.latest_index()
        m = st.columns(3)
        if i is None:
            m[0].metric(f"Risk within {horizon:g} y", "not assessable")
        else:
            p = view.points.iloc[i]
            m[0].metric(f"Risk within {horizon:g} y", f"{100 * p['risk']:.0f}%",
                        help=f"at the visit at {p['time']:.1f} y")
            ch = view.change_since_scan(i)
            if ch.risk_change is not None:
                m[1].metric(f"Since the {ch.reference_kind}",
                            f"{100 * ch.risk_change:+.0f} pp", help=ch.text)
        m[2].metric("Visits scored", int(view.points["assessable"].sum()))
        fig = viz.risk_trajectory(view, outcome_event=outcome.event if outcome else None,
                                  outcome_time=outcome.time_years if outcome else None,
                                  selected_time=float(view.points["time"].iloc[i])
                                  if i is not None else None,
                                  height=340)
        if font:
            # the Streamlit chart theme sets its own (small) fonts: off in projector mode
            mdt_view.projector_figure(fig, font)
            st.plotly_chart(fig, key=key(MDT, "risk"), theme=None)
        else:
            st.plotly_chart(fig, key=key(MDT, "risk"))
    # the meeting's question and decision under the chart: the screen's left column has
    # room for them, so a projected patient still fits one screen
    if record is not None and record.question:
        st.markdown(f"**Question:** {record.question}")
    if record is not None and record.decision:
        st.markdown(f"**Decision:** {record.decision}")
with top_right:
    choices = patient_view.series_choices(detail.series)
    if not choices:
        st.caption(no_series_text(detail.visits))
    else:
        uid = next(iter(choices))
        try:
            with st.spinner("Reading the latest scan…"):
                stack = dash.key_view(ctx, uid)  # the stored key slice, with outlines
            if large:  # sized by mdt_view.LARGE_FONT_CSS, with a short caption
                st.container(key=key(MDT, "keyimage")).image(
                    stack.png, caption=mdt_view.projector_caption(detail.series, uid,
                                                                  stack.structures))
            else:
                st.image(stack.png, caption=f"{choices[uid]} · " + patient_view.overlay_legend(
                    stack.structures, stack.labels_text), width="stretch")
        except HepaTrackError as err:
            shell.show_error(err)
    if view is not None and view.latest_index() is not None:
        st.markdown(mdt_view.why_markdown(view, view.latest_index()))

if not large:
    patient_view.show_summary(detail.biomarkers, detail.visits, key(MDT, "biomarkers"))

# ----------------------------------------------------------------------------- record
if identified:
    box = st.expander("Question, discussion and decision", icon=":material/edit_note:",
                      expanded=False) if large else st.container()
    with box:
        if not large:
            st.subheader("Question, discussion and decision", anchor=False)
        if allowed(who, Permission.WRITE_NOTES):
            with st.form(mdt_view.record_key("form", pseudonym, meeting)):
                texts = {part: st.text_area(
                    f"{part.capitalize()} ({meeting})", height=68,
                    value=getattr(record, part) if record is not None else "",
                    key=mdt_view.record_key(part, pseudonym, meeting))
                    for part in mdt_view.RECORD_PARTS}
                if st.form_submit_button("Save the MDT record", icon=":material/save:"):
                    try:
                        record_discussion(uc, MdtRecordRequest(pseudonym, meeting, **texts))
                        st.rerun()
                    except HepaTrackError as err:
                        shell.show_error(err)
        if record is not None:
            st.caption(f"Saved by {record.author} · {str(record.updated_at)[:16]}")
        else:
            st.caption(f"Nothing recorded for {pseudonym} in {meeting} yet.")

# ----------------------------------------------------------------------------- notes
if identified and not large:
    st.subheader("Notes", anchor=False)
    with shell.guard():
        notes = notes_for(uc, [pseudonym])
    if allowed(who, Permission.WRITE_NOTES):
        with st.form(key(MDT, f"note-{pseudonym}"), clear_on_submit=True):
            text = st.text_area(f"Note for {pseudonym} ({meeting})", key=key(MDT, "note"))
            if st.form_submit_button("Save note", icon=":material/save:"):
                with shell.guard():
                    add_note(uc, NoteRequest(pseudonym, text, meeting))
                st.rerun()
    for r in notes.itertuples():
        st.markdown(f"**{r.meeting or 'no meeting'}** · {r.author} · "
                    f"{str(r.created_at)[:16]}  \n{r.text}")
    if notes.empty:
        st.caption("No notes yet for this patient.")
