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


def test_after_the_cohort_the_warm_up_primes_the_patient_page_before_the_other_pages(
        fresh, monkeypatch):
    done: list[str] = []
    monkeypatch.setattr(warmup, "warm_cohort", lambda: done.append("cohort") or {})
    monkeypatch.setattr(warmup, "warm_patient_page",
                        lambda: done.append("patient page") or {})
    monkeypatch.setattr(warmup, "warm_imports", lambda modules: done.extend(modules) or {})
    monkeypatch.setattr(warmup, "warm_key_images", lambda: done.append("key images") or {})
    warmup.start().join(30)
    assert done == ["cohort", "patient page", *warmup.OTHER_MODULES, "key images"]
