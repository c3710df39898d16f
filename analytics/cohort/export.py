"""``hepatrack export``: features, the cohort table or predictions as CSV or Parquet.

Exports are pseudonymised: patients by pseudonym, dates in the store's de-identified
calendar. The file is written to a temporary name beside the target and renamed, so a
failed export never leaves a half-written file under the requested name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from analytics import audit, auth
from analytics.cohort.table import DEFAULT_LAB_WINDOW_DAYS, build_cohort, latest_features
from analytics.csv_safe import write_csv
from analytics.errors import CohortError
from analytics.store.db import Store
from analytics.store.schema import Feature, Patient, Prediction, Series, Study

EXPORTS = ("features", "cohort", "predictions")
FORMATS = (".csv", ".parquet")
PREDICTION_COLUMNS = ("patient", "model_id", "time_years", "horizon_years", "risk", "ci_low",
                      "ci_high", "reason", "explanation", "created_at")


def features_frame(store: Store) -> pd.DataFrame:
    """One row per series with features: ``patient``, ``study_date``, ``series_uid``, then
    one column per feature name (newest extractor run per series and name), sorted by name.
    """
    with store.session() as s:
        series = s.execute(
            select(Series.id, Series.series_uid, Study.study_date,
                   Patient.pseudonym.label("patient"))
            .join(Study, Series.study_id == Study.id)
            .join(Patient, Study.patient_id == Patient.id)).all()
        rows = s.execute(select(Feature.id, Feature.series_id, Feature.name, Feature.value,
                                Feature.unit, Feature.computed_at)).all()
    feats = latest_features(rows)
    ids = pd.DataFrame(series, columns=["series_id", "series_uid", "study_date", "patient"])
    if feats.empty:
        return pd.DataFrame(columns=["patient", "study_date", "series_uid"])
    wide = feats.pivot(index="series_id", columns="name", values="value")
    wide = wide[sorted(wide.columns)].astype("float64")
    out = ids.merge(wide, left_on="series_id", right_index=True, how="inner")
    out["study_date"] = pd.to_datetime(out["study_date"])
    out = out.sort_values(["patient", "study_date", "series_uid"], ignore_index=True)
    return out[["patient", "study_date", "series_uid", *wide.columns]]


def cohort_frame(store: Store, *, lab_window_days: float = DEFAULT_LAB_WINDOW_DAYS
                 ) -> pd.DataFrame:
    """The cohort table with clinical scores, each visit row carrying its patient's
    ``duration`` and ``event`` (empty for patients without an outcome)."""
    table = build_cohort(store, lab_window_days=lab_window_days, with_scores=True)
    return table.visits.merge(table.outcomes, on="patient", how="left")


def predictions_frame(store: Store) -> pd.DataFrame:
    """Every stored prediction; ``explanation`` is its JSON text."""
    with store.session() as s:
        rows = s.execute(
            select(Patient.pseudonym, Prediction.model_id, Prediction.time_years,
                   Prediction.horizon_years, Prediction.risk, Prediction.ci_low,
                   Prediction.ci_high, Prediction.reason, Prediction.explanation,
                   Prediction.created_at)
            .join(Patient, Prediction.patient_id == Patient.id)
            .order_by(Patient.pseudonym, Prediction.model_id, Prediction.time_years,
                      Prediction.horizon_years)).all()
    df = pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))
    df["explanation"] = [json.dumps(e, sort_keys=True) if e is not None else None
                         for e in df["explanation"]]
    for c in ("time_years", "horizon_years", "risk", "ci_low", "ci_high"):
        df[c] = df[c].astype("float64")
    return df


def write_table(df: pd.DataFrame, out: Path) -> None:
    """Write ``df`` as CSV or Parquet (by suffix), atomically.

    Raises
    ------
    CohortError
        If the suffix is not .csv/.parquet or the directory does not exist.
    """
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise CohortError(f"--out {out}: expected a .csv or .parquet file name")
    if not out.parent.is_dir():
        raise CohortError(f"--out {out}: directory {out.parent} does not exist")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        if suffix == ".csv":
            write_csv(df, tmp, index=False, date_format="%Y-%m-%d")  # formulas neutralised
        else:
            df.to_parquet(tmp, index=False)
        os.replace(tmp, out)
    except OSError as e:
        raise CohortError(f"--out {out}: cannot write ({e.strerror or e})") from e
    finally:
        tmp.unlink(missing_ok=True)


def export(store: Store, what: str, out: str | os.PathLike[str], *,
           actor: audit.Actor | None = None) -> dict[str, Any]:
    """Export ``features``, ``cohort`` or ``predictions`` to ``out`` (.csv or .parquet).

    Returns
    -------
    dict
        ``what``, ``out`` (absolute path), ``rows``, ``columns``.

    Raises
    ------
    CohortError
        On an unknown ``what``, a bad file name or an unwritable directory.
    PermissionDeniedError
        If ``actor`` may not export.
    """
    if what not in EXPORTS:
        raise CohortError(f"export: unknown --what {what!r}; expected one of {EXPORTS}")
    path = Path(out).expanduser().resolve()
    if path.suffix.lower() not in FORMATS:
        raise CohortError(f"--out {out}: expected a .csv or .parquet file name")
    actor = auth.require(actor or audit.SYSTEM, auth.Permission.EXPORT_PSEUDONYMISED, store,
                         action="export")
    frame = {"features": features_frame, "cohort": cohort_frame,
             "predictions": predictions_frame}[what](store)
    with audit.audited(store, actor, "export",
                       detail={"what": what, "rows": len(frame), "format": path.suffix}):
        write_table(frame, path)
    return {"what": what, "out": str(path), "rows": len(frame),
            "columns": [str(c) for c in frame.columns]}
