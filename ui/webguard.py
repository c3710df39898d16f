"""HTTP guard in front of the Streamlit server (``webapp.py`` mounts it with ``st.App``).

Streamlit serves ``st.download_button`` files and ``st.image`` pictures at
``/media/<id>`` to anyone holding the URL, and answers ``/_stcore/metrics`` anonymously.
This ASGI middleware:

- adds anti-framing and hardening headers to every HTTP response (``X-Frame-Options:
  DENY``, CSP ``frame-ancestors 'none'``, ``nosniff``, no referrer);
- closes ``/_stcore/metrics`` (404);
- answers the health check ``/_stcore/health`` with 503 while the server is still
  building its shared caches (``ready``, from ``ui.warmup``), so a service manager, a
  load balancer or a browser connects once pages open quickly;
- gives each browser a random, HttpOnly, SameSite=Strict cookie (:data:`COOKIE`), which
  the browser also sends with the websocket, so a script run knows it
  (``st.context.cookies``);
- serves a download (a ``DOWNLOADABLE`` media file) only against a one-time grant made
  for those exact bytes and that browser's cookie when the user clicked (:func:`grant`),
  and other media only to a browser holding a cookie issued here.

On a click Streamlit's frontend requests the file twice: a ``fetch`` that only checks the
URL answers (``Sec-Fetch-Mode: cors``) and the download itself, a navigation
(``Sec-Fetch-Mode: navigate``). The bytes go out only on the navigation, which spends the
grant; any other request holding an open grant gets an empty 200.

A URL copied out of the browser is therefore useless to ``curl``: no cookie, no grant,
and the grant is spent by the first download. The registry is in process memory: the
dashboard is one server process.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any

COOKIE = "hepatrack_browser"
#: how long a download grant stays valid after the click that made it
GRANT_TTL_S = 120.0
SECURITY_HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
CLOSED_PATHS = ("/_stcore/metrics",)
HEALTH_PATH = "/_stcore/health"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class _Grant:
    browser: str  # sha256 of the cookie value
    expires: float


_lock = threading.Lock()
_grants: dict[str, list[_Grant]] = {}  # sha256 of the file's bytes -> open grants
#: signs the browser cookies this process issues: checked without keeping a list of them,
#: so a flood of cookie-less requests cannot push a signed-in browser's cookie out
_COOKIE_KEY = secrets.token_bytes(32)


def _digest(value: bytes | str) -> str:
    return hashlib.sha256(value.encode() if isinstance(value, str) else value).hexdigest()


def grant(data: bytes, cookie: str | None, ttl_s: float = GRANT_TTL_S) -> bytes:
    """Allow one download of ``data`` by the browser holding ``cookie``; return ``data``.

    Called on the click (a deferred ``st.download_button`` ``data`` callable), so the
    grant exists only from the moment the user asks for the file. Without a cookie
    (no browser: AppTest, scripts) nothing is granted and the file cannot be fetched.
    """
    if cookie:
        with _lock:
            now = time.monotonic()
            key = _digest(data)
            open_ = [g for g in _grants.get(key, []) if g.expires > now]
            _grants[key] = [*open_, _Grant(_digest(cookie), now + ttl_s)]
    return data


def _use(data: bytes, cookie: str | None, *, spend: bool) -> bool:
    """True if this cookie holds an open grant for ``data``; ``spend`` uses it up."""
    if not cookie:
        return False
    browser, key, now = _digest(cookie), _digest(data), time.monotonic()
    with _lock:
        open_ = [g for g in _grants.get(key, []) if g.expires > now]
        found = next((g for g in open_ if hmac.compare_digest(g.browser, browser)), None)
        if found is not None and spend:
            open_.remove(found)
        if open_:
            _grants[key] = open_
        else:
            _grants.pop(key, None)
        return found is not None


def _signature(nonce: str) -> str:
    return hmac.new(_COOKIE_KEY, nonce.encode(), hashlib.sha256).hexdigest()


def _known_browser(cookie: str | None) -> bool:
    """True if this server process issued ``cookie``."""
    nonce, _, sig = (cookie or "").partition(".")
    return bool(nonce and sig) and hmac.compare_digest(sig, _signature(nonce))


def _issue() -> str:
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{_signature(nonce)}"


def _cookie_of(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except CookieError:  # a malformed Cookie header is no cookie
                return None
            if COOKIE in jar:
                return jar[COOKIE].value
    return None


#: a media request answered with an empty 200: Streamlit's check that the URL works
_CHECK_ONLY = "check-only"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def _media_file(path: str) -> Any | None:
    """The Streamlit media file a ``/media/<id>.<ext>`` path names, or None."""
    from streamlit import runtime

    if not runtime.exists():
        return None
    mgr = runtime.get_instance().media_file_mgr
    if not mgr.can_read_files:
        return None
    return mgr.read_file(path.rsplit("/", 1)[-1])


async def _refuse(send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]]
                  ) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store"), *SECURITY_HEADERS, *extra]})
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """ASGI middleware: security headers, closed metrics, cookie-bound media (module doc)."""

    def __init__(self, app: ASGIApp, ready: Callable[[], bool] | None = None) -> None:
        self.app = app
        self.ready = ready

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # websocket and lifespan pass through
            return
        path = scope.get("path", "")
        cookie = _cookie_of(scope)
        extra: list[tuple[bytes, bytes]] = []
        if not _known_browser(cookie):
            secure = "; Secure" if scope.get("scheme") == "https" else ""
            value = _issue()
            extra.append((b"set-cookie", f"{COOKIE}={value}; Path=/; HttpOnly; "
                                         f"SameSite=Strict{secure}".encode()))
            cookie = None  # a cookie this server did not issue counts for nothing
        if any(path == p or path.endswith(p) for p in CLOSED_PATHS):
            await _refuse(send, 404, "Not found", extra)
            return
        if path.endswith(HEALTH_PATH) and self.ready is not None and not self.ready():
            await _refuse(send, 503, "warming up", extra)
            return
        if "/media/" in path:
            verdict = self._check_media(path, cookie, _header(scope, b"sec-fetch-mode"))
            if verdict == _CHECK_ONLY:
                await _refuse(send, 200, "", extra)
                return
            if verdict:
                await _refuse(send, 403, verdict, extra)
                return
            extra.append((b"cache-control", b"no-store"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {n for n, _ in extra}
                headers = [(n, v) for n, v in message.get("headers", [])
                           if n.lower() not in names]
                message["headers"] = [*headers, *SECURITY_HEADERS, *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    def _check_media(path: str, cookie: str | None, fetch_mode: str | None) -> str | None:
        """Why this media request is refused, :data:`_CHECK_ONLY`, or None to serve it."""
        from streamlit.runtime.media_file_storage import MediaFileKind

        if cookie is None:
            return "Forbidden: open the dashboard and sign in"
        media = _media_file(path)
        if media is None or media.kind != MediaFileKind.DOWNLOADABLE:
            return None  # a picture of the page, or Streamlit's own 404
        navigate = fetch_mode == "navigate"
        if _use(media.content, cookie, spend=navigate):
            return None if navigate else _CHECK_ONLY
        return ("Forbidden: this download is bound to the browser session that asked for "
                "it and can be used once; click the download button again")


def middleware(ready: Callable[[], bool] | None = None) -> list[Any]:
    """The middleware list for ``st.App`` (``webapp.py``); ``ready`` says whether the
    health check may answer 200 yet (None: always)."""
    from starlette.middleware import Middleware

    return [Middleware(GuardMiddleware, ready=ready)]


def browser_cookie() -> str | None:
    """The calling script run's browser cookie (``st.context.cookies``), or None."""
    import streamlit as st
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    if get_script_run_ctx() is None:
        return None  # not a script run: no browser behind it
    return st.context.cookies.get(COOKIE)
