"""A small, complete HepaTrack home for the dashboard, report and browser tests.

Built once per test session (:func:`template`) and copied per test or per server
(:func:`copy_home`), so tests never see each other's writes:

- a synthetic cohort (:data:`CONFIG`: 36 patients, CT + SEG for the first 2, two scans
  each), ingested through the real pipeline and imported from its labs/outcomes CSVs,
  except the last study of the second imaging patient (by pseudonym), kept back as
  ``holdout`` for upload tests (a new series, with its SEG);
- imaging biomarkers written from the generator's ground truth (``truth.json``) for each
  ingested series, so pages and the PDF can be checked against known values (feature
  extraction itself is tested in tests/features; here it would cost a minute);
- a Cox landmark model trained with the real training code (3-fold CV, small bootstrap)
  and active;
- one account per role (:data:`USERS`).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from analytics.config import Settings, load_settings
from analytics.store.db import Store
from analytics.synthetic import CohortConfig

CONFIG = CohortConfig(n_patients=36, seed=3, imaging_patients=2, max_scans_per_patient=2)
PASSWORD = "correct-horse-battery"
USERS = {"clinician": "dr.grey", "researcher": "ana.res", "admin": "root.admin"}
#: truth.json series keys written as features (generator's exact values)
TRUTH_FEATURES = {
    "liver_volume_ml": "mL", "spleen_volume_ml": "mL", "liver_hu_mean": "HU",
    "spleen_hu_mean": "HU", "liver_spleen_hu_diff": "HU", "liver_spleen_hu_ratio": "1",
    "liver_surface_nodularity": "mm", "liver_vessel_fraction": "1",
}
TRUTH_VERSION = "truth"


@dataclass
class DashboardHome:
    """What :func:`template` built (paths are the template's; copy before writing)."""

    home: Path
    synth: Path
    truth: dict[str, Any]
    model_id: str
    imaging: list[str] = field(default_factory=list)  # pseudonyms with CT
    series: dict[str, dict[str, Any]] = field(default_factory=dict)  # stored uid -> truth
    pseudonyms: dict[str, str] = field(default_factory=dict)  # synthetic id -> pseudonym
    holdout: Path | None = None  # study folder (CT + SEG) not ingested
    holdout_truth: dict[str, Any] = field(default_factory=dict)


_TEMPLATE: DashboardHome | None = None


def _write_truth_features(store, secret: bytes, series: list[dict[str, Any]]
                          ) -> dict[str, dict]:
    from sqlalchemy import select

    from analytics.ingest.deid import hmac_uid
    from analytics.store.schema import Feature, Series

    out = {}
    with store.session() as s:
        ids = dict(s.execute(select(Series.series_uid, Series.id)).all())
        for t in series:
            uid = hmac_uid(secret, t["series_uid"])
            out[uid] = t
            for name, unit in TRUTH_FEATURES.items():
                if t.get(name) is not None:
                    s.add(Feature(series_id=ids[uid], name=name, value=float(t[name]),
                                  unit=unit, extractor_version=TRUTH_VERSION))
    return out


def build(root: Path) -> DashboardHome:
    """Build the home under ``root`` (see the module docstring)."""
    from analytics.auth import create_user
    from analytics.cohort import build_cohort, import_cohort
    from analytics.ingest.deid import patient_pseudonym
    from analytics.ingest.pipeline import ingest_sources
    from analytics.models.settings import ModelSettings
    from analytics.models.training import train_model
    from analytics.store import open_store
    from analytics.synthetic import generate_cohort

    manifest = generate_cohort(root / "synth", CONFIG)
    truth = manifest.truth()
    settings = load_settings(root / "home")
    settings.ensure_home()
    store = open_store(settings)
    secret = settings.site_secret()
    ids = sorted({t["patient_id"] for t in truth["series"]})
    second = sorted(ids, key=lambda i: patient_pseudonym(secret, i))[1]
    held = max((t for t in truth["series"] if t["patient_id"] == second),
               key=lambda t: t["time_years"])
    holdout = (manifest.out_dir / held["series_dir"]).parent
    studies = sorted(p for p in (manifest.out_dir / "dicom").glob("*/*") if p != holdout)
    kept = [t for t in truth["series"] if t is not held]
    try:
        report = ingest_sources([str(p) for p in studies], settings, store)
        assert report.series_ingested == len(kept), report.as_dict()
        import_cohort(store, manifest.out_dir / "labs.csv", manifest.out_dir / "outcomes.csv",
                      settings=settings)
        series = _write_truth_features(store, secret, kept)
        result = train_model(store, settings, build_cohort(store),
                             ModelSettings(kind="cox", horizons=(1.0, 2.0, 3.0), folds=3,
                                           repeats=1, n_bootstrap=20))
        for role, name in USERS.items():
            create_user(store, name, role, PASSWORD)
    finally:
        store.dispose()
    # every patient, imaging or CSV-only, gets ingest's keyed pseudonym
    pseudonyms = {p["patient_id"]: patient_pseudonym(secret, p["patient_id"])
                  for p in truth["patients"]}
    return DashboardHome(home=settings.home, synth=manifest.out_dir, truth=truth,
                         model_id=result["model_id"],
                         imaging=sorted(pseudonyms[i] for i in ids), series=series,
                         pseudonyms=pseudonyms, holdout=holdout, holdout_truth=held)


def template(tmp_path_factory: pytest.TempPathFactory) -> DashboardHome:
    """The session's template home, built on first use."""
    global _TEMPLATE
    if _TEMPLATE is None:
        _TEMPLATE = build(tmp_path_factory.mktemp("dashboard-template"))
    return _TEMPLATE


def copy_home(t: DashboardHome, dest: Path) -> Path:
    """A private copy of the template home at ``dest`` (returned)."""
    shutil.copytree(t.home, dest)
    return dest


@pytest.fixture(scope="session")
def template_home(tmp_path_factory) -> DashboardHome:
    """Fixture: the session's template home (import it under the name a module uses)."""
    return template(tmp_path_factory)


@pytest.fixture
def copied_home(tmp_path_factory, tmp_path, monkeypatch) -> Path:
    """Fixture: a private copy of the template home, as ``HEPATRACK_HOME`` (the default
    database, never a site's ``HEPATRACK_DB_URL``)."""
    home = copy_home(template(tmp_path_factory), tmp_path / "home")
    monkeypatch.setenv("HEPATRACK_HOME", str(home))
    monkeypatch.delenv("HEPATRACK_DB_URL", raising=False)
    return home


@contextlib.contextmanager
def open_copy(t: DashboardHome, dest: Path) -> Iterator[tuple[Settings, Store]]:
    """Settings and an open store on a private copy of the template home at ``dest``."""
    from analytics.store import open_store

    settings = load_settings(copy_home(t, dest))
    store = open_store(settings)
    try:
        yield settings, store
    finally:
        store.dispose()


@pytest.fixture
def opened_copy(tmp_path_factory, tmp_path) -> Iterator[tuple[DashboardHome, Settings, Store]]:
    """Fixture: the template, then settings and an open store on a private copy of it."""
    t = template(tmp_path_factory)
    with open_copy(t, tmp_path / "home") as (settings, store):
        yield t, settings, store
