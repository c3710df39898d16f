"""MDT page helpers: the meeting list in session state, the "why" line and the
projector mode's style, chart and caption (the PDF pack is in :mod:`ui.mdt_pack`)."""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd
import streamlit as st

from analytics.explain import Trajectory, why_text
from analytics.usecases.keyimage import OVERLAYS
from analytics.usecases.mdt import parse_meeting_list
from ui.session import key

MDT = "mdt"
LIST_KEY = key(MDT, "patients")
CURRENT_KEY = key(MDT, "current")
PASTE_KEY = key(MDT, "paste")
UNKNOWN_KEY = key(MDT, "unknown")

#: projector mode: one patient per screen, large text. The app header and the sidebar
#: fold away (the page's toggle brings them back) and the page's padding shrinks. Every
#: size is in "projector pixels" (``--pu``): 1 px on a 1280 x 720 screen, 1.5 px on
#: 1920 x 1080 (the smaller of the height's and the width's ratio, never below 1 px), so
#: the text and the key image grow with the screen and the layout that fits 1280 x 720
#: fills a larger screen the same way. The page is one screen high: the patient's
#: summary (``mdt-screen``) takes the height the rows above and below leave, and the
#: risk chart in it whatever its column leaves (never under :data:`PROJECTOR_FIGURE_HEIGHT`
#: projector pixels), drawn at the height of its box (``height="stretch"``).
LARGE_FONT_CSS = """
<style>
:root { --pu: max(1px, min(calc(100vh / 720), calc(100vw / 1280))); }
[data-testid="stHeader"], [data-testid="stSidebar"],
[data-testid="stSidebarCollapsedControl"] { display: none !important; }
[data-testid="stMainBlockContainer"] {
  padding: calc(var(--pu) * 8) calc(var(--pu) * 24) calc(var(--pu) * 4) !important;
  max-width: 100% !important; }
[data-testid="stMain"] [data-testid="stVerticalBlock"] { gap: calc(var(--pu) * 6) !important; }
[data-testid="stMain"] p, [data-testid="stMain"] li, [data-testid="stMain"] label,
[data-testid="stMain"] [data-testid="stMarkdownContainer"],
[data-testid="stMain"] [data-testid="stTable"] td,
[data-testid="stMain"] [data-testid="stTable"] th,
[data-testid="stMain"] [data-testid="stExpander"] summary,
[data-testid="stMain"] button p { font-size: calc(var(--pu) * 19) !important;
  line-height: 1.4 !important; }
[data-testid="stMain"] [data-testid="stCaptionContainer"],
[data-testid="stMain"] [data-testid="stCaptionContainer"] p {
  font-size: calc(var(--pu) * 16) !important; line-height: 1.35 !important; }
.st-key-mdt-facts [data-testid="stCaptionContainer"],
.st-key-mdt-facts [data-testid="stCaptionContainer"] p {
  font-size: calc(var(--pu) * 19) !important; color: inherit !important; }
[data-testid="stMain"] [data-testid="stMetricValue"],
[data-testid="stMain"] [data-testid="stMetricValue"] * {
  font-size: calc(var(--pu) * 40) !important; line-height: 1.15 !important; }
[data-testid="stMain"] [data-testid="stMetricLabel"],
[data-testid="stMain"] [data-testid="stMetricLabel"] * {
  font-size: calc(var(--pu) * 18) !important; }
[data-testid="stMain"] h1 { font-size: calc(var(--pu) * 38) !important; }
[data-testid="stMain"] h2, [data-testid="stMain"] h3 {
  font-size: calc(var(--pu) * 30) !important; padding: 0 !important; }
[data-testid="stMain"] [data-testid="stBaseButton-secondary"],
[data-testid="stMain"] [data-baseweb="select"] > div {
  min-height: calc(var(--pu) * 38) !important; }
[data-testid="stMainBlockContainer"] { min-height: 100vh !important; display: flex !important;
  flex-direction: column !important; box-sizing: border-box !important; }
[data-testid="stMainBlockContainer"] > [data-testid="stVerticalBlock"],
[data-testid="stLayoutWrapper"]:has(> .st-key-mdt-screen), .st-key-mdt-screen,
.st-key-mdt-screen > [data-testid="stLayoutWrapper"],
.st-key-mdt-screen > * > [data-testid="stHorizontalBlock"],
.st-key-mdt-screen > * > * > [data-testid="stColumn"] > [data-testid="stVerticalBlock"] {
  flex: 1 1 auto !important; }
.st-key-mdt-screen > * > * > [data-testid="stColumn"] { display: flex !important;
  flex-direction: column !important; }
.st-key-mdt-risk { flex: 1 1 auto !important; min-height: calc(var(--pu) * 262) !important; }
.st-key-mdt-keyimage img { height: calc(var(--pu) * 236) !important; width: auto !important;
  max-width: 100% !important; object-fit: contain; }
</style>
"""
#: the chart's font size (px) in projector mode at 1280 x 720
LARGE_FIGURE_FONT = 18
#: the chart's least height in projector mode (projector pixels: px at 1280 x 720); as the
#: figure's own height it is the least Streamlit draws (a taller box draws it taller)
PROJECTOR_FIGURE_HEIGHT = 262
#: the parts of a patient's MDT record, in the order they are asked
RECORD_PARTS = ("question", "discussion", "decision")
#: what a visit that could not be scored is called on the projected chart
NOT_SCORED = "not scored"


def projector_figure(fig: Any, font_size: int) -> None:
    """Large text for the projector without labels running into each other: the legend
    (a wrapped row of long names at this size) gives way to the metric above the chart,
    and the axis title to the metric's label ("Risk within 3 y"). A visit that could not
    be scored keeps its marker at 0 %, labelled "not scored" (once, at the first such
    visit; the hover gives each one's reason), drawn whole over the axis."""
    fig.update_layout(font={"size": font_size}, showlegend=False,
                      height=PROJECTOR_FIGURE_HEIGHT,
                      margin={"l": 70, "r": 16, "t": 24, "b": 56})
    fig.update_yaxes(title={"text": "Risk (%)"})
    for trace in fig.data:
        if trace.name == "Not assessable":
            n = len(trace.x)
            trace.update(mode="markers+text", cliponaxis=False,
                         text=[NOT_SCORED] + [""] * (n - 1), textposition="top right",
                         textfont={"color": "#555555", "size": font_size - 2},
                         hovertext=[f"{t:.2f} y: not scored" for t in trace.x],
                         hovertemplate="%{hovertext}<extra></extra>")


def projector_chart(fig: Any, chart_key: str) -> None:
    """Draw the risk chart in projector mode (:func:`projector_figure`) at the height of
    its box, which :data:`LARGE_FONT_CSS` sizes by the screen; the Streamlit chart theme
    sets its own (small) fonts, so it is off here."""
    projector_figure(fig, LARGE_FIGURE_FONT)
    st.plotly_chart(fig, key=chart_key, theme=None, height="stretch")


def projector_caption(series: pd.DataFrame, uid: str, structures: tuple[str, ...]) -> str:
    """The key image's caption in projector mode, short:
    ``"2020-04-22 · CT · unenhanced"``, then the outlined organs with their colours
    (``"liver green, spleen orange, hepatic vessels blue"``)."""
    row = series[series["series_uid"] == uid]
    head = ""
    if not row.empty:
        r = row.iloc[0]
        when = (pd.Timestamp(r["study_date"]).strftime("%Y-%m-%d")
                if pd.notna(r["study_date"]) else "date unknown")
        phase = str(r["contrast_phase"]).replace("_", " ") if r.get("contrast_phase") else ""
        head = " · ".join(x for x in (when, str(r["modality"]), phase) if x)
    colours = {"#009E73": "green", "#E69F00": "orange", "#56B4E9": "blue"}
    outlined = ", ".join(f"{label.lower()} {colours.get(colour, '')}".strip()
                         for name, _b, colour, label in OVERLAYS if name in structures)
    return f"{head} · {outlined}" if outlined else head


def record_key(part: str, pseudonym: str, meeting: str) -> str:
    """Widget key of one part (or the ``"form"``) of a patient's record of a meeting."""
    digest = hashlib.sha256(meeting.encode()).hexdigest()[:10]
    return key(MDT, f"record-{part}-{pseudonym}-{digest}")


def step(delta: int) -> None:
    """Callback of the previous/next buttons: move through the meeting list."""
    patients = st.session_state.get(LIST_KEY) or []
    if not patients:
        return
    cur = st.session_state.get(CURRENT_KEY)
    i = patients.index(cur) if cur in patients else 0
    st.session_state[CURRENT_KEY] = patients[max(0, min(len(patients) - 1, i + delta))]


def add_pasted(options: list[str]) -> None:
    """Callback of "Add to the meeting list": append the pasted pseudonyms that are known.

    Runs before the page script, so it may write the multiselect's key (a handler in the
    script body runs after the widget exists, and Streamlit refuses the write).

    Parameters
    ----------
    options
        The pseudonyms the meeting list offers; pasted entries outside it are kept under
        :data:`UNKNOWN_KEY` for the page's warning.
    """
    found, unknown = parse_meeting_list(st.session_state.get(PASTE_KEY) or "", options)
    current = list(st.session_state.get(LIST_KEY) or [])
    st.session_state[LIST_KEY] = current + [p for p in found if p not in current]
    st.session_state[UNKNOWN_KEY] = unknown


def paste_list(options: list[str]) -> None:
    """The "Paste a list of pseudonyms" expander; unknown entries are named in a warning."""
    with st.expander("Paste a list of pseudonyms"):
        st.text_area("Pseudonyms (comma, space or one per line)", key=PASTE_KEY)
        # a callback: the list's widget key may only be written before the widget is drawn
        st.button("Add to the meeting list", key=key(MDT, "add_pasted"), on_click=add_pasted,
                  args=(options,))
        if st.session_state.get(UNKNOWN_KEY):
            st.warning("Not in the store: " + ", ".join(st.session_state[UNKNOWN_KEY]),
                       icon=":material/person_off:")


def why_markdown(trajectory: Trajectory, i: int, top: int = 3) -> str:
    """The largest contributions of visit ``i`` in words, the "Why:" in bold
    (:mod:`analytics.explain.wording` writes the sentences)."""
    text = why_text(trajectory.why(i, top))
    return text.replace("Why:", "**Why:**", 1)
