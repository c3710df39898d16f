"""The "what imaging adds" figure plots the stored differences and their intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics import viz
from analytics.viz.palette import series_colour


def _table() -> pd.DataFrame:
    rows = []
    for label, base in (("All patients", 0.03), ("Patients with scans", 0.06)):
        r = {"rows": label, "label": label, "n_patients": 10, "n_events": 4, "note": ""}
        for k, m in enumerate(("c_index", "td_auc_1", "td_auc_0.5")):
            r[f"{m}_with"], r[f"{m}_without"] = 0.7, 0.7 - base - k / 100
            r[f"{m}_difference"] = base + k / 100
            r[f"{m}_difference_low"] = base + k / 100 - 0.02
            r[f"{m}_difference_high"] = base + k / 100 + 0.05
        rows.append(r)
    return pd.DataFrame(rows)


def test_differences_and_intervals_are_the_table_numbers():
    fig = viz.imaging_difference_plot(_table(), [1.0, 0.5])
    everyone, scanned = fig.data
    (zero,) = fig.layout.shapes
    assert zero.name == "No difference" and (zero.x0, zero.x1) == (0, 0)
    assert everyone.name == "All patients" and scanned.name == "Patients with scans"
    assert list(everyone.y) == ["C-index", "td-AUC 1 y", "td-AUC 0.5 y"]
    assert list(everyone.x) == pytest.approx([0.03, 0.04, 0.05])
    assert list(everyone.error_x.array) == pytest.approx([0.05] * 3)
    assert list(everyone.error_x.arrayminus) == pytest.approx([0.02] * 3)
    assert list(scanned.x) == pytest.approx([0.06, 0.07, 0.08])
    assert everyone.marker.color == series_colour(0) and scanned.marker.color == series_colour(1)
    assert everyone.marker.symbol != scanned.marker.symbol  # not by colour alone


def test_a_row_set_without_figures_is_left_out_and_no_table_is_said():
    t = _table()
    t.loc[1, "c_index_difference"] = np.nan
    fig = viz.imaging_difference_plot(t, [1.0, 0.5])
    assert [d.name for d in fig.data] == ["All patients"]
    assert [s.name for s in fig.layout.shapes] == ["No difference"]
    empty = viz.imaging_difference_plot(pd.DataFrame(), [1.0])
    assert empty.layout.annotations[0].text == "No comparison with and without imaging stored"


def test_the_no_difference_line_spans_every_metric_and_the_metrics_keep_their_order():
    # three horizons: the line from the first to the last metric drawn put "td-AUC 3 y"
    # second on the axis and stopped the line there
    t = _table()
    for r in ("td_auc_2", "td_auc_3"):
        for part in ("with", "without", "difference", "difference_low", "difference_high"):
            t[f"{r}_{part}"] = t[f"td_auc_1_{part}"]
    fig = viz.imaging_difference_plot(t, [1.0, 2.0, 3.0])
    (zero,) = fig.layout.shapes
    assert (zero.yref, zero.y0, zero.y1) == ("paper", 0, 1)  # the whole plot height
    assert zero.line.dash == "dot" and zero.showlegend
    assert fig.layout.yaxis.categoryorder == "array"
    assert list(fig.layout.yaxis.categoryarray) == [
        "C-index", "td-AUC 1 y", "td-AUC 2 y", "td-AUC 3 y"]
    assert fig.layout.yaxis.autorange == "reversed"  # C-index at the top
    assert [d.name for d in fig.data] == ["All patients", "Patients with scans"]
