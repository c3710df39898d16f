"""Plotly figure builders: data in, ``go.Figure`` out.

Pages and the PDF report share these builders, so a figure looks the same everywhere.
Colours come from :mod:`analytics.viz.palette` (Okabe-Ito, safe for colour-vision
deficiency); axis titles from :mod:`analytics.viz.labels` (units from feature names).
"""

from analytics.viz.cohort import biomarker_distribution, follow_up_swimmer
from analytics.viz.labels import feature_label, feature_unit
from analytics.viz.palette import OKABE_ITO, event_colour
from analytics.viz.patient import biomarker_trajectory

__all__ = [
    "OKABE_ITO",
    "biomarker_distribution",
    "biomarker_trajectory",
    "event_colour",
    "feature_label",
    "feature_unit",
    "follow_up_swimmer",
]
