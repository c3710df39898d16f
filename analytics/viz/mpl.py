"""Matplotlib renderers of the patient figures, for the MDT PDF.

Same inputs and the same data preparation (:mod:`analytics.viz.prep`) as the plotly
builders in :mod:`analytics.viz.risk`, drawn with matplotlib's Agg canvas (no browser,
no display, no global pyplot state, safe in a worker thread). Each function returns PNG
bytes at the requested size.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties

from analytics.viz.palette import NEUTRAL, OKABE_ITO, event_colour, event_symbol
from analytics.viz.prep import (
    RISK_LINE,
    level_text,
    outcome_label,
    risk_axis_title,
    scale_text,
    step_colours,
    step_text,
    trajectory_data,
)

if TYPE_CHECKING:
    from analytics.explain import Trajectory, Waterfall

#: plotly symbol -> matplotlib marker, for the outcome events of the palette
_MARKERS = {"x": "x", "star": "*", "diamond": "D", "square": "s", "circle-open": "o",
            "triangle-up": "^", "triangle-down": "v", "pentagon": "p", "hexagon": "h"}
_BAND_RGBA = (86 / 255, 180 / 255, 233 / 255, 0.28)


def _figure(size_in: tuple[float, float], dpi: int, *, left: float = 0.12,
            bottom: float = 0.16, right: float = 0.98, top: float = 0.9) -> Figure:
    # fixed margins: a constrained or tight layout costs a second draw per figure
    fig = Figure(figsize=size_in, dpi=dpi)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=left, bottom=bottom, right=right, top=top)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    return buf.getvalue()


def _style(ax, font: float) -> None:
    ax.grid(True, color="#E5E5E5", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=font)


def trajectory_png(trajectory: Trajectory, *, outcome_event: str | None = None,
                   outcome_time: float | None = None, selected_time: float | None = None,
                   size_in: tuple[float, float] = (6, 3), dpi: int = 150,
                   font: float = 8) -> bytes:
    """The risk trajectory (see ``analytics.viz.risk.risk_trajectory``) as PNG."""
    return _png(trajectory_figure(trajectory, outcome_event=outcome_event,
                                  outcome_time=outcome_time, selected_time=selected_time,
                                  size_in=size_in, dpi=dpi, font=font))


def trajectory_figure(trajectory: Trajectory, *, outcome_event: str | None = None,
                      outcome_time: float | None = None, selected_time: float | None = None,
                      size_in: tuple[float, float] = (6, 3), dpi: int = 150,
                      font: float = 8) -> Figure:
    """The figure :func:`trajectory_png` draws. The legend stands right of the axes (one
    entry a line), so the figure's height goes to the chart; no text is smaller than
    ``font - 1`` points at ``size_in``."""
    event, horizon = trajectory.event, trajectory.horizon
    fig = _figure(size_in, dpi, left=0.11, bottom=0.24, right=0.7, top=0.88)
    ax = fig.add_subplot()
    _style(ax, font)
    if trajectory.points.empty:
        ax.text(0.5, 0.5, "No visits to score", ha="center", va="center",
                transform=ax.transAxes, fontsize=font + 1)
        return fig
    d = trajectory_data(trajectory, outcome_event=outcome_event, outcome_time=outcome_time,
                        selected_time=selected_time)
    for k, seg in enumerate(d.segments):
        if d.has_interval and np.isfinite(d.low_pct[seg]).all():
            ax.fill_between(d.time[seg], d.low_pct[seg], d.high_pct[seg], color=_BAND_RGBA,
                            linewidth=0, label="95% interval" if k == 0 else None)
        ax.plot(d.time[seg], d.risk_pct[seg], color=RISK_LINE, linewidth=1.8,
                label="Risk" if k == 0 else None)
    scan = d.is_scan & d.assessable
    lab = ~d.is_scan & d.assessable
    if scan.any():
        ax.plot(d.time[scan], d.risk_pct[scan], "o", color=RISK_LINE, markersize=6,
                label="Scan")
    if lab.any():
        ax.plot(d.time[lab], d.risk_pct[lab], "o", markerfacecolor="white",
                markeredgecolor=RISK_LINE, markersize=4, label="Lab visit")
    bad = ~d.assessable
    if bad.any():
        ax.plot(d.time[bad], np.zeros(int(bad.sum())), "x", color=NEUTRAL, markersize=6,
                label="Not assessable (no risk)", clip_on=False)
    label = outcome_label(outcome_event, outcome_time)
    if label:
        colour = event_colour(outcome_event)
        ax.axvline(outcome_time, color=colour, linestyle="--", linewidth=1.2)
        ax.plot([outcome_time], [d.y_max * 0.94], _MARKERS.get(event_symbol(outcome_event),
                                                               "o"),
                color=colour, markersize=8, label=label,
                markerfacecolor="none" if outcome_event == "censored" else colour)
    if selected_time is not None:
        i = int(np.argmin(np.abs(d.time - selected_time)))
        if d.assessable[i]:
            ax.plot([d.time[i]], [d.risk_pct[i]], "o", markersize=13, markerfacecolor="none",
                    markeredgecolor=OKABE_ITO["reddish_purple"], markeredgewidth=2,
                    label="Explained visit")
    ax.set_ylim(0, d.y_max)
    ax.set_xlabel("Years since baseline", fontsize=font)
    ax.set_ylabel(f"Risk within {horizon:g} y (%)", fontsize=font)
    ax.set_title(risk_axis_title(event, horizon).replace(" (%)", ""), fontsize=font + 1,
                 loc="left")
    ax.yaxis.set_major_formatter(lambda v, _p: f"{v:g}%")
    ax.legend(fontsize=font - 1, loc="center left", bbox_to_anchor=(1.02, 0.5),
              frameon=False)
    return fig


#: points between a y tick label and the axis (tick length plus its pad, matplotlib's defaults)
_TICK_PAD_PT = 3.5 + 3.5


def _fit_label(fig: Figure, text: str, size: float, room_px: float) -> str:
    """``text``, shortened with "…" until it is at most ``room_px`` wide at ``size`` points
    (measured with the figure's renderer: a label longer than the margin is cut off at the
    figure's edge, not wrapped)."""
    prop = FontProperties(size=size)
    renderer = fig.canvas.get_renderer()

    def width(t: str) -> float:
        return renderer.get_text_width_height_descent(t, prop, ismath=False)[0]

    if width(text) <= room_px:
        return text
    cut = len(text)
    while cut > 1 and width(text[:cut].rstrip() + "…") > room_px:
        cut -= 1
    return text[:cut].rstrip() + "…"


def waterfall_png(waterfall: Waterfall, *, size_in: tuple[float, float] = (6, 3.2),
                  dpi: int = 150, font: float = 8, title: str | None = None) -> bytes:
    """The SHAP waterfall (see ``analytics.viz.risk.shap_waterfall``) as PNG."""
    return _png(waterfall_figure(waterfall, size_in=size_in, dpi=dpi, font=font, title=title))


def waterfall_figure(waterfall: Waterfall, *, size_in: tuple[float, float] = (6, 3.2),
                     dpi: int = 150, font: float = 8, title: str | None = None) -> Figure:
    """The figure :func:`waterfall_png` draws; feature labels longer than the left margin
    are shortened with "…" so that none runs off the figure's edge."""
    steps = waterfall.steps
    margin = 0.4  # of the figure's width, for the feature labels
    fig = _figure(size_in, dpi, left=margin, bottom=0.19, top=0.9)
    ax = fig.add_subplot()
    _style(ax, font)
    if steps.empty:
        ax.text(0.5, 0.5, "No explanation for this visit", ha="center", va="center",
                transform=ax.transAxes, fontsize=font + 1)
        return fig
    n = len(steps)
    y = np.arange(n)
    shap = steps["shap"].to_numpy(float)
    colours = step_colours(shap)
    for i, r in enumerate(steps.itertuples()):
        if r.kind in ("base", "output"):
            ax.plot([r.end, r.end], [i - 0.4, i + 0.4], color=NEUTRAL, linewidth=3)
            ax.text(r.end, i, f"  {level_text(r.end, waterfall.scale)}", va="center",
                    fontsize=font - 1)
            continue
        left = min(r.start, r.end)
        ax.barh(i, abs(r.shap), left=left, color=colours[i], height=0.6)
        ax.text(max(r.start, r.end), i, f"  {step_text(r.shap, waterfall.scale)}", va="center",
                fontsize=font - 1)
    for i in range(n - 1):
        ax.plot([steps["end"].iloc[i]] * 2, [i + 0.3, i + 0.7], color="#BBBBBB", linewidth=0.8)
    room_px = margin * size_in[0] * dpi - (_TICK_PAD_PT + 2) * dpi / 72
    labels = [_fit_label(fig, t, font - 0.5, room_px) for t in steps["label"]]
    ax.set_yticks(y, labels, fontsize=font - 0.5)
    ax.invert_yaxis()
    span = np.concatenate([steps["start"].to_numpy(float), steps["end"].to_numpy(float)])
    pad = 0.25 * max(1e-6, span.max() - span.min())
    ax.set_xlim(span.min() - pad * 0.3, span.max() + pad)
    ax.set_xlabel(f"Contribution ({scale_text(waterfall.scale, waterfall.horizon)})",
                  fontsize=font)
    if title:
        ax.set_title(title, fontsize=font + 1, loc="left")
    return fig


def calibration_png(curves: pd.DataFrame, horizon: float, *,
                    size_in: tuple[float, float] = (2.4, 2.2), dpi: int = 150,
                    font: float = 8) -> bytes:
    """The calibration curve at ``horizon`` with the diagonal (see
    ``analytics.viz.models.calibration_plot``) as PNG."""
    return _png(calibration_figure(curves, horizon, size_in=size_in, dpi=dpi, font=font))


def calibration_figure(curves: pd.DataFrame, horizon: float, *,
                       size_in: tuple[float, float] = (2.4, 2.2), dpi: int = 150,
                       font: float = 8) -> Figure:
    """The figure :func:`calibration_png` draws."""
    fig = _figure(size_in, dpi, left=0.26, bottom=0.3, top=0.84, right=0.95)
    ax = fig.add_subplot()
    _style(ax, font)
    part = curves[np.isclose(curves["horizon"].astype(float), horizon)] \
        if not curves.empty else curves
    if part.empty:
        ax.text(0.5, 0.5, "no calibration data", ha="center", va="center",
                transform=ax.transAxes, fontsize=font)
        return fig
    top = min(100.0, max(5.0, float(np.nanmax(part[["predicted", "observed"]].to_numpy()))
                         * 110))
    ax.plot([0, top], [0, top], ":", color=NEUTRAL, linewidth=1)
    ax.plot(part["predicted"] * 100, part["observed"] * 100, color=RISK_LINE, linewidth=1.6)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("Predicted (%)", fontsize=font)
    ax.set_ylabel("Observed (%)", fontsize=font)
    ax.set_title(f"Calibration at {horizon:g} y", fontsize=font + 0.5, loc="left")
    return fig
