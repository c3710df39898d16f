"""What the synthetic cohort generator is asked to make, and where it put it."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field, fields, replace
from datetime import date
from pathlib import Path
from typing import Any

from analytics.errors import ConfigError


@dataclass(frozen=True)
class CohortConfig:
    """What to generate. Defaults make a small, quick cohort.

    Attributes
    ----------
    n_patients
        Number of patients (all get labs and outcomes).
    seed
        Master seed; the whole output is a function of the config.
    imaging_patients
        How many patients (the first ones) get CT + SEG; ``None`` = all.
    full
        512 x 512 slices at 0.75 mm, 1.25 mm slices (~176 slices) instead of 128 x 128 at
        3 mm, 5 mm slices (44 slices). Both cover 384 x 384 x 220 mm.
    max_scans_per_patient
        Cap on the scans of a patient with CT + SEG (``None``: one every 10-19 months
        during follow-up).
    measured_fib4_min
        Patients without CT + SEG whose FIB-4 at the first visit is at least this get
        imported imaging measurements (``imaging.csv``, :mod:`analytics.synthetic.
        measurements`) at a scan visit every 10-19 months of follow-up, uncapped; ``None``
        (the default): nobody. FIB-4 >= 1.3 is the EASL and AASLD cut-off below which
        advanced fibrosis is ruled out, so patients at or above it stay under specialist
        follow-up. The rule reads only labs the model without imaging sees too.
    portal_venous_fraction, descending_fraction, anisotropic_fraction
        Fractions of series that are contrast-enhanced (portal venous), stored feet-first
        (instances in descending z) or anisotropic (non-square pixels, slices overlapping:
        spacing 0.8x the thickness). Exactly ``round(fraction * n_series)`` series each.
    lesions
        Whether liver lesions (cysts, late solid nodules) appear.
    missing_lab_fraction
        Fraction of lab values left empty.
    study_end
        ISO date of the end of follow-up (administrative censoring).
    follow_up_years
        Range of follow-up lengths; baseline dates are spread accordingly.
    noise_sd_hu
        Image noise SD (default 12 HU, or 20 HU for thin ``full`` slices).
    """

    n_patients: int = 12
    seed: int = 7
    imaging_patients: int | None = None
    full: bool = False
    max_scans_per_patient: int | None = None
    measured_fib4_min: float | None = None
    portal_venous_fraction: float = 0.0
    descending_fraction: float = 0.0
    anisotropic_fraction: float = 0.0
    lesions: bool = True
    missing_lab_fraction: float = 0.05
    study_end: str = "2024-12-31"
    follow_up_years: tuple[float, float] = (5.0, 8.0)
    noise_sd_hu: float | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return (176, 512, 512) if self.full else (44, 128, 128)

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        return (1.25, 0.75, 0.75) if self.full else (5.0, 3.0, 3.0)

    @property
    def n_imaging(self) -> int:
        return self.n_patients if self.imaging_patients is None else self.imaging_patients

    def validate(self) -> CohortConfig:
        """Return self, or raise ``ConfigError`` naming the first invalid field."""
        if not isinstance(self.n_patients, int) or self.n_patients < 1:
            raise ConfigError(f"n_patients: expected a positive integer, got {self.n_patients!r}")
        if self.imaging_patients is not None and not 0 <= self.imaging_patients <= \
                self.n_patients:
            raise ConfigError(f"imaging_patients: expected 0..n_patients ({self.n_patients}), "
                              f"got {self.imaging_patients!r}")
        for name in ("portal_venous_fraction", "descending_fraction", "anisotropic_fraction",
                     "missing_lab_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name}: expected a fraction in [0, 1], got {v!r}")
        lo, hi = self.follow_up_years
        if not 0 < lo <= hi:
            raise ConfigError(f"follow_up_years: expected 0 < min <= max, got {lo!r}, {hi!r}")
        if self.measured_fib4_min is not None and not (
                isinstance(self.measured_fib4_min, int | float)
                and 0.0 <= self.measured_fib4_min < 100.0):
            raise ConfigError("measured_fib4_min: expected a FIB-4 value in [0, 100) or no "
                              f"value, got {self.measured_fib4_min!r}")
        if self.max_scans_per_patient is not None and self.max_scans_per_patient < 1:
            raise ConfigError("max_scans_per_patient: expected a positive integer, got "
                              f"{self.max_scans_per_patient!r}")
        try:
            date.fromisoformat(self.study_end)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"study_end: expected an ISO date, got {self.study_end!r}") from e
        return self


def load_cohort_config(path: str | Path, **overrides: Any) -> CohortConfig:
    """Read a ``CohortConfig`` from the ``[cohort]`` table of a TOML file.

    Raises
    ------
    ConfigError
        If the file is unreadable, not TOML, or has unknown keys or bad values.
    """
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{p}: cannot read cohort config ({e})") from e
    table = dict(data.get("cohort", {}))
    known = {f.name for f in fields(CohortConfig)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{p} [cohort]: unknown keys {unknown}; expected some of "
                          f"{sorted(known)}")
    if "follow_up_years" in table:
        table["follow_up_years"] = tuple(table["follow_up_years"])
    table.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return CohortConfig(**table).validate()
    except TypeError as e:
        raise ConfigError(f"{p} [cohort]: {e}") from e


@dataclass
class CohortManifest:
    """Where a generated cohort is. Paths are absolute."""

    out_dir: Path
    labs_csv: Path
    outcomes_csv: Path
    truth_json: Path
    series_dirs: list[Path]
    seg_files: list[Path]
    config: CohortConfig
    n_patients: int = 0
    n_visits: int = 0
    n_instances: int = 0
    events: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    imaging_csv: Path | None = None
    n_measured_patients: int = 0

    def truth(self) -> dict:
        """The parsed ``truth.json``."""
        return json.loads(self.truth_json.read_text(encoding="utf-8"))

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (the ``synth --json`` payload)."""
        return {
            "out_dir": str(self.out_dir), "labs_csv": str(self.labs_csv),
            "outcomes_csv": str(self.outcomes_csv), "truth_json": str(self.truth_json),
            "patients": self.n_patients, "imaging_patients": self.config.n_imaging,
            "measured_patients": self.n_measured_patients,
            "imaging_csv": str(self.imaging_csv) if self.imaging_csv else None,
            "visits": self.n_visits, "series": len(self.series_dirs),
            "instances": self.n_instances, "events": dict(self.events),
            "seed": self.config.seed, "full": self.config.full,
            "seconds": round(self.seconds, 2),
        }


def with_overrides(cfg: CohortConfig, **changes: Any) -> CohortConfig:
    """``cfg`` with the given fields replaced (``None`` values ignored)."""
    return replace(cfg, **{k: v for k, v in changes.items() if v is not None}).validate()
