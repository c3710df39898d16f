"""MDT meeting page: build the meeting list, walk through one-screen patient summaries
(large-font mode for the projector), keep notes, export the PDF pack."""

import datetime as dt

import streamlit as st

from analytics import viz
from analytics.auth import Permission, allowed
from analytics.errors import HepaTrackError
from analytics.usecases.mdt import NoteRequest, add_note, meeting_name, notes_for
from ui import dash, jobs, loaders, mdt_view, patient_view, shell
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
st.title("MDT meeting")
if shell.empty_state(ctx):
    st.stop()

with shell.guard():
    patients = loaders.patients(ctx)
options, label = patient_view.patient_choices(patients)


# ----------------------------------------------------------------------------- meeting
c = st.columns([1, 2, 1])
day = c[0].date_input("Meeting date", value=dt.date.today(), key=key(MDT, "date"))
title = c[1].text_input("Meeting", value="Hepatology MDT", key=key(MDT, "title"))
c[2].toggle("Large font (projector)", key=key(MDT, "large"))
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
if model_id is not None:
    try:
        model = dash.model(ctx, model_id)
        horizon = st.segmented_control("Horizon", model.horizons, default=max(model.horizons),
                                       format_func=fmt_horizon,
                                       key=key(MDT, "horizon")) or max(model.horizons)
    except HepaTrackError as err:
        shell.show_error(err)
        model = None

# ----------------------------------------------------------------------------- export
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
st.divider()
if st.session_state.get(CURRENT_KEY) not in chosen:
    st.session_state[CURRENT_KEY] = chosen[0]
nav = st.columns([1.4, 4, 1.4])
nav[0].button("Previous", on_click=mdt_view.step, args=(-1,), key=key(MDT, "prev"),
              icon=":material/arrow_back:", width="stretch")
pseudonym = nav[1].selectbox("Patient", chosen, key=CURRENT_KEY, format_func=label,
                             label_visibility="collapsed")
nav[2].button("Next", on_click=mdt_view.step, args=(1,), key=key(MDT, "next"),
              icon=":material/arrow_forward:", width="stretch")

with shell.guard():
    dash.audit_once(ctx, "view_patient", patient=pseudonym)
    detail = loaders.patient(ctx, pseudonym)
st.header(f"{detail.patient_name or 'Name not recorded'} · {pseudonym}" if detail.identified
          else pseudonym)
pos = chosen.index(pseudonym) + 1
outcome = detail.outcome
st.caption(f"Patient {pos} of {len(chosen)} · sex {detail.sex or '—'} · "
           + (f"outcome {outcome.event} at {outcome.time_years:.1f} y" if outcome
              else "no outcome recorded"))

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
                                  if i is not None else None, height=420 if large else 340)
        if font:
            fig.update_layout(font={"size": font})
        # the Streamlit chart theme sets its own (small) fonts: off in projector mode
        st.plotly_chart(fig, key=key(MDT, "risk"), theme=None if large else "streamlit")
        if i is not None:
            st.markdown(mdt_view.why_markdown(view, i))
with top_right:
    choices = patient_view.series_choices(detail.series)
    if not choices:
        st.caption("No complete CT or MR series stored.")
    else:
        uid = next(iter(choices))
        try:
            with st.spinner("Reading the latest scan…"):
                stack = dash.key_stack(ctx, uid)
            st.image(dash.slice_png(ctx, uid, stack.key_index, "liver", True),
                     caption=f"{choices[uid]} · "
                             f"{patient_view.overlay_legend(stack.structures, stack.labels_text)}",
                     width="stretch")
        except HepaTrackError as err:
            shell.show_error(err)

summary = patient_view.summary_table(detail.biomarkers, detail.visits)
if large and not summary.empty:  # an HTML table takes the page's large font
    st.table(summary.style.format({"Latest": "{:.4g}", "Previous": "{:.4g}",
                                   "Change": "{:+.3g}", "At (y)": "{:.1f}"}, na_rep="—"),
             hide_index=True)
elif not large:
    st.dataframe(summary, hide_index=True, key=key(MDT, "biomarkers"),
                 column_config={"Latest": st.column_config.NumberColumn(format="%.4g"),
                                "Previous": st.column_config.NumberColumn(format="%.4g"),
                                "Change": st.column_config.NumberColumn(format="%+.3g"),
                                "At (y)": st.column_config.NumberColumn(format="%.1f")})

# ----------------------------------------------------------------------------- notes
if allowed(who, Permission.VIEW_IDENTIFIED):
    st.subheader("Notes")
    with shell.guard():
        notes = notes_for(dash.use_case_context(ctx), [pseudonym])
    if allowed(who, Permission.WRITE_NOTES):
        with st.form(key(MDT, f"note-{pseudonym}"), clear_on_submit=True):
            text = st.text_area(f"Note for {pseudonym} ({meeting})", key=key(MDT, "note"))
            if st.form_submit_button("Save note", icon=":material/save:"):
                with shell.guard():
                    add_note(dash.use_case_context(ctx), NoteRequest(pseudonym, text, meeting))
                st.rerun()
    for r in notes.itertuples():
        st.markdown(f"**{r.meeting or 'no meeting'}** · {r.author} · "
                    f"{str(r.created_at)[:16]}  \n{r.text}")
    if notes.empty:
        st.caption("No notes yet for this patient.")
