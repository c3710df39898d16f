"""Patient risk figures (plotly): trajectory with its interval band, SHAP waterfall, the
change since the last scan, competing-event cumulative incidence and the visit timeline.

Inputs are the explanation stage's types (:class:`analytics.explain.Trajectory` and what it
returns); the matplotlib twins for the PDF are in :mod:`analytics.viz.mpl` and share
:mod:`analytics.viz.prep`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analytics.viz.palette import (
    DIGIT_PX,
    LEGEND_GAP_PX,
    LEGEND_ROW_PX,
    NEUTRAL,
    OKABE_ITO,
    PAGE_CHART_PX,
    TEXT_PX,
    X_TITLE_BOTTOM_PX,
    Y_TITLE_LEFT_PX,
    apply_layout,
    event_colour,
    event_symbol,
    figure,
    layout_look,
    legend_rows,
    series_colour,
)
from analytics.viz.prep import (
    RISK_BAND,
    RISK_LINE,
    TrajectoryData,
    event_text,
    level_text,
    outcome_label,
    risk_axis_title,
    scale_text,
    step_colours,
    step_text,
    trajectory_data,
)

if TYPE_CHECKING:
    from analytics.explain import ChangeSinceScan, IncidenceCurves, Trajectory, Waterfall


def _empty(text: str, height: int = 220) -> go.Figure:
    return figure([], {
        "annotations": [{"text": text, "showarrow": False, "x": 0.5, "y": 0.5,
                         "xref": "paper", "yref": "paper"}],
        "xaxis": {"visible": False}, "yaxis": {"visible": False}}, height=height)


def risk_trajectory(trajectory: Trajectory, *, outcome_event: str | None = None,
                    outcome_time: float | None = None, selected_time: float | None = None,
                    height: int = 380) -> go.Figure:
    """Risk at every visit with its 95% interval band, scan markers and the outcome.

    Parameters
    ----------
    trajectory
        :func:`analytics.explain.patient_trajectory` output (its endpoint and horizon
        name the axis).
    outcome_event, outcome_time
        How and when follow-up ended (years since baseline); drawn as a dashed line with
        the event's symbol.
    selected_time
        The visit shown in the explanation charts (ringed).

    Returns
    -------
    plotly.graph_objects.Figure
        Traces, in order: one ``95% interval`` band per run of assessable visits (when
        the model gives intervals), ``Risk`` line(s), ``Scan`` and ``Lab visit`` markers,
        ``Not assessable`` markers (at 0, with the reason on hover), the outcome marker,
        the selected-visit ring. Risks are in percent.
    """
    if trajectory.points.empty:
        return _empty("No visits to score")
    d = trajectory_data(trajectory, outcome_event=outcome_event, outcome_time=outcome_time,
                        selected_time=selected_time)
    layout: dict = {
        "xaxis": {"title": {"text": "Years since baseline"}},
        "yaxis": {"title": {"text": risk_axis_title(trajectory.event, trajectory.horizon)},
                  "range": [0, d.y_max], "ticksuffix": "%"}}
    data = [*_band_and_line(d), *_visit_markers(d), *_unassessable_markers(d),
            *_outcome_marker(d, layout), *_selected_ring(d)]
    lay = layout_look(layout, height=height)
    lay["margin"] = _trajectory_margins(d.y_max, [t["name"] for t in data
                                                  if t.get("showlegend", True)])
    return figure(data, lay, look=False)


def _trajectory_margins(y_max: float, legend: list[str]) -> dict:
    """Margins (px) that hold the risk axis's ticks and title and the legend above the
    plot as plotly lays them out at the page's width (:data:`PAGE_CHART_PX`), so it lays
    the chart out once: ``"35%"`` ticks need 77 px; one legend row 46 px above the plot,
    two 75 (given 48 and 78: plotly places the legend at a fraction of the plot's height,
    and the theme's legend font may be a pixel taller)."""
    left = Y_TITLE_LEFT_PX + DIGIT_PX * (len(str(int(y_max))) + 1)
    rows = legend_rows(legend, PAGE_CHART_PX - left - 20) if legend else 0
    return {"l": left, "r": 20, "t": LEGEND_GAP_PX + LEGEND_ROW_PX * rows if rows else 20,
            "b": X_TITLE_BOTTOM_PX}


def _band_and_line(d: TrajectoryData) -> list[dict]:
    """The interval band and the risk line, broken at unassessable visits."""
    out = []
    for k, seg in enumerate(d.segments):
        if d.has_interval and np.isfinite(d.low_pct[seg]).all():
            out.append({
                "type": "scatter",
                "x": np.concatenate([d.time[seg], d.time[seg][::-1]]),
                "y": np.concatenate([d.high_pct[seg], d.low_pct[seg][::-1]]),
                "fill": "toself", "fillcolor": RISK_BAND, "line": {"width": 0},
                "hoverinfo": "skip", "name": "95% interval", "legendgroup": "band",
                "showlegend": k == 0})
    for k, seg in enumerate(d.segments):
        out.append({"type": "scatter", "x": d.time[seg], "y": d.risk_pct[seg],
                    "mode": "lines", "name": "Risk",
                    "line": {"color": RISK_LINE, "width": 2.5}, "legendgroup": "risk",
                    "showlegend": k == 0, "hoverinfo": "skip"})
    return out


def _visit_markers(d: TrajectoryData) -> list[dict]:
    """``Scan`` (filled) and ``Lab visit`` (open) markers with date and interval on hover."""
    custom = np.array([[d.date[i] or "", d.low_pct[i], d.high_pct[i]]
                       for i in range(len(d.time))], dtype=object)
    band = ("" if not d.has_interval
            else " (95% CI %{customdata[1]:.1f}-%{customdata[2]:.1f}%)")
    out = []
    for label, sel, symbol, size in (("Scan", d.is_scan & d.assessable, "circle", 12),
                                     ("Lab visit", ~d.is_scan & d.assessable, "circle-open",
                                      8)):
        if not sel.any():
            continue
        out.append({
            "type": "scatter", "x": d.time[sel], "y": d.risk_pct[sel], "mode": "markers",
            "name": label,
            "marker": {"symbol": symbol, "size": size, "color": RISK_LINE,
                       "line": {"width": 2, "color": RISK_LINE}},
            "customdata": custom[sel],
            "hovertemplate": (f"{label} at %{{x:.2f}} y (%{{customdata[0]}})<br>"
                              "risk %{y:.1f}%" + band + "<extra></extra>")})
    return out


def _unassessable_markers(d: TrajectoryData) -> list[dict]:
    bad = ~d.assessable
    if not bad.any():
        return []
    return [{"type": "scatter", "x": d.time[bad], "y": np.zeros(int(bad.sum())),
             "mode": "markers", "name": "Not assessable",
             "marker": {"symbol": "x-thin-open", "size": 11, "color": NEUTRAL,
                        "line": {"width": 2, "color": NEUTRAL}},
             "text": [d.reason[i] or "" for i in np.flatnonzero(bad)],
             "hovertemplate": "%{x:.2f} y: not assessable<br>%{text}<extra></extra>"}]


def _outcome_marker(d: TrajectoryData, layout: dict) -> list[dict]:
    """The outcome's marker; its dashed vertical line goes into ``layout``'s shapes."""
    label = outcome_label(d.outcome_event, d.outcome_time)
    if not label:
        return []
    colour = event_colour(d.outcome_event)
    layout.setdefault("shapes", []).append({
        "type": "line", "x0": d.outcome_time, "x1": d.outcome_time, "xref": "x",
        "y0": 0, "y1": 1, "yref": "y domain", "line": {"dash": "dash", "color": colour}})
    return [{"type": "scatter", "x": [d.outcome_time], "y": [d.y_max * 0.96],
             "mode": "markers+text", "name": label, "text": [label],
             "textposition": "middle left",
             "marker": {"symbol": event_symbol(d.outcome_event), "size": 14, "color": colour,
                        "line": {"width": 2, "color": colour}},
             "hovertemplate": label + "<extra></extra>"}]


def _selected_ring(d: TrajectoryData) -> list[dict]:
    if d.selected_time is None:
        return []
    i = int(np.argmin(np.abs(d.time - d.selected_time)))
    if not d.assessable[i]:
        return []
    return [{"type": "scatter", "x": [d.time[i]], "y": [d.risk_pct[i]], "mode": "markers",
             "name": "Selected visit",
             "marker": {"symbol": "circle-open", "size": 22,
                        "color": OKABE_ITO["reddish_purple"],
                        "line": {"width": 3, "color": OKABE_ITO["reddish_purple"]}},
             "hoverinfo": "skip"}]


def shap_waterfall(waterfall: Waterfall, *, title: str | None = None,
                   height: int | None = None) -> go.Figure:
    """Horizontal waterfall from the base to the score of one visit.

    Parameters
    ----------
    waterfall
        :meth:`analytics.explain.Trajectory.waterfall` output: on the ``points`` scale
        from the base risk to the risk (percent, steps in percentage points), else from
        the base value to the model output.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Waterfall`` trace: ``absolute`` base, ``relative`` steps (raising steps
        vermillion, lowering blue), ``total`` output; top to bottom in that order; the
        x axis names the scale.
    """
    steps = waterfall.steps
    if steps.empty:
        return _empty("No explanation for this visit")
    base, scale = waterfall.base_value, waterfall.scale
    measure, x, text = [], [], []
    for r in steps.itertuples():
        if r.kind == "base":
            measure.append("absolute")
            x.append(base)
            text.append(level_text(base, scale))
        elif r.kind == "output":
            measure.append("total")
            x.append(0.0)
            text.append(level_text(r.end, scale))
        else:
            measure.append("relative")
            x.append(float(r.shap))
            text.append(step_text(float(r.shap), scale))
    ends = np.concatenate([steps["start"].to_numpy(float), steps["end"].to_numpy(float),
                           [0.0]])
    trace = {
        "type": "waterfall", "orientation": "h", "measure": measure,
        "y": steps["label"].tolist(), "x": x, "text": text, "textposition": "outside",
        "name": "SHAP", "increasing": {"marker": {"color": OKABE_ITO["vermillion"]}},
        "decreasing": {"marker": {"color": OKABE_ITO["blue"]}},
        "totals": {"marker": {"color": NEUTRAL}},
        "connector": {"line": {"color": "#BBBBBB", "width": 1}},
        "hovertemplate": "%{y}: %{text}<extra></extra>", "cliponaxis": False}
    layout = {
        "yaxis": {"autorange": "reversed"},
        # room for the value labels outside the bars on both sides
        "xaxis": {"title": {"text": f"Contribution ({scale_text(scale, waterfall.horizon)})"},
                  "range": _padded(ends)},
        "showlegend": False}
    lay = _label_room(layout_look(layout, title=title, height=height or 120 + 32 * len(steps)),
                      text)
    lay["margin"]["l"] = _tick_label_room(trace["y"])
    return figure([trace], lay, look=False)


#: approximate width of one character of the 13-px figure font, px
_CHAR_PX = 7.5


def _room_for_labels(fig: go.Figure, texts: list[str]) -> go.Figure:
    """Keep the value labels outside the bars and the axis title inside the figure
    (:func:`_label_room` on a built figure). Returns ``fig``."""
    fig.layout = go.Layout(_label_room(fig.layout.to_plotly_json(), texts))
    return fig


#: room (px) left of the longest category label besides its characters
_LABEL_PAD_PX = 36


def _tick_label_room(labels: list[str]) -> int:
    """A left margin (px) that holds the longest category label of a horizontal bar chart
    (plotly needed 249 px for 43 characters, 402 for 71, 444 for 81), so its automatic margin
    has nothing to grow and lays the chart out once; it still grows it for an unusually
    wide label."""
    return int(np.ceil(_LABEL_PAD_PX + TEXT_PX * max((len(str(t)) for t in labels),
                                                     default=0)))


def _label_room(layout: dict, texts: list[str]) -> dict:
    """A right margin that holds the longest value label (a bar that ends at the range's
    edge puts its label in the margin: "36.1%" was cut at a 20-px margin), and automatic
    margins for the tick labels and the axis title, set in the plain ``layout`` (returned)."""
    longest = max((len(t) for t in texts), default=0)
    layout["margin"] = {**layout.get("margin", {}), "r": max(20, int(np.ceil(8 + _CHAR_PX * longest))),
                        "b": X_TITLE_BOTTOM_PX}
    layout["xaxis"] = {**layout.get("xaxis", {}), "automargin": True}
    layout["yaxis"] = {**layout.get("yaxis", {}), "automargin": True}
    return layout


def _padded(values: np.ndarray, pad: float = 0.22) -> list[float]:
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    w = max(hi - lo, 1e-6)
    return [lo - pad * w, hi + pad * w]


def change_chart(change: ChangeSinceScan, *, height: int | None = None) -> go.Figure:
    """Bars of how much each feature moved the score since the reference visit.

    Parameters
    ----------
    change
        :meth:`analytics.explain.Trajectory.change_since_scan` output.

    Returns
    -------
    plotly.graph_objects.Figure
        One horizontal ``Bar`` trace, largest change at the top; raising changes
        vermillion, lowering blue; the title names the reference visit and the change of
        risk in percentage points.
    """
    changes = change.changes
    if changes.empty or change.reference_kind is None:
        return _empty("No earlier assessable scan or visit to compare with", height=160)
    vals = changes["change"].to_numpy(float)
    # the label with the patient's value (and an imaging biomarker's change since the
    # previous scan) when the change table carries it
    names = changes["text"] if "text" in changes else changes["label"]
    fig = go.Figure(go.Bar(
        x=vals, y=names.tolist(), orientation="h", marker={"color":
                                                                      step_colours(vals)},
        text=[step_text(v, change.scale) for v in vals], textposition="outside",
        name="Change", hovertemplate="%{y}: %{x:+.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title=None)
    fig.update_xaxes(title=f"Change of contribution ({scale_text(change.scale)})"
                     if change.scale in ("log_hazard", "points")
                     else "Change of contribution", range=_padded(np.append(vals, 0.0)))
    fig.update_traces(cliponaxis=False)
    fig.update_layout(showlegend=False)
    fig = _room_for_labels(apply_layout(fig, title=change.text,
                                        height=height or 110 + 30 * len(changes)),
                           [step_text(v, change.scale) for v in vals])
    fig.layout.margin.l = _tick_label_room(names.tolist())
    return fig


def competing_incidence(incidence: IncidenceCurves, *, height: int = 320) -> go.Figure:
    """Predicted cumulative incidence of the endpoint and each competing cause.

    Parameters
    ----------
    incidence
        :func:`analytics.explain.incidence_curves` output (the visit it starts from
        names the axis).

    Returns
    -------
    plotly.graph_objects.Figure
        One line per cause (endpoint first), in percent, starting at 0.
    """
    curves = incidence.curves
    if curves.empty:
        return _empty("No cumulative incidence to show")
    fig = go.Figure()
    for k, (cause, part) in enumerate(curves.groupby("cause", sort=False)):
        x = np.concatenate([[0.0], part["time"].to_numpy(float)])
        y = np.concatenate([[0.0], part["cif"].to_numpy(float) * 100])
        name = event_text(part["label"].iloc[0])
        colour = RISK_LINE if cause == "interest" else event_colour(part["label"].iloc[0]) \
            if "," not in part["label"].iloc[0] else series_colour(k)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name[:1].upper() + name[1:],
                                 line={"color": colour, "width": 2.5,
                                       "dash": "solid" if cause == "interest" else "dash"},
                                 hovertemplate="%{x:.1f} y: %{y:.1f}%<extra>" + name
                                 + "</extra>"))
    fig.update_xaxes(title=f"Years after the visit at {incidence.visit_time:.1f} y")
    fig.update_yaxes(title="Cumulative incidence (%)", rangemode="tozero", ticksuffix="%")
    return apply_layout(fig, height=height)


_MODALITY_WORDS = {"CT": "CT", "MR": "MR", "US": "Ultrasound"}


def _scan_kind(modality: object) -> str:
    """'CT', 'Ultrasound', 'MR, Ultrasound' for a study's modalities; 'Scan' if unknown."""
    if not isinstance(modality, str) or not modality:
        return "Scan"
    return ", ".join(_MODALITY_WORDS.get(m.strip(), m.strip()) for m in modality.split(","))


def patient_timeline(*, scans: pd.DataFrame, visits: pd.DataFrame,
                     outcome_event: str | None = None, outcome_time: float | None = None,
                     outcome_date: str | None = None, height: int = 200) -> go.Figure:
    """Scans, lab draws and the outcome of one patient on lanes over years since baseline.

    Parameters
    ----------
    scans
        ``time_years`` and ``study_date`` (and optionally ``modality``) of each study.
    visits
        ``time_years`` and ``visit_date`` of each lab draw.

    Returns
    -------
    plotly.graph_objects.Figure
        ``Scan`` and ``Lab draw`` marker traces on their own lanes, then the outcome (its
        event's colour and symbol) on the ``Outcome`` lane.
    """
    fig = go.Figure()
    lanes = []

    def _dates(col: pd.Series) -> list[str]:
        return [pd.Timestamp(x).strftime("%Y-%m-%d") if pd.notna(x) else "date unknown"
                for x in col]

    if not scans.empty and scans["time_years"].notna().any():
        s = scans[scans["time_years"].notna()]
        kinds = (s["modality"] if "modality" in s else pd.Series([None] * len(s))).tolist()
        fig.add_trace(go.Scatter(
            x=s["time_years"], y=["Scans"] * len(s), mode="markers", name="Scan",
            marker={"symbol": "square", "size": 13, "color": OKABE_ITO["blue"]},
            text=_dates(s["study_date"]),
            customdata=[_scan_kind(k) for k in kinds],
            hovertemplate="%{customdata} %{text} (%{x:.2f} y)<extra></extra>"))
        lanes.append("Scans")
    if not visits.empty and visits["time_years"].notna().any():
        v = visits[visits["time_years"].notna()]
        fig.add_trace(go.Scatter(
            x=v["time_years"], y=["Lab draws"] * len(v), mode="markers", name="Lab draw",
            marker={"symbol": "line-ns-open", "size": 14, "color": OKABE_ITO["orange"],
                    "line": {"width": 2, "color": OKABE_ITO["orange"]}},
            text=_dates(v["visit_date"]),
            hovertemplate="Lab draw %{text} (%{x:.2f} y)<extra></extra>"))
        lanes.append("Lab draws")
    label = outcome_label(outcome_event, outcome_time)
    if label:
        colour = event_colour(outcome_event)
        fig.add_trace(go.Scatter(
            x=[outcome_time], y=["Outcome"], mode="markers+text", name=label, text=[label],
            textposition="middle left",
            marker={"symbol": event_symbol(outcome_event), "size": 15, "color": colour,
                    "line": {"width": 2, "color": colour}},
            hovertemplate=label + (f" ({outcome_date})" if outcome_date else "")
            + "<extra></extra>"))
        lanes.append("Outcome")
    if not lanes:
        return _empty("No dated scans, lab draws or outcome", height=140)
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(lanes)), title=None)
    fig.update_xaxes(title="Years since baseline")
    fig.update_layout(showlegend=False)
    return apply_layout(fig, height=max(height, 90 + 45 * len(lanes)))
