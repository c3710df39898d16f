"""An ultrasound frame in mm (x across the image region, depth below the transducer) with
the placed ROIs drawn over it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from analytics.features.ultrasound import Roi, UltrasoundFrame
from analytics.viz.palette import OKABE_ITO

ROI_COLOURS = {"liver": OKABE_ITO["orange"], "kidney": OKABE_ITO["sky_blue"]}


def frame_figure(frame: UltrasoundFrame, rois: Sequence[Roi] = (), *,
                 title: str | None = None) -> go.Figure:
    """The frame's image region in grey, axes in mm, each ROI outlined in its role's colour.

    Parameters
    ----------
    frame
        Grey levels and the calibrated region (:func:`analytics.features.ultrasound.frame_of`).
    rois
        Boxes and circles to draw (centre and size in mm).
    """
    r = frame.region
    grey = frame.grey[r.y0:r.y1 + 1, r.x0:r.x1 + 1]
    x = (np.arange(r.x0, r.x1 + 1) - r.x0) * frame.dx_mm
    depth = frame.depth_of_rows()[r.y0:r.y1 + 1]
    fig = go.Figure(go.Heatmap(z=grey, x=x, y=depth, colorscale="gray", zmin=0, zmax=255,
                               showscale=False,
                               hovertemplate="x %{x:.1f} mm, depth %{y:.1f} mm: "
                                             "grey %{z:.0f}<extra></extra>"))
    for roi in rois:
        kind = "rect" if roi.shape == "box" else "circle"
        h = roi.height_mm if roi.shape == "box" else roi.width_mm
        fig.add_shape(type=kind, x0=roi.x_mm - roi.width_mm / 2, x1=roi.x_mm + roi.width_mm / 2,
                      y0=roi.depth_mm - h / 2, y1=roi.depth_mm + h / 2,
                      line={"color": ROI_COLOURS.get(roi.role, "white"), "width": 2},
                      name=f"{roi.role} ROI")
        fig.add_annotation(x=roi.x_mm, y=roi.depth_mm - h / 2, text=roi.role, showarrow=False,
                           yshift=10, font={"color": ROI_COLOURS.get(roi.role, "white")})
    fig.update_xaxes(title="x (mm)", constrain="domain")
    fig.update_yaxes(title="depth (mm)", autorange="reversed", scaleanchor="x",
                     scaleratio=1)
    fig.update_layout(title=title, margin={"l": 50, "r": 10, "t": 40 if title else 10,
                                           "b": 40}, height=520)
    return fig


__all__ = ["ROI_COLOURS", "frame_figure"]
