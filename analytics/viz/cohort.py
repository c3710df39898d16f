"""Cohort-level figures: follow-up swimmer plot and biomarker distributions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analytics.viz.palette import (
    NEUTRAL,
    OKABE_ITO,
    apply_layout,
    event_colour,
    event_symbol,
)
from analytics.vocabulary import event_label, label_with_unit

TIMELINE_COLUMNS = ("pseudonym", "kind", "time_years", "event")


def _check_columns(df: pd.DataFrame, needed: tuple[str, ...] | list[str], what: str) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing columns {missing}; expected {list(needed)}")


def _outcome_hover(event: str) -> str:
    """The hover text of an outcome marker: ``"HCC at 2.50 y"``; a patient without an
    event was followed that long, nothing happened at that time."""
    if str(event).strip().lower() == "censored":
        return "%{y}<br>No event, followed to %{x:.2f} y<extra></extra>"
    return "%{y}<br>" + event_label(event) + " at %{x:.2f} y<extra></extra>"


def follow_up_swimmer(timeline: pd.DataFrame, *, max_patients: int = 80) -> go.Figure:
    """One horizontal lane per patient: follow-up span, scans, visits and the outcome.

    Parameters
    ----------
    timeline
        As returned by ``analytics.store.repo.cohort_timeline``: ``pseudonym``, ``kind``
        (``scan``/``visit``/``outcome``), ``time_years``, ``event``.
    max_patients
        Lanes drawn at most (the longest follow-ups first); the title says when more exist.

    Returns
    -------
    plotly.graph_objects.Figure
        Traces: ``Follow-up`` (one line segment per patient, NaN-separated), ``Scan``,
        ``Lab visit``, then one marker trace per outcome event (censored included).
    """
    _check_columns(timeline, TIMELINE_COLUMNS, "follow-up timeline")
    fig = go.Figure()
    df = timeline.dropna(subset=["time_years"])
    if df.empty:
        fig.add_annotation(text="No scans, visits or outcomes yet", showarrow=False,
                           x=0.5, y=0.5, xref="paper", yref="paper")
        return apply_layout(fig, height=200)
    span = df.groupby("pseudonym")["time_years"].agg(["min", "max"])
    span = span.sort_values(["max", "min"], ascending=[False, True]).head(max_patients)
    lanes = list(span.index)
    df = df[df["pseudonym"].isin(lanes)]

    xs: list[float] = []
    ys: list[str | None] = []
    for name, row in span.iterrows():
        xs += [float(row["min"]), float(row["max"]), math.nan]
        ys += [name, name, None]
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="Follow-up",
                             line={"color": NEUTRAL, "width": 2}, hoverinfo="skip"))
    for kind, label, symbol, colour in (
            ("scan", "Scan", "circle", OKABE_ITO["blue"]),
            ("visit", "Lab visit", "line-ns-open", OKABE_ITO["orange"])):
        part = df[df["kind"] == kind]
        if part.empty:
            continue
        fig.add_trace(go.Scatter(
            x=part["time_years"], y=part["pseudonym"], mode="markers", name=label,
            marker={"symbol": symbol, "color": colour, "size": 9,
                    "line": {"width": 2, "color": colour}},
            hovertemplate="%{y}<br>" + label + " at %{x:.2f} y<extra></extra>"))
    outcomes = df[df["kind"] == "outcome"]
    for event in sorted(outcomes["event"].dropna().unique()):
        part = outcomes[outcomes["event"] == event]
        fig.add_trace(go.Scatter(
            x=part["time_years"], y=part["pseudonym"], mode="markers",
            name=event_label(event),
            marker={"symbol": event_symbol(event), "color": event_colour(event), "size": 12,
                    "line": {"width": 2, "color": event_colour(event)}},
            hovertemplate=_outcome_hover(event)))
    n_all = timeline["pseudonym"].nunique()
    title = None if n_all <= len(lanes) else f"Longest {len(lanes)} of {n_all} follow-ups"
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(lanes)),
                     title=None)
    fig.update_xaxes(title="Years since baseline")
    return apply_layout(fig, title=title, height=max(220, 60 + 22 * len(lanes)))


def biomarker_distribution(patients: pd.DataFrame, name: str, *, unit: str | None = None,
                           by: str = "event") -> go.Figure:
    """Box plot (with every patient as a point) of one biomarker, grouped by ``by``.

    Parameters
    ----------
    patients
        One row per patient with a ``pseudonym`` column, the ``name`` column and ``by``
        (e.g. the output of ``analytics.store.repo.list_patients``).
    name
        Biomarker column, e.g. ``liver_volume_ml``.
    unit
        Unit for the axis title when the name does not carry it.
    by
        Grouping column; missing values are grouped as "no outcome recorded".

    Returns
    -------
    plotly.graph_objects.Figure
        One Box trace per group, named by group, holding that group's non-missing values.
    """
    _check_columns(patients, ["pseudonym", name, by], "biomarker distribution")
    fig = go.Figure()
    groups = patients[by].astype("object").where(patients[by].notna(), "no outcome recorded")
    values = pd.to_numeric(patients[name], errors="coerce")
    for group in sorted(groups.unique(), key=str):
        sel = (groups == group) & values.notna()
        if not sel.any():
            continue
        colour = event_colour(str(group)) if by == "event" else None
        fig.add_trace(go.Box(
            y=values[sel].to_numpy(dtype=np.float64), name=str(group),
            text=patients.loc[sel, "pseudonym"], boxpoints="all", jitter=0.3, pointpos=0,
            marker={"color": colour} if colour else None,
            hovertemplate="%{text}: %{y}<extra></extra>"))
    if not fig.data:
        fig.add_annotation(text=f"No {label_with_unit(name, unit)} values yet", showarrow=False,
                           x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_yaxes(title=label_with_unit(name, unit))
    fig.update_layout(showlegend=False)
    return apply_layout(fig, height=360)
