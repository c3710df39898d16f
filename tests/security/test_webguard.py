"""The HTTP guard of ``hepatrack serve`` (ui/webguard.py), driven as ASGI: headers on every
response, metrics closed, and a download served once, to the browser cookie it was
granted to (RELIABILITY.md 35). tests/e2e/test_web_security.py checks it in Chromium."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from streamlit.runtime.media_file_storage import MediaFileKind

from ui import webguard

PDF = b"%PDF-1.7 DUBOIS^MARK^G Patient ID 12345 born 19580314"
MEDIA = "/media/5f0c.pdf"


async def _app(scope, receive, send):  # Streamlit's side: serves whatever reaches it
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/pdf")]})
    await send({"type": "http.response.body", "body": PDF})


def _call(path: str, cookie: str | None = None, mode: str | None = None):
    headers = []
    if cookie:
        headers.append((b"cookie", f"{webguard.COOKIE}={cookie}".encode()))
    if mode:
        headers.append((b"sec-fetch-mode", mode.encode()))
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "path": path, "headers": headers, "scheme": "http"}
    # a loop of its own in a thread: a browser test earlier in the session may leave one
    # running in this thread, where asyncio.run refuses to start
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, webguard.GuardMiddleware(_app)(scope, receive, send)).result()
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


@pytest.fixture
def media(monkeypatch):
    files = {MEDIA: SimpleNamespace(kind=MediaFileKind.DOWNLOADABLE, content=PDF)}
    monkeypatch.setattr(webguard, "_media_file", lambda path: files.get(path))
    return files


def _browser() -> str:
    """A cookie the guard issued (what a browser gets on its first page load)."""
    _s, headers, _b = _call("/")
    return headers["set-cookie"].split(";")[0].split("=", 1)[1]


def test_every_response_carries_anti_framing_headers_and_a_browser_cookie():
    status, headers, body = _call("/")
    assert (status, body) == (200, PDF)
    assert headers["x-frame-options"] == "DENY"
    assert headers["content-security-policy"] == "frame-ancestors 'none'"
    assert "HttpOnly" in headers["set-cookie"] and "SameSite=Strict" in headers["set-cookie"]


def test_metrics_are_not_answered():
    status, headers, body = _call("/_stcore/metrics", _browser())
    assert status == 404 and body == b"Not found" and headers["x-frame-options"] == "DENY"


def test_a_download_url_is_refused_to_a_client_without_the_browser_cookie(media):
    webguard.grant(PDF, _browser())
    for cookie in (None, "made-up-cookie", "forged-nonce." + "0" * 64):
        status, _h, body = _call(MEDIA, cookie, "navigate")
        assert status == 403 and PDF not in body


def test_a_download_is_served_once_to_the_browser_it_was_granted_to(media):
    mine, theirs = _browser(), _browser()
    assert _call(MEDIA, mine, "navigate")[0] == 403  # no click, no grant
    webguard.grant(PDF, mine)
    assert _call(MEDIA, theirs, "navigate")[0] == 403  # another browser
    status, headers, body = _call(MEDIA, mine, "cors")  # Streamlit's check: no bytes
    assert (status, body) == (200, b"")
    status, headers, body = _call(MEDIA, mine, "navigate")
    assert (status, body) == (200, PDF) and headers["cache-control"] == "no-store"
    status, _h, body = _call(MEDIA, mine, "navigate")
    assert status == 403 and b"can be used once" in body


def test_a_grant_expires(media):
    mine = _browser()
    webguard.grant(PDF, mine, ttl_s=0.0)
    assert _call(MEDIA, mine, "navigate")[0] == 403


def test_no_grant_is_made_without_a_browser():
    data = b"%PDF-1.7 a pack built where no browser is connected"
    assert webguard.grant(data, None) == data and webguard._digest(data) not in webguard._grants
