"""Fixtures for the Streamlit AppTest suite: a temp HEPATRACK_HOME, empty or seeded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from analytics.config import Settings
from analytics.store import open_store
from tests.store.seed import seed_small_cohort
from ui.session import VIEWER_KEY, Viewer

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TIMEOUT_S = 60  # the first run imports pandas, plotly and SQLAlchemy


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    # caches live in the process: each test starts as a freshly started server would
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def seed_without_model(store) -> None:
    """The tiny hand-checkable cohort, without its registry row: that row has no artifact
    (it exists for the repository tests), and the pages would rightly report it as a
    model that fails its integrity check (tested on its own in test_dashboard.py)."""
    from sqlalchemy import delete

    from analytics.store.schema import ModelRecord

    seed_small_cohort(store)
    with store.session() as s:
        s.execute(delete(ModelRecord))


@pytest.fixture
def seeded_home(settings: Settings) -> Path:
    store = open_store(settings)
    seed_without_model(store)
    store.dispose()
    return settings.home


RESEARCHER = Viewer("ana", "researcher", "s-researcher")


def new_app(viewer: Viewer | None = RESEARCHER) -> AppTest:
    """An AppTest of the dashboard, signed in as ``viewer`` (None: an anonymous session).

    Signing in sets the session's viewer server-side, as the login gate does after a
    successful password check; tests/app/test_login.py drives the form itself.
    """
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    if viewer is not None:
        at.session_state[VIEWER_KEY] = viewer
    return at


def cohort_charts(at: AppTest, *charts: str) -> AppTest:
    """Choose charts on the Cohort page as a person would, in its "Charts" pills (all the
    offered ones when none are named), and run the page again."""
    pills = [b for b in at.get("button_group") if b.key == "cohort:charts"]
    assert pills, [b.key for b in at.get("button_group")]
    return pills[0].set_value(list(charts) or list(pills[0].options)).run()


def patient_charts(at: AppTest, *charts: str) -> AppTest:
    """Choose charts on the Patient page as a person would, in its "More charts" pills
    (all of them when none are named), and run the page again."""
    pills = [b for b in at.get("button_group") if b.key == "patient:charts"]
    assert pills, [b.key for b in at.get("button_group")]
    return pills[0].set_value(list(charts) or list(pills[0].options)).run()


def open_page(page: str, viewer: Viewer | None) -> AppTest:
    """A new session of ``viewer`` on ``page`` (e.g. ``"pages/ingest.py"``), reached
    through the app's navigation as after signing in; no exception raised."""
    at = new_app(viewer).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_patient(at: AppTest, pseudonym: str) -> AppTest:
    """Open a patient on the Patient page as a person would: pick it in the picker when
    it is offered there, else type its pseudonym in the search box (which opens the
    patient it names), and run the page again."""
    picker = at.selectbox(key="patient:pseudonym")
    if any(o.split(" · ")[0] == pseudonym for o in picker.options):
        return picker.set_value(pseudonym).run()
    return at.text_input(key="patient:find").set_value(pseudonym).run()
