"""The Models page's and the MDT report's model tables: the stored metrics and card of a
registered model, validation beside the clinical baselines, calibration, discrimination
over landmark times, global drivers and the card as Markdown. (Training and the active
model are use cases in :mod:`analytics.usecases.models`.)

Every table here is read from what training stored with the model (``models.metrics``:
the cross-validated metrics with their bootstrap intervals, the clinical baselines on the
same folds, calibration curves and per-landmark discrimination); nothing is recomputed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from analytics.errors import ModelError
from analytics.explain import ClinicalImportance, clinical_importance
from analytics.store.db import Store
from analytics.store.models import model_summary
from analytics.vocabulary import label_with_unit

if TYPE_CHECKING:
    from analytics.models.registry import RegisteredModel

__all__ = [
    "ImagingComparison",
    "calibration_curves",
    "calibration_summary",
    "card_markdown",
    "global_drivers",
    "imaging_comparison",
    "model_metrics",
    "td_auc_by_landmark",
    "validation_table",
]


def model_metrics(store: Store, model_id: str) -> dict[str, Any]:
    """The stored metrics (``cv``, ``baselines``...) and card of a registered model.

    Raises
    ------
    ModelError
        If the model is not registered.
    """
    summary = model_summary(store, model_id)
    if summary is None:
        raise ModelError(f"model {model_id}: not in the registry")
    return asdict(summary)


def _num(x: Any) -> float:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan


def _h(h: float | str) -> str:
    return f"{float(h):g}"


def validation_table(metrics: dict[str, Any], horizons: list[float]) -> pd.DataFrame:
    """The model's cross-validated metrics beside each clinical baseline's.

    Returns
    -------
    pandas.DataFrame
        One row per predictor (the model first): ``predictor``, ``c_index``,
        ``c_index_low``, ``c_index_high`` (95% bootstrap interval, model only),
        ``uno_c``, ``td_auc_<h>`` and its interval for each horizon, ``ibs``,
        ``calibration_slope`` (longest horizon), ``ici`` (longest horizon),
        ``model_c_index_same_rows`` (the model's C-index on the rows the score covers),
        ``coverage`` (share of rows the score could be computed for).
    """
    cv = metrics.get("cv") or {}
    ci = cv.get("ci") or {}
    hmax = _h(max(horizons)) if horizons else None
    rows = []

    def row(name: str, m: dict[str, Any], with_ci: bool) -> dict[str, Any]:
        r: dict[str, Any] = {"predictor": name, "c_index": _num(m.get("c_index"))}
        lo, hi = (ci.get("c_index") or [None, None]) if with_ci else (None, None)
        r["c_index_low"], r["c_index_high"] = _num(lo), _num(hi)
        r["uno_c"] = _num(m.get("uno_c"))
        for h in horizons:
            k = _h(h)
            r[f"td_auc_{k}"] = _num((m.get("td_auc") or {}).get(k))
            lo, hi = (ci.get(f"td_auc_{k}") or [None, None]) if with_ci else (None, None)
            r[f"td_auc_{k}_low"], r[f"td_auc_{k}_high"] = _num(lo), _num(hi)
        r["ibs"] = _num(m.get("ibs"))
        cal = (m.get("calibration") or {}).get(hmax) or {}
        r["calibration_slope"] = _num(cal.get("slope", m.get("calibration_slope")))
        r["ici"] = _num(cal.get("ici"))
        r["model_c_index_same_rows"] = _num(m.get("model_c_index_same_rows"))
        r["coverage"] = _num(m.get("coverage", 1.0 if with_ci else None))
        return r

    rows.append(row("This model", cv, True))
    for name, b in (metrics.get("baselines") or {}).items():
        rows.append(row(str(b.get("label") or name), b, False))
    return pd.DataFrame(rows)


#: shown for a model trained before the comparison was stored with it
NOT_STORED = ("this model was trained before the imaging comparison was stored with "
              "models: train it again to see what imaging adds")


@dataclass(frozen=True)
class ImagingComparison:
    """What imaging adds, as stored with a model (see
    :func:`analytics.models.crossval.compare_imaging`).

    Attributes
    ----------
    statement
        The plain sentence shown instead of the tables when there is nothing to compare
        (no imaging feature in the model, or nothing stored); None otherwise.
    table
        One row per row set (``rows``: ``all``, ``with_scans``; ``label``): ``c_index_with``,
        ``c_index_without``, ``c_index_difference`` with ``_low``/``_high`` (95% paired
        bootstrap interval), the same for ``td_auc_<h>`` at each horizon, ``n_patients``,
        ``n_events`` (patients with an endpoint event), ``note`` (why a row set has no
        figures, or empty).
    references
        Long table: ``label`` (row set), ``predictor``, ``c_index``, ``td_auc_<h>``,
        ``coverage``: clinical scores and the true hazard on the same rows.
    features
        The imaging features left out of the model without imaging (labels with units).
    method
        How the comparison was made, in one sentence.
    """

    statement: str | None
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    references: pd.DataFrame = field(default_factory=pd.DataFrame)
    features: list[str] = field(default_factory=list)
    method: str = ""


def imaging_comparison(metrics: dict[str, Any], horizons: list[float]) -> ImagingComparison:
    """The stored comparison of the model with and without its imaging features."""
    comp = metrics.get("imaging_comparison")
    if not comp:
        return ImagingComparison(statement=NOT_STORED)
    if comp.get("status") != "compared":
        return ImagingComparison(statement=str(comp.get("message") or NOT_STORED))
    rows, refs = [], []
    for key in ("all", "with_scans"):
        part = comp.get(key) or {}
        if not part:
            continue
        r: dict[str, Any] = {"rows": key, "label": part.get("label", key)}
        r.update({f"c_index_{k}": v for k, v in _figures(part, "c_index").items()})
        for h in horizons:
            r.update({f"td_auc_{_h(h)}_{k}": v
                      for k, v in _figures(part, "td_auc", _h(h)).items()})
        r["n_patients"] = part.get("n_patients")
        r["n_events"] = part.get("n_events")
        r["note"] = part.get("message") or ""
        rows.append(r)
        for name, ref in (part.get("references") or {}).items():
            refs.append({"label": r["label"], "predictor": ref.get("label") or name,
                         "c_index": _num(ref.get("c_index")),
                         **{f"td_auc_{_h(h)}": _num((ref.get("td_auc") or {}).get(_h(h)))
                            for h in horizons},
                         "coverage": _num(ref.get("coverage"))})
    return ImagingComparison(
        statement=None, table=pd.DataFrame(rows), references=pd.DataFrame(refs),
        features=[label_with_unit(f) for f in comp.get("imaging_features") or []],
        method=f"{comp.get('repeats', '?')}x {comp.get('folds', '?')}-fold cross-validation "
               "on the same patient-grouped folds for both models; difference = with - "
               f"without imaging; 95% intervals from {comp.get('n_bootstrap', '?')} paired "
               "patient-bootstrap resamples")


def _figures(part: dict[str, Any], metric: str, h: str | None = None) -> dict[str, float]:
    """``with``, ``without``, ``difference``, ``difference_low``/``_high`` of one metric
    (``c_index``, or ``td_auc`` at horizon ``h``) of one stored row set."""
    def get(m: dict[str, Any] | None, name: str) -> Any:
        v = (m or {}).get(name)
        return v if h is None else (v or {}).get(h)

    d = part.get("difference")
    lo, hi = get(d, f"{metric}_ci") or [None, None]
    return {"with": _num(get(part.get("with_imaging"), metric)),
            "without": _num(get(part.get("without_imaging"), metric)),
            "difference": _num(get(d, metric)), "difference_low": _num(lo),
            "difference_high": _num(hi)}


def calibration_curves(metrics: dict[str, Any]) -> pd.DataFrame:
    """``horizon``, ``predicted``, ``observed`` points of the stored calibration curves."""
    parts = []
    for h, c in ((metrics.get("cv") or {}).get("calibration") or {}).items():
        curve = c.get("curve") or {}
        pred, obs = curve.get("predicted") or [], curve.get("observed") or []
        if pred and len(pred) == len(obs):
            parts.append(pd.DataFrame({"horizon": float(h), "predicted": pred,
                                       "observed": obs}))
    if not parts:
        return pd.DataFrame(columns=["horizon", "predicted", "observed"])
    df = pd.concat(parts, ignore_index=True)
    df["predicted"] = pd.to_numeric(df["predicted"], errors="coerce")
    df["observed"] = pd.to_numeric(df["observed"], errors="coerce")
    return df


def calibration_summary(metrics: dict[str, Any]) -> pd.DataFrame:
    """``horizon``, ``slope``, ``intercept``, ``ici``, ``e50``, ``e90``, ``n`` per horizon."""
    rows = []
    for h, c in ((metrics.get("cv") or {}).get("calibration") or {}).items():
        rows.append({"horizon": float(h), **{k: _num(c.get(k)) for k in
                                             ("slope", "intercept", "ici", "e50", "e90")},
                     "n": c.get("n")})
    return pd.DataFrame(rows, columns=["horizon", "slope", "intercept", "ici", "e50", "e90",
                                       "n"])


def td_auc_by_landmark(metrics: dict[str, Any]) -> pd.DataFrame:
    """``landmark``, ``horizon``, ``td_auc``, ``n``, ``events`` from the per-landmark
    out-of-fold metrics (first CV repeat)."""
    rows = []
    for r in (metrics.get("cv") or {}).get("per_landmark") or []:
        for h, v in (r.get("td_auc") or {}).items():
            rows.append({"landmark": _num(r.get("landmark")), "horizon": float(h),
                         "td_auc": _num(v), "n": r.get("n"), "events": r.get("events")})
    return pd.DataFrame(rows, columns=["landmark", "horizon", "td_auc", "n", "events"])


def global_drivers(model: RegisteredModel, horizon: float | None = None,
                   max_rows: int | None = None) -> ClinicalImportance:
    """Mean absolute SHAP value per clinical feature over training rows
    (:func:`analytics.explain.clinical_importance`).

    Raises
    ------
    ModelError
        If the model has no stored training sample.
    """
    return clinical_importance(model, horizon, max_rows)


def _md(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return ", ".join(_md(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_md(v)}" for k, v in value.items())
    return str(value)


def card_markdown(card: dict[str, Any]) -> str:
    """The model card as Markdown: intended use, data, outcome, predictors, model,
    validation, limitations (numbers with three significant figures)."""
    if not card:
        return "_No model card stored._"
    out = [f"### {card.get('title') or card.get('model_id', 'Model')}",
           f"Model `{card.get('model_id', '?')}` · created {card.get('created', '?')}"]
    use = card.get("intended_use") or {}
    if use:
        out += ["#### Intended use", use.get("purpose", ""),
                f"- **Users:** {use.get('users', '—')}",
                f"- **Not for:** {use.get('not_for', '—')}"]
    data = card.get("data") or {}
    if data:
        out += ["#### Data",
                f"- {data.get('n_patients', '?')} patients, "
                f"{data.get('n_landmark_rows', '?')} landmark rows, "
                f"{data.get('n_endpoint_events_in_window', '?')} endpoint events in window",
                f"- Events: {_md(data.get('event_counts', {}))}",
                f"- Source: {data.get('source', '—')}",
                f"- Training data sha256: `{data.get('training_data_sha256', '?')}`"]
    outcome = card.get("outcome") or {}
    if outcome:
        out += ["#### Outcome", f"- **Endpoint:** {_md(outcome.get('endpoint', []))}; "
                f"{outcome.get('definition', '')}",
                f"- **Competing risks:** {outcome.get('competing_risks', '—')}",
                f"- **Censoring:** {outcome.get('censoring', '—')}",
                f"- **Horizons:** {_md(card.get('horizons', []))} years"]
    pred = card.get("predictors") or {}
    if pred:
        names = sorted({f.get("label", f.get("name")) for f in pred.get("features", [])})
        out += ["#### Predictors", f"- {', '.join(map(str, names))}",
                f"- **History:** {pred.get('history', '—')}",
                f"- **Missing data:** {pred.get('missing_data', '—')}"]
        left = pred.get("left_out") or {}
        if left:
            out.append("- **Left out:** " + "; ".join(str(v) for v in left.values()))
    model = card.get("model") or {}
    if model:
        out += ["#### Model", f"- {model.get('estimator', model.get('kind', '?'))}",
                f"- {model.get('structure', '')}",
                *([f"- **Penalty by cause:** {_md(pen)}"]
                  if (pen := (model.get("params") or {}).get("penalizer_by_cause")) else []),
                f"- **Explanations:** {model.get('explanations', '—')}"]
    val = card.get("validation") or {}
    if val:
        td = val.get("td_auc") or {}
        out += ["#### Validation", f"- {val.get('method', '')}",
                f"- C-index {_md(val.get('c_index'))}, Uno's C {_md(val.get('uno_c'))}, "
                f"IBS {_md(val.get('ibs'))}",
                "- td-AUC: " + ", ".join(f"{k} y {_md(v)}" for k, v in td.items()),
                f"- Calibration: {val.get('calibration_method', '')}",
                f"- External validation: {val.get('external_validation', '—')}"]
    out += _imaging_markdown(card.get("imaging_comparison") or {})
    lim = card.get("limitations") or []
    if lim:
        out += ["#### Limitations", *[f"- {x}" for x in lim]]
    return "\n\n".join(x for x in out if x)


def _difference(f: dict[str, Any]) -> str:
    lo, hi = f.get("difference_ci") or [None, None]
    d = _num(f.get("difference"))
    if math.isnan(d):
        return "—"
    ci = (f" (95% CI {lo:+.3f} to {hi:+.3f})"
          if not (math.isnan(_num(lo)) or math.isnan(_num(hi))) else "")
    return (f"{_md(f.get('with_imaging'))} with, {_md(f.get('without_imaging'))} without, "
            f"difference {d:+.3f}{ci}")


def _imaging_markdown(section: dict[str, Any]) -> list[str]:
    """The card's "What imaging adds" section as Markdown (nothing for older cards)."""
    if not section:
        return []
    out = ["#### What imaging adds", f"- {section.get('method', '')}"]
    if section.get("statement") and not section.get("imaging_features"):
        return [*out, f"- {section['statement'][:1].upper()}{section['statement'][1:]}."]
    out.append("- **Imaging features:** " + ", ".join(
        label_with_unit(f) for f in section.get("imaging_features", [])))
    for key in ("all", "with_scans"):
        part = section.get(key) or {}
        if not part:
            continue
        head = (f"- **{part.get('label', key)}** ({part.get('n_patients', '?')} patients, "
                f"{part.get('n_events', '?')} with the event): ")
        if part.get("statement"):
            out.append(head + part["statement"])
            continue
        out.append(head + "C-index " + _difference(part.get("c_index") or {}) + "; " + "; ".join(
            f"td-AUC {h} y " + _difference(f) for h, f in (part.get("td_auc") or {}).items()))
    return out
