"""Ultrasound page helpers: default ROI positions and the measurement table."""

from __future__ import annotations

import pandas as pd

from analytics.features.ultrasound import Measurement, Roi, UltrasoundFrame
from analytics.vocabulary import label, shown_unit

TABLE_COLUMNS = ("measurement", "value", "unit", "note")


def default_rois(frame: UltrasoundFrame) -> dict[str, Roi]:
    """A liver box in the left third and a kidney circle in the right third, mid-depth."""
    x0, x1, d0, d1 = frame.extent_mm
    depth = round((d0 + d1) / 2, 1)
    size = round(max(2.0, min(x1 - x0, d1 - d0) / 6), 1)
    return {"liver": Roi("liver", "box", round(x0 + (x1 - x0) / 4, 1), depth, size, size),
            "kidney": Roi("kidney", "circle", round(x0 + 3 * (x1 - x0) / 4, 1), depth, size,
                          size)}


def measurement_table(m: Measurement) -> pd.DataFrame:
    """One row per measured value: label, value (4 significant digits), unit, note."""
    rows = [{"measurement": label(name), "value": None if v is None else float(f"{v:.4g}"),
             "unit": shown_unit(name), "note": m.notes.get(name, "")}
            for name, v in m.values.items()]
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
