"""Cohort-level risk overview: current risk and trend per patient, risk groups, and the
observed cumulative incidence of the endpoint in each risk group.

- :func:`cohort_risk` scores every patient at their first, previous and latest visit in
  one vectorised pass (the model's own history features, domain check and risk).
- :func:`risk_groups` splits patients by their risk at the first visit into thirds
  (tertiles of the cohort's predicted risk).
- :func:`incidence_by_group` estimates the observed cumulative incidence of the endpoint
  after the first visit in each group: ``1 - Kaplan-Meier`` (lifelines
  ``KaplanMeierFitter``) when the model has no competing cause, else the Aalen-Johansen
  estimator (lifelines ``AalenJohansenFitter``), in which competing events are not
  treated as censoring. Numbers at risk are given at whole years.

Groups are formed with the model that is being looked at; when that model was trained on
the same patients, the separation between the curves is optimistic (apparent, not
validated) and the pages say so.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from lifelines import AalenJohansenFitter, KaplanMeierFitter

from analytics.errors import ModelError
from analytics.models.scoring import resolve_horizon, score
from analytics.store.patient_list import RISING_AT

if TYPE_CHECKING:
    from analytics.models.registry import RegisteredModel

__all__ = [
    "RISK_COLUMNS",
    "TREND_THRESHOLD",
    "GroupIncidence",
    "cohort_risk",
    "flags_of",
    "incidence_by_group",
    "risk_groups",
    "trend_of",
]

#: absolute change of risk (fraction) below which the trend is shown as flat: the
#: store's "rising" filter uses the same one
TREND_THRESHOLD = RISING_AT
TREND_ARROWS = {"up": "↑", "down": "↓", "flat": "→"}
RISK_COLUMNS = ("pseudonym", "risk", "risk_ci_low", "risk_ci_high", "risk_time",
                "previous_risk", "trend", "assessable", "reason", "baseline_time",
                "baseline_risk", "risk_date")
GROUP_NAMES = ("Low", "Intermediate", "High")
#: lifelines' Aalen-Johansen breaks tied event times with a seeded jitter of this size
AJ_JITTER = 1e-6


def trend_of(previous: float | None, current: float | None,
             threshold: float = TREND_THRESHOLD) -> str | None:
    """``up``/``down`` when the risk moved by at least ``threshold`` (absolute), else
    ``flat``; None when either value is unknown."""
    if previous is None or current is None or not np.isfinite(previous) \
            or not np.isfinite(current):
        return None
    d = current - previous
    tol = threshold - 1e-12  # a change of exactly the threshold counts despite rounding
    return "up" if d >= tol else "down" if d <= -tol else "flat"


def cohort_risk(model: RegisteredModel, visits: pd.DataFrame, horizon: float | None = None,
                *, intervals: bool = True) -> pd.DataFrame:
    """Each patient's risk at the latest visit, the visit before it and the first visit.

    Parameters
    ----------
    model
        A registered model (its training domain gates every row).
    visits
        ``CohortTable.visits`` (``patient``, ``time`` and the feature columns).
    horizon
        Years; default the model's longest horizon.
    intervals
        Also give the 95% interval at the latest visit (when the model has one).

    Returns
    -------
    pandas.DataFrame
        :data:`RISK_COLUMNS`, one row per patient with a visit: ``risk`` at the latest
        visit (``risk_time``), NaN with a ``reason`` when not assessable;
        ``previous_risk`` at the visit before it; ``trend`` (:func:`trend_of`);
        ``baseline_risk`` at the first visit (``baseline_time``); ``risk_date``: the
        stored (shifted) date of the latest visit, the date of the last data the risk
        uses (its "as of" date; NaT when the visit has none).

    Raises
    ------
    ModelError
        If the horizon is not one the model was trained for.
    """
    fitted = model.model
    h = resolve_horizon(fitted, horizon)
    if visits.empty:
        return pd.DataFrame(columns=list(RISK_COLUMNS))
    times = visits[["patient", "time"]].dropna().drop_duplicates()
    times = times.sort_values(["patient", "time"], kind="stable")
    g = times.groupby("patient", sort=True)["time"]
    last = g.nth(-1)
    first = g.nth(0)
    prev = g.nth(-2)
    at = pd.concat([
        pd.DataFrame({"patient": times.loc[last.index, "patient"].to_numpy(),
                      "landmark": last.to_numpy(), "role": "latest"}),
        pd.DataFrame({"patient": times.loc[prev.index, "patient"].to_numpy(),
                      "landmark": prev.to_numpy(), "role": "previous"}),
        pd.DataFrame({"patient": times.loc[first.index, "patient"].to_numpy(),
                      "landmark": first.to_numpy(), "role": "baseline"}),
    ], ignore_index=True)
    sc = score(fitted, visits, at, h,
               intervals=(at["role"] == "latest").to_numpy() if intervals else False)
    at["risk"] = sc.risk
    at["reason"] = sc.reasons
    latest = at[at["role"] == "latest"].set_index("patient")
    ci = None
    if sc.ci is not None:
        sel = np.flatnonzero((at["role"] == "latest").to_numpy() & sc.assessable)
        ci = pd.DataFrame(sc.ci[sel], columns=["lo", "hi"], index=at["patient"].to_numpy()[sel])
    previous = at[at["role"] == "previous"].set_index("patient")["risk"]
    base = at[at["role"] == "baseline"].set_index("patient")
    out = pd.DataFrame({"pseudonym": latest.index.astype(str)})
    out["risk"] = latest["risk"].to_numpy()
    out["risk_ci_low"] = (ci["lo"].reindex(latest.index).to_numpy() if ci is not None
                          else np.nan)
    out["risk_ci_high"] = (ci["hi"].reindex(latest.index).to_numpy() if ci is not None
                           else np.nan)
    out["risk_time"] = latest["landmark"].to_numpy(float)
    out["previous_risk"] = previous.reindex(latest.index).to_numpy(float)
    out["trend"] = [trend_of(p, c) for p, c in zip(out["previous_risk"], out["risk"],
                                                    strict=True)]
    out["assessable"] = np.isfinite(out["risk"].to_numpy(float))
    out["reason"] = latest["reason"].to_numpy()
    out["baseline_time"] = base["landmark"].reindex(latest.index).to_numpy(float)
    out["baseline_risk"] = base["risk"].reindex(latest.index).to_numpy(float)
    out["risk_date"] = _dates_at(visits, out["pseudonym"], out["risk_time"])
    return out[list(RISK_COLUMNS)].sort_values("pseudonym", ignore_index=True)


def _dates_at(visits: pd.DataFrame, patients: pd.Series, times: pd.Series) -> pd.Series:
    """The visit date of each ``(patient, time)`` (NaT where the visit has none)."""
    if "date" not in visits.columns:
        return pd.Series(pd.NaT, index=patients.index, dtype="datetime64[ns]")
    dated = visits.dropna(subset=["time"]).drop_duplicates(["patient", "time"])
    by = dated.set_index(["patient", "time"])["date"]
    keys = pd.MultiIndex.from_arrays([patients.astype(str), times.astype(float)])
    return pd.Series(pd.to_datetime(by.reindex(keys)).to_numpy(), index=patients.index)


def risk_groups(risk: pd.Series, n_groups: int = 3) -> tuple[pd.Series, list[float]]:
    """Split patients into ``n_groups`` by quantiles of their predicted risk.

    Returns
    -------
    (pandas.Series, list of float)
        The group name per row (:data:`GROUP_NAMES` for thirds, else ``Q1..Qn``; NaN
        where the risk is unknown) and the inner cut points. Ties at a cut point go to
        the lower group.

    Raises
    ------
    ModelError
        With fewer distinct risks than groups.
    """
    r = pd.to_numeric(risk, errors="coerce")
    known = r.dropna()
    if known.nunique() < n_groups:
        raise ModelError(f"risk groups: {known.nunique()} distinct predicted risks; at least "
                         f"{n_groups} are needed to form {n_groups} groups")
    cuts = [float(known.quantile(q)) for q in np.arange(1, n_groups) / n_groups]
    names = list(GROUP_NAMES) if n_groups == 3 else [f"Q{i + 1}" for i in range(n_groups)]
    idx = np.searchsorted(np.asarray(cuts), r.to_numpy(float), side="left")
    out = pd.Series([names[i] if np.isfinite(v) else None
                     for i, v in zip(idx, r.to_numpy(float), strict=True)],
                    index=risk.index, dtype=object)
    return out, cuts


@dataclass
class GroupIncidence:
    """Observed cumulative incidence of the endpoint per risk group.

    Attributes
    ----------
    method
        ``kaplan_meier`` (shown as ``1 - S(t)``) or ``aalen_johansen``.
    curves
        ``group``, ``time`` (years after the first visit), ``cif``, ``lower``, ``upper``
        (95% pointwise), as step-function knots starting at time 0.
    at_risk
        ``group``, ``time`` (whole years), ``n_at_risk``.
    groups
        ``group``, ``n``, ``events`` (endpoint), ``competing`` (competing events),
        ``risk_low``, ``risk_high`` (range of predicted risk in the group).
    cuts
        Inner cut points of predicted risk between groups.
    excluded
        Patients left out (not assessable at the first visit, or no follow-up after it).
    """

    method: str
    curves: pd.DataFrame
    at_risk: pd.DataFrame
    groups: pd.DataFrame
    cuts: list[float]
    excluded: int
    event: str
    horizon: float


def _codes(events: pd.Series, model: RegisteredModel) -> np.ndarray:
    """1 = endpoint, 2 = a competing cause, 0 = censored (or an event the model ignores)."""
    out = np.zeros(len(events), dtype=int)
    for i, e in enumerate(events.astype(str)):
        cause = model.events.cause_of(e)
        out[i] = 1 if cause == "interest" else 2 if cause is not None else 0
    return out


def incidence_by_group(model: RegisteredModel, risk: pd.DataFrame, outcomes: pd.DataFrame,
                       *, n_groups: int = 3, at_risk_step: float = 1.0) -> GroupIncidence:
    """Observed cumulative incidence after the first visit, by predicted-risk group.

    Parameters
    ----------
    model
        The model whose endpoint and competing causes define the events.
    risk
        :func:`cohort_risk` output (``pseudonym``, ``baseline_time``, ``baseline_risk``).
    outcomes
        ``CohortTable.outcomes`` (``patient``, ``duration`` from baseline, ``event``).
    n_groups
        Number of quantile groups.
    at_risk_step
        Spacing of the numbers-at-risk times, years.

    Raises
    ------
    ModelError
        If fewer than ``n_groups`` patients can be grouped.
    """
    df = risk[["pseudonym", "baseline_time", "baseline_risk"]].merge(
        outcomes.rename(columns={"patient": "pseudonym"}), on="pseudonym", how="inner")
    df["follow_up"] = df["duration"].astype(float) - df["baseline_time"].astype(float)
    usable = df["baseline_risk"].notna() & (df["follow_up"] > 0)
    excluded = int(len(risk) - usable.sum())
    df = df[usable].reset_index(drop=True)
    if len(df) < n_groups:
        raise ModelError(f"risk groups: {len(df)} patients with an outcome and an assessable "
                         f"first visit; at least {n_groups} are needed")
    df["group"], cuts = risk_groups(df["baseline_risk"], n_groups)
    df["code"] = _codes(df["event"], model)
    competing = bool(model.events.competing) and bool((df["code"] == 2).any())
    method = "aalen_johansen" if competing else "kaplan_meier"
    t_max = float(df["follow_up"].max())
    grid = np.arange(0.0, np.floor(t_max / at_risk_step) * at_risk_step + 1e-9, at_risk_step)
    curves, at_risk, groups = [], [], []
    names = [g for g in (GROUP_NAMES if n_groups == 3 else
                         [f"Q{i + 1}" for i in range(n_groups)]) if (df["group"] == g).any()]
    for name in names:
        part = df[df["group"] == name]
        t = part["follow_up"].to_numpy(float)
        c = part["code"].to_numpy(int)
        if method == "kaplan_meier":
            f = KaplanMeierFitter().fit(t, c == 1)
            est = f.cumulative_density_.iloc[:, 0]
            ci = f.confidence_interval_cumulative_density_
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # lifelines warns that it jitters ties
                f = AalenJohansenFitter(jitter_level=AJ_JITTER, seed=0,
                                        calculate_variance=True).fit(t, c, event_of_interest=1)
            est = f.cumulative_density_.iloc[:, 0]
            ci = f.confidence_interval_
        curves.append(pd.DataFrame({"group": name, "time": est.index.to_numpy(float),
                                    "cif": est.to_numpy(float),
                                    "lower": ci.iloc[:, 0].to_numpy(float),
                                    "upper": ci.iloc[:, 1].to_numpy(float)}))
        at_risk.append(pd.DataFrame({"group": name, "time": grid,
                                     "n_at_risk": [int((t >= g).sum()) for g in grid]}))
        groups.append({"group": name, "n": len(part), "events": int((c == 1).sum()),
                       "competing": int((c == 2).sum()),
                       "risk_low": float(part["baseline_risk"].min()),
                       "risk_high": float(part["baseline_risk"].max())})
    return GroupIncidence(method=method, curves=pd.concat(curves, ignore_index=True),
                          at_risk=pd.concat(at_risk, ignore_index=True),
                          groups=pd.DataFrame(groups), cuts=cuts, excluded=excluded,
                          event=model.events.label,
                          horizon=float(max(model.horizons)))


def flags_of(risk: pd.DataFrame, automatic: set[str]) -> pd.Series:
    """One flag text per patient row: ``out of domain`` (latest visit not assessable),
    ``automatic segmentation`` (``automatic``: from
    :func:`analytics.store.patient_flags.automatic_segmentation_patients`); joined by
    ``" · "``, empty when none."""
    out = []
    for p, ok, has_risk in zip(risk["pseudonym"], risk["assessable"],
                               risk["risk_time"].notna(), strict=True):
        f = []
        if has_risk and not ok:
            f.append("out of domain")
        if p in automatic:
            f.append("automatic segmentation")
        out.append(" · ".join(f))
    return pd.Series(out, index=risk.index, dtype=object)
