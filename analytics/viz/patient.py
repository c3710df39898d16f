"""Patient-level figures: biomarker trajectories over the patient's own time axis."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analytics.viz.palette import OKABE_ITO, apply_layout, event_colour, series_colour
from analytics.vocabulary import label_with_unit

BIOMARKER_COLUMNS = ("time_years", "name", "value", "unit")
NO_PHASE = "phase not recorded"
_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross")


def biomarker_trajectory(biomarkers: pd.DataFrame, names: list[str], *,
                         outcome_event: str | None = None,
                         outcome_time_years: float | None = None,
                         normal_ranges: dict[str, tuple[float | None, float | None]]
                         | None = None) -> go.Figure:
    """Small multiples, one row per biomarker, of value against years since baseline.

    Parameters
    ----------
    biomarkers
        Long format with ``time_years``, ``name``, ``value``, ``unit`` (e.g.
        ``PatientDetail.biomarkers``). Several series at one time point are all drawn.
    names
        Biomarkers to draw, top to bottom; names absent from ``biomarkers`` are skipped.
    outcome_event, outcome_time_years
        When given, a dashed vertical line marks the outcome on every row.
    normal_ranges
        Published normal range per biomarker (``(low, high)``, either may be None, e.g.
        from the feature registry): each known limit is a dotted green line labelled
        "lower/upper limit of normal", with the band between shaded when both exist.

    Returns
    -------
    plotly.graph_objects.Figure
        One Scatter trace per drawn biomarker and contrast phase (when the table has a
        ``contrast_phase`` column), sorted by time; traces are named by the label, plus
        ", <phase>" when the patient has several phases. Missing values are left out
        rather than drawn as zero.
    """
    missing = [c for c in BIOMARKER_COLUMNS if c not in biomarkers.columns]
    if missing:
        raise ValueError(f"biomarker table: missing columns {missing}")
    present = [n for n in names
               if (biomarkers["name"] == n).any()
               and biomarkers.loc[biomarkers["name"] == n, "value"].notna().any()]
    if not present:
        fig = go.Figure()
        fig.add_annotation(text="No biomarker values for this patient yet", showarrow=False,
                           x=0.5, y=0.5, xref="paper", yref="paper")
        return apply_layout(fig, height=200)
    labels = []
    for n in present:
        units = biomarkers.loc[biomarkers["name"] == n, "unit"].dropna()
        labels.append(label_with_unit(n, units.iloc[0] if len(units) else None))
    fig = make_subplots(rows=len(present), cols=1, shared_xaxes=True,
                        vertical_spacing=min(0.08, 0.3 / len(present)))
    has_phase = "contrast_phase" in biomarkers.columns
    phases = (sorted(biomarkers["contrast_phase"].fillna(NO_PHASE).unique())
              if has_phase else [NO_PHASE])
    for i, (n, label) in enumerate(zip(present, labels, strict=True)):
        part = biomarkers[(biomarkers["name"] == n) & biomarkers["value"].notna()]
        if has_phase:
            part = part.assign(contrast_phase=part["contrast_phase"].fillna(NO_PHASE))
        for j, phase in enumerate(phases):
            line = part[part["contrast_phase"] == phase] if has_phase else part
            if line.empty:
                continue
            line = line.sort_values("time_years")
            # one line per contrast phase: attenuation differs by phase, so never join them
            name = label if len(phases) == 1 else f"{label}, {phase.replace('_', ' ')}"
            fig.add_trace(go.Scatter(
                x=line["time_years"], y=line["value"], mode="lines+markers", name=name,
                legendgroup=phase, showlegend=len(phases) > 1 and i == 0,
                line={"color": series_colour(j)},
                marker={"size": 8, "symbol": _SYMBOLS[j % len(_SYMBOLS)]},
                hovertemplate="%{x:.2f} y: %{y:.4g}<extra>" + name + "</extra>"),
                row=i + 1, col=1)
        fig.update_yaxes(title_text=label, row=i + 1, col=1, title_font={"size": 11})
        rng = (normal_ranges or {}).get(n)
        if rng is not None:
            _normal_range(fig, rng, i + 1)
        if outcome_time_years is not None:
            fig.add_vline(x=outcome_time_years, line_dash="dash",
                          line_color=event_colour(outcome_event), row=i + 1, col=1)
    fig.update_xaxes(title_text="Years since baseline", row=len(present), col=1)
    fig = apply_layout(fig, height=150 + 170 * len(present))
    fig.update_layout(showlegend=len(phases) > 1)
    return fig


def _normal_range(fig: go.Figure, rng: tuple[float | None, float | None], row: int) -> None:
    lo, hi = rng
    colour = OKABE_ITO["bluish_green"]
    if lo is not None and hi is not None:
        fig.add_hrect(y0=lo, y1=hi, fillcolor=colour, opacity=0.08, line_width=0, row=row,
                      col=1)
    for value, text in ((lo, "lower limit of normal"), (hi, "upper limit of normal")):
        if value is not None:
            fig.add_hline(y=value, line_dash="dot", line_color=colour, row=row, col=1,
                          annotation_text=text, annotation_position="top left",
                          annotation_font={"size": 10, "color": colour})
