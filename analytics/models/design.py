"""The model matrix: history features -> numbers, with the imputation stored.

What the design learns from training rows (medians, missing indicators, log scale,
one-hot levels, clip ranges, dropped constant columns) is saved with the model, so a
prediction is transformed exactly as the training rows were.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

#: positive columns more right-skewed than this enter the model on the log scale
LOG_SKEW_MIN = 1.0


@dataclass
class Design:
    """History features -> numeric model matrix, with the imputation stored.

    Fitted on training rows: numeric columns get the training median where missing,
    plus a ``<column>_missing`` indicator when the column was ever missing in training;
    strictly positive, right-skewed columns (training skewness above
    :data:`LOG_SKEW_MIN`; e.g. bilirubin, INR, creatinine, transaminases) enter on the
    log scale, so a doubling counts the same at any level; categorical columns are
    one-hot over the training levels (an unseen level has every indicator 0); columns
    constant in training are dropped.

    ``neutral`` columns (an imaging biomarker's scan history, whose own
    ``<feature>_measured`` history column says whether it exists yet) are not imputed:
    a value enters as its distance from the training median (``centers``, after the log
    scale and clipping), and a missing one as exactly 0, with no indicator. So a row
    without the measurement gets 0 in every one of these columns: the same number for
    every such row, independent of what was measured in training.
    """

    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    medians: dict[str, float] = field(default_factory=dict)
    indicators: list[str] = field(default_factory=list)
    levels: dict[str, list[str]] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    missing_fraction: dict[str, float] = field(default_factory=dict)
    log_columns: list[str] = field(default_factory=list)
    clip: dict[str, list[float]] = field(default_factory=dict)
    neutral: list[str] = field(default_factory=list)
    centers: dict[str, float] = field(default_factory=dict)

    @classmethod
    def fit(cls, rows: pd.DataFrame, numeric: list[str], categorical: list[str],
            log_candidates: list[str] | None = None,
            clip_columns: list[str] | None = None,
            neutral: list[str] | None = None) -> Design:
        """Learn imputation, log scale and levels from training rows.

        ``log_candidates``: columns that may enter on the log scale (default: all numeric).
        ``clip_columns``: columns clipped to their training range at transform time
        (derived statistics such as slopes and visit counts, which the domain check does
        not refuse). ``neutral``: columns that are 0 when missing, centred otherwise.
        """
        d = cls(numeric=list(numeric), categorical=list(categorical),
                neutral=[c for c in neutral or [] if c in numeric])
        cands = set(numeric if log_candidates is None else log_candidates)
        for c in numeric:
            x = pd.to_numeric(rows[c], errors="coerce")
            if clip_columns and c in clip_columns and x.notna().any():
                d.clip[c] = [float(x.min()), float(x.max())]
            miss = float(x.isna().mean()) if len(x) else 1.0
            d.missing_fraction[c] = miss
            med = float(x.median()) if miss < 1.0 else 0.0
            d.medians[c] = med
            if miss > 0.0 and c not in d.neutral:
                d.indicators.append(c)
            if c in cands and miss < 1.0 and x.min() > 0 and x.skew() > LOG_SKEW_MIN:
                d.log_columns.append(c)
            if c in d.neutral:
                d.centers[c] = float(np.median(d._scaled(c, x.dropna().to_numpy(np.float64)))) \
                    if miss < 1.0 else 0.0
        for c in categorical:
            vals = rows[c].dropna().astype(str)
            d.missing_fraction[c] = float(rows[c].isna().mean()) if len(rows) else 1.0
            d.levels[c] = sorted(vals.unique().tolist())
        full = d._raw(rows)
        keep = [c for c in full.columns if full[c].nunique(dropna=False) > 1]
        d.columns = keep
        return d

    def _raw(self, rows: pd.DataFrame) -> pd.DataFrame:
        out: dict[str, np.ndarray] = {}
        for c in self.numeric:
            x = pd.to_numeric(rows[c], errors="coerce").to_numpy(np.float64)
            miss = np.isnan(x)
            if c in self.neutral:
                out[c] = np.where(miss, 0.0, self._scaled(c, x) - self.centers[c])
                continue
            out[c] = self._scaled(c, np.where(miss, self.medians[c], x))
            if c in self.indicators:
                out[f"{c}_missing"] = miss.astype(np.float64)
        for c in self.categorical:
            vals = rows[c].astype(object).where(rows[c].notna(), None).to_numpy()
            for lev in self.levels[c]:
                out[f"{c}={lev}"] = (vals == lev).astype(np.float64)
        return pd.DataFrame(out, index=rows.index)

    def _scaled(self, c: str, x: np.ndarray) -> np.ndarray:
        """Clipped to the training range and on the log scale, as the column enters."""
        if c in self.clip:
            x = np.clip(x, *self.clip[c])
        if c in self.log_columns:
            # values at or below 0 never occurred in training: clip at its smallest scale
            x = np.log(np.maximum(x, self.medians[c] * 1e-3))
        return x

    def transform(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The model matrix (float64, columns :attr:`columns`) for history rows."""
        return self._raw(rows)[self.columns]

    def source_column(self, design_column: str) -> str:
        """The history column a design column comes from."""
        if design_column.endswith("_missing") and design_column[:-8] in self.indicators:
            return design_column[:-8]
        if "=" in design_column:
            return design_column.split("=", 1)[0]
        return design_column

    def to_json(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "categorical": self.categorical,
                "medians": self.medians, "indicators": self.indicators,
                "levels": self.levels, "columns": self.columns,
                "missing_fraction": self.missing_fraction, "log_columns": self.log_columns,
                "clip": self.clip, "neutral": self.neutral, "centers": self.centers}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Design:
        return cls(**{k: d[k] for k in ("numeric", "categorical", "medians", "indicators",
                                         "levels", "columns", "missing_fraction")},
                   log_columns=list(d.get("log_columns", [])),
                   clip={k: list(v) for k, v in d.get("clip", {}).items()},
                   neutral=list(d.get("neutral", [])),
                   centers={k: float(v) for k, v in d.get("centers", {}).items()})
