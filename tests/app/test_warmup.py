"""The server's start-up warm-up (ui/warmup.py) and the health check that waits for it
(ui/webguard.py): a service manager, a load balancer or a browser connects once the
shared caches are built, and a warm-up that fails or hangs never keeps the dashboard
closed. tests/app/test_shared_cohort_cache.py checks what the warm-up builds."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from analytics.errors import StoreError
from ui import warmup, webguard


async def _streamlit(scope, receive, send):  # Streamlit's own health answer
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _health(ready) -> tuple[int, bytes]:
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "path": "/_stcore/health", "headers": [], "scheme": "http"}
    guard = webguard.GuardMiddleware(_streamlit, ready=ready)
    with ThreadPoolExecutor(1) as pool:  # a loop of its own, as in test_webguard.py
        pool.submit(asyncio.run, guard(scope, receive, send)).result()
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.fixture
def fresh(monkeypatch):
    """No warm-up started yet in this process."""
    monkeypatch.setattr(warmup, "_started", [])
    monkeypatch.setattr(warmup, "_done", threading.Event())


def test_health_answers_503_while_the_caches_are_built_and_200_once_they_are(
        fresh, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(warmup, "warm_cohort", lambda: release.wait(30) and {})
    assert warmup.ready()  # nothing started: healthy as before
    thread = warmup.start()
    assert not warmup.ready()
    assert _health(warmup.ready) == (503, b"warming up")
    release.set()
    thread.join(30)
    assert warmup.ready()
    assert _health(warmup.ready) == (200, b"ok")


def test_a_warm_up_that_fails_still_lets_the_server_report_healthy(fresh, monkeypatch):
    def broken():
        raise StoreError("database locked")

    monkeypatch.setattr(warmup, "warm_cohort", broken)
    warmup.start().join(30)
    assert warmup.ready() and _health(warmup.ready) == (200, b"ok")


def test_a_warm_up_that_hangs_stops_holding_the_health_check_after_its_limit(
        fresh, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(warmup, "warm_cohort", lambda: release.wait(30) and {})
    thread = warmup.start()
    assert not warmup.ready()
    warmup._started[-1] -= warmup.READY_AFTER_S + 1  # as if started that long ago
    assert warmup.ready() and _health(warmup.ready)[0] == 200
    release.set()
    thread.join(30)


def test_without_a_readiness_check_health_passes_straight_to_streamlit():
    assert _health(None) == (200, b"ok")


@pytest.fixture
def no_runs(monkeypatch):
    """No page run counted yet in this process, and a short quiet period."""
    monkeypatch.setattr(warmup, "_runs", threading.Condition())
    monkeypatch.setattr(warmup, "_running", [0])
    monkeypatch.setattr(warmup, "_last_run_end", [float("-inf")])
    monkeypatch.setattr(warmup, "IDLE_QUIET_S", 0.05)


def test_the_server_counts_as_idle_only_once_no_page_has_run_for_the_quiet_period(no_runs):
    assert warmup.wait_idle(max_wait_s=0)  # nobody ever ran a page
    with warmup.script_run():
        assert warmup._running == [1]
        assert not warmup.wait_idle(max_wait_s=0.2)  # a page is running
    assert warmup._running == [0]
    assert not warmup.wait_idle(quiet_s=60, max_wait_s=0)  # it has just ended
    assert warmup.wait_idle(max_wait_s=30)  # then quiet for IDLE_QUIET_S


def test_a_page_run_that_stops_or_fails_still_ends_its_count(no_runs):
    with pytest.raises(RuntimeError, match="page failed"), warmup.script_run():
        raise RuntimeError("page failed")
    assert warmup._running == [0]


def test_after_the_patient_page_the_warm_up_waits_for_running_pages_before_its_next_steps(
        fresh, no_runs, monkeypatch):
    done: list[str] = []
    patient_page, imports_started = threading.Event(), threading.Event()
    monkeypatch.setattr(warmup, "warm_cohort", lambda: done.append("cohort") or {})
    monkeypatch.setattr(warmup, "warm_patient_page",
                        lambda: done.append("patient page") or patient_page.set() or {})

    def imports(modules):
        imports_started.set()
        done.extend(modules)
        return {}

    def key_images(pause):
        pause()
        done.append("key images")
        return {}

    monkeypatch.setattr(warmup, "warm_imports", imports)
    monkeypatch.setattr(warmup, "warm_key_images", key_images)
    with warmup.script_run():  # the first session's page is running
        thread = warmup.start()
        assert patient_page.wait(30)  # the Patient page's part does not wait
        assert warmup.ready()
        assert not imports_started.wait(0.5)  # the rest does
        assert done == ["cohort", "patient page"]
    thread.join(30)
    assert done == ["cohort", "patient page", *warmup.OTHER_MODULES, "key images"]


def test_each_page_run_of_the_app_is_counted_while_it_runs_signed_in_or_not(
        seeded_home, no_runs, monkeypatch):
    from tests.app.conftest import new_app
    from ui import shell

    seen: list[int] = []
    real = shell.sidebar

    def sidebar(*a, **k):
        seen.append(warmup._running[0])
        return real(*a, **k)

    monkeypatch.setattr(shell, "sidebar", sidebar)
    at = new_app().run()  # a signed-in researcher's Cohort page
    assert not at.exception, [e.value for e in at.exception]
    assert seen == [1] and warmup._running == [0]
    ended = warmup._last_run_end[0]
    anonymous = new_app(None).run()  # stopped at the login gate
    assert not anonymous.exception and seen == [1]
    assert warmup._running == [0] and warmup._last_run_end[0] > ended
