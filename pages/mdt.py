"""MDT meeting page: build the meeting list, walk through one-screen patient summaries
(projector mode: one patient per screen, sized by the screen), record each patient's
question, discussion and decision, keep notes, export the PDF pack."""

import datetime as dt

import streamlit as st

from analytics.auth import Permission, allowed
from analytics.usecases.mdt import meeting_name
from ui import (
    dash,
    loaders,
    mdt_pack,
    mdt_record,
    mdt_screen,
    mdt_view,
    patient_view,
    shell,
    tables,
)
from ui.mdt_view import CURRENT_KEY, LIST_KEY, MDT
from ui.session import key

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

# ----------------------------------------------------------------------------- model, pack
with shell.guard():
    model_id = dash.active_model_id(ctx)
with setup:
    model, horizon = mdt_screen.model_and_horizon(ctx, model_id)
    mdt_pack.pack_controls(ctx, who, chosen, model=model, horizon=horizon, meeting=meeting,
                           day=day)

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
uc = dash.use_case_context(ctx)
identified = allowed(who, Permission.VIEW_IDENTIFIED)
record = mdt_record.saved_record(uc, pseudonym, meeting) if identified else None
mdt_screen.heading(detail, pseudonym, chosen.index(pseudonym) + 1, len(chosen))
view = mdt_screen.trajectory(ctx, model_id, pseudonym, horizon)

# projector mode: this block takes the screen's height left by the rows around it
top_left, top_right = st.container(key=key(MDT, "screen")).columns([3, 2])
with top_left:
    if view is not None:
        mdt_screen.risk_panel(view, horizon, detail, large)
    mdt_record.question_and_decision(record)
with top_right:
    mdt_screen.key_image(ctx, detail, large)
    if view is not None and view.latest_index() is not None:
        st.markdown(mdt_view.why_markdown(view, view.latest_index()))

if not large:
    patient_view.show_summary(detail.biomarkers, detail.visits, key(MDT, "biomarkers"))

# ----------------------------------------------------------------------------- record, notes
if identified:
    mdt_record.record_section(uc, who, pseudonym, meeting, record, large)
if identified and not large:
    mdt_record.notes_section(uc, who, pseudonym, meeting)
