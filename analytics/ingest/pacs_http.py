"""HTTP plumbing of the PACS client: where credentials may go, and total deadlines.

:func:`in_scope` decides whether a URL is under a configured endpoint (scheme, host, port
with defaults made explicit, path prefix on a segment boundary); :class:`ScopedAuth` adds
credentials only to such URLs, so a redirect elsewhere carries none. Socket timeouts
restart with every byte, so :class:`DeadlineWatchdog` bounds a whole request or
retrieval by shutting down the sockets of the connections :func:`watched_adapter` opens.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase, HTTPBasicAuth
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from analytics.config import PacsSettings

__all__ = ["DeadlineWatchdog", "EndpointScope", "ScopedAuth", "endpoint_scope", "in_scope",
           "watched_adapter"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class EndpointScope:
    """Where an endpoint's credentials may go: scheme, host, port and path prefix."""

    scheme: str
    host: str
    port: int
    path: str  # decoded, without a trailing slash ("" for the whole host)

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def endpoint_scope(url: str) -> EndpointScope | None:
    """The scope of ``url`` with its default port made explicit, or None if it has none.

    A path with ``.`` or ``..`` segments has no scope: it may resolve outside its prefix.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    path = unquote(parts.path).rstrip("/")
    if any(seg in (".", "..") for seg in path.split("/")):
        return None
    return EndpointScope(scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme], path)


def in_scope(url: str, scope: EndpointScope) -> bool:
    """True if ``url`` is under ``scope``: same scheme, host and port, and a path equal to
    the scope's or below it on a segment boundary (``/dicom`` does not cover ``/dicom-web``).
    """
    here = endpoint_scope(url)
    if here is None or (here.scheme, here.host, here.port) != (
            scope.scheme, scope.host, scope.port):
        return False
    return not scope.path or here.path == scope.path or here.path.startswith(scope.path + "/")


class ScopedAuth(AuthBase):
    """Basic or bearer credentials added only to requests under one endpoint's scope."""

    def __init__(self, pacs: PacsSettings) -> None:
        self.scope = endpoint_scope(pacs.url)
        self.token = pacs.token
        self.basic = (HTTPBasicAuth(pacs.username, pacs.password or "")
                      if pacs.username is not None else None)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.scope is None or not in_scope(str(r.url), self.scope):
            return r  # e.g. a redirect elsewhere: no credentials go with it
        if self.token:
            r.headers["Authorization"] = f"Bearer {self.token}"
        elif self.basic is not None:
            r = self.basic(r)
        return r


class DeadlineWatchdog:
    """Cuts a client's open connections when a total deadline passes.

    Socket timeouts restart with every byte received, so they cannot bound a trickling
    server; shutting the sockets down wakes every blocked read at once.
    """

    def __init__(self) -> None:
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._lock = threading.Lock()
        self.expired = threading.Event()

    def track(self, sock: socket.socket | None) -> None:
        """Remember a freshly connected socket (cut at once if the deadline passed)."""
        if sock is None:
            return
        with self._lock:
            self._sockets.add(sock)
        if self.expired.is_set():
            self._cut()

    @contextlib.contextmanager
    def limit(self, seconds: float) -> Iterator[None]:
        """Run the body under a deadline of ``seconds``; :attr:`expired` tells if it passed."""
        self.expired.clear()
        timer = threading.Timer(max(0.0, float(seconds)), self._fire)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _fire(self) -> None:
        self.expired.set()
        self._cut()

    def _cut(self) -> None:
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def watched_adapter(watchdog: DeadlineWatchdog) -> HTTPAdapter:
    """A requests adapter whose connections register their sockets with ``watchdog``."""

    class Conn(urllib3.connection.HTTPConnection):
        def connect(self) -> None:
            super().connect()
            watchdog.track(self.sock)

    class ConnTLS(urllib3.connection.HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            watchdog.track(self.sock)

    class Pool(HTTPConnectionPool):
        ConnectionCls = Conn

    class PoolTLS(HTTPSConnectionPool):
        ConnectionCls = ConnTLS

    adapter = HTTPAdapter(max_retries=0)
    adapter.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": PoolTLS}
    return adapter
