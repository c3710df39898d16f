"""Figure builders: the plotted numbers are exactly the input numbers; colours are Okabe-Ito."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analytics import viz
from analytics.viz import palette
from analytics.vocabulary import label_with_unit, shown_unit


def test_okabe_ito_values_are_the_published_ones():
    # Okabe & Ito (2008), Color Universal Design, RGB 0-255
    published = {
        "black": (0, 0, 0), "orange": (230, 159, 0), "sky_blue": (86, 180, 233),
        "bluish_green": (0, 158, 115), "yellow": (240, 228, 66), "blue": (0, 114, 178),
        "vermillion": (213, 94, 0), "reddish_purple": (204, 121, 167),
    }
    as_rgb = {k: tuple(int(v[i:i + 2], 16) for i in (1, 3, 5))
              for k, v in palette.OKABE_ITO.items()}
    assert as_rgb == published
    assert set(palette.QUALITATIVE) == set(palette.OKABE_ITO.values())


@pytest.mark.parametrize(
    ("event", "colour", "symbol"),
    [("death", "#000000", "x"), ("Decompensation", "#D55E00", "diamond"),
     ("censored", palette.NEUTRAL, "circle-open"), (None, palette.NEUTRAL, "circle-open")],
)
def test_event_colours_and_symbols(event, colour, symbol):
    assert palette.event_colour(event) == colour
    assert palette.event_symbol(event) == symbol


def test_unknown_event_gets_a_stable_okabe_ito_colour():
    c = palette.event_colour("variceal_bleeding")
    assert c in palette.OKABE_ITO.values()
    assert c == palette.event_colour("Variceal_Bleeding ")


@pytest.mark.parametrize(
    ("name", "unit", "label"),
    [
        ("liver_volume_ml", None, "Liver volume (mL)"),
        ("liver_spleen_hu_diff", None, "Liver minus spleen attenuation (HU)"),
        ("bilirubin_mg_dl", None, "Bilirubin (mg/dL)"),
        ("platelets_10e9_l", None, "Platelets (×10⁹/L)"),
        ("ast_u_l", None, "AST (U/L)"),
        ("sodium_mmol_l", None, "Sodium (mmol/L)"),
        ("prothrombin_s", None, "Prothrombin time (s)"),
        ("inr", None, "INR"),
        ("liver_vessel_fraction", "1", "Liver vessel fraction"),
        ("liver_surface_nodularity", "LSN", "Liver surface nodularity (LSN)"),
        ("stiffness_kpa", None, "Stiffness (kPa)"),
        ("custom_score", None, "Custom score"),
        ("follow_up_years", None, "Follow-up (years)"),
    ],
)
def test_feature_labels_carry_units(name, unit, label):
    assert label_with_unit(name, unit) == label


def test_stored_unit_wins_over_the_name():
    assert shown_unit("liver_volume_ml", "cm3") == "cm3"
    assert shown_unit("liver_volume_ml") == "mL"


def _timeline() -> pd.DataFrame:
    return pd.DataFrame(
        [("A", "scan", 0.0, None), ("A", "scan", 1.0, None), ("A", "visit", 0.5, None),
         ("A", "outcome", 2.5, "death"), ("B", "scan", 0.0, None),
         ("B", "outcome", 4.0, "censored"), ("C", "visit", 0.25, None)],
        columns=["pseudonym", "kind", "time_years", "event"])


def test_swimmer_draws_each_patients_span_and_events():
    fig = viz.follow_up_swimmer(_timeline())
    names = [t.name for t in fig.data]
    assert names == ["Follow-up", "Scan", "Lab visit", "No event", "Death"]
    span = fig.data[0]
    # longest follow-up first: B (0-4), A (0-2.5), C (0.25-0.25); NaN separates lanes
    xs = [None if (isinstance(x, float) and math.isnan(x)) else x for x in span.x]
    assert xs == [0.0, 4.0, None, 0.0, 2.5, None, 0.25, 0.25, None]
    assert list(span.y) == ["B", "B", None, "A", "A", None, "C", "C", None]
    scans = fig.data[1]
    assert sorted(zip(scans.y, scans.x, strict=True)) == [("A", 0.0), ("A", 1.0), ("B", 0.0)]
    death = fig.data[4]
    assert (list(death.x), list(death.y)) == ([2.5], ["A"])
    assert death.marker.color == palette.OKABE_ITO["black"]
    assert list(fig.layout.yaxis.categoryarray) == ["C", "A", "B"]
    assert death.hovertemplate == "%{y}<br>Death at %{x:.2f} y<extra></extra>"
    assert fig.data[3].hovertemplate == (
        "%{y}<br>No event, followed to %{x:.2f} y<extra></extra>")


def test_swimmer_caps_lanes_and_says_so():
    fig = viz.follow_up_swimmer(_timeline(), max_patients=2)
    assert set(fig.data[0].y) - {None} == {"A", "B"}
    assert fig.layout.title.text == "Longest 2 of 3 follow-ups"


def test_swimmer_empty_timeline_explains():
    fig = viz.follow_up_swimmer(pd.DataFrame(columns=["pseudonym", "kind", "time_years",
                                                      "event"]))
    assert not fig.data
    assert fig.layout.annotations[0].text == "No scans, visits or outcomes yet"


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        pytest.param(pd.DataFrame({"pseudonym": []}), r"missing columns \['kind'",
                     id="timeline-missing-kind"),
    ],
)
def test_swimmer_rejects_wrong_table(frame, match):
    with pytest.raises(ValueError, match=match):
        viz.follow_up_swimmer(frame)


def test_biomarker_distribution_groups_values_by_outcome():
    df = pd.DataFrame({
        "pseudonym": ["A", "B", "C", "D"],
        "liver_volume_ml": [1500.0, 1700.0, None, 1200.0],
        "event": ["death", "censored", "death", None],
    })
    fig = viz.biomarker_distribution(df, "liver_volume_ml")
    got = {t.name: (list(t.y), list(t.text)) for t in fig.data}
    assert got == {"censored": ([1700.0], ["B"]), "death": ([1500.0], ["A"]),
                   "no outcome recorded": ([1200.0], ["D"])}
    assert fig.layout.yaxis.title.text == "Liver volume (mL)"
    with pytest.raises(ValueError, match=r"missing columns \['spleen_volume_ml'\]"):
        viz.biomarker_distribution(df, "spleen_volume_ml")


def test_trajectory_one_line_per_biomarker_and_phase_sorted_by_time():
    bio = pd.DataFrame(
        [(1.0, "liver_volume_ml", 1600.0, "mL", "portal_venous"),
         (0.0, "liver_volume_ml", 1500.0, "mL", "portal_venous"),
         (0.0, "liver_volume_ml", 1490.0, "mL", "arterial"),
         (0.0, "liver_hu_mean", 50.0, "HU", "portal_venous"),
         (1.0, "liver_hu_mean", None, "HU", "portal_venous")],
        columns=["time_years", "name", "value", "unit", "contrast_phase"])
    fig = viz.biomarker_trajectory(bio, ["liver_volume_ml", "liver_hu_mean", "absent"],
                                   outcome_event="hcc", outcome_time_years=1.5)
    got = [(t.name, list(t.x), list(t.y)) for t in fig.data]
    assert got == [
        ("Liver volume (mL), arterial", [0.0], [1490.0]),
        ("Liver volume (mL), portal venous", [0.0, 1.0], [1500.0, 1600.0]),
        ("Liver attenuation, mean (HU), portal venous", [0.0], [50.0]),
    ]
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(lines) == 2 and {s.x0 for s in lines} == {1.5}
    assert lines[0].line.color == palette.event_colour("hcc")


def test_trajectory_without_values_explains():
    bio = pd.DataFrame(columns=["time_years", "name", "value", "unit"])
    fig = viz.biomarker_trajectory(bio, ["liver_volume_ml"])
    assert fig.layout.annotations[0].text == "No biomarker values for this patient yet"
