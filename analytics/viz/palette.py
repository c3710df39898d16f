"""Colour-blind-safe colours (Okabe & Ito, 2008, "Color Universal Design").

The eight Okabe-Ito colours stay distinguishable under protanopia, deuteranopia and
tritanopia. Meaning is never carried by colour alone: figures pair each colour with a
marker symbol or a label.
"""

from __future__ import annotations

import functools
import json

import plotly.graph_objects as go

#: the eight Okabe-Ito colours, as published (sRGB hex)
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}

#: trace order for categorical data; yellow last because it is faint on white
QUALITATIVE: tuple[str, ...] = tuple(OKABE_ITO[k] for k in (
    "blue", "orange", "bluish_green", "vermillion", "sky_blue", "reddish_purple", "black",
    "yellow"))

#: neutral grey for censoring and for context lines (not a category colour)
NEUTRAL = "#7F7F7F"
GRID = "#E5E5E5"

#: fixed colours for the outcome events named in the cohort CSV format
EVENT_COLOURS: dict[str, str] = {
    "censored": NEUTRAL,
    "death": OKABE_ITO["black"],
    "transplant": OKABE_ITO["blue"],
    "decompensation": OKABE_ITO["vermillion"],
    "hcc": OKABE_ITO["reddish_purple"],
}
#: marker symbols paired with event colours, so events differ by shape as well
EVENT_SYMBOLS: dict[str, str] = {
    "censored": "circle-open",
    "death": "x",
    "transplant": "star",
    "decompensation": "diamond",
    "hcc": "square",
}
_SPARE_COLOURS = (OKABE_ITO["orange"], OKABE_ITO["bluish_green"], OKABE_ITO["sky_blue"],
                  OKABE_ITO["yellow"])
_SPARE_SYMBOLS = ("triangle-up", "triangle-down", "pentagon", "hexagon")


def _spare_index(event: str) -> int:
    # a stable index from the name, so an event keeps its colour across pages and runs
    return sum(event.encode()) % len(_SPARE_COLOURS)


def event_colour(event: str | None) -> str:
    """Colour of an outcome event; unknown events get a stable spare Okabe-Ito colour."""
    if event is None:
        return NEUTRAL
    key = event.strip().lower()
    return EVENT_COLOURS.get(key) or _SPARE_COLOURS[_spare_index(key)]


def event_symbol(event: str | None) -> str:
    """Marker symbol of an outcome event (pairs with :func:`event_colour`)."""
    if event is None:
        return "circle-open"
    key = event.strip().lower()
    return EVENT_SYMBOLS.get(key) or _SPARE_SYMBOLS[_spare_index(key)]


def series_colour(i: int) -> str:
    """The ``i``-th categorical colour (cycles after eight)."""
    return QUALITATIVE[i % len(QUALITATIVE)]


def layout_look(lay: dict, *, title: str | None = None, height: int | None = None) -> dict:
    """The shared look merged into the plain layout dict ``lay`` (changed and returned):
    white background, light grid, Okabe-Ito colourway, legend above the plot."""
    look: dict = {
        "template": "none", "paper_bgcolor": "white", "plot_bgcolor": "white",
        "colorway": list(QUALITATIVE),
        "margin": {"l": 60, "r": 20, "t": 50 if title else 20, "b": 50},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        "font": {"size": 13},
    }
    if title:
        look["title"] = {"text": title}
    if height is not None:
        look["height"] = height
    for k, v in look.items():
        lay[k] = {**lay[k], **v} if isinstance(v, dict) and isinstance(lay.get(k), dict) else v
    axes = [k for k in lay if k.startswith(("xaxis", "yaxis"))] or []
    for k in {*axes, "xaxis", "yaxis"}:
        lay[k] = {**lay.get(k, {}), "gridcolor": GRID, "zeroline": False}
    return lay


#: what plotly's automatic margins settle on for the shared look's 13-px labels in the
#: dashboard's font (Source Sans, which Streamlit's chart theme sets), measured in
#: Chromium. A chart whose margins already hold its labels and legend is laid out once;
#: one whose margins plotly has to grow is laid out again (its first drawing took about
#: twice as long), and a patient switch draws each chart anew (a new figure is a new
#: element)
TEXT_PX = 5.2  # mean width of one character of words and numbers (4.7-5.3 measured)
LEGEND_ENTRY_PX = 44  # one horizontal legend entry besides its text: symbol and gaps
LEGEND_ROW_PX = 30  # one row of a horizontal legend (29 measured, 1 px spare)
LEGEND_GAP_PX = 18  # between a legend at y 1.02 (above the plot) and the top (1 px spare)
X_TITLE_BOTTOM_PX = 67  # below the plot: x tick labels and an x axis title
Y_TITLE_LEFT_PX = 56  # left of the plot besides the y tick labels: a y axis title
DIGIT_PX = 7  # one character of a tick label
#: the width a Patient page chart is laid out for: the main column of a 1280-px window
#: (a narrower window may need more legend rows: plotly then grows the margin itself)
PAGE_CHART_PX = 820


def legend_rows(names: list[str], width_px: float) -> int:
    """Rows a horizontal legend of ``names`` fills in ``width_px`` (entries wrap whole)."""
    rows, used = 1, 0.0
    for name in names:
        w = LEGEND_ENTRY_PX + TEXT_PX * len(name)
        if used and used + w > width_px:
            rows, used = rows + 1, 0.0
        used += w
    return rows


def apply_layout(fig: go.Figure, *, title: str | None = None, height: int | None = None
                 ) -> go.Figure:
    """Shared look (:func:`layout_look`) applied to a built figure. Returns ``fig``.

    The layout is merged as a plain dict and assigned once: plotly's ``update_layout`` /
    ``update_xaxes`` and a named template (deep-copied on assignment) cost ~15 ms per
    figure, most of the time the patient page spends drawing.
    """
    fig.layout = go.Layout(layout_look(fig.layout.to_plotly_json(), title=title,
                                       height=height))
    return fig


@functools.cache
def _template_none() -> str:
    # what plotly makes of the named template "none", as JSON (read once)
    return json.dumps(go.Layout(template="none").template.to_plotly_json())


def figure(data: list[dict], layout: dict, *, title: str | None = None,
           height: int | None = None, look: bool = True) -> go.Figure:
    """A figure with the shared look from plain trace and layout dicts, the same figure
    plotly builds from them property by property, without that per-property validation
    (~50 ms per chart, most of a patient switch's figure time); each builder's output is
    validated by the tests instead. ``look=False``: ``layout`` already has the look
    (:func:`layout_look`, then changes of the builder's own).
    """
    lay = layout_look(layout, title=title, height=height) if look else layout
    lay["template"] = json.loads(_template_none())
    return go.Figure({"data": data, "layout": lay}, _validate=False)
