"""A tiny, hand-checkable cohort written straight through the ORM.

Used by the repository, dashboard and browser tests. Every number the tests expect is
derivable by hand from the rows below (see the comments).

- HT-0001: identified (Doe^Jane, shift +100 days), baseline 2020-01-01 (shifted);
  study 2020-01-01 with two CT series (one with a SEG mask), study 2021-01-01 with one;
  liver volume computed twice on the first series (extractor 1.0 then 1.1), then 1600 mL on
  the second study; visits at t=0 (2020-01-01, same day as the first scan) and t=0.5 (no
  date: baseline + 183 d = 2020-07-02); outcome decompensation at 1.5 y (2021-07-02).
- HT-0002: identified (Roe^Richard, shift -30 days), no baseline; one invalid MR series
  on 2019-05-05, no features, no visits; censored at 2.0 y.
- HT-0003: no identity row, no studies; two undated visits (t=0 and t=1) with labs; no outcome.
"""

from __future__ import annotations

import datetime as dt

import pytest

from analytics.store.db import Store
from analytics.store.schema import (
    Feature,
    IdentityMap,
    Instance,
    Mask,
    ModelRecord,
    Outcome,
    Patient,
    Series,
    Study,
    Visit,
)

D = dt.date
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _series(uid: str, study: Study, modality: str = "CT", status: str = "complete",
            phase: str | None = "portal_venous", n: int = 3) -> Series:
    return Series(series_uid=uid, source_key=f"key-{uid}", study=study, modality=modality,
                  description=f"{modality} abdomen", contrast_phase=phase, n_instances=n,
                  n_slices=n, rows=64, columns=64, spacing_mm=[0.8, 0.8, 2.5],
                  status=status, status_reason=None if status == "complete" else "gap",
                  storage_dir=f"dicom/{uid}")


def _instances(series: Series, n: int) -> list[Instance]:
    return [Instance(sop_instance_uid=f"{series.series_uid}.{i}",
                     source_key=f"src-{series.series_uid}.{i}", content_sha256="0" * 64,
                     series=series, sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                     instance_number=i + 1, slice_position_mm=2.5 * i,
                     path=f"dicom/{series.series_uid}/{i}.dcm", size_bytes=1000)
            for i in range(n)]


# Feature has no relationship to Series in the schema: set the FK after flush instead.
def _add_features(s, specs: list[tuple[Series, str, float | None, str, str, int]]) -> None:
    for series, name, value, unit, version, minutes in specs:
        s.add(Feature(series_id=series.id, name=name, value=value, unit=unit,
                      extractor_version=version,
                      flags={"reason": "liver ROI empty after erosion"} if value is None
                      else {"mask_automatic": False},
                      computed_at=T0 + dt.timedelta(minutes=minutes)))


def seed_small_cohort(store: Store) -> None:
    """Write the three patients described in the module docstring."""
    with store.session() as s:
        p1 = Patient(pseudonym="HT-0001", sex="F", birth_year=1960,
                     baseline_date=D(2020, 1, 1))
        p2 = Patient(pseudonym="HT-0002", sex="M", birth_year=1955)
        p3 = Patient(pseudonym="HT-0003", sex="F", birth_year=1970, source="csv")
        s.add_all([p1, p2, p3])
        s.flush()
        s.add_all([
            IdentityMap(patient_id=p1.id, real_patient_id="MRN-111", real_patient_id_key="k1",
                        patient_name="Doe^Jane", birth_date=D(1960, 1, 2),
                        date_shift_days=100),
            IdentityMap(patient_id=p2.id, real_patient_id="MRN-222", real_patient_id_key="k2",
                        patient_name="Roe^Richard", birth_date=D(1955, 3, 4),
                        date_shift_days=-30),
        ])
        st1 = Study(study_uid="2.25.1", patient=p1, study_date=D(2020, 1, 1),
                    description="CT liver")
        st2 = Study(study_uid="2.25.2", patient=p1, study_date=D(2021, 1, 1),
                    description="CT liver")
        st3 = Study(study_uid="2.25.3", patient=p2, study_date=D(2019, 5, 5),
                    description="MR liver")
        s1a = _series("2.25.11", st1)
        s1b = _series("2.25.12", st1, phase="arterial", n=2)
        s2a = _series("2.25.21", st2)
        s3a = _series("2.25.31", st3, modality="MR", status="invalid", phase=None, n=1)
        s.add_all([st1, st2, st3, s1a, s1b, s2a, s3a])
        s.add_all(_instances(s1a, 3) + _instances(s1b, 2) + _instances(s2a, 3)
                  + _instances(s3a, 1))
        s.flush()
        s.add(Mask(series_id=s1a.id, format="seg", path="dicom/seg1.dcm",
                   content_sha256="1" * 64, segments={"liver": {"label": 1}}))
        _add_features(s, [
            (s1a, "liver_volume_ml", 1500.0, "mL", "1.0", 0),
            (s1a, "liver_volume_ml", 1510.0, "mL", "1.1", 10),  # newer run, same series
            (s1a, "spleen_volume_ml", 200.0, "mL", "1.1", 10),
            (s1a, "liver_hu_mean", 55.0, "HU", "1.1", 10),
            (s1b, "liver_volume_ml", 1490.0, "mL", "1.1", 10),  # same study, later series
            (s2a, "liver_volume_ml", 1600.0, "mL", "1.1", 20),
            (s2a, "spleen_volume_ml", 250.0, "mL", "1.1", 20),
            (s2a, "liver_hu_mean", None, "HU", "1.1", 20),  # not computable: keep 55
            (s2a, "liver_spleen_hu_diff", -4.5, "HU", "1.1", 20),
        ])
        s.add_all([
            Visit(patient_id=p1.id, time_years=0.0, visit_date=D(2020, 1, 1), source="csv",
                  values={"bilirubin_mg_dl": 1.1, "albumin_g_dl": 3.9}),
            Visit(patient_id=p1.id, time_years=0.5, visit_date=None, source="csv",
                  values={"bilirubin_mg_dl": 1.4, "platelets_10e9_l": 140}),
            Visit(patient_id=p3.id, time_years=0.0, source="csv", values={"inr": 1.0}),
            Visit(patient_id=p3.id, time_years=1.0, source="csv", values={"inr": 1.2}),
            Outcome(patient_id=p1.id, time_years=1.5, outcome_date=D(2021, 7, 2),
                    event="decompensation"),
            Outcome(patient_id=p2.id, time_years=2.0, outcome_date=D(2021, 5, 4),
                    event="censored"),
            ModelRecord(model_id="cox-0001", kind="cox", event="decompensation",
                        horizons=[1, 2], content_sha256="a" * 64,
                        training_data_sha256="b" * 64, artifact_path="models/cox-0001",
                        features=["liver_volume_ml"], training_ranges={}, metrics={},
                        card={}, active=True),
        ])


@pytest.fixture
def seeded_store(db_url):
    """A store (SQLite or PostgreSQL, by ``db_url``) holding :func:`seed_small_cohort`."""
    from analytics.store import open_store

    s = open_store(url=db_url)
    seed_small_cohort(s)
    yield s
    s.dispose()
