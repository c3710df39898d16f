"""Training from the Models page runs in the background and shows real progress (the
fold, replicate or stage it is at, with a bar) that survives going to another page and
back, then the finished model."""

from __future__ import annotations

import threading
import time

import pytest

from analytics.models import crossval
from tests.app.conftest import new_app
from tests.dashboard_data import copied_home, template_home
from ui.session import Viewer

#: fixtures: a private copy of the trained dashboard home, and its template
home, template = copied_home, template_home

RESEARCHER = Viewer("ana.res", "researcher", "s-res")
JOB_KEY = "models:job"
TIMEOUT_S = 240


@pytest.fixture
def paused_after_first_fold(monkeypatch):
    """Training stops after its first cross-validation fold until ``release`` is set."""
    reached, release = threading.Event(), threading.Event()
    report = crossval.report

    def pausing(progress, stage, done, total, detail=""):
        report(progress, stage, done, total, detail)
        if stage == "folds" and done == 1:
            reached.set()
            release.wait(TIMEOUT_S)

    monkeypatch.setattr(crossval, "report", pausing)
    yield reached, release
    release.set()


def _texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


def test_training_shows_its_fold_across_pages_then_the_finished_model(
        home, paused_after_first_fold):
    reached, release = paused_after_first_fold
    at = new_app(RESEARCHER).run()
    at.switch_page("pages/models.py").run()
    at.number_input(key="models:folds").set_value(2)
    at.number_input(key="models:repeats").set_value(1)
    at.number_input(key="models:bootstrap").set_value(10)
    at.multiselect(key="models:horizons").set_value([1.0, 2.0])
    next(b for b in at.button if b.label == "Train").click().run()
    assert reached.wait(TIMEOUT_S), "training never finished its first fold"

    at.run()
    assert not at.exception, [e.value for e in at.exception]
    labels = [s.label for s in at.status]
    assert ("Training: cross-validation: 1 of 2 folds done (fold 1 of 2, repeat 1 of 1)"
            in labels), labels
    # one fold of two is half of the first of six equal stages: 1/12 = 8 %
    assert [p.value for p in at.progress] == [8]

    # the job keeps running while the user works elsewhere, and is there on return
    at.switch_page("pages/cohort.py").run()
    assert not at.exception and not at.status
    at.switch_page("pages/models.py").run()
    assert [p.value for p in at.progress] == [8]

    release.set()
    deadline = time.monotonic() + TIMEOUT_S
    while at.session_state[JOB_KEY].running:
        assert time.monotonic() < deadline, "training still running"
        time.sleep(0.5)
    job = at.session_state[JOB_KEY]
    assert job.error is None, job.error
    # every stage's last step was logged, the final fit last
    assert job.lines[0] == ("cross-validation: 2 of 2 folds done "
                            "(fold 2 of 2, repeat 1 of 1)")
    assert "bootstrap intervals: 10 of 10 replicates done (replicate 10 of 10)" in job.lines
    assert job.lines[-1].startswith("final fit: 1 of 1 fits done")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    new_id = job.result["model_id"]
    assert any(f"Model {new_id} trained" in t for t in _texts(at.success))
    assert new_id in at.selectbox(key="models:model").options
