"""Helpers for the cohort tests: CSV writing and a direct ORM seeding of imaging data."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from pathlib import Path
from textwrap import dedent

import pytest

from analytics.store import open_store
from analytics.store.db import Store
from analytics.store.schema import Feature, IdentityMap, Patient, Series, Study

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
_uid = itertools.count(1)


def write_csv(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.fixture
def csvs(tmp_path: Path) -> Callable[[str, str], tuple[Path, Path]]:
    """``csvs(visits_text, outcomes_text)`` writes visits.csv and outcomes.csv."""
    def make(visits: str, outcomes: str) -> tuple[Path, Path]:
        return write_csv(tmp_path, "visits.csv", visits), write_csv(tmp_path, "outcomes.csv",
                                                                    outcomes)
    return make


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A fresh SQLite store (PostgreSQL runs in the tests parametrized on ``db_url``)."""
    s = open_store(url=f"sqlite:///{tmp_path / 'cohort.db'}")
    yield s
    s.dispose()


def add_patient(store: Store, pseudonym: str, *, real_id: str | None = None,
                shift_days: int = 0, baseline: dt.date | None = None) -> int:
    """An imaging patient, optionally with an identity-map row (real id and date shift)."""
    with store.session() as s:
        p = Patient(pseudonym=pseudonym, baseline_date=baseline)
        s.add(p)
        s.flush()
        if real_id is not None:
            s.add(IdentityMap(patient_id=p.id, real_patient_id=real_id,
                              real_patient_id_key=f"key-{real_id}-{p.id}",
                              date_shift_days=shift_days))
        return p.id


def add_scan(store: Store, pseudonym: str, study_date: dt.date | None,
             features: dict[str, float | None], *, phase: str | None = "portal_venous",
             status: str = "complete", series_uid: str | None = None, study_uid: str | None = None,
             version: str = "1.0", minutes: int = 0, unit: str = "mL",
             flags: dict[str, dict] | None = None) -> str:
    """A study (reused when ``study_uid`` exists) with one series and its feature values
    (``flags``: feature name -> its stored flags)."""
    n = next(_uid)
    series_uid = series_uid or f"2.25.9{n}"
    with store.session() as s:
        pid = s.query(Patient.id).filter(Patient.pseudonym == pseudonym).scalar()
        study = None
        if study_uid is not None:
            study = s.query(Study).filter(Study.study_uid == study_uid).one_or_none()
        if study is None:
            study = Study(study_uid=study_uid or f"2.25.8{n}", patient_id=pid,
                          study_date=study_date)
            s.add(study)
            s.flush()
        series = s.query(Series).filter(Series.series_uid == series_uid).one_or_none()
        if series is None:
            series = Series(series_uid=series_uid, source_key=f"src-{series_uid}",
                            study_id=study.id, modality="CT", contrast_phase=phase,
                            status=status, storage_dir=f"dicom/{series_uid}")
            s.add(series)
            s.flush()
        for name, value in features.items():
            s.add(Feature(series_id=series.id, name=name, value=value,
                          unit="HU" if "_hu" in name else unit, extractor_version=version,
                          computed_at=T0 + dt.timedelta(minutes=minutes),
                          flags=(flags or {}).get(name)))
    return series_uid
