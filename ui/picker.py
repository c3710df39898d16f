"""The Patient page's patient picker: a search over the store, not the whole list.

The picker offers the current patient, the patients found by the search box (at most
``loaders.PICKER_LIMIT``, found in the database with a ``LIMIT``) and the patients this
session opened recently; never the whole cohort, whose labels (tens of thousands at a
large site) would travel to the browser on every rerun.

- The selection keeps its widget key ``key(PATIENT, "pseudonym")``: a link
  ``?patient=HT-…`` (``ui.session.adopt_query_param``) still selects that patient, and
  the choice is written back to the URL (``publish_query_param``).
- Roles: a pseudonymised viewer searches and sees pseudonyms only; an identified viewer
  (clinician) also searches by name and real patient ID, and the labels show them
  (``loaders.picker_search``: the view decides, never the viewer's text).
- A search that finds exactly one patient, or names one exactly (pseudonym or, for
  identified viewers, real patient ID), opens that patient at once.
"""

from __future__ import annotations

import streamlit as st

from ui import loaders
from ui.session import PATIENT, adopt_query_param, key, publish_query_param

SELECTED = key(PATIENT, "pseudonym")
SEARCH = key(PATIENT, "find")
RECENT = key(PATIENT, "recent")
#: how many recently opened patients the picker keeps offering
RECENT_KEPT = 8


def _exact(text: str, found: loaders.Choices) -> str | None:
    """The one patient ``text`` names: the only one found, or the one whose pseudonym
    or (identified views only: ``found`` holds no real IDs otherwise) real patient ID is
    ``text`` exactly, ignoring case."""
    if len(found.options) == 1:
        return found.options[0]
    wanted = text.strip().casefold()
    hits = [p for p in found.options if p.casefold() == wanted
            or found.real_ids.get(p, "").casefold() == wanted]
    return hits[0] if len(hits) == 1 else None


def _searched(ctx: loaders.AppContext) -> None:
    """On a new search: open the patient it names exactly (see :func:`_exact`)."""
    text = (st.session_state.get(SEARCH) or "").strip()
    if not text:
        return
    chosen = _exact(text, loaders.picker_search(ctx, text))
    if chosen is not None:
        st.session_state[SELECTED] = chosen


def _remember(pseudonym: str) -> None:
    recent = [p for p in st.session_state.get(RECENT, []) if p != pseudonym]
    st.session_state[RECENT] = [pseudonym, *recent][:RECENT_KEPT]


def choose_patient(ctx: loaders.AppContext) -> str | None:
    """Draw the search box and the picker; the chosen patient's pseudonym (None when
    the store has no patient). Warns when a linked patient is not in the store."""
    wanted = st.query_params.get("patient")
    linked = loaders.picker_named(ctx, (wanted,)) if wanted else loaders.Choices()
    missing = adopt_query_param("patient", SELECTED, list(linked.options))
    if missing:
        st.warning(f"Patient “{missing}” is not in the store.", icon=":material/person_off:")
    identified = ctx.viewer.identified
    text = st.text_input(
        "Find a patient",
        key=SEARCH, on_change=_searched, args=(ctx,),
        placeholder="Name, patient ID or pseudonym" if identified else "Pseudonym",
        help=("Part of a name, a patient ID or a pseudonym; Enter opens the patient it "
              "names" if identified else "Part of a pseudonym; Enter opens the patient "
              "it names"))
    found = loaders.picker_search(ctx, text)
    current = st.session_state.get(SELECTED)
    kept = loaders.picker_named(
        ctx, tuple(p for p in (current, *st.session_state.get(RECENT, [])) if p))
    labels = {**kept.labels, **found.labels}
    if current not in kept.options:  # nothing chosen yet, or no longer in the store
        first = loaders.picker_search(ctx, "", limit=1)
        current = first.options[0] if first.options else None
        labels |= first.labels
    if current is None:
        st.info("No patients in the store yet.", icon=":material/person_off:")
        return None
    st.session_state[SELECTED] = current
    recent = [p for p in st.session_state.get(RECENT, []) if p in kept.options]
    options = list(dict.fromkeys([current, *found.options, *recent]))
    if text.strip() and not found.options:
        st.caption(f"No patient matches “{text.strip()}”.")
    elif text.strip() and len(found.options) == loaders.PICKER_LIMIT:
        st.caption(f"The first {loaders.PICKER_LIMIT} matches: type more to narrow them.")
    pseudonym = st.selectbox("Patient", options, key=SELECTED,
                             format_func=lambda p: labels.get(p, p),
                             help="The current patient, the patients found and the "
                                  "patients opened recently")
    _remember(pseudonym)
    publish_query_param("patient", SELECTED, pseudonym)
    return pseudonym
