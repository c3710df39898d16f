"""The dashboard's cohort risk is kept in the store as the model's current risk (so the
cohort list can sort by it in SQL): the values the Cohort page shows, checked against
``overview.cohort_risk`` on the same model and cohort."""

from __future__ import annotations

import math

import numpy as np
import streamlit as st
from sqlalchemy import select

from analytics.cohort import build_cohort
from analytics.config import load_settings
from analytics.models.registry import load_model
from analytics.store import open_store
from analytics.store.current_risk import read_current_risk
from analytics.store.schema import CurrentRisk
from analytics.usecases.overview import cohort_risk
from tests.app.conftest import new_app
from tests.dashboard_data import copied_home, template_home

#: fixtures: a private copy of the trained dashboard home, and its template
home, template = copied_home, template_home


def test_opening_the_cohort_page_stores_the_risk_it_shows(home, template):
    at = new_app().run()  # the Cohort page: the active model's risk at its longest horizon
    assert not at.exception, [e.value for e in at.exception]
    settings = load_settings(home)
    store = open_store(settings)
    try:
        got = read_current_risk(store, template.model_id, 3.0)
        want = cohort_risk(load_model(store, settings, template.model_id),
                           build_cohort(store).visits, 3.0).set_index("pseudonym")
    finally:
        store.dispose()
    assert sorted(got) == sorted(want.index)
    for p, row in got.items():
        expected = want.loc[p, "risk"]
        if np.isfinite(expected):
            assert math.isclose(row.risk, expected, rel_tol=1e-12), p
        else:
            assert row.risk is None and row.reason, p


def test_a_second_server_start_does_not_rewrite_a_current_stored_risk(home, template):
    first = new_app().run()
    assert not first.exception, [e.value for e in first.exception]
    settings = load_settings(home)
    store = open_store(settings)
    try:
        with store.session() as s:
            stamps = sorted(s.execute(select(CurrentRisk.computed_at)).scalars())
        st.cache_resource.clear()  # a restarted server: the cohort risk computed afresh
        again = new_app().run()
        assert not again.exception, [e.value for e in again.exception]
        with store.session() as s:
            assert sorted(s.execute(select(CurrentRisk.computed_at)).scalars()) == stamps
    finally:
        store.dispose()
