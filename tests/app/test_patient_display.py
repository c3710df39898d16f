"""What a clinician reads on the Patient page: signs, widths and labels that must not be cut."""

from __future__ import annotations

import datetime as dt

import pytest

from analytics.config import load_settings
from analytics.store import open_store
from tests.app.conftest import new_app
from tests.app.test_pages import MISSING_FILES, _ok, table_with
from ui import patient_view


@pytest.mark.parametrize(("value", "text"), [
    (-0.000495, "\u22120.000495"), (20.5, "+20.5"), (-28.7, "\u221228.7"),
    (110.0, "+110"), (-1234.4, "\u22121234"), (0.0219, "+0.0219"), (1e-6, "+0.000001"),
    (1.0, "+1"), (0.0, "0"), (None, None), (float("nan"), None)])
def test_change_text_always_shows_the_sign_without_exponent(value, text):
    assert patient_view.change_text(value) == text


def _set_latest(home, name: str, value: float) -> None:
    from sqlalchemy import select, update

    from analytics.store.schema import Feature, Series

    store = open_store(load_settings(home))
    with store.session() as s:
        sid = s.execute(select(Series.id).where(Series.series_uid == "2.25.21")).scalar()
        s.execute(update(Feature).where(Feature.series_id == sid, Feature.name == name)
                  .values(value=value))
    store.dispose()


def test_biomarker_table_shows_a_fall_with_its_minus_sign_and_uncut_columns(seeded_home):
    # HT-0001: the previous liver volume is 1490 mL; the latest made 1489.505 mL falls by
    # 0.495 mL, which the table must show as −0.495 (not 0.495, not -0.495 cut to 0.495)
    _set_latest(seeded_home, "liver_volume_ml", 1489.505)
    at = new_app().run()
    at.switch_page("pages/patient.py").run()
    _ok(at, MISSING_FILES)
    summary = table_with(at, "Biomarker").set_index("Biomarker")
    row = summary.loc["Liver volume (mL)"]
    assert row[["Latest", "Previous"]].tolist() == [1489.505, 1490.0]
    assert row["Change"] == "\u22120.495"
    assert summary.loc["Spleen volume (mL)", "Change"].startswith(("+", "\u2212", "0"))
    # every column has a width that holds its longest text
    assert set(patient_view.SUMMARY_WIDTHS) == set(summary.reset_index().columns)
    assert patient_view.SUMMARY_WIDTHS["Flag"] >= 96  # "below normal"
    assert patient_view.SUMMARY_WIDTHS["Compared with"] >= 172  # "previous unenhanced scan"


def test_identified_header_shows_the_whole_birth_date_in_a_wide_enough_column(seeded_home):
    from ui.session import VIEWER_KEY, Viewer

    at = new_app()
    at.session_state[VIEWER_KEY] = Viewer("dr.house", "clinician", "s1")
    at.run()
    at.switch_page("pages/patient.py").run()
    _ok(at, MISSING_FILES)
    assert [m.value for m in at.metric][:5] == ["F", "1960-01-02", "2", "3",
                                              "Decompensation"]
    # five equal columns gave the date 1/5 of the row and cut it to "1960-0…"; it needs
    # ~185 px of the ~760 px at 1280x720, i.e. more than 0.24 of the row
    w = patient_view.HEADER_WEIGHTS
    assert len(w) == 5
    assert w[1] / sum(w) == pytest.approx(2.2 / 7.0) and w[1] / sum(w) > 0.24
    assert w[4] / sum(w) > 0.31  # "Decompensation", ~240 px
    weights = [c.weight for c in at.columns][:5]
    assert [x / sum(weights) for x in weights] == pytest.approx([x / 7.0 for x in w])


def _stack(n: int, structures: tuple[str, ...]):
    from types import SimpleNamespace

    return SimpleNamespace(n_slices=n, structures=structures)


@pytest.mark.parametrize(("k", "n", "structures", "total", "text"), [
    (13, 26, ("liver", "spleen"), 44, "Slice 14 of the 26 around the liver (the series has 44)"),
    (0, 26, ("liver",), 26, "Slice 1 of the 26 around the liver"),
    (4, 64, (), 120, "Slice 5 of the 64, evenly spaced (the series has 120)"),
    (4, 30, (), 30, "Slice 5 of 30"),
    (4, 30, (), None, "Slice 5 of 30")])
def test_slice_text_says_what_the_viewer_and_the_series_count(k, n, structures, total, text):
    # the scan picker says "44 slices" (the series) while the slider ends at 26 (the
    # slices around the liver): the caption names both
    assert patient_view.slice_text(k, _stack(n, structures), total) == text


def test_series_slices_reads_the_series_row():
    import pandas as pd

    series = pd.DataFrame({"series_uid": ["1.2", "1.3"], "n_slices": [44, None]})
    assert patient_view.series_slices(series, "1.2") == 44
    assert patient_view.series_slices(series, "1.3") is None
    assert patient_view.series_slices(series, "9.9") is None
    assert patient_view.series_slices(pd.DataFrame(), "1.2") is None


def test_studies_and_series_table_starts_with_date_modality_description_images(seeded_home):
    at = new_app().run()
    at.switch_page("pages/patient.py").run()
    _ok(at, MISSING_FILES)
    series = table_with(at, "series_uid")
    cols = list(series.columns)
    assert cols[:5] == ["study_date", "modality", "description", "n_instances", "n_slices"]
    assert cols[-1] == "series_uid" and "study_uid" not in cols
    assert series["series_uid"].tolist() == ["2.25.11", "2.25.12", "2.25.21"]


def test_cohort_table_shows_a_dash_not_none_for_a_patient_without_a_scan():
    import pandas as pd

    from ui import cohort_view

    table = pd.DataFrame({"pseudonym": ["HT-1", "HT-2"], "liver_volume_ml": [1512.34, None],
                          "spleen_volume_ml": [151.2, float("nan")]})
    shown = cohort_view.for_display(table)
    assert shown["liver_volume_ml"].tolist() == ["1512", "—"]
    assert shown["spleen_volume_ml"].tolist() == ["151.2", "—"]
    # the table searched, sorted and downloaded keeps its numbers
    assert table["liver_volume_ml"].iloc[0] == 1512.34
    cfg = cohort_view.display_config(table)
    assert {"liver_volume_ml", "spleen_volume_ml"} <= set(cfg)


def test_visits_table_says_in_words_where_each_visit_came_from(seeded_home):
    at = new_app().run()
    at.switch_page("pages/patient.py").run()
    _ok(at, MISSING_FILES)
    visits = table_with(at, "visit_date")
    # HT-0001's two lab visits came from the cohort CSV: the stored code "csv" is not shown
    assert visits["source"].tolist() == ["Imported from a cohort file (CSV)"] * 2
    assert visits["bilirubin_mg_dl"].tolist() == [1.1, 1.4]


def _import_labs(home, name: str) -> dt.date:
    """Import one visit of HT-0001 at t = 1 y from a cohort file called ``name``, as
    ``hepatrack import-cohort`` does; returns the import's (UTC) day."""
    from analytics.cohort import import_cohort

    folder = home / "incoming"
    folder.mkdir(exist_ok=True)
    visits, outcomes = folder / name, folder / "outcomes.csv"
    visits.write_text("patient_id,time,bilirubin_mg_dl\nHT-0001,1.0,1.6\n")
    outcomes.write_text("patient_id,time,event\nHT-0001,1.5,decompensation\n")
    settings = load_settings(home)
    store = open_store(settings)
    try:
        report = import_cohort(store, visits, outcomes, settings=settings)
    finally:
        store.dispose()
    assert (report.visits_inserted, report.rejected) == (1, [])
    return dt.datetime.now(dt.UTC).date()


def test_visits_table_names_the_cohort_file_and_its_import_day_for_a_clinician(seeded_home):
    from ui.session import VIEWER_KEY, Viewer

    day = _import_labs(seeded_home, "labs_2024-11.csv")
    at = new_app()
    at.session_state[VIEWER_KEY] = Viewer("dr.house", "clinician", "s1")
    at.run()
    at.switch_page("pages/patient.py").run()
    _ok(at, MISSING_FILES)
    visits = table_with(at, "visit_date")
    assert visits["time_years"].tolist() == [0.0, 0.5, 1.0]
    assert visits["source"].tolist() == ["Imported from a cohort file (CSV)"] * 3
    # the two seeded visits were stored before imports were recorded
    assert visits["source_file"].tolist() == ["not recorded", "not recorded",
                                              "labs_2024-11.csv"]
    assert visits["imported_on"].tolist() == ["not recorded", "not recorded",
                                              day.isoformat()]
    assert visits["bilirubin_mg_dl"].tolist() == [1.1, 1.4, 1.6]


def test_visits_table_hides_the_file_name_from_a_researcher_and_shifts_the_import_day(
        seeded_home):
    day = _import_labs(seeded_home, "Doe_Jane_labs.csv")
    at = new_app().run()  # the researcher
    at.switch_page("pages/patient.py").run()
    _ok(at, MISSING_FILES)
    visits = table_with(at, "visit_date")
    assert visits["source_file"].tolist() == ["not recorded", "not recorded", "—"]
    # HT-0001's dates are shifted by +100 days in a pseudonymised view: the import day too
    assert visits["imported_on"].tolist() == [
        "not recorded", "not recorded", (day + dt.timedelta(days=100)).isoformat()]
    assert not any("Doe" in str(v) for v in visits.to_numpy().ravel())


@pytest.mark.parametrize(("code", "words"), [
    ("csv", "Imported from a cohort file (CSV)"), ("CSV", "Imported from a cohort file (CSV)"),
    ("imaging", "Recorded with a scan (DICOM)"), ("lis", "Imported (lis)"), (None, "—"),
    ("", "—")])
def test_visit_source_words_name_the_source_in_words(code, words):
    from analytics.vocabulary import visit_source_words

    assert visit_source_words(code) == words


def test_visit_labels_name_each_visit_by_time_date_kind_and_risk():
    import datetime as dt

    import numpy as np
    import pandas as pd

    points = pd.DataFrame({
        "time": [0.0, 1.24, 2.5], "date": [dt.date(2020, 1, 1), None, dt.date(2022, 7, 2)],
        "is_scan": [True, False, True], "assessable": [True, True, False],
        "risk": [0.1234, 0.05, np.nan]})
    assert patient_view.visit_labels(points) == [
        "0.0 y · 2020-01-01 · scan · 12.3%", "1.2 y · lab visit · 5.0%",
        "2.5 y · 2022-07-02 · scan · not assessable"]
    # identified views: the real date of the visit within a day of its time, else none
    real = {0.0: "2019-03-04", round(1.24 + 1 / 365.25, 6): "2020-06-01"}
    assert patient_view.visit_labels(points, real) == [
        "0.0 y · 2019-03-04 · scan · 12.3%", "1.2 y · 2020-06-01 · lab visit · 5.0%",
        "2.5 y · scan · not assessable"]
