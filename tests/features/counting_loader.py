"""A series loader for tests that leaves one marker file per call under
``HOME/loads/`` and then loads the series as the ingest loader does, so a test can count
how many times each series was processed, whichever worker process ran it."""

from __future__ import annotations

import uuid

from analytics.config import Settings
from analytics.ingest.loader import load_series as ingest_load_series
from analytics.ingest.volume import MaskSet, Volume

LOADER = "tests.features.counting_loader:load_series"


def loads(settings: Settings) -> list[str]:
    """The series UIDs loaded so far, one entry per call (sorted)."""
    folder = settings.home / "loads"
    return sorted(p.name.rsplit(".", 1)[0] for p in folder.iterdir()) if folder.exists() else []


def load_series(store, settings: Settings, series_uid: str) -> tuple[Volume, MaskSet | None]:
    folder = settings.home / "loads"
    folder.mkdir(exist_ok=True)
    (folder / f"{series_uid}.{uuid.uuid4().hex}").touch()
    return ingest_load_series(store, settings, series_uid)
