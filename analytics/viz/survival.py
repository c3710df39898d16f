"""Cohort risk figures (plotly): observed cumulative incidence by risk group with numbers
at risk, and the distribution of current risk.

Inputs come from :mod:`analytics.usecases.overview` (estimates computed there with lifelines).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analytics.viz.palette import NEUTRAL, apply_layout, series_colour
from analytics.viz.prep import GROUP_STYLE, event_text, risk_axis_title


def _style(group: str, k: int) -> tuple[str, str]:
    return GROUP_STYLE.get(group, (series_colour(k), "solid"))


def incidence_by_risk_group(gi, *, height: int = 480) -> go.Figure:
    """Observed cumulative incidence per risk group, with numbers at risk underneath.

    Parameters
    ----------
    gi
        ``analytics.usecases.overview.GroupIncidence``.

    Returns
    -------
    plotly.graph_objects.Figure
        Row 1: per group a translucent 95% band and a step line (``line_shape="hv"``)
        named ``"<group> (n=N, E events)"``; row 2: the numbers at risk as text, one line
        per group, at whole years.
    """
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.78, 0.22],
                        vertical_spacing=0.06)
    groups = gi.groups.set_index("group")
    order = list(groups.index)
    for k, name in enumerate(order):
        colour, dash = _style(name, k)
        part = gi.curves[gi.curves["group"] == name]
        x = part["time"].to_numpy(float)
        rgb = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
        fig.add_trace(go.Scatter(
            x=np.concatenate([x, x[::-1]]),
            y=np.concatenate([part["upper"].to_numpy(float),
                              part["lower"].to_numpy(float)[::-1]]) * 100,
            fill="toself", fillcolor=f"rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, 0.12)",
            line={"width": 0, "shape": "hv"}, hoverinfo="skip", showlegend=False,
            name=f"{name} 95% CI"), row=1, col=1)
        g = groups.loc[name]
        fig.add_trace(go.Scatter(
            x=x, y=part["cif"].to_numpy(float) * 100, mode="lines", line_shape="hv",
            line={"color": colour, "dash": dash, "width": 2.5},
            name=f"{name} (n={int(g['n'])}, {int(g['events'])} events)",
            hovertemplate=f"{name}: " + "%{y:.1f}% by %{x:.1f} y<extra></extra>"),
            row=1, col=1)
    for k, name in enumerate(order):
        colour, _ = _style(name, k)
        ar = gi.at_risk[gi.at_risk["group"] == name]
        fig.add_trace(go.Scatter(
            x=ar["time"], y=[name] * len(ar), mode="text",
            text=[str(int(n)) for n in ar["n_at_risk"]], textfont={"color": colour},
            showlegend=False, hovertemplate=f"{name}: " + "%{text} at risk at %{x:g} y"
            "<extra></extra>"), row=2, col=1)
    fig.update_yaxes(title=f"Observed {event_text(gi.event)} (%)", ticksuffix="%",
                     rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title="At risk", categoryorder="array",
                     categoryarray=list(reversed(order)), showgrid=False, row=2, col=1)
    fig.update_xaxes(title="Years after the first visit", row=2, col=1)
    # the estimator and the grouping are named in the caption beside the chart
    fig = apply_layout(fig, height=height)
    fig.update_layout(margin={"t": 80})
    return fig


#: what the dashed lines of :func:`risk_distribution` are
CUTS_NOTE = "Dashed: risk-group cut-offs, set on first-visit risk"


def risk_distribution(risk: pd.DataFrame, *, event: str, horizon: float,
                      cuts: list[float] | None = None, height: int = 300) -> go.Figure:
    """Histogram of each patient's current risk (latest assessable visit).

    Parameters
    ----------
    risk
        ``analytics.usecases.overview.cohort_risk`` output.
    cuts
        Risk-group cut points (fractions), drawn as dashed lines, each labelled with its
        value. They are the thirds of the risk at the *first* visit (the incidence by
        risk group follows patients from that visit, so the groups may use nothing seen
        later), not of the current risk drawn here, and the figure says so.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Histogram`` trace of risk in percent (assessable patients only).
    """
    values = pd.to_numeric(risk["risk"], errors="coerce").dropna().to_numpy() * 100
    fig = go.Figure()
    if len(values) == 0:
        fig.add_annotation(text="No assessable patient", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
        return apply_layout(fig, height=180)
    fig.add_trace(go.Histogram(x=values, nbinsx=min(40, max(8, len(values) // 5)),
                               marker={"color": series_colour(0)}, name="Patients",
                               hovertemplate="%{x}%: %{y} patients<extra></extra>"))
    shapes, notes = [], []
    for k, c in enumerate(cuts or []):
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": c * 100,
                       "x1": c * 100, "y0": 0, "y1": 1,
                       "line": {"dash": "dash", "color": NEUTRAL}})
        notes.append({"x": c * 100, "y": 1, "xref": "x", "yref": "paper",
                      "text": f"{100 * c:.1f}%", "showarrow": False, "yanchor": "bottom",
                      # the first value left of its line, the others right: close cut-offs
                      # do not overlap
                      "xanchor": "right" if k == 0 else "left",
                      "font": {"size": 11, "color": NEUTRAL}})
    if cuts:
        notes.append({"x": 1, "y": 1.12, "xref": "paper", "yref": "paper",
                      "xanchor": "right", "yanchor": "bottom", "showarrow": False,
                      "text": CUTS_NOTE, "font": {"size": 11, "color": NEUTRAL}})
        fig.update_layout(shapes=shapes, annotations=notes)
    fig.update_xaxes(title=risk_axis_title(event, horizon), ticksuffix="%")
    fig.update_yaxes(title="Patients")
    fig.update_layout(showlegend=False, bargap=0.05)
    fig = apply_layout(fig, height=height)
    if cuts:  # room above the plot for the cut-off values and the note
        fig.layout.margin.t = 60
    return fig
