"""The Cohort page's heavy work (the cohort table, every patient's risk) is done once per
store data version: a second user's session opens the page from the shared build, and a
write to the store (here from outside the app, as ``hepatrack import-cohort`` would)
makes the next run rebuild it within ``ui.loaders.TTL_S`` seconds."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sqlalchemy import update

import analytics.cohort
import analytics.usecases.overview
from analytics.config import load_settings
from analytics.store import open_store
from analytics.store.schema import Outcome
from tests.app.conftest import cohort_charts, new_app
from tests.dashboard_data import copied_home, template_home
from ui import loaders
from ui.loaders import PICKER_LIMIT
from ui.session import Viewer

#: fixtures: a private copy of the trained dashboard home, and its template
home, template = copied_home, template_home

CLINICIAN = Viewer("dr.grey", "clinician", "s-clin")
RESEARCHER = Viewer("ana.res", "researcher", "s-res")


@pytest.fixture
def calls(monkeypatch) -> dict[str, int]:
    """How often the cohort table is built and the cohort scored."""
    n = {"build_cohort": 0, "cohort_risk": 0}
    for module, name in ((analytics.cohort, "build_cohort"),
                         (analytics.usecases.overview, "cohort_risk")):
        real = getattr(module, name)

        def counted(*a, _real=real, _name=name, **k):
            n[_name] += 1
            return _real(*a, **k)

        monkeypatch.setattr(module, name, counted)
    return n


def _cohort_page(viewer: Viewer):
    at = new_app(viewer).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def test_a_second_session_reuses_the_build_and_a_write_rebuilds_it(home, calls):
    first = _cohort_page(CLINICIAN)
    assert calls == {"build_cohort": 1, "cohort_risk": 1}
    cohort_charts(first)
    keys = {c.key for c in first.get("plotly_chart")}
    assert {"cohort:risk_hist", "cohort:incidence", "cohort:swimmer"} <= keys

    _cohort_page(RESEARCHER)  # another user, another session: nothing rebuilt
    first.run()
    assert calls == {"build_cohort": 1, "cohort_risk": 1}

    store = open_store(load_settings(home))
    with store.session() as s:  # one patient's follow-up is corrected outside the app
        s.execute(update(Outcome).where(Outcome.id == 1).values(
            time_years=Outcome.time_years + 0.25))
        s.commit()
    store.dispose()
    time.sleep(loaders.TTL_S + 0.5)  # the version is trusted for TTL_S seconds
    first.run()
    assert not first.exception, [e.value for e in first.exception]
    assert calls == {"build_cohort": 2, "cohort_risk": 2}


def test_a_server_warm_up_builds_the_cohort_so_the_first_session_builds_nothing(
        home, calls):
    from analytics.models.registry import load_model
    from analytics.usecases.overview import cohort_risk
    from ui import warmup

    steps = warmup.warm()
    assert calls == {"build_cohort": 1, "cohort_risk": 1}
    assert {"cohort table", "cohort risk", "risk groups", "timeline"} <= set(steps)

    at = _cohort_page(CLINICIAN)  # the first session after start-up
    assert calls == {"build_cohort": 1, "cohort_risk": 1}
    # the warmed risks are the model's longest horizon, the page's default
    settings = load_settings(home)
    store = open_store(settings)
    model = load_model(store, settings)
    truth = cohort_risk(model, analytics.cohort.build_cohort(store).visits,
                        max(model.horizons)).set_index("pseudonym")
    store.dispose()
    shown = at.dataframe[0].value.set_index("pseudonym")
    np.testing.assert_allclose(shown.loc[truth.index, "risk_pct"], truth["risk"] * 100,
                               equal_nan=True)


def test_an_empty_store_warms_nothing_but_the_counts(tmp_path, monkeypatch, calls):
    from ui import warmup

    monkeypatch.setenv("HEPATRACK_HOME", str(tmp_path / "empty"))
    steps = warmup.warm()
    assert "summary" in steps and "cohort table" not in steps
    assert calls == {"build_cohort": 0, "cohort_risk": 0}


def test_the_patient_list_is_read_once_per_view_and_a_researcher_never_gets_the_identified_one(
        home, template, monkeypatch):
    from analytics.store import repo

    # the Cohort page reads its page of the list, the Patient page's picker its first few
    reads: list[tuple[str, bool]] = []
    real_list, real_find, real_names = repo.list_patients, repo.find_patients, repo.find_names

    def listed(store, *, identified):
        reads.append(("list", identified))
        return real_list(store, identified=identified)

    def found(store, query, *, identified):
        reads.append(("page", identified))
        return real_find(store, query, identified=identified)

    def named(store, query, *, identified):
        reads.append(("names", identified))
        return real_names(store, query, identified=identified)

    monkeypatch.setattr(repo, "list_patients", listed)
    monkeypatch.setattr(repo, "find_patients", found)
    monkeypatch.setattr(repo, "find_names", named)
    clinician = _cohort_page(CLINICIAN)
    identified = clinician.dataframe[0].value
    names = set(identified["patient_name"].dropna()) - {"name not recorded"}
    assert names and reads == [("page", True)]
    _cohort_page(Viewer("dr.white", "clinician", "s-clin-2"))  # from the shared page
    assert reads == [("page", True)]

    researcher = _cohort_page(RESEARCHER)  # after a clinician: still its own view's page
    _cohort_page(Viewer("bo.res", "researcher", "s-res-2"))
    assert reads == [("page", True), ("page", False)]
    shown = researcher.dataframe[0].value
    assert not {"patient_name", "patient_id", "birth_date"} & set(shown.columns)
    cells = {str(v) for v in shown.to_numpy().ravel()}
    assert not cells & names and not cells & set(template.pseudonyms)  # real IDs
    assert sorted(shown["pseudonym"]) == sorted(identified["pseudonym"])
    # the Patient page's picker: a researcher's labels are the bare pseudonyms, a
    # clinician's carry the names
    researcher.switch_page("pages/patient.py").run()
    assert not researcher.exception, [e.value for e in researcher.exception]
    assert researcher.selectbox(key="patient:pseudonym").options == sorted(
        shown["pseudonym"])[:PICKER_LIMIT]
    clinician.switch_page("pages/patient.py").run()
    labels = clinician.selectbox(key="patient:pseudonym").options
    assert any(" · " in label for label in labels)
    # each view's page read once; the pickers find their first patients in the store
    # (their first 20 and the first one), never the whole list; the researcher's reads
    # are never identified
    assert reads == [("page", True), ("page", False), ("names", False), ("names", False),
                     ("names", True), ("names", True)]


def test_a_server_warm_up_reads_the_pseudonymised_patient_list_only(home, monkeypatch):
    from analytics.store import repo
    from ui import warmup

    reads: list[bool] = []
    real = repo.list_patients
    monkeypatch.setattr(repo, "list_patients", lambda store, *, identified: (
        reads.append(identified), real(store, identified=identified))[1])
    assert "patient list" in warmup.warm()
    assert reads == [False]  # no names before anyone signed in
    _cohort_page(RESEARCHER)
    assert reads == [False]


def test_a_patient_opened_in_one_session_is_not_scored_again_in_another(
        home, template, monkeypatch):
    import ui.dash
    from analytics.explain import patient_trajectory

    scored: list[str] = []

    def counted(model, visits, patient, *a, **k):
        scored.append(patient)
        return patient_trajectory(model, visits, patient, *a, **k)

    monkeypatch.setattr(ui.dash, "patient_trajectory", counted)
    p = template.imaging[0]
    risks = []
    for viewer in (CLINICIAN, RESEARCHER):
        at = new_app(viewer)
        at.query_params["patient"] = p
        at.run()
        at.switch_page("pages/patient.py").run()
        assert not at.exception, [e.value for e in at.exception]
        risks.append({m.label: m.value for m in at.metric}["Risk within 3 y"])
    assert scored == [p]  # the researcher's session reused the clinician's scoring
    assert risks[0] == risks[1] and risks[0].endswith("%")
