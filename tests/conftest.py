"""Shared fixtures. Service fixtures start real servers (see tests/services.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics.config import Settings, load_settings
from tests import services


@pytest.fixture(autouse=True)
def _restore_main_module() -> Iterator[None]:
    """Streamlit's AppTest runs app.py as ``__main__`` and leaves it in ``sys.modules``;
    spawned worker processes (dask nannies, parse workers) would then re-run app.py."""
    import sys

    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


@pytest.fixture(scope="session")
def postgres() -> Iterator[services.PostgresServer]:
    with services.postgres_server() as pg:
        yield pg


@pytest.fixture(scope="session")
def orthanc() -> Iterator[services.OrthancServer]:
    with services.orthanc_server() as server:
        yield server


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HEPATRACK_HOME for one test."""
    h = tmp_path / "home"
    monkeypatch.setenv("HEPATRACK_HOME", str(h))
    monkeypatch.delenv("HEPATRACK_DB_URL", raising=False)
    return h


@pytest.fixture
def settings(home: Path) -> Settings:
    s = load_settings(home)
    s.ensure_home()
    return s


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    pg: services.PostgresServer = request.getfixturevalue("postgres")
    return pg.new_database(f"t_{abs(hash(request.node.nodeid)) % 10**10}")


@pytest.fixture(scope="session")
def synthetic_cohort(tmp_path_factory: pytest.TempPathFactory):
    """A small synthetic cohort, generated once per session (``CohortManifest``).

    Eight patients, the first three with two CT + SEG studies each; among the six series
    two are portal venous, two stored feet-first (descending z) and two anisotropic.
    Ground truth: ``manifest.truth()`` (format in ``analytics/synthetic/__init__.py``).
    """
    from analytics.synthetic import CohortConfig, generate_cohort

    config = CohortConfig(n_patients=8, seed=6, imaging_patients=3, max_scans_per_patient=2,
                          portal_venous_fraction=0.34, descending_fraction=0.34,
                          anisotropic_fraction=0.34)
    return generate_cohort(tmp_path_factory.mktemp("synthetic") / "cohort", config)
