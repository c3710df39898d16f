"""``hepatrack export``: features, the cohort table or predictions as CSV or Parquet.

Exports are pseudonymised: patients by pseudonym, dates in the store's de-identified
calendar. The file is written to a temporary name beside the target and renamed, so a
failed export never leaves a half-written file under the requested name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pandas as pd

from analytics import audit
from analytics.cohort.mask_export import export_masks
from analytics.cohort.table import DEFAULT_LAB_WINDOW_DAYS, build_cohort, latest_features
from analytics.csv_safe import write_csv
from analytics.errors import CohortError
from analytics.features.registry import AUTOMATIC, FEATURES, NIFTI, RADIOMICS_PREFIX, RTSTRUCT, SEG
from analytics.store.db import Store
from analytics.store.features import feature_export_rows
from analytics.store.models import prediction_rows
from analytics.vocabulary import ULTRASOUND_COLUMNS

EXPORTS = ("features", "cohort", "predictions")
FORMATS = (".csv", ".parquet")
#: provenance columns of the features export: ``<feature>__source``, ``<feature>__reason``
SOURCE_SUFFIX, REASON_SUFFIX = "__source", "__reason"
#: last column of the features export: the automatic segmentation engine and version
ENGINE_COLUMN = "segmentation_engine"
#: with radiomics: the configuration (``name@version``) and its full settings (JSON) of
#: each series' radiomics, after the provenance columns and before the engine column
RADIOMICS_CONFIG_COLUMN, RADIOMICS_SETTINGS_COLUMN = "radiomics_config", "radiomics_settings"
DELIVERED = (SEG, RTSTRUCT, NIFTI)
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
PREDICTION_COLUMNS = ("patient", "model_id", "time_years", "horizon_years", "risk", "ci_low",
                      "ci_high", "reason", "explanation", "created_at")


def features_frame(store: Store) -> pd.DataFrame:
    """One row per series with features: ``patient``, ``study_date``, ``series_uid``, then
    one column per feature name (newest extractor run per series and name), sorted by name,
    then two provenance columns per feature, in the same order:

    - ``<feature>__source``: where the masks behind the value came from: ``seg``,
      ``rtstruct`` or ``nifti`` (delivered with the images), ``automatic`` (automatic
      segmentation: see ``segmentation_engine``), ``withheld`` (a delivered mask failed and
      no automatic one was used), ``rejected`` (a clinician rejected the automatic mask,
      ``analytics.masks_review``),
      ``header`` (needs no mask: the contrast phase) or ``none`` (a needed mask is absent);
      empty when the series has no row for the feature.
    - ``<feature>__reason``: why the value is empty (empty when there is a value).

    When any radiomics feature is present, two columns before the last say how the
    series' radiomics were computed: ``radiomics_config`` (``name@version``) and
    ``radiomics_settings`` (the full settings stored with the run, as JSON); empty for
    series without radiomics.

    The last column, ``segmentation_engine``, names the engine and version behind the
    series' ``automatic`` values (e.g. ``TotalSegmentator 2.18.0 total --fast``); empty
    when none of its values comes from an automatic mask.
    """
    stored = feature_export_rows(store)
    series, rows, runs = stored.series, stored.features, stored.runs
    mask_formats, mask_engines = stored.mask_formats, stored.mask_engines
    feats = latest_features([r[:6] for r in rows])
    extra = {r.id: (r.flags or {}, r.mask_id) for r in rows}
    ids = pd.DataFrame(series, columns=["series_id", "series_uid", "study_date", "patient",
                                        "modality"])
    if feats.empty:
        return pd.DataFrame(columns=["patient", "study_date", "series_uid"])
    wide = feats.pivot(index="series_id", columns="name", values="value")
    names = sorted(wide.columns)
    wide = wide[names].astype("float64")
    kept = {(r.series_id, r.name): extra[r.id] for r in feats.itertuples(index=False)}
    out = ids.merge(wide, left_on="series_id", right_index=True, how="inner")
    provenance: dict[str, list[str | None]] = {}
    for name in names:
        sources, reasons = [], []
        for sid, modality, value in zip(out["series_id"], out["modality"], out[name],
                                        strict=True):
            flags, mask_id = kept.get((sid, name), (None, None))
            if flags is None:
                sources.append(None)
                reasons.append(_absent_reason(name, modality, runs.get(sid)))
                continue
            sources.append(_source(flags, mask_formats.get(mask_id)))
            reasons.append(None if pd.notna(value) else
                           str(flags.get("reason") or "not computable for this series"))
        provenance[f"{name}{SOURCE_SUFFIX}"] = [_safe_text(x) for x in sources]
        provenance[f"{name}{REASON_SUFFIX}"] = [_safe_text(x) for x in reasons]
    out = pd.concat([out, pd.DataFrame(provenance, index=out.index)], axis=1)
    out[ENGINE_COLUMN] = [_safe_text(_engine(sid, names, kept, mask_engines))
                          for sid in out["series_id"]]
    extra_cols = [f"{n}{suffix}" for n in names for suffix in (SOURCE_SUFFIX, REASON_SUFFIX)]
    if any(n.startswith(RADIOMICS_PREFIX) for n in names):
        records = [_radiomics_record(runs.get(sid)) for sid in out["series_id"]]
        out[RADIOMICS_CONFIG_COLUMN] = [r[0] for r in records]
        out[RADIOMICS_SETTINGS_COLUMN] = [r[1] for r in records]
        extra_cols += [RADIOMICS_CONFIG_COLUMN, RADIOMICS_SETTINGS_COLUMN]
    out["study_date"] = pd.to_datetime(out["study_date"])
    out = out.sort_values(["patient", "study_date", "series_uid"], ignore_index=True)
    return out[["patient", "study_date", "series_uid", *names, *extra_cols, ENGINE_COLUMN]]


def _engine(sid: int, names: list[str], kept: dict, mask_engines: dict[int, str]
            ) -> str | None:
    """The automatic segmentation engine(s) behind a series' values, joined by ``"; "``."""
    engines = []
    for name in names:
        flags, mask_id = kept.get((sid, name), (None, None))
        if flags and flags.get("automatic_segmentation"):
            engine = flags.get("segmentation_engine") or mask_engines.get(mask_id)
            if engine and engine not in engines:
                engines.append(str(engine))
    return "; ".join(engines) or None


def _radiomics_record(run: Any) -> tuple[str | None, str | None]:
    """``(name@version, settings as JSON)`` of the radiomics in a series' newest run."""
    settings = (run.settings if run is not None else None) or {}
    used = settings.get("radiomics_settings")
    if not used or settings.get("radiomics_error"):
        return None, None
    label = (f"{used['config']}@{used['config_version']}" if used.get("config") else None)
    return label, json.dumps(used, sort_keys=True)


def _source(flags: dict[str, Any], mask_format: str | None) -> str | None:
    """The ``__source`` of a stored feature row (rows before 1.2.0 lack ``mask_source``)."""
    if flags.get("mask_source"):
        return str(flags["mask_source"])
    if flags.get("automatic_segmentation"):
        return AUTOMATIC
    return mask_format if mask_format in DELIVERED else None


def _absent_reason(name: str, modality: str | None, run: Any) -> str:
    """Why a series has no row at all for feature ``name``."""
    settings = (run.settings if run is not None else None) or {}
    if name.startswith(RADIOMICS_PREFIX):
        if settings.get("radiomics_error"):
            return f"radiomics failed: {settings['radiomics_error']}"
        if not settings.get("radiomics"):
            return "radiomics not requested for this series (hepatrack features --radiomics)"
        return "not computed by MIRP for this series"
    d = FEATURES.get(name) or ULTRASOUND_COLUMNS.get(name)
    if d is not None and modality and modality.upper() not in d.modalities:
        return f"not defined for {modality.upper()}"
    if name in ("lesion_count", "lesion_volume_ml"):
        return "no lesion mask delivered"
    if run is not None and run.status == "failed":
        return f"feature extraction failed: {run.reason}"
    return "not computed for this series by its newest extractor run"


def _safe_text(text: str | None) -> str | None:
    """A text cell a spreadsheet will not run as a formula (RELIABILITY 36)."""
    if text and text[0] in FORMULA_PREFIXES:
        return "'" + text
    return text


def cohort_frame(store: Store, *, lab_window_days: float = DEFAULT_LAB_WINDOW_DAYS
                 ) -> pd.DataFrame:
    """The cohort table with clinical scores, each visit row carrying its patient's
    ``duration`` and ``event`` (empty for patients without an outcome)."""
    table = build_cohort(store, lab_window_days=lab_window_days, with_scores=True)
    return table.visits.merge(table.outcomes, on="patient", how="left")


def predictions_frame(store: Store) -> pd.DataFrame:
    """Every stored prediction; ``explanation`` is its JSON text."""
    rows = prediction_rows(store)
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
           settings: Any = None,
           step: Callable[..., AbstractContextManager[Any]] = audit.unaudited
           ) -> dict[str, Any]:
    """Export ``features``, ``cohort`` or ``predictions`` to ``out`` (.csv or .parquet), or
    ``masks`` (every stored DICOM SEG and a manifest) into folder ``out`` (needs
    ``settings``: see :mod:`analytics.cohort.mask_export`).

    Returns
    -------
    dict
        ``what``, ``out`` (absolute path), ``rows``, ``columns``.

    Raises
    ------
    CohortError
        On an unknown ``what``, a bad file name or an unwritable directory.


    ``step`` is called with the audit record's ``detail`` around the write: the use case's
    audited step (:func:`analytics.usecases.cohort.export`); none by default.
    """
    if what == "masks":
        if settings is None:
            raise CohortError("export --what masks: the home folder (settings) is needed")
        return export_masks(store, settings, out, step=step)
    if what not in EXPORTS:
        raise CohortError(f"export: unknown --what {what!r}; expected one of "
                          f"{(*EXPORTS, 'masks')}")
    path = Path(out).expanduser().resolve()
    if path.suffix.lower() not in FORMATS:
        raise CohortError(f"--out {out}: expected a .csv or .parquet file name")
    frame = {"features": features_frame, "cohort": cohort_frame,
             "predictions": predictions_frame}[what](store)
    with step(detail={"what": what, "rows": len(frame), "format": path.suffix}):
        write_table(frame, path)
    return {"what": what, "out": str(path), "rows": len(frame),
            "columns": [str(c) for c in frame.columns]}
