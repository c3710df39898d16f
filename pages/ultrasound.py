"""Ultrasound measurement: choose a series and a frame, place a liver and a kidney ROI (a box
or circle, centre and size in mm on the calibrated image region), read the hepatorenal index,
liver echo texture and depth slope, and save the ROIs with the series (audited)."""

import streamlit as st

from analytics.auth import Permission, allowed
from analytics.features.ultrasound import Roi
from analytics.usecases import ultrasound as us_uc
from analytics.viz.ultrasound import frame_figure
from ui import dash, shell, ultrasound_view
from ui.session import key

PAGE = "ultrasound"

ctx = shell.page_start()
uc = dash.use_case_context(ctx)
st.title("Ultrasound measurement")
with shell.guard():
    series = us_uc.series_list(uc)
if not series:
    st.info("No ultrasound series stored yet: ingest ultrasound files (US or US multi-frame) "
            "on the Ingest page.", icon=":material/inbox:")
    st.stop()
names = {s.series_uid: f"{s.patient} · {s.study_date or 'no date'} · {s.n_frames} frame(s)"
         for s in series}
uid = st.selectbox("Series", list(names), format_func=names.get, key=key(PAGE, "series"))
n_frames = next(s.n_frames for s in series if s.series_uid == uid)
with shell.guard():
    saved = us_uc.saved_rois(uc, uid)
frame_no = st.number_input("Frame", min_value=1, max_value=max(1, n_frames),
                           value=saved.frame + 1 if saved else 1, step=1,
                           key=key(PAGE, f"frame-{uid}"))
with shell.guard():
    frame = us_uc.load_frame(uc, uid, int(frame_no) - 1)
start = {r.role: r for r in saved.rois} if saved else ultrasound_view.default_rois(frame)
if saved:
    st.caption(f"ROIs saved by {saved.author} on frame {saved.frame + 1} are loaded.")


def roi_inputs(role: str, column) -> Roi | None:
    """The widgets of one ROI; None when the kidney ROI is switched off."""
    base = start.get(role) or ultrasound_view.default_rois(frame)[role]
    column.subheader(f"{role.capitalize()} ROI")
    if role == "kidney" and not column.checkbox("Place a kidney cortex ROI", value=True,
                                                key=key(PAGE, f"{role}-on-{uid}")):
        return None
    shape = column.radio("Shape", ["box", "circle"], index=["box", "circle"].index(base.shape),
                         horizontal=True, key=key(PAGE, f"{role}-shape-{uid}"))
    a, b = column.columns(2)
    x = a.number_input("Centre x (mm)", value=float(base.x_mm), step=1.0,
                       key=key(PAGE, f"{role}-x-{uid}"))
    depth = b.number_input("Centre depth (mm)", value=float(base.depth_mm), step=1.0,
                           key=key(PAGE, f"{role}-depth-{uid}"))
    width = a.number_input("Width (mm)" if shape == "box" else "Diameter (mm)",
                           value=float(base.width_mm), min_value=0.1, step=1.0,
                           key=key(PAGE, f"{role}-width-{uid}"))
    height = b.number_input("Height (mm)", value=float(base.height_mm), min_value=0.1,
                            step=1.0, disabled=shape == "circle",
                            key=key(PAGE, f"{role}-height-{uid}"))
    with shell.guard():
        return Roi(role, shape, float(x), float(depth), float(width), float(height))


left, right = st.columns(2)
rois = [r for r in (roi_inputs("liver", left), roi_inputs("kidney", right)) if r is not None]
st.plotly_chart(frame_figure(frame, rois), key=key(PAGE, "frame"))
request = us_uc.RoiRequest(series_uid=uid, frame=int(frame_no) - 1, rois=tuple(rois))
with shell.guard():
    measured = us_uc.measure(uc, request)
hri = measured.values.get("us_hepatorenal_index")
m = st.columns(3)
m[0].metric("Hepatorenal index", "—" if hri is None else f"{hri:.3f}",
            help="Liver over kidney cortex mean grey level; above 1.28 suggests steatosis "
                 "over 5 % (Marshall et al., AJR 2012)")
m[1].metric("Liver grey level, mean", f"{measured.values['us_liver_grey_mean']:.1f}")
m[2].metric("Depth slope (grey level/cm)", f"{measured.values['us_liver_depth_slope']:.2f}",
            help="Uncalibrated, research only")
for w in measured.warnings:
    st.warning(w, icon=":material/warning:")
st.dataframe(ultrasound_view.measurement_table(measured), hide_index=True,
             key=key(PAGE, "table"))
if allowed(dash.actor(ctx), Permission.REVIEW_MASKS):
    if st.button("Save ROIs and measurements", key=key(PAGE, "save"),
                 icon=":material/save:"):
        with shell.guard():
            us_uc.save(uc, request)
        dash.clear()  # the cohort table now holds these values
        st.success(f"Saved: {len(rois)} ROI(s) on frame {int(frame_no)}; the measurements "
                   "join the cohort at the study date.", icon=":material/check:")
else:
    st.caption("Saving ROIs needs the clinician role (review_masks).")
