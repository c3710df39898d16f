"""What the Patient page's first run would load on its first use, loaded ahead with
made-up values (no patient data): plotly's validators of the biomarker chart (subplots,
reference lines and bands, scatter lines, the outcome line), plotly's JSON encoder as
``st.plotly_chart`` calls it, and Pillow's image plugins as ``st.image`` opens a PNG.

Imported by the server's warm-up (``ui.warmup``) only: these imports are part of its
work, not of the server's start.
"""

from __future__ import annotations

import io

import pandas as pd
import plotly.io
from PIL import Image

from analytics import viz
from analytics.store.repo import KEY_BIOMARKERS
from ui import patient_view


def draw_patient_examples() -> None:
    """Build (and drop) a biomarker chart of made-up values, encode it as the page sends
    it, and open a tiny PNG."""
    names = list(KEY_BIOMARKERS[:2])
    example = pd.DataFrame({"time_years": [0.0, 1.0] * len(names),
                            "name": [n for n in names for _ in range(2)],
                            "value": [1.0, 2.0] * len(names), "unit": [None] * 2 * len(names),
                            "contrast_phase": ["portal_venous", None] * len(names)})
    fig = viz.biomarker_trajectory(example, names, outcome_event="example",
                                   outcome_time_years=1.5,
                                   normal_ranges=patient_view.normal_ranges(names))
    plotly.io.to_json(fig, validate=False)
    png = io.BytesIO()
    Image.new("L", (4, 4)).save(png, format="PNG")
    Image.open(io.BytesIO(png.getvalue())).load()
