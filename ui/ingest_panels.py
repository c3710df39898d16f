"""The Ingest page's panels for stored studies that wait on a person: identity conflicts
held for a clinician's decision, and series stored invalid or incomplete to mend."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from analytics.audit import Actor
from analytics.auth import Permission, allowed
from analytics.errors import HepaTrackError
from ui import ingest_view, shell
from ui.format import column_config
from ui.loaders import AppContext
from ui.session import key

INGEST = "ingest"


def held_panel(ctx: AppContext, who: Actor, done: Callable[[str], None], *,
               resolved_key: str) -> None:
    """Studies held as identity conflicts, and a clinician's decision on one of them;
    ``done(message)`` after a decision (the series filed go under ``resolved_key``)."""
    held = ingest_view.held_studies(ctx.store, who)
    if held.empty:
        return
    st.subheader("Identity conflicts")
    one = len(held) == 1
    st.warning(f"{len(held)} {'study carries' if one else 'studies carry'} the Patient ID of "
               f"a stored patient but other identity fields. {'It is' if one else 'They are'} "
               "stored, but filed under no patient and not scored until a clinician decides.",
               icon=":material/person_alert:")
    st.dataframe(held, hide_index=True, column_config=column_config(held),
                 key=key(INGEST, "held_table"))
    if not allowed(who, Permission.VIEW_IDENTIFIED):
        st.caption("A clinician resolves these: the decision needs the identified fields.")
        return
    c = st.columns([2, 1, 1])
    choices = ingest_view.hold_choices(held)
    hold = c[0].selectbox("Held study", list(choices), key=key(INGEST, "hold"),
                          format_func=lambda h: choices.get(h, f"hold {h}"))
    for col, decision, label in ((c[1], "same", "Same patient"),
                                 (c[2], "different", "Different patient")):
        if col.button(label, key=key(INGEST, f"resolve-{decision}"),
                      help="same: file it under the stored patient; different: under a "
                           "patient of its own, with its own pseudonym"):
            try:
                out = ingest_view.resolve_held(ctx.store, ctx.settings, who, hold, decision)
            except HepaTrackError as err:
                shell.show_error(err)
            else:
                st.session_state.setdefault(resolved_key, {}).update(out.series)
                done(out.message)


def repair_panel(ctx: AppContext, who: Actor, done: Callable[[str], None]) -> None:
    """Series stored invalid or incomplete: complete, replace or remove one;
    ``done(message)`` after the change."""
    unfinished = ingest_view.unfinished_series(ctx.store, who)
    if unfinished.empty:
        return
    st.subheader("Series to mend")
    st.caption("Series stored invalid or incomplete are not scored. Complete one with the "
               "re-sent files (an intact copy replaces the broken instance with the same SOP "
               "Instance UID), replace it with another series, or remove it.")
    st.dataframe(unfinished, hide_index=True, column_config=column_config(unfinished),
                 key=key(INGEST, "unfinished"))
    uid = st.selectbox("Series", unfinished["series_uid"].tolist(),
                       key=key(INGEST, "repair_series"))
    sent = st.file_uploader("Re-sent or replacement files", accept_multiple_files=True,
                            key=key(INGEST, "repair_files"))
    c = st.columns(3)
    action = None
    if c[0].button("Complete with these files", disabled=not sent, key=key(INGEST, "complete")):
        action = "complete"
    if c[1].button("Replace with these files", disabled=not sent, key=key(INGEST, "replace")):
        action = "replace"
    sure = c[2].checkbox("Yes, remove this series", key=key(INGEST, "remove_ok"))
    if c[2].button("Remove series", disabled=not sure, key=key(INGEST, "remove")):
        action = "remove"
    if action is not None:
        files = [(f.name, f.getvalue()) for f in sent or []]
        try:
            with st.spinner("Working on the series"):
                message = ingest_view.repair_series(ctx.store, ctx.settings, who, action, uid,
                                                    files)
        except HepaTrackError as err:
            shell.show_error(err)
        else:
            done(message)
