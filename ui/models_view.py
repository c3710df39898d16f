"""The Models page's tables (formatted for display) and its training job."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analytics.audit import Actor
from analytics.cohort import build_cohort
from analytics.config import Settings
from analytics.explain import ClinicalImportance
from analytics.models.progress import TrainingStep
from analytics.models.settings import ModelSettings
from analytics.store.db import Store
from analytics.usecases import models as model_use_cases
from analytics.usecases.context import Context
from analytics.vocabulary import event_label
from ui.jobs import Job

KINDS = {"cox": "Cox proportional hazards (ridge)", "gbm": "Gradient-boosted Cox (xgboost)",
         "rsf": "Random survival forest (xgboost)"}
HORIZON_CHOICES = (0.5, 1.0, 2.0, 3.0, 5.0)
#: the training form's defaults (the model settings' own)
DEFAULTS = ModelSettings()


def _ci(x: float, lo: float, hi: float) -> str:
    if not np.isfinite(x):
        return "—"
    if np.isfinite(lo) and np.isfinite(hi):
        return f"{x:.3f} ({lo:.3f}-{hi:.3f})"
    return f"{x:.3f}"


def _n(x: float, fmt: str = "{:.3f}") -> str:
    return fmt.format(x) if np.isfinite(x) else "—"


def validation_display(vt: pd.DataFrame, horizons: list[float]) -> pd.DataFrame:
    """``analytics.usecases.model_admin.validation_table`` as text: estimates with 95% intervals."""
    out = pd.DataFrame({"Predictor": vt["predictor"],
                        "C-index (95% CI)": [_ci(r.c_index, r.c_index_low, r.c_index_high)
                                             for r in vt.itertuples()],
                        "Uno's C": vt["uno_c"].map(_n)})
    for h in horizons:
        k = f"td_auc_{h:g}"
        out[f"td-AUC {h:g} y (95% CI)"] = [
            _ci(a, lo, hi) for a, lo, hi in zip(vt[k], vt[f"{k}_low"], vt[f"{k}_high"],
                                                strict=True)]
    out["IBS"] = vt["ibs"].map(_n)
    out["Calibration slope"] = vt["calibration_slope"].map(lambda x: _n(x, "{:.2f}"))
    out["ICI"] = vt["ici"].map(lambda x: _n(x, "{:.3f}"))
    out["Model C-index on the same rows"] = vt["model_c_index_same_rows"].map(_n)
    out["Coverage"] = vt["coverage"].map(lambda x: _n(100 * x, "{:.0f}%") if np.isfinite(x)
                                         else "—")
    return out


def validation_column_config(shown: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Column widths for :func:`validation_display`: an estimate with its 95% interval
    ("0.707 (0.686-0.731)") needs a medium column, or its closing digits are cut."""
    return {c: {"width": "medium"} for c in shown.columns if c.endswith("(95% CI)")}


#: the calibration summary's columns: header shown and its explanation
CALIBRATION_COLUMNS = {
    "horizon": ("Horizon (y)", "Years after the landmark visit the risk is predicted for"),
    "slope": ("Calibration slope", "1 when predicted risks spread as observed risks do; "
              "below 1 when predictions are too extreme"),
    "intercept": ("Calibration intercept", "0 when predicted risks are right on average; "
                  "below 0 when they are too high"),
    "ici": ("ICI (integrated calibration index)",
            "Mean absolute difference between predicted and observed risk"),
    "e50": ("E50 (median absolute error)",
            "Median absolute difference between predicted and observed risk"),
    "e90": ("E90 (90th percentile of the absolute error)",
            "90th percentile of the absolute difference between predicted and observed risk"),
    "n": ("Visits (n)", "Landmark visits the calibration was estimated on"),
}


def calibration_display(summary: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """``analytics.usecases.model_admin.calibration_summary`` with readable headers, and
    the column configuration (number format and an explanation for each header)."""
    shown = summary.rename(columns={k: v[0] for k, v in CALIBRATION_COLUMNS.items()})
    config: dict[str, dict[str, Any]] = {}
    for k, (header, help_text) in CALIBRATION_COLUMNS.items():
        cfg: dict[str, Any] = {"help": help_text}
        if k in ("slope", "intercept", "ici", "e50", "e90"):
            cfg["type_config"] = {"type": "number", "format": "%.3f"}
        config[header] = cfg
    return shown, config


def _diff(x: float, lo: float, hi: float) -> str:
    if not np.isfinite(x):
        return "—"
    if np.isfinite(lo) and np.isfinite(hi):
        return f"{x:+.3f} ({lo:+.3f} to {hi:+.3f})"
    return f"{x:+.3f}"


def imaging_display(table: pd.DataFrame, horizons: list[float]) -> pd.DataFrame:
    """``analytics.usecases.model_admin.imaging_comparison(...).table`` as text: the
    model with and without imaging, the difference with its 95% interval, per row set."""
    out = pd.DataFrame({"Patients": table["label"]})

    def block(prefix: str, title: str) -> None:
        out[f"{title} with imaging"] = table[f"{prefix}_with"].map(_n)
        out[f"{title} without imaging"] = table[f"{prefix}_without"].map(_n)
        out[f"{title} difference (95% CI)"] = [
            _diff(x, lo, hi) for x, lo, hi in zip(
                table[f"{prefix}_difference"], table[f"{prefix}_difference_low"],
                table[f"{prefix}_difference_high"], strict=True)]

    block("c_index", "C-index")
    for h in horizons:
        block(f"td_auc_{h:g}", f"td-AUC {h:g} y")
    out["n patients"] = table["n_patients"].astype("Int64")
    out["n events"] = table["n_events"].astype("Int64")
    if table["note"].astype(bool).any():
        out["Note"] = table["note"]
    return out


def imaging_references_display(refs: pd.DataFrame, horizons: list[float]) -> pd.DataFrame:
    """The clinical scores and the true hazard on the comparison's rows, as text."""
    out = pd.DataFrame({"Patients": refs["label"], "Predictor": refs["predictor"],
                        "C-index": refs["c_index"].map(_n)})
    for h in horizons:
        out[f"td-AUC {h:g} y"] = refs[f"td_auc_{h:g}"].map(_n)
    out["Coverage"] = refs["coverage"].map(lambda x: _n(100 * x, "{:.0f}%")
                                           if np.isfinite(x) else "—")
    return out


def models_display(models: list[dict[str, Any]]) -> pd.DataFrame:
    """``list_models`` as a table for the page."""
    df = pd.DataFrame(models, columns=["model_id", "kind", "event", "horizons", "active",
                                       "c_index", "created_at"])
    df["horizons"] = df["horizons"].map(lambda hs: ", ".join(f"{float(h):g}" for h in hs)
                                        if isinstance(hs, list) else hs)
    df["event"] = df["event"].map(event_label)
    df["active"] = df["active"].map(lambda a: "active" if a else "")
    df["c_index"] = df["c_index"].map(lambda x: f"{x:.3f}" if isinstance(x, float) else "—")
    df["created_at"] = df["created_at"].map(lambda x: str(x)[:16].replace("T", " ")
                                            if x else "—")
    return df.rename(columns={"model_id": "Model", "kind": "Kind", "event": "Endpoint",
                              "horizons": "Horizons (y)", "active": "Active",
                              "c_index": "C-index (CV)", "created_at": "Created (UTC)"})


def train_settings(*, kind: str, events: list[str], horizons: list[float], folds: int,
                   repeats: int, n_bootstrap: int) -> ModelSettings:
    """The Models page's training form as :class:`ModelSettings` (the one mapping).

    Raises
    ------
    SettingsError
        Naming the field whose value is out of range.
    """
    return ModelSettings.from_mapping({"kind": kind, "event": events or None,
                                       "horizons": sorted(horizons), "folds": folds,
                                       "repeats": repeats, "n_bootstrap": n_bootstrap})


def train_job(job: Job, store: Store, settings: Settings, actor: Actor,
              model_settings: ModelSettings, *, activate: bool) -> dict[str, Any]:
    """Build the cohort table from the store and train (``analytics.usecases.models.train``:
    permission and audit), reporting every fold, bootstrap replicate and the final fit to
    ``job`` (its bar and message; a finished stage is added to its log). A job whose
    browser session has ended stops at its next step."""
    job.report("building the cohort table", 0.0)
    cohort = build_cohort(store)

    def progress(step: TrainingStep) -> None:
        job.report(step.describe(), step.fraction)
        if step.total and step.done == step.total:
            job.log(step.describe())

    return model_use_cases.train(Context(actor, store, settings),
                                 model_use_cases.TrainRequest(cohort, model_settings,
                                                              activate=activate,
                                                              progress=progress))


def drivers_caption(drivers: ClinicalImportance, on_model_scale: bool) -> str:
    """What the global drivers' bars are, on the scale shown."""
    what = ("per clinical feature (its last value, trend, worst value and missing indicator "
            "together; time since baseline and the visit count as Follow-up) over the "
            "training sample stored with the model.")
    if not on_model_scale:
        return ("Mean absolute contribution to the risk within "
                f"{drivers.horizon:g} years, in percentage points, " + what
                + " Each row's contributions are apportioned as on the Patient page: they "
                "add up from the row's base risk to its risk.")
    return ("Mean absolute SHAP value " + what
            + (" On the log relative hazard: an effect of 0.1 multiplies the hazard by about "
               "1.1 (e^0.1), one of 0.7 doubles it. The Patient page gives each patient's "
               "contributions in percentage points of the risk."
               if drivers.scale == "log_hazard" else ""))
