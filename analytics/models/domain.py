"""Out-of-domain checks: a visit the model was not trained for gets no number.

A history row (the features at a landmark time) is *not assessable*, with a reason, when:

- a required feature is missing: a history column missing in at most
  :data:`REQUIRED_MISSING_MAX` of the training rows (the model never learned what its
  absence means, so imputing it would be a guess);
- a measured value (last, worst or recent mean of a feature, age) or the landmark time
  lies outside the training range widened by :data:`DOMAIN_MARGIN` of its width on each
  side (``[lo - m (hi - lo), hi + m (hi - lo)]``). Derived statistics (slopes, changes,
  visit counts, years since the last visit) are not refused: the design clips them to
  their training range (a frequent visitor or two close visits must not silence a
  score), and their ranges are recorded all the same;
- a categorical value was never seen in training;
- the imaging values carried forward come from a modality or contrast phase absent from
  the training imaging visits, or one the feature registry does not define the feature
  for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analytics.errors import ModelIntegrityError
from analytics.models.history_spec import FeatureSpec
from analytics.vocabulary import LANDMARK, LANDMARK_SQ, applies_to_modality, describe_column

#: allowed excursion beyond the training range, as a fraction of the range's width
DOMAIN_MARGIN = 0.10
#: a history column missing in no more than this share of training rows is required
REQUIRED_MISSING_MAX = 0.01
#: history statistics whose values are range-checked (others are clipped by the design)
CHECKED_STATS = frozenset({"last", "worst", "mean_1y", "landmark"})


@dataclass(frozen=True)
class DomainFinding:
    """One reason a row is not assessable.

    Attributes
    ----------
    kind
        ``missing`` (a required column has no value), ``range`` (a value beyond the
        training range), ``level`` (a category never seen in training), ``modality``,
        ``undefined`` (an imaging value not defined for the modality) or ``phase``.
    column
        The history column concerned (``modality`` / ``contrast_phase`` for the scan).
    text
        The reason as the command line and the JSON give it.
    value, low, high
        The value found and, for ``range``, the training range.
    """

    kind: str
    column: str
    text: str
    value: float | str | None = None
    low: float | None = None
    high: float | None = None


@dataclass
class TrainingDomain:
    """What the model saw in training, and the check of new rows against it."""

    ranges: dict[str, list[float]]
    required: list[str]
    checked: list[str] = field(default_factory=list)
    levels: dict[str, list[str]] = field(default_factory=dict)
    modalities: list[str] = field(default_factory=list)
    contrast_phases: list[str] = field(default_factory=list)
    imaging_features: list[str] = field(default_factory=list)
    margin: float = DOMAIN_MARGIN

    @classmethod
    def from_training(cls, rows: pd.DataFrame, spec: FeatureSpec) -> TrainingDomain:
        """Record ranges, required columns, levels, modalities and phases of training rows."""
        ranges: dict[str, list[float]] = {}
        required: list[str] = []
        for c in spec.columns:
            if c == LANDMARK_SQ:
                continue
            col = rows[c]
            if c in spec.categorical:
                miss = float(col.isna().mean())
            else:
                x = pd.to_numeric(col, errors="coerce")
                miss = float(x.isna().mean())
                if x.notna().any():
                    ranges[c] = [float(x.min()), float(x.max())]
            if miss <= REQUIRED_MISSING_MAX:
                required.append(c)
        levels = {c: sorted(rows[c].dropna().astype(str).unique().tolist())
                  for c in spec.categorical}
        used_imaging = bool(spec.imaging)
        mods = sorted(rows["modality"].dropna().astype(str).unique().tolist()) \
            if used_imaging and "modality" in rows else []
        phases = sorted(rows["contrast_phase"].dropna().astype(str).unique().tolist()) \
            if used_imaging and "contrast_phase" in rows else []
        checked = [c for c in ranges if spec.source_of(c)[1] in CHECKED_STATS]
        return cls(ranges=ranges, required=required, checked=checked, levels=levels,
                   modalities=mods, contrast_phases=phases,
                   imaging_features=list(spec.imaging))

    def bounds(self, column: str) -> tuple[float, float]:
        lo, hi = self.ranges[column]
        w = (hi - lo) * self.margin
        return lo - w, hi + w

    def check(self, rows: pd.DataFrame) -> list[str | None]:
        """None for an assessable row, else the reasons (``"; "``-joined) it is not."""
        return [reason_of(row) for row in self.findings(rows)]

    def findings(self, rows: pd.DataFrame) -> list[list[DomainFinding]]:
        """Per row, every reason it is not assessable (empty for an assessable row)."""
        found: list[list[DomainFinding]] = [[] for _ in range(len(rows))]
        for c in self.required:
            if c not in rows:
                for r in found:
                    r.append(DomainFinding("missing", c, f"missing required feature {c}"))
                continue
            miss = rows[c].isna().to_numpy()
            for i in np.flatnonzero(miss):
                found[i].append(DomainFinding(
                    "missing", c, f"missing required feature {_name(c)} "
                                  "(always measured in the training data)"))
        for c, (lo, hi) in self.ranges.items():
            if c not in rows or c not in self.checked:
                continue
            x = pd.to_numeric(rows[c], errors="coerce").to_numpy(np.float64)
            blo, bhi = self.bounds(c)
            bad = np.isfinite(x) & ((x < blo) | (x > bhi))
            for i in np.flatnonzero(bad):
                found[i].append(DomainFinding("range", c, _range_reason(c, x[i], lo, hi,
                                                                        self.margin),
                                              value=float(x[i]), low=lo, high=hi))
        for c, levels in self.levels.items():
            if c not in rows:
                continue
            vals = rows[c].to_numpy(object)
            for i, v in enumerate(vals):
                if v is not None and not (isinstance(v, float) and np.isnan(v)) \
                        and str(v) not in levels:
                    found[i].append(DomainFinding(
                        "level", c, f"{_name(c)} {v!r} not seen in training "
                                    f"(levels: {', '.join(levels)})", value=str(v)))
        if self.imaging_features and "modality" in rows:
            self._imaging_findings(rows, found)
        return found

    def _imaging_findings(self, rows: pd.DataFrame, found: list[list[DomainFinding]]
                          ) -> None:
        uses_imaging = rows[[c for c in self.imaging_features if c in rows]].notna()
        uses_imaging = uses_imaging.any(axis=1).to_numpy() if uses_imaging.shape[1] \
            else np.zeros(len(rows), bool)
        mods = rows["modality"].to_numpy(object)
        phases = rows["contrast_phase"].to_numpy(object) if "contrast_phase" in rows \
            else [None] * len(rows)
        for i in np.flatnonzero(uses_imaging):
            m, p = mods[i], phases[i]
            if m is not None and self.modalities and str(m) not in self.modalities:
                found[i].append(DomainFinding(
                    "modality", "modality", f"modality {m} not in the training data "
                                            f"({', '.join(self.modalities)})", value=str(m)))
            if m is not None:
                wrong = [f for f in self.imaging_features
                         if applies_to_modality(f, str(m)) is False
                         and pd.notna(rows[f].iloc[i])]
                if wrong:
                    found[i].append(DomainFinding(
                        "undefined", "modality",
                        f"{', '.join(wrong)} not defined for modality {m}", value=str(m)))
            if p is not None and self.contrast_phases and str(p) not in self.contrast_phases:
                found[i].append(DomainFinding(
                    "phase", "contrast_phase", f"contrast phase {p} not in the training data "
                                               f"({', '.join(self.contrast_phases)})",
                    value=str(p)))

    def to_json(self) -> dict[str, Any]:
        return {"ranges": self.ranges, "required": self.required, "checked": self.checked,
                "levels": self.levels,
                "modalities": self.modalities, "contrast_phases": self.contrast_phases,
                "imaging_features": self.imaging_features, "margin": self.margin}

    @classmethod
    def from_json(cls, d: dict[str, Any], columns: list[str] | None = None) -> TrainingDomain:
        """Rebuild from JSON; with ``columns``, check every numeric one has a valid range.

        Raises
        ------
        ModelIntegrityError
            If ranges are missing, not finite, or ``lo > hi``.
        """
        if not isinstance(d, dict) or not isinstance(d.get("ranges"), dict) or not d["ranges"]:
            raise ModelIntegrityError("model artifact: training ranges are missing")
        for c, r in d["ranges"].items():
            if (not isinstance(r, list | tuple) or len(r) != 2
                    or not all(isinstance(v, int | float) and np.isfinite(v) for v in r)
                    or r[0] > r[1]):
                raise ModelIntegrityError(f"model artifact: training range of {c} is invalid "
                                          f"({r!r}); expected [low, high]")
        for c in columns or []:
            if c not in d["ranges"]:
                raise ModelIntegrityError(f"model artifact: no training range for {c}")
        return cls(ranges={k: [float(a), float(b)] for k, (a, b) in d["ranges"].items()},
                   required=list(d.get("required", [])),
                   checked=list(d.get("checked", d["ranges"])), levels=d.get("levels", {}),
                   modalities=list(d.get("modalities", [])),
                   contrast_phases=list(d.get("contrast_phases", [])),
                   imaging_features=list(d.get("imaging_features", [])),
                   margin=float(d.get("margin", DOMAIN_MARGIN)))


def reason_of(findings: list[DomainFinding]) -> str | None:
    """The findings of one row as the command line gives them (``"; "``-joined), or None."""
    return "; ".join(f.text for f in findings) if findings else None


def _name(column: str) -> str:
    return f"{describe_column(column)[0]} ({column})"


def _range_reason(c: str, x: float, lo: float, hi: float, margin: float) -> str:
    if c == LANDMARK:
        return (f"time {x:.2f} years since baseline is beyond the model's landmark range "
                f"{lo:g}-{hi:g} years (+{margin:.0%} margin)")
    unit = describe_column(c)[1]
    u = f" {unit}" if unit else ""
    return (f"{_name(c)} {x:.4g}{u} outside the training range [{lo:.4g}, {hi:.4g}]{u} "
            f"(+-{margin:.0%} margin)")
