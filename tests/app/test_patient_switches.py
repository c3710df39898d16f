"""Switching patient many times in one session keeps memory bounded: every cache a
switch fills (the shared trajectories, the session's patient reads, the audit marks) is
bounded or replaced, so after the patients were seen once the live objects stop growing
(Streamlit's after-run full collection is off, ``.streamlit/config.toml``; the cached
tables are frozen out of the collector's reach, ``ui.dash``)."""

from __future__ import annotations

import gc
import tomllib
from pathlib import Path

from analytics.cohort import build_cohort
from analytics.config import load_settings
from analytics.explain import patient_trajectory
from analytics.models.registry import load_model
from analytics.store import open_store
from tests.app.conftest import new_app, open_patient, patient_charts
from tests.dashboard_data import copied_home, template_home
from ui.session import Viewer

#: fixtures: a private copy of the trained dashboard home, and its template
home, template = copied_home, template_home

CLINICIAN = Viewer("dr.grey", "clinician", "s-clin")
ROOT = Path(__file__).resolve().parents[2]


def _live_objects() -> int:
    gc.collect()
    return len(gc.get_objects())


def test_fifty_patient_switches_do_not_grow_the_sessions_memory(home, template):
    at = new_app(CLINICIAN).run()
    at.switch_page("pages/patient.py").run()
    assert not at.exception, [e.value for e in at.exception]
    patients = sorted(template.pseudonyms.values())[:10]
    seen = []

    def switch(i: int) -> None:
        open_patient(at, patients[i % len(patients)])
        assert not at.exception, [e.value for e in at.exception]
        assert not at.error, [e.value for e in at.error]
        seen.append(at.selectbox(key="patient:pseudonym").value)

    for i in range(2 * len(patients)):  # every patient scored and read once, then again
        switch(i)
    before = _live_objects()
    for i in range(50):
        switch(i)
    after = _live_objects()
    assert seen[-1] == patients[49 % len(patients)] and len(set(seen)) == len(patients)
    # the same patients again: nothing new to keep (a leak of one trajectory, figure or
    # patient read per switch would add thousands of objects)
    assert after - before < 2_000, (before, after)


def test_streamlit_does_not_walk_the_cached_tables_after_every_run():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False


def test_every_patient_switch_is_audited_in_one_write_and_a_patient_seen_again_is_audited_again(
        home, template, monkeypatch):
    from sqlalchemy import select

    from analytics.config import load_settings
    from analytics.store import audit_log, open_store
    from analytics.store.schema import AuditRecord

    writes = []
    real = audit_log.append_all

    def counted(store, build):
        written = real(store, build)
        writes.append([(e.action, e.patient_pseudonym) for e in written or []])
        return written

    monkeypatch.setattr(audit_log, "append_all", counted)
    at = new_app(CLINICIAN).run()
    at.switch_page("pages/patient.py").run()
    assert not at.exception, [e.value for e in at.exception]
    shown = at.selectbox(key="patient:pseudonym").value
    a, b = [p for p in sorted(template.pseudonyms.values()) if p != shown][:2]
    writes.clear()
    for p in (a, b, a, b):
        open_patient(at, p)
        assert not at.exception, [e.value for e in at.exception]
        assert at.selectbox(key="patient:pseudonym").value == p
    at.run()  # a rerun of the same view writes nothing
    # each switch: the view and the prediction drawn with it, in one write, never dropped
    assert writes == [[("view_patient", p), ("predict", p)] for p in (a, b, a, b)]
    store = open_store(load_settings(home))
    try:
        with store.session() as s:
            rows = s.execute(select(AuditRecord.action, AuditRecord.patient_pseudonym,
                                    AuditRecord.detail)
                             .where(AuditRecord.username == CLINICIAN.username)
                             .order_by(AuditRecord.seq)).all()
    finally:
        store.dispose()
    views = [r.patient_pseudonym for r in rows if r.action == "view_patient"]
    assert views[-4:] == [a, b, a, b]
    preds = [r for r in rows if r.action == "predict"][-4:]
    assert [r.patient_pseudonym for r in preds] == [a, b, a, b]
    assert {r.detail["horizon"] for r in preds} == {3.0}  # the longest of 1, 2, 3 y


def test_a_switch_draws_the_risk_first_and_the_biomarker_trends_once_chosen_stay_drawn(
        home, template):
    a, b = template.imaging[:2]
    at = new_app(CLINICIAN)
    at.query_params["patient"] = a
    at.run()
    at.switch_page("pages/patient.py").run()
    assert not at.exception, [e.value for e in at.exception]
    keys = [c.key for c in at.get("plotly_chart")]
    assert "patient:risk" in keys and "patient:trajectory" not in keys
    assert not [m for m in at.multiselect if m.key == "patient:biomarkers"]
    assert any("“Biomarkers over time” in More charts" in c.value for c in at.caption)
    # the visit picker names every visit by time, kind and risk, as scored by the model
    settings = load_settings(home)
    store = open_store(settings)
    try:
        view = patient_trajectory(load_model(store, settings), build_cohort(store).visits,
                                  a, 3.0)
    finally:
        store.dispose()
    options = at.select_slider(key=f"patient:visit-{a}").options
    assert len(options) == len(view.points)
    for label, (_, p) in zip(options, view.points.iterrows(), strict=True):
        assert label.startswith(f"{p['time']:.1f} y · ")
        assert label.endswith(f"{'scan' if p['is_scan'] else 'lab visit'} · "
                              + (f"{100 * p['risk']:.1f}%" if p["assessable"]
                                 else "not assessable"))
    # chosen once, the trends are drawn for this patient and the next one
    patient_charts(at, "Biomarkers over time")
    assert not at.exception, [e.value for e in at.exception]
    assert "patient:trajectory" in [c.key for c in at.get("plotly_chart")]
    open_patient(at, b)
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="patient:pseudonym").value == b
    assert "patient:trajectory" in [c.key for c in at.get("plotly_chart")]
    assert at.multiselect(key="patient:biomarkers").value
