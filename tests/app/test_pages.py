"""Every dashboard page under Streamlit's AppTest, on a temp store (tests/store/seed.py)."""

from __future__ import annotations

import pytest

from analytics.config import load_settings
from analytics.store import open_store
from tests.app.conftest import cohort_charts, new_app, patient_charts, seed_without_model
from ui.session import VIEWER_KEY, Viewer

SEEDED = ["HT-0001", "HT-0002", "HT-0003"]


def _texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


#: the seeded series have rows but no DICOM files: their key image says so
MISSING_FILES = "is missing from HEPATRACK_HOME"


def table_with(at, column: str):
    """The first table on the page that has ``column`` (st.dataframe keys are not exposed
    by AppTest for read-only tables)."""
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert found, (column, [list(d.value.columns)[:4] for d in at.dataframe])
    return found[0]


def _ok(at, *expected_errors: str) -> None:
    """No exception, and no error other than the expected ones (each must be shown)."""
    assert not at.exception, [e.value for e in at.exception]
    errors = _texts(at.error)
    assert [e for e in errors if not any(x in e for x in expected_errors)] == [], errors
    for x in expected_errors:
        assert any(x in e for e in errors), (x, errors)


# --------------------------------------------------------------------------- cohort page
def test_cohort_page_lists_the_stored_patients(seeded_home):
    at = new_app().run()
    _ok(at)
    assert at.title[0].value == "Cohort"
    table = at.dataframe[0].value
    assert table["pseudonym"].tolist() == SEEDED
    assert table["n_studies"].tolist() == [2, 1, 0]
    assert float(table["liver_volume_ml"].iloc[0]) == 1600.0
    # HT-0003 has no scan: an empty-looking "—", never a grey "None"
    assert table["liver_volume_ml"].iloc[2] == "—"
    # the default (not logged-in) viewer is pseudonymised: no identity columns at all
    assert "patient_name" not in table.columns and "patient_id" not in table.columns
    assert _texts(at.metric)[:4] == ["3", "3", "4", "1"]
    assert "3 of 3 patients" in _texts(at.caption)
    # no model: the follow-up swimmer and the biomarker box plot offered, drawn when chosen
    assert [c.key for c in at.get("plotly_chart")] == []
    cohort_charts(at, "Follow-up")
    _ok(at)
    assert [c.key for c in at.get("plotly_chart")] == ["cohort:swimmer"]
    cohort_charts(at, "Follow-up", "Biomarkers by outcome")
    _ok(at)
    assert len(at.get("plotly_chart")) == 2  # follow-up swimmer and biomarker box plot


def test_sidebar_shows_home_database_and_cohort_size(seeded_home):
    at = new_app().run()
    _ok(at)
    captions = " ".join(_texts(at.sidebar.caption))
    assert str(seeded_home) in captions
    assert f"SQLite: {seeded_home / 'hepatrack.db'}" in captions
    assert "pseudonymised" in captions
    assert _texts(at.sidebar.metric) == ["3 patients"]


@pytest.mark.parametrize("page", ["pages/cohort.py", "pages/patient.py"])
def test_empty_store_says_how_to_load_data(home, page):
    at = new_app().run()
    # AppTest keeps the sidebar of the first run only (file pages), so check it here
    assert _texts(at.sidebar.metric) == ["0 patients"]
    at.switch_page(page).run()
    _ok(at)
    info = " ".join(_texts(at.info))
    assert "store is empty" in info and "hepatrack demo" in info and "hepatrack ingest" in info
    assert not at.dataframe


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("HT-0002", ["HT-0002"], id="exact"),
        pytest.param("0003", ["HT-0003"], id="substring"),
        pytest.param("ht-000", SEEDED, id="case-insensitive"),
        pytest.param("  0001 ", ["HT-0001"], id="surrounding-spaces"),
        pytest.param("", SEEDED, id="empty-shows-all"),
    ],
)
def test_search_by_pseudonym_filters_the_table(seeded_home, query, expected):
    at = new_app().run()
    at.text_input(key="cohort:search").input(query).run()
    _ok(at)
    assert at.dataframe[0].value["pseudonym"].tolist() == expected
    assert f"{len(expected)} of 3 patients" in _texts(at.caption)


@pytest.mark.parametrize("query", ["HT-9", "Doe", ".*"])
def test_search_without_match_says_so(seeded_home, query):
    # "Doe" is a real name: the pseudonymised view must not match on it
    at = new_app().run()
    at.text_input(key="cohort:search").input(query).run()
    _ok(at)
    assert not at.dataframe
    assert f"No patient matches “{query}”." in _texts(at.warning)


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("Pseudonym", SEEDED),
        ("Follow-up (longest first)", ["HT-0002", "HT-0001", "HT-0003"]),
        ("Last scan (newest first)", ["HT-0001", "HT-0002", "HT-0003"]),
        ("Visits (most first)", ["HT-0001", "HT-0003", "HT-0002"]),
    ],
)
def test_sort_orders_the_table(seeded_home, sort, expected):
    at = new_app().run()
    at.selectbox(key="cohort:sort").select(sort).run()
    _ok(at)
    assert at.dataframe[0].value["pseudonym"].tolist() == expected


def test_identified_viewer_sees_names_and_pseudonymised_viewer_never_does(seeded_home):
    clinician = new_app()
    clinician.session_state[VIEWER_KEY] = Viewer("dr.house", "clinician", "s1")
    clinician.run()
    _ok(clinician)
    table = clinician.dataframe[0].value
    assert table["patient_name"].tolist()[:2] == ["Jane DOE", "Richard ROE"]
    clinician.text_input(key="cohort:search").input("doe").run()
    assert clinician.dataframe[0].value["pseudonym"].tolist() == ["HT-0001"]
    # same process, same cache: a researcher right after must not get the cached names
    researcher = new_app()
    researcher.session_state[VIEWER_KEY] = Viewer("ana", "researcher", "s2")
    researcher.run()
    _ok(researcher)
    assert "patient_name" not in researcher.dataframe[0].value.columns


def test_search_and_the_outcome_filter_are_answered_by_the_store_not_the_whole_list(
        seeded_home, monkeypatch):
    from analytics.store import repo

    lists: list[bool] = []
    queries: list[tuple[bool, repo.PatientQuery]] = []
    real_list, real_find = repo.list_patients, repo.find_patients

    def listed(store, *, identified):
        lists.append(identified)
        return real_list(store, identified=identified)

    def found(store, query, *, identified):
        queries.append((identified, query))
        return real_find(store, query, identified=identified)

    monkeypatch.setattr(repo, "list_patients", listed)
    monkeypatch.setattr(repo, "find_patients", found)
    at = new_app().run()
    _ok(at)
    # the table is one page read by the store (sorted and paged there): never the whole list
    page = repo.PatientQuery(limit=100)
    assert lists == [] and queries == [(False, page)]
    # seeded outcomes: HT-0001 decompensation, HT-0002 censored, HT-0003 none
    at.multiselect(key="cohort:filters").set_value(["Had an event"]).run()
    _ok(at)
    assert at.dataframe[0].value["pseudonym"].tolist() == ["HT-0001"]
    assert "1 of 3 patients" in _texts(at.caption)
    at.text_input(key="cohort:search").input(" HT-000 ").run()
    _ok(at)
    assert at.dataframe[0].value["pseudonym"].tolist() == ["HT-0001"]
    at.multiselect(key="cohort:filters").set_value([]).run()
    _ok(at)
    assert at.dataframe[0].value["pseudonym"].tolist() == SEEDED
    assert "3 of 3 patients" in _texts(at.caption)
    assert queries == [(False, page),
                       (False, repo.PatientQuery(had_event=True, limit=100)),
                       (False, repo.PatientQuery(search="HT-000", had_event=True, limit=100)),
                       (False, repo.PatientQuery(search="HT-000", limit=100))]
    assert lists == []  # the whole list was never read: each table is one page

    # a clinician's search reads names; a researcher's same search never does, nor shows them
    clinician = new_app()
    clinician.session_state[VIEWER_KEY] = Viewer("dr.house", "clinician", "s1")
    clinician.run()
    clinician.text_input(key="cohort:search").input("doe").run()
    _ok(clinician)
    assert clinician.dataframe[0].value["patient_name"].tolist() == ["Jane DOE"]
    researcher = new_app()
    researcher.session_state[VIEWER_KEY] = Viewer("ana", "researcher", "s2")
    researcher.run()
    researcher.text_input(key="cohort:search").input("doe").run()
    _ok(researcher)
    assert not researcher.dataframe
    researcher.text_input(key="cohort:search").input("0001").run()
    _ok(researcher)
    shown = researcher.dataframe[0].value
    assert shown["pseudonym"].tolist() == ["HT-0001"]
    assert not {"patient_name", "patient_id", "birth_date"} & set(shown.columns)
    # the identified reads are the clinician's (its first page, then its search) only
    assert [q for q in queries if q[0]] == [(True, page),
                                            (True, repo.PatientQuery(search="doe", limit=100))]


def test_broken_config_shows_typed_error_not_traceback(home):
    home.mkdir(parents=True)
    (home / "config.toml").write_text("db_url = [unclosed\n")
    at = new_app().run()
    assert not at.exception
    assert "config.toml: not valid TOML" in _texts(at.error)[0]
    assert not at.dataframe


def test_unreachable_database_shows_typed_error_without_credentials(home, monkeypatch):
    # nothing listens on port 1: the connection is refused at once
    monkeypatch.setenv("HEPATRACK_DB_URL", "postgresql://alice:s3cret@127.0.0.1:1/hepatrack")
    at = new_app().run()
    assert not at.exception
    error = _texts(at.error)[0]
    assert error.startswith("cannot migrate postgresql+psycopg://alice:***@127.0.0.1:1/")
    assert "s3cret" not in " ".join(_texts(at.error) + _texts(at.caption))
    assert not at.dataframe


# --------------------------------------------------------------------------- patient page
def test_patient_page_shows_the_first_patient(seeded_home):
    at = new_app().run()
    at.switch_page("pages/patient.py").run()
    _ok(at, MISSING_FILES)
    assert at.selectbox(key="patient:pseudonym").value == "HT-0001"
    assert _texts(at.metric)[:5] == ["F", "1960", "2", "3", "Decompensation"]
    assert at.query_params["patient"] == "HT-0001"
    series = table_with(at, "series_uid")
    assert series["series_uid"].tolist() == ["2.25.11", "2.25.12", "2.25.21"]
    visits = table_with(at, "bilirubin_mg_dl")
    assert visits["bilirubin_mg_dl"].tolist() == [1.1, 1.4]
    # latest liver volume 1600 mL (second study); previous 1490 mL (the later series of the
    # first study, read after 1510 mL of its first series)
    summary = table_with(at, "Biomarker").set_index("Biomarker")
    assert summary.loc["Liver volume (mL)", ["Latest", "Previous"]].tolist() == [1600.0, 1490.0]
    # no model, so no risk charts; the biomarker trends and the visit timeline when chosen
    assert not at.get("plotly_chart")
    assert "Trends drawn when chosen: “Biomarkers over time” in More charts above." in _texts(
        at.caption)
    patient_charts(at, "Biomarkers over time")
    _ok(at, MISSING_FILES)
    assert at.multiselect(key="patient:biomarkers").value == [
        "liver_volume_ml", "spleen_volume_ml", "liver_hu_mean"]
    assert [c.key for c in at.get("plotly_chart")] == ["patient:trajectory"]
    patient_charts(at, "Biomarkers over time", "Timeline")
    _ok(at, MISSING_FILES)
    assert len(at.get("plotly_chart")) == 2
    assert any("No trained model yet" in t for t in _texts(at.info))


def test_patient_page_compares_attenuation_within_its_contrast_phase(seeded_home):
    from sqlalchemy import select, update

    from analytics.store.schema import Feature, Series
    from analytics.viz.prep import PHASE_NOTE

    # HT-0001: 55 HU on the first study made unenhanced; the second study (portal venous)
    # measures 30 HU, a fatty-liver value on unenhanced CT (< 40 HU)
    store = open_store(load_settings(seeded_home))
    with store.session() as s:
        s.execute(update(Series).where(Series.series_uid == "2.25.11")
                  .values(contrast_phase="unenhanced"))
        sid = s.execute(select(Series.id).where(Series.series_uid == "2.25.21")).scalar()
        s.execute(update(Feature).where(Feature.series_id == sid,
                                        Feature.name == "liver_hu_mean").values(value=30.0))
    store.dispose()
    at = new_app().run()
    at.switch_page("pages/patient.py").run()
    _ok(at, MISSING_FILES)
    summary = table_with(at, "Biomarker").set_index("Biomarker")
    hu = summary.loc["Liver attenuation, mean (HU)"]
    assert hu["Latest"] == 30.0 and hu["Phase"] == "portal venous"
    # no "-25 HU" against the unenhanced scan, and no fatty-liver flag after contrast
    assert hu[["Previous", "Change"]].isna().all()
    assert hu["Compared with"] == "no earlier scan in the same phase"
    assert hu["Flag"] == "" and hu["Normal range"] == "—"
    assert summary.loc["Liver volume (mL)", "Compared with"] == "previous scan"
    assert PHASE_NOTE in _texts(at.caption)


def test_patient_page_follows_the_link_query_parameter(seeded_home):
    at = new_app()
    at.query_params["patient"] = "HT-0002"
    at.run()
    at.switch_page("pages/patient.py").run()
    _ok(at)
    assert at.selectbox(key="patient:pseudonym").value == "HT-0002"
    assert _texts(at.metric)[:5] == ["M", "1955", "1", "1", "No event"]
    # a later choice in the widget wins over the (unchanged) link
    at.selectbox(key="patient:pseudonym").select("HT-0003").run()
    _ok(at)
    assert at.selectbox(key="patient:pseudonym").value == "HT-0003"
    assert at.query_params["patient"] == "HT-0003"
    assert "No imaging stored for this patient." in _texts(at.caption)
    assert any("No biomarkers computed" in t for t in _texts(at.info))


def test_patient_page_unknown_link_warns(seeded_home):
    at = new_app()
    at.query_params["patient"] = "HT-4040"
    at.run()
    at.switch_page("pages/patient.py").run()
    _ok(at, MISSING_FILES)
    assert "Patient “HT-4040” is not in the store." in _texts(at.warning)
    assert at.selectbox(key="patient:pseudonym").value == "HT-0001"


def test_patient_page_identified_header(seeded_home):
    at = new_app()
    at.session_state[VIEWER_KEY] = Viewer("dr.house", "clinician", "s1")
    at.run()
    at.switch_page("pages/patient.py").run()
    _ok(at, MISSING_FILES)
    assert at.subheader[0].value == "Jane DOE · HT-0001"
    assert "Patient ID MRN-111 · born 1960-01-02" in _texts(at.caption)
    pseudo = new_app().run()
    pseudo.switch_page("pages/patient.py").run()
    assert pseudo.subheader[0].value == "HT-0001"
    assert not any("MRN-111" in t for t in _texts(pseudo.caption))


def test_cohort_page_on_postgresql(postgres, home, monkeypatch):
    url = postgres.new_database("app_cohort")
    monkeypatch.setenv("HEPATRACK_DB_URL", url)
    store = open_store(load_settings())
    seed_without_model(store)
    store.dispose()
    at = new_app().run()
    _ok(at)
    assert at.dataframe[0].value["pseudonym"].tolist() == SEEDED
    captions = " ".join(_texts(at.sidebar.caption))
    assert f"PostgreSQL: 127.0.0.1:{postgres.port}/app_cohort" in captions
    assert "hepatrack@" not in captions  # no user name (or password) in the UI


# --------------------------------------------------------------------------- MDT page
def test_mdt_page_records_question_discussion_and_decision_with_one_audit_record(seeded_home):
    import datetime as dt

    from sqlalchemy import select

    from analytics.store.schema import AuditRecord, MdtRecord
    from ui.mdt_view import record_key

    clinician = Viewer("dr.house", "clinician", "s1")
    at = new_app(clinician).run()
    at.switch_page("pages/mdt.py").run()
    at.date_input(key="mdt:date").set_value(dt.date(2025, 3, 14)).run()
    at.multiselect(key="mdt:patients").set_value(["HT-0001", "HT-0003"]).run()
    _ok(at, MISSING_FILES)
    # the stored DICOM name Doe^Jane in clinical form; age and scores beside it (ALBI at
    # 0 y: 0.66 log10(1.1 x 17.1) - 0.085 x 39 = -2.474, grade 2)
    assert at.subheader[0].value == "Jane DOE · HT-0001"
    facts = next(t for t in _texts(at.caption) if t.startswith("Patient 1 of 2"))
    assert "Age " in facts and "aetiology not recorded" in facts
    assert "ALBI -2.47, grade 2 (at 0.0 y)" in facts and "MELD not computable" in facts
    meeting = "2025-03-14 Hepatology MDT"
    for part, text in (("question", "Is the spleen growth portal hypertension?"),
                       ("discussion", "Spleen 200 -> 250 mL; platelets 140."),
                       ("decision", "Refer for OGD.")):
        at.text_area(key=record_key(part, "HT-0001", meeting)).input(text)
    next(b for b in at.button if b.label == "Save the MDT record").click().run()
    _ok(at, MISSING_FILES)
    assert "**Question:** Is the spleen growth portal hypertension?" in _texts(at.markdown)
    assert "**Decision:** Refer for OGD." in _texts(at.markdown)
    assert at.text_area(key=record_key("decision", "HT-0001", meeting)).value == \
        "Refer for OGD."
    store = open_store(load_settings(seeded_home))
    with store.session() as s:
        rows = s.execute(select(MdtRecord.meeting, MdtRecord.question, MdtRecord.discussion,
                                MdtRecord.decision, MdtRecord.author)).all()
        notes = s.execute(select(AuditRecord.action, AuditRecord.outcome,
                                 AuditRecord.patient_pseudonym, AuditRecord.detail)
                          .where(AuditRecord.action == "note")).all()
    store.dispose()
    assert [tuple(r) for r in rows] == [(meeting, "Is the spleen growth portal hypertension?",
                                         "Spleen 200 -> 250 mL; platelets 140.",
                                         "Refer for OGD.", "dr.house")]
    assert [(n.action, n.outcome, n.patient_pseudonym) for n in notes] == [
        ("note", "ok", "HT-0001")]
    assert notes[0].detail["what"] == "mdt_record" and "OGD" not in str(notes[0].detail)
    # the next patient has nothing recorded in this meeting
    at.button(key="mdt:next").click().run()
    _ok(at)
    assert at.subheader[0].value == "Name not recorded · HT-0003"
    assert f"Nothing recorded for HT-0003 in {meeting} yet." in _texts(at.caption)
    assert not any(t.startswith("**Decision:**") for t in _texts(at.markdown))


def test_mdt_previous_and_next_are_greyed_out_at_the_ends_of_the_meeting_list(seeded_home):
    at = new_app(Viewer("dr.house", "clinician", "s1")).run()
    at.switch_page("pages/mdt.py").run()
    at.multiselect(key="mdt:patients").set_value(["HT-0001", "HT-0003"]).run()
    _ok(at, MISSING_FILES)
    assert at.button(key="mdt:prev").disabled and not at.button(key="mdt:next").disabled
    at.button(key="mdt:next").click().run()
    assert at.selectbox(key="mdt:current").value == "HT-0003"
    assert not at.button(key="mdt:prev").disabled and at.button(key="mdt:next").disabled
    at.selectbox(key="mdt:current").set_value("HT-0001").run()  # chosen in the list
    assert at.button(key="mdt:prev").disabled and not at.button(key="mdt:next").disabled


def test_mdt_page_refuses_an_empty_record(seeded_home):
    from ui.mdt_view import record_key

    at = new_app(Viewer("dr.house", "clinician", "s1")).run()
    at.switch_page("pages/mdt.py").run()
    at.multiselect(key="mdt:patients").set_value(["HT-0001"]).run()
    next(b for b in at.button if b.label == "Save the MDT record").click().run()
    assert any("question, discussion and decision are all empty" in e
               for e in _texts(at.error))
    assert not at.exception
    assert "Nothing recorded for HT-0001" in " ".join(_texts(at.caption))
    assert record_key("form", "HT-0001", "m") != record_key("form", "HT-0001", "m2")


def test_the_cohort_table_pages_through_the_patients_in_the_chosen_order(seeded_home,
                                                                         monkeypatch):
    from ui import cohort_view

    monkeypatch.setattr(cohort_view, "PAGE_SIZES", (2, 100))  # three seeded patients
    at = new_app().run()
    _ok(at)
    assert at.dataframe[0].value["pseudonym"].tolist() == ["HT-0001", "HT-0002"]
    assert "3 of 3 patients · rows 1–2" in _texts(at.caption)
    assert at.number_input(key="cohort:page").label == "Page (of 2)"
    at.number_input(key="cohort:page").set_value(2).run()
    _ok(at)
    assert at.dataframe[0].value["pseudonym"].tolist() == ["HT-0003"]
    assert "3 of 3 patients · rows 3–3" in _texts(at.caption)
    # a new sort starts again at page 1: visit occasions 3 (HT-0001), 2 (HT-0003), 1
    at.selectbox(key="cohort:sort").select("Visits (most first)").run()
    _ok(at)
    assert at.number_input(key="cohort:page").value == 1
    table = at.dataframe[0].value
    assert table["pseudonym"].tolist() == ["HT-0001", "HT-0003"]
    assert table["n_visits"].tolist() == [3, 2]
    at.number_input(key="cohort:page").set_value(2).run()
    assert at.dataframe[0].value["pseudonym"].tolist() == ["HT-0002"]
    # every row on one page: no page control, the whole list
    at.selectbox(key="cohort:page_size").select(100).run()
    _ok(at)
    assert at.dataframe[0].value["pseudonym"].tolist() == ["HT-0001", "HT-0003", "HT-0002"]
    assert not at.number_input and "3 of 3 patients" in _texts(at.caption)
