"""Model figures (plotly): calibration curves, time-dependent AUC over landmark times and
global SHAP drivers. Inputs come from :mod:`analytics.usecases.model_admin`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analytics.viz.palette import NEUTRAL, apply_layout, series_colour

if TYPE_CHECKING:
    from analytics.explain import ClinicalImportance

_DASHES = ("solid", "dash", "dot", "dashdot")


def calibration_plot(curves: pd.DataFrame, *, height: int = 380) -> go.Figure:
    """Observed against predicted risk per horizon, with the line of perfect calibration.

    Parameters
    ----------
    curves
        ``analytics.usecases.model_admin.calibration_curves`` (``horizon``, ``predicted``,
        ``observed``; fractions).

    Returns
    -------
    plotly.graph_objects.Figure
        ``Perfect calibration`` diagonal, then one line per horizon (``"<h> y"``), in
        percent; colour and dash both differ between horizons.
    """
    fig = go.Figure()
    if curves.empty:
        fig.add_annotation(text="No calibration data stored with this model", showarrow=False,
                           x=0.5, y=0.5, xref="paper", yref="paper")
        return apply_layout(fig, height=200)
    top = float(np.nanmax(curves[["predicted", "observed"]].to_numpy(float))) * 100
    top = min(100.0, max(5.0, top * 1.1))
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="Perfect calibration",
                             line={"color": NEUTRAL, "dash": "dot"}, hoverinfo="skip"))
    for k, (h, part) in enumerate(curves.groupby("horizon", sort=True)):
        fig.add_trace(go.Scatter(
            x=part["predicted"] * 100, y=part["observed"] * 100, mode="lines",
            name=f"{h:g} y", line={"color": series_colour(k), "width": 2.5,
                                   "dash": _DASHES[k % len(_DASHES)]},
            hovertemplate=f"{h:g} y: predicted " + "%{x:.1f}%, observed %{y:.1f}%"
            "<extra></extra>"))
    fig.update_xaxes(title="Predicted risk (%)", range=[0, top], ticksuffix="%")
    fig.update_yaxes(title="Observed risk (%)", range=[0, top], ticksuffix="%")
    return apply_layout(fig, height=height)


def td_auc_plot(td: pd.DataFrame, *, height: int = 340) -> go.Figure:
    """Time-dependent AUC at each landmark time, one line per horizon.

    Parameters
    ----------
    td
        ``analytics.usecases.model_admin.td_auc_by_landmark`` (``landmark``, ``horizon``,
        ``td_auc``, ``n``, ``events``).

    Returns
    -------
    plotly.graph_objects.Figure
        A dotted ``Chance`` line at 0.5, then one lines+markers trace per horizon.
    """
    fig = go.Figure()
    if td.empty or td["td_auc"].notna().sum() == 0:
        fig.add_annotation(text="No per-landmark discrimination stored with this model",
                           showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        return apply_layout(fig, height=200)
    xs = td["landmark"].to_numpy(float)
    fig.add_trace(go.Scatter(x=[xs.min(), xs.max()], y=[0.5, 0.5], mode="lines", name="Chance",
                             line={"color": NEUTRAL, "dash": "dot"}, hoverinfo="skip"))
    for k, (h, part) in enumerate(td.groupby("horizon", sort=True)):
        part = part.sort_values("landmark")
        fig.add_trace(go.Scatter(
            x=part["landmark"], y=part["td_auc"], mode="lines+markers", name=f"{h:g} y",
            line={"color": series_colour(k), "dash": _DASHES[k % len(_DASHES)]},
            customdata=np.column_stack([part["n"].to_numpy(), part["events"].to_numpy()]),
            hovertemplate=f"{h:g} y at landmark " + "%{x:.1f} y: AUC %{y:.3f}"
            " (n=%{customdata[0]}, events %{customdata[1]})<extra></extra>"))
    fig.update_xaxes(title="Landmark time (years since baseline)")
    low = float(np.nanmin(td["td_auc"].to_numpy(float)))
    fig.update_yaxes(title="Time-dependent AUC", range=[min(0.3, low - 0.05), 1.0])
    return apply_layout(fig, height=height)


def drivers_bar(drivers: ClinicalImportance, *, top: int = 15, height: int | None = None,
                scale: str = "points") -> go.Figure:
    """Mean absolute contribution per clinical feature, largest at the top.

    Parameters
    ----------
    drivers
        :func:`analytics.explain.clinical_importance` output.
    scale
        ``points``: percentage points of the risk at the drivers' horizon (the clinic's
        scale, as on the Patient page; needs ``mean_abs_points``); ``model``: the model's
        own scale (mean |SHAP| on the log relative hazard or the risk).
    """
    points = scale == "points" and "mean_abs_points" in drivers.table \
        and drivers.table["mean_abs_points"].notna().any()
    column = "mean_abs_points" if points else "mean_abs_shap"
    d = drivers.table.sort_values(column, ascending=False, kind="stable").head(top)
    log_hazard = drivers.scale == "log_hazard"
    # on the log scale the hover also gives the factor on the hazard, exp(effect)
    hover = ("%{y}: %{x:.1f} percentage points" if points
             else "%{y}: %{x:.3f} on the log relative hazard (hazard x %{customdata:.2f})"
             if log_hazard else "%{y}: %{x:.3f} on the risk")
    fig = go.Figure(go.Bar(x=d[column], y=d["label"], orientation="h",
                           marker={"color": series_colour(0)},
                           name="mean |contribution|" if points else "mean |SHAP|",
                           customdata=np.exp(d["mean_abs_shap"].to_numpy(float)),
                           hovertemplate=hover + "<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title=None)
    fig.update_xaxes(title=driver_axis_title(drivers, "points" if points else "model"))
    fig.update_layout(showlegend=False)
    return apply_layout(fig, height=height or 120 + 26 * len(d))


def driver_axis_title(drivers: ClinicalImportance, scale: str = "model") -> str:
    """The global drivers' unit in words: ``"Mean size of the contribution (percentage
    points of the 3-year risk), 200 training rows"`` (``scale`` ``points``), or on the
    model's scale ``"Mean size of the effect on the log relative hazard (mean |SHAP|),
    200 training rows"`` (or ``"... on the risk ..."``)."""
    if scale == "points":
        risk = f"the {drivers.horizon:g}-year risk" if drivers.horizon is not None \
            else "the risk"
        return (f"Mean size of the contribution (percentage points of {risk}), "
                f"{drivers.n_rows} training rows")
    unit = "the log relative hazard" if drivers.scale == "log_hazard" else "the risk"
    return f"Mean size of the effect on {unit} (mean |SHAP|), {drivers.n_rows} training rows"


def imaging_difference_plot(table: pd.DataFrame, horizons: list[float], *,
                            height: int | None = None) -> go.Figure:
    """What imaging adds: the with - without imaging difference of each metric, with its
    95% paired-bootstrap interval, per row set, beside a line at no difference.

    Parameters
    ----------
    table
        ``analytics.usecases.model_admin.imaging_comparison(...).table`` (``label``,
        ``<metric>_difference`` and its ``_low``/``_high`` for ``c_index`` and
        ``td_auc_<h>``).

    Returns
    -------
    plotly.graph_objects.Figure
        One marker-and-error-bar trace per row set (``label``), one row per metric
        (``C-index``, ``td-AUC <h> y``, top to bottom in that order), and a dotted
        ``No difference`` line at 0 over the whole plot height (a shape, in the legend).
    """
    fig = go.Figure()
    metrics = [("c_index", "C-index"), *((f"td_auc_{h:g}", f"td-AUC {h:g} y")
                                         for h in horizons)]
    shown = table[np.isfinite(table["c_index_difference"].to_numpy(float))] \
        if not table.empty else table
    if shown.empty:
        fig.add_annotation(text="No comparison with and without imaging stored",
                           showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        return apply_layout(fig, height=200)
    names = [name for _, name in metrics]
    # a line over the whole plot height (not from the first to the last metric drawn),
    # named in the legend
    fig.add_shape(type="line", x0=0, x1=0, xref="x", y0=0, y1=1, yref="paper",
                  line={"color": NEUTRAL, "dash": "dot"}, name="No difference",
                  showlegend=True, layer="below")
    for k, row in enumerate(shown.to_dict("records")):
        x = [row[f"{m}_difference"] for m, _ in metrics]
        lo = [row[f"{m}_difference_low"] for m, _ in metrics]
        hi = [row[f"{m}_difference_high"] for m, _ in metrics]
        fig.add_trace(go.Scatter(
            x=x, y=names, mode="markers", name=str(row["label"]),
            marker={"color": series_colour(k), "size": 10,
                    "symbol": ("circle", "diamond", "square")[k % 3]},
            error_x={"type": "data", "symmetric": False,
                     "array": [h - v for h, v in zip(hi, x, strict=True)],
                     "arrayminus": [v - low for v, low in zip(x, lo, strict=True)]},
            hovertemplate="%{y}: %{x:+.3f}<extra>" + str(row["label"]) + "</extra>"))
    fig.update_xaxes(title="Difference, with - without imaging (95% CI)", zeroline=False)
    # the metrics top to bottom in the table's order, whichever trace names them first
    fig.update_yaxes(autorange="reversed", title=None, categoryorder="array",
                     categoryarray=names)
    return apply_layout(fig, height=height or 140 + 40 * len(metrics))
