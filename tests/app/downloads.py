"""Clicking a deferred download button in an AppTest.

A download button whose ``data`` is a callable (``ui.downloads``) registers the callable
with the server's media file manager, which runs it when the browser asks for the file
after a click. An AppTest has no server; :func:`deferred_downloads` stands in for the
manager, so a test can click such a button as the browser would: the server-side effect of
the click is exactly one call of the registered callable. The session's browser holds the
cookie :data:`BROWSER_COOKIE` (``ui.webguard`` grants the file to it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from streamlit.elements.widgets import button
from streamlit.testing.v1 import AppTest

from ui import webguard

#: the browser cookie of the AppTest session (an AppTest has no browser to issue it to)
BROWSER_COOKIE = "apptest-browser.cookie"


class DeferredDownloads:
    """The data callables of the deferred download buttons the app registered."""

    def __init__(self) -> None:
        self._callables: dict[str, Callable[[], object]] = {}

    def add_deferred(self, data_callable: Callable[[], object], mimetype: str | None,
                     coordinates: str, file_name: str | None = None, *,
                     element_id: str = "") -> str:
        file_id = uuid.uuid4().hex
        self._callables[file_id] = data_callable
        return file_id

    def remove_deferred(self, coordinates: str, *, element_id: str = "") -> None:
        """Nothing to revoke: each run registers its own callables."""

    def labels(self, at: AppTest) -> list[str]:
        """The labels of the download buttons on the page."""
        return [e.proto.label for e in at.get("download_button")]

    def click(self, at: AppTest, label_start: str) -> bytes:
        """Click the download button whose label starts with ``label_start``: the bytes the
        browser would receive."""
        proto = next(e.proto for e in at.get("download_button")
                     if e.proto.label.startswith(label_start))
        data = self._callables[proto.deferred_file_id]()
        return data if isinstance(data, bytes) else str(data).encode()


@pytest.fixture
def deferred_downloads(monkeypatch: pytest.MonkeyPatch) -> DeferredDownloads:
    """A stand-in media file manager for the download buttons of AppTests."""
    manager = DeferredDownloads()
    monkeypatch.setattr(webguard, "browser_cookie", lambda: BROWSER_COOKIE)
    monkeypatch.setattr(button, "runtime", SimpleNamespace(
        exists=lambda: True, get_instance=lambda: SimpleNamespace(media_file_mgr=manager)))
    return manager
