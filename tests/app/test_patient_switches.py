"""Switching patient many times in one session keeps memory bounded: every cache a
switch fills (the shared trajectories, the session's patient reads, the audit marks) is
bounded or replaced, so after the patients were seen once the live objects stop growing
(Streamlit's after-run full collection is off, ``.streamlit/config.toml``; the cached
tables are frozen out of the collector's reach, ``ui.dash``)."""

from __future__ import annotations

import gc
import tomllib
from pathlib import Path

from tests.app.conftest import new_app
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
        at.selectbox(key="patient:pseudonym").set_value(patients[i % len(patients)]).run()
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
