"""Ingest page: upload files, folders and zips, or link studies from a PACS (DICOMweb);
feature extraction starts by itself afterwards, then the patients of the new scans are
scored (their new risk shown here). The work runs in a background job."""

import datetime as dt

import streamlit as st

from analytics.auth import Permission, allowed
from analytics.errors import HepaTrackError
from ui import dash, ingest_panels, ingest_risk, ingest_view, jobs, shell
from ui.format import column_config
from ui.session import key

INGEST = "ingest"
JOB_KEY = key(INGEST, "job")
#: series UID -> (outcome, patient) of the held series resolved on this page
RESOLVED_KEY = key(INGEST, "resolved")

ctx = shell.page_start()
st.title("Ingest")
who = dash.actor(ctx)
if not allowed(who, Permission.INGEST) or not dash.page_allowed(ctx, "pages/ingest.py"):
    dash.deny(ctx, "ingest data")
ingest_view.warm_features(ctx.settings)  # workers ready before the first upload ends


def start_job(label: str, fn) -> None:
    st.session_state[JOB_KEY] = jobs.start(label, fn)


def job_panel() -> None:
    job: jobs.Job | None = st.session_state.get(JOB_KEY)
    if job is None:
        return
    result = dash.settled_job(job)
    if result is None:
        return
    if not st.session_state.get(key(INGEST, f"seen-{job.id}")):
        st.session_state[key(INGEST, f"seen-{job.id}")] = True
        dash.clear()  # new series and features: cohort-level caches are stale
        st.rerun(scope="app")
    resolved = st.session_state.get(RESOLVED_KEY)
    c = ingest_view.counts(result, resolved)
    m = st.columns(6 if c["held_instances"] else 5)
    m[0].metric("Series stored", c["series"])
    m[1].metric("Instances", c["instances"] - c["held_instances"],
                help="filed under a patient")
    m[2].metric("Already stored", c["duplicates"], help="instances or masks received again")
    m[3].metric("Refused", c["refused"])
    m[4].metric("Features extracted", c["features"], help="series")
    if c["held_instances"]:
        m[5].metric("Held for identity review", f"{c['held_instances']} instances",
                    help="stored, filed under no patient until a clinician decides")
    if c["warnings"]:
        st.warning(f"{c['warnings']} series stored with identifiers HepaTrack filled in "
                   "(derived UIDs, UIDs from the file meta or an assigned Patient ID): "
                   "see the warning column.", icon=":material/warning:")
    if result.get("needs_mask"):
        st.warning(f"{len(result['needs_mask'])} MR series without a liver mask: "
                   "no liver or spleen values for them (see the reason column).",
                   icon=":material/warning:")
    if c["held"]:
        st.warning(f"{c['held']} series held as identity conflicts: stored, but filed under "
                   "no patient and not scored until resolved (see Identity conflicts below).",
                   icon=":material/person_alert:")
    try:
        ingest_risk.show_new_risk(ctx, result.get("risk"), INGEST)
    except HepaTrackError as err:
        shell.show_error(err)
    table = ingest_view.result_table(result, resolved)
    st.dataframe(table, hide_index=True, column_config=column_config(table),
                 key=key(INGEST, "result"))


busy = bool(st.session_state.get(JOB_KEY)) and st.session_state[JOB_KEY].running
upload_tab, pacs_tab = st.tabs(["Upload", "PACS (DICOMweb)"])

with upload_tab:
    st.caption("DICOM files, zip archives or whole folders (CT or MR series, with SEG, "
               "RTSTRUCT or NIfTI masks). Files are validated, de-identified and stored; "
               "file names are never used as paths.")
    left, right = st.columns(2)
    files = left.file_uploader("Files or zip archives", accept_multiple_files=True,
                               key=key(INGEST, "files"))
    folder = right.file_uploader("A folder", accept_multiple_files="directory",
                                 key=key(INGEST, "folder"))
    chosen = list(files or []) + list(folder or [])
    label_text = st.text_input(
        "NIfTI label table (label maps only)", key=key(INGEST, "labels"),
        placeholder="5=liver,1=spleen  or  totalsegmentator-v2",
        help="Which value of a NIfTI label map is which structure. Not needed for binary "
             "masks named after their structure (liver.nii.gz) or for TotalSegmentator "
             "files that carry their own label table.")
    extract = st.checkbox("Extract imaging biomarkers afterwards", value=True,
                          key=key(INGEST, "extract"))
    assign = st.text_input("Patient ID for files without one", key=key(INGEST, "assign"),
                           help="Anonymised exports often leave Patient ID (0010,0020) empty; "
                                "such images are refused unless you name the patient here. "
                                "A file's own Patient ID is never replaced.")
    if st.button(f"Ingest {len(chosen)} file(s)", type="primary", disabled=busy or not chosen,
                 key=key(INGEST, "go"), icon=":material/upload:"):
        try:
            labels = ingest_view.label_table(label_text)
        except HepaTrackError as err:
            shell.show_error(err)
        else:
            # read the bytes here: upload objects belong to the script thread
            payload = [(f.name, f.getvalue()) for f in chosen]
            start_job("Ingest", lambda job: ingest_view.ingest_uploads_job(
                job, ctx.store, ctx.settings, who, payload, extract=extract, labels=labels,
                assign_patient=assign.strip() or None))

with pacs_tab:
    endpoints = {p.name: p for p in ctx.settings.pacs}
    if not endpoints:
        st.info("No PACS configured. Add a `[[pacs]]` entry (url, and credentials if "
                "needed) to config.toml in the home folder, or set HEPATRACK_PACS_URL.",
                icon=":material/lan:")
    else:
        with st.form(key(INGEST, "search")):
            c = st.columns(4)
            name = c[0].selectbox("PACS", list(endpoints), key=key(INGEST, "pacs"))
            patient_id = c[1].text_input("Patient ID", key=key(INGEST, "patient_id"))
            modality = c[2].selectbox("Modality", ["CT", "MR", "any"],
                                      key=key(INGEST, "modality"))
            since = c[3].date_input("Studies since", value=None,
                                    max_value=dt.date.today(), key=key(INGEST, "since"))
            searched = st.form_submit_button("Search", icon=":material/search:")
        if searched:
            try:
                st.session_state[key(INGEST, "found")] = ingest_view.search_pacs(
                    ctx.store, who, endpoints[name], settings=ctx.settings,
                    patient_id=patient_id.strip() or None,
                    modality=None if modality == "any" else modality,
                    date_range=(since, None) if since else None)
            except HepaTrackError as err:
                shell.show_error(err)
        found = st.session_state.get(key(INGEST, "found"))
        if found is not None:
            shown = found if ctx.viewer.identified else found.drop(
                columns=["patient_name", "patient_id"])
            if found.empty:
                st.warning("No study matches.", icon=":material/search_off:")
            else:
                picked = st.dataframe(shown.drop(columns=["url"]), hide_index=True,
                                      on_select="rerun", selection_mode="multi-row",
                                      key=key(INGEST, "found_table"))
                rows = picked.selection.rows if picked is not None else []
                if st.button(f"Link and ingest {len(rows)} study(ies)", type="primary",
                             disabled=busy or not rows, key=key(INGEST, "link")):
                    urls = found.iloc[rows]["url"].tolist()
                    start_job("PACS link", lambda job: ingest_view.link_pacs_job(
                        job, ctx.store, ctx.settings, who, urls, name))

# polled while the job runs only: its end is drawn within POLL_S, and an idle page reruns
# nothing
st.fragment(job_panel, run_every=jobs.poll_every(st.session_state.get(JOB_KEY)))()


def _done(message: str) -> None:
    st.session_state[key(INGEST, "done")] = message
    dash.clear()  # a study filed or a series changed: cohort-level caches are stale
    st.rerun()


done = st.session_state.pop(key(INGEST, "done"), None)
if done:
    st.success(done, icon=":material/check_circle:")
with shell.guard():
    ingest_panels.held_panel(ctx, who, _done, resolved_key=RESOLVED_KEY)
    ingest_panels.repair_panel(ctx, who, _done)
