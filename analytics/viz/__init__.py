"""Plotly figure builders: data in, ``go.Figure`` out.

Pages and the PDF report share these builders, so a figure looks the same everywhere.
Colours come from :mod:`analytics.viz.palette` (Okabe-Ito, safe for colour-vision
deficiency); axis titles from :mod:`analytics.vocabulary` (one label and unit per column).
The PDF draws the same data with :mod:`analytics.viz.mpl` (matplotlib, no browser);
both go through :mod:`analytics.viz.prep`.
"""

from analytics.viz.cohort import biomarker_distribution, follow_up_swimmer
from analytics.viz.models import (
    calibration_plot,
    drivers_bar,
    imaging_difference_plot,
    td_auc_plot,
)
from analytics.viz.palette import OKABE_ITO, event_colour
from analytics.viz.patient import biomarker_trajectory
from analytics.viz.risk import (
    change_chart,
    competing_incidence,
    patient_timeline,
    risk_trajectory,
    shap_waterfall,
)
from analytics.viz.survival import incidence_by_risk_group, risk_distribution
from analytics.vocabulary import label_with_unit, shown_unit

__all__ = [
    "OKABE_ITO",
    "biomarker_distribution",
    "biomarker_trajectory",
    "calibration_plot",
    "change_chart",
    "competing_incidence",
    "drivers_bar",
    "event_colour",
    "follow_up_swimmer",
    "imaging_difference_plot",
    "incidence_by_risk_group",
    "label_with_unit",
    "patient_timeline",
    "risk_distribution",
    "risk_trajectory",
    "shap_waterfall",
    "shown_unit",
    "td_auc_plot",
]
