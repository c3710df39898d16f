"""The Patient page's key images: the scan picker, the stored key slice (other slices,
windows and outlines off rendered on demand) and the review of automatic outlines."""

from __future__ import annotations

import streamlit as st

from analytics import auth, masks_review
from analytics.errors import HepaTrackError
from analytics.store.repo import PatientDetail
from analytics.usecases import mask_review
from analytics.usecases.mdt_facts import no_series_text
from ui import dash, patient_view, shell
from ui.loaders import AppContext
from ui.session import PATIENT, key


def show_key_images(ctx: AppContext, detail: PatientDetail, pseudonym: str) -> None:
    """Draw the scan picker of the patient's complete CT/MR series and the chosen one's
    key image with its slice, window and outline controls; the caption of why there is
    none when the patient has no such series."""
    choices = patient_view.series_choices(detail.series)
    if not choices:
        st.caption(no_series_text(detail.visits))
        return
    uid = st.selectbox("Scan", list(choices), format_func=choices.get,
                       key=key(PATIENT, f"series-{pseudonym}"))
    try:
        with st.spinner("Reading the series…"):
            stack = dash.key_view(ctx, uid)  # stored; the other slices read when shown
    except HepaTrackError as err:
        shell.show_error(err)
        return
    left, right = st.columns([3, 2])
    with right:
        k, window, overlay = _slice_controls(detail, stack, uid)
    with left:
        try:
            with st.spinner("Reading the series…"):
                png = dash.key_png(ctx, stack, k, window, overlay)
            st.image(png,
                     caption="Radiological view: patient's right on the left, anterior "
                             "at the top" + (" · automatic segmentation" if stack.automatic
                                             else ""),
                     width="stretch")
        except HepaTrackError as err:
            shell.show_error(err)
    review = patient_view.reviewable_outlines(stack.labels_text)
    if review and auth.allowed(dash.actor(ctx), auth.Permission.REVIEW_MASKS):
        _review_outlines(ctx, stack, uid, review)


def _slice_controls(detail: PatientDetail, stack, uid: str) -> tuple[int, str, bool]:
    """The slice slider, the CT window and the outlines toggle with what they show;
    returns the slice (0-based), the window and whether outlines are drawn."""
    k = st.slider("Slice", 1, stack.n_slices, stack.key_index + 1,
                  key=key(PATIENT, f"slice-{uid}"),
                  help="Slices around the liver (two beyond it at each end), inferior "
                       "to superior; the default is the largest liver "
                       "cross-section. The scan picker counts every slice of "
                       "the series") - 1
    window = "liver"
    if stack.modality == "CT":
        window = st.radio("Window", list(patient_view.WINDOW_LABELS),
                          format_func=patient_view.WINDOW_LABELS.get,
                          key=key(PATIENT, "window"))
    overlay = st.toggle("Organ outlines", value=True, key=key(PATIENT, "overlay"))
    st.caption(patient_view.overlay_legend(stack.structures, stack.labels_text))
    shown = patient_view.slice_text(
        k, stack, patient_view.series_slices(detail.series, uid))
    st.caption(f"{shown} · z {stack.z_mm[k]:.0f} mm · "
               f"liver {stack.liver_area_cm2(k):.0f} cm² · pixel "
               f"{stack.pixel_mm:.2f} mm")
    for note in stack.notes:
        st.caption(f"⚠ {note}")
    return k, window, overlay


def _review_outlines(ctx: AppContext, stack, uid: str, review: dict[str, str]) -> None:
    """Reject an automatic outline with a reason, or restore a rejected one."""
    with st.expander("Review the automatic outlines", icon=":material/rule:"):
        organ = st.selectbox("Outline", list(review), format_func=review.get,
                             key=key(PATIENT, f"review-organ-{uid}"))
        if stack.labels_text[organ].startswith("automatic, rejected"):
            if st.button("Restore the automatic outline",
                         key=key(PATIENT, f"restore-{uid}")):
                with shell.guard():
                    mask_review.restore_mask(dash.use_case_context(ctx),
                                             mask_review.MaskReviewRequest(uid, organ))
                dash.clear()
                st.rerun()
        else:
            reason = st.text_input(
                "Why is the outline wrong?", max_chars=masks_review.MAX_REASON,
                key=key(PATIENT, f"review-reason-{uid}"),
                help="Rejecting withholds every number measured on this outline: "
                     "here, in exports and in the cohort the models learn from")
            if st.button("Reject the automatic outline", type="primary",
                         key=key(PATIENT, f"reject-{uid}")):
                with shell.guard():
                    mask_review.reject_mask(dash.use_case_context(ctx),
                                            mask_review.MaskReviewRequest(uid, organ,
                                                                          reason))
                dash.clear()
                st.rerun()
