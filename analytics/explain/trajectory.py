"""One patient's risk trajectory as the dashboard and the MDT report show it.

:func:`risk_view` scores every visit of a patient with the engine's
``analytics.models.predict.patient_trajectory`` (domain checks, intervals and SHAP values
are the engine's) and adds what the pages draw:

- per visit, the SHAP values of the model-matrix columns summed per clinical feature (a
  feature's last value, trend, worst value and missing indicator form one group), with
  the patient's value and its change since the previous visit;
- whether the visit was a scan;
- :func:`waterfall_data` (base value -> model output for one visit) and
  :func:`change_since_scan` (which features moved the score since the last scan; on the
  log-hazard scale the base value cancels, so the changes add up to the change of the
  model output exactly).

:func:`cumulative_incidence_curves` gives the cumulative incidence of the endpoint and of
each competing cause over time from one visit, from the same cause-specific hazards and
the same Aalen-Johansen step formula the model uses for its risk, so the endpoint curve
at each horizon equals the risk shown.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analytics.errors import ModelError

if TYPE_CHECKING:
    from analytics.models.registry import RegisteredModel

__all__ = [
    "CONTRIBUTION_COLUMNS",
    "POINT_COLUMNS",
    "RiskView",
    "change_since_scan",
    "clinical_label",
    "cumulative_incidence_curves",
    "feature_groups",
    "risk_view",
    "waterfall_data",
]

POINT_COLUMNS = ("time", "date", "risk", "ci_low", "ci_high", "assessable", "reason",
                 "is_scan", "series_uid", "base_value", "model_output")
CONTRIBUTION_COLUMNS = ("feature", "label", "unit", "value", "change", "shap")
INTEREST = "interest"


@dataclass
class RiskView:
    """Risk at every visit of one patient, at one horizon, with grouped explanations.

    Attributes
    ----------
    patient
        Pseudonym.
    model_id, event, horizon
        The model, its endpoint label and the horizon in years.
    scale
        Scale of the SHAP values: ``log_hazard`` or ``risk``.
    points
        One row per visit (:data:`POINT_COLUMNS`), by time: ``risk`` and the interval
        are cumulative incidence by ``time + horizon``; unassessable visits have NaN risk
        and a ``reason``.
    contributions
        Per row of ``points``: :data:`CONTRIBUTION_COLUMNS`, largest ``|shap|`` first
        (empty for unassessable visits).
    competing
        Competing causes the model has its own hazard for.
    """

    patient: str
    model_id: str | None
    event: str
    horizon: float
    scale: str
    points: pd.DataFrame
    contributions: list[pd.DataFrame] = field(default_factory=list)
    competing: tuple[str, ...] = ()

    @property
    def assessable(self) -> pd.DataFrame:
        return self.points[self.points["assessable"]]

    def latest_index(self) -> int | None:
        """Row of the latest assessable visit, or None."""
        ok = np.flatnonzero(self.points["assessable"].to_numpy())
        return int(ok[-1]) if len(ok) else None


def feature_groups(model: RegisteredModel) -> dict[str, str]:
    """Model-matrix column -> the clinical feature it derives from."""
    return dict(model.model.feature_groups_)


@functools.lru_cache(maxsize=1024)
def clinical_label(feature: str) -> tuple[str, str]:
    """(label, unit) of a clinical feature or global history column, for display."""
    from analytics.models.landmark import GLOBAL_FEATURES, describe_column, feature_info

    if feature in GLOBAL_FEATURES:
        return describe_column(feature)
    info = feature_info(feature)
    return info.label, info.unit


def _plain(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, float | np.floating):
        return None if np.isnan(v) else float(v)
    if isinstance(v, int | np.integer):
        return float(v)
    return str(v)


def risk_view(model: RegisteredModel, visits: pd.DataFrame, patient: str,
              horizon: float | None = None) -> RiskView:
    """Score every visit of ``patient`` and group the explanations per clinical feature.

    Parameters
    ----------
    model
        A registered (usually loaded) landmark model.
    visits
        Cohort visits (``CohortTable.visits``); only this patient's rows are read, so
        passing just them is fastest.
    patient
        Pseudonym.
    horizon
        Years; default the model's longest horizon.

    Raises
    ------
    ModelError
        If the horizon is not one of the model's or the patient has no visit.
    """
    from analytics.models.predict import scored_trajectory

    pv = visits[visits["patient"] == patient].sort_values("time", kind="stable")
    res, scores = scored_trajectory(model, pv, patient, horizon=horizon)
    rows = res["trajectory"]
    hist = scores.history
    scan_uid: dict[float, str] = {}
    if "series_uid" in pv.columns:
        for t, uid in zip(pv["time"].to_numpy(float), pv["series_uid"], strict=True):
            if isinstance(uid, str) and uid:
                scan_uid.setdefault(round(float(t), 9), uid)
    groups = feature_groups(model)
    categorical = set(model.model.spec_.categorical)
    # plain per-column lists: row lookups in a DataFrame cost more than the scoring
    values = {c: hist[c].tolist() for c in set(groups.values()) if c in hist.columns}
    points, contributions = [], []
    prev_ok: int | None = None
    for i, r in enumerate(rows):
        ok = r["risk"] is not None
        ci = r.get("ci") or [None, None]
        uid = scan_uid.get(round(float(r["time"]), 9))
        points.append({
            "time": float(r["time"]), "date": r.get("date"), "risk": r["risk"],
            "ci_low": ci[0], "ci_high": ci[1], "assessable": ok, "reason": r.get("reason"),
            "is_scan": uid is not None, "series_uid": uid, "base_value": r.get("base_value"),
            "model_output": r.get("model_output")})
        if not ok:
            contributions.append(pd.DataFrame(columns=list(CONTRIBUTION_COLUMNS)))
            continue
        by_group: dict[str, float] = {}
        for col, v in r["shap"].items():
            g = groups.get(col, col)
            by_group[g] = by_group.get(g, 0.0) + float(v)
        recs = []
        for g, v in sorted(by_group.items(), key=lambda kv: -abs(kv[1])):
            label, unit = clinical_label(g)
            col = values.get(g)
            value = _plain(col[i]) if col is not None else None
            change = None
            if prev_ok is not None and col is not None and g not in categorical:
                a, b = _plain(col[i]), _plain(col[prev_ok])
                if isinstance(a, float) and isinstance(b, float):
                    change = a - b
            recs.append((g, label, unit, value, change, v))
        contributions.append(pd.DataFrame(recs, columns=list(CONTRIBUTION_COLUMNS)))
        prev_ok = i
    pts = pd.DataFrame(points, columns=list(POINT_COLUMNS))
    for c in ("risk", "ci_low", "ci_high", "base_value", "model_output"):
        pts[c] = pd.to_numeric(pts[c], errors="coerce").astype("float64")
    return RiskView(patient=patient, model_id=res.get("model_id"), event=res.get("event", ""),
                    horizon=float(res["horizon"]), scale=rows[0]["shap_scale"] if rows else "",
                    points=pts, contributions=contributions,
                    competing=tuple(c for c in model.model.estimators_ if c != INTEREST))


def _value_text(value: Any, unit: str) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, str):
        return value
    text = f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{text} {unit}".strip()


def waterfall_data(view: RiskView, i: int, top: int = 8) -> pd.DataFrame:
    """The steps from the base value to the model output of visit ``i``.

    Returns
    -------
    pandas.DataFrame
        ``label`` (feature label with the patient's value), ``shap``, ``start`` and
        ``end`` (running total before/after the step), ``kind`` (``base``, ``feature``,
        ``other``, ``output``). The ``top`` largest groups are listed; the rest are one
        ``other`` step, so the last ``end`` equals the model output. Attributes
        ``base_value``, ``output`` and ``scale`` are set.

    Raises
    ------
    ModelError
        If visit ``i`` could not be scored (the reason is in the message).
    """
    p = view.points.iloc[i]
    if not p["assessable"]:
        raise ModelError(f"visit at {p['time']:.2f} y: not assessable ({p['reason']})")
    c = view.contributions[i]
    base = float(p["base_value"])
    head, rest = c.head(top), c.iloc[top:]
    rows = [{"label": "Base value", "shap": 0.0, "start": base, "end": base, "kind": "base"}]
    total = base
    for r in head.itertuples():
        rows.append({"label": f"{r.label} = {_value_text(r.value, r.unit)}", "shap": r.shap,
                     "start": total, "end": total + r.shap, "kind": "feature"})
        total += r.shap
    if len(rest):
        s = float(rest["shap"].sum())
        rows.append({"label": f"{len(rest)} other features", "shap": s, "start": total,
                     "end": total + s, "kind": "other"})
        total += s
    rows.append({"label": "Model output", "shap": 0.0, "start": total, "end": total,
                 "kind": "output"})
    df = pd.DataFrame(rows)
    df.attrs.update(base_value=base, output=float(p["model_output"]), scale=view.scale)
    return df


def change_since_scan(view: RiskView, i: int, top: int = 8) -> pd.DataFrame:
    """Which features moved the score of visit ``i`` since the last scored scan before it.

    The reference is the latest assessable scan visit before ``i``; without one, the
    latest assessable visit before ``i``. Per feature group the change is
    ``shap_i - shap_ref``; on the log-hazard scale (exact explainers) these add up to the
    change of the model output.

    Returns
    -------
    pandas.DataFrame
        ``feature``, ``label``, ``change`` (largest magnitude first, at most ``top`` rows
        plus one "other features" row). Attributes: ``reference_time``,
        ``reference_kind`` (``scan``/``visit``/None), ``output_change``, ``risk_change``,
        ``scale``.
        Empty with ``reference_kind`` None when there is nothing to compare with.
    """
    pts = view.points
    empty = pd.DataFrame(columns=["feature", "label", "change"])
    empty.attrs.update(reference_time=None, reference_kind=None, output_change=None,
                       risk_change=None, scale=view.scale)
    if not pts.iloc[i]["assessable"]:
        return empty
    before = pts.iloc[:i]
    ok = before[before["assessable"]]
    ref_kind = "scan"
    cand = ok[ok["is_scan"]]
    if cand.empty:
        cand, ref_kind = ok, "visit"
    if cand.empty:
        return empty
    j = int(cand.index[-1])
    a = view.contributions[i].set_index("feature")
    b = view.contributions[j].set_index("feature")
    feats = list(dict.fromkeys([*a.index, *b.index]))
    ch = pd.DataFrame({
        "feature": feats,
        "label": [a["label"].get(f, b["label"].get(f, f)) for f in feats],
        "change": [float(a["shap"].get(f, 0.0)) - float(b["shap"].get(f, 0.0)) for f in feats]})
    ch = ch.reindex(ch["change"].abs().sort_values(ascending=False, kind="stable").index)
    ch = ch.reset_index(drop=True)
    if len(ch) > top:
        rest = ch.iloc[top:]
        ch = pd.concat([ch.iloc[:top], pd.DataFrame([{
            "feature": "__other__", "label": f"{len(rest)} other features",
            "change": float(rest["change"].sum())}])], ignore_index=True)
    ch.attrs.update(reference_time=float(pts.iloc[j]["time"]), reference_kind=ref_kind,
                    scale=view.scale,
                    output_change=float(pts.iloc[i]["model_output"])
                    - float(pts.iloc[j]["model_output"]),
                    risk_change=float(pts.iloc[i]["risk"]) - float(pts.iloc[j]["risk"]))
    return ch


def cumulative_incidence_curves(model: RegisteredModel, visits: pd.DataFrame, patient: str,
                                time: float, times: np.ndarray | list[float] | None = None
                                ) -> pd.DataFrame:
    """Cumulative incidence of the endpoint and each competing cause after visit ``time``.

    ``CIF_c(t) = sum_i S(t_{i-1}) (1 - exp(-dA_i)) dA_ci / dA_i`` over the grid steps up
    to ``t`` (``dA_i`` summed over causes, ``S = exp(-A)``): the model's own combination
    (:func:`analytics.models.predict.cumulative_incidence`), so ``CIF_interest`` equals
    the model's risk and the causes plus event-free survival sum to one.

    Parameters
    ----------
    time
        The visit (landmark, years since baseline) the curves start from.
    times
        Years after ``time``; default 40 steps up to the longest horizon.

    Returns
    -------
    pandas.DataFrame
        ``time`` (years after the visit), ``cause`` (``interest`` or a competing cause
        name), ``label`` (the events the cause pools), ``cif``.
    """
    from analytics.models.scoring import model_rows

    fitted = model.model
    hs = (np.linspace(0.0, max(model.horizons), 41)[1:] if times is None
          else np.asarray(times, dtype=float))
    pv = visits[visits["patient"] == patient]
    if pv.empty:
        raise ModelError(f"patient {patient!r}: no visits in the cohort")
    rows = model_rows(fitted, pv, pd.DataFrame({"patient": [patient], "landmark": [float(time)]}))
    labels = {INTEREST: model.events.label,
              **{c: ", ".join(v) for c, v in model.events.competing.items()}}
    parts = [pd.DataFrame({"time": hs, "cause": cause, "label": labels.get(cause, cause),
                           "cif": cif[0]})
             for cause, cif in fitted.incidence_by_cause(rows.matrix, hs).items()]
    return pd.concat(parts, ignore_index=True)
