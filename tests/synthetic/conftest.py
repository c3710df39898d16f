"""Fixtures shared by the generator's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics.synthetic import generate_cohort, load_cohort_config

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "demo.toml"


@pytest.fixture(scope="session")
def labs_only(tmp_path_factory):
    """A demo-sized cohort without CT (fast; the imported imaging measurements of the
    demo are there): for rates, the disease model and the labs' accuracy."""
    cfg = load_cohort_config(SAMPLE, imaging_patients=0)
    return generate_cohort(tmp_path_factory.mktemp("labs") / "cohort", cfg)
