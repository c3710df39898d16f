"""One patient's risk trajectory: the one explanation object every chart and sentence reads.

:func:`patient_trajectory` scores every visit of a patient (and an extra time ``at``)
through :func:`analytics.models.scoring.score` (history features, training-domain
check, risk, interval and SHAP values, all the model's) and returns a
:class:`Trajectory`:

- ``points``: the risk at every visit with its date, interval, scan marker and reason;
- ``explanation``: the model's SHAP values per model-matrix column (``hepatrack predict``
  prints them), and ``grouped``: the same values summed per clinical feature (a
  feature's last value, trend, worst value and missing indicator form one group; time
  since baseline and the visit count form ``Follow-up``), with the patient's values as
  its data;
- ``in_points``: the grouped contributions in percentage points of the risk at the
  horizon, from the base risk to the shown risk exactly
  (:mod:`analytics.explain.points`); what the clinic reads by default;
- :meth:`Trajectory.contributions` and :meth:`Trajectory.why`: one visit's grouped
  contributions and their sentences (:mod:`analytics.explain.wording`); an imaging
  biomarker's change is since the previous scan, and :meth:`Trajectory.imaging` /
  :meth:`Trajectory.imaging_text` list the measured ones with value, change and
  contribution (``"Spleen volume 410 mL (+120 mL since the previous scan): +1.8
  points"``);
- :meth:`Trajectory.waterfall` (base risk -> risk of one visit in points, or base value
  -> model output on the model's scale) and :meth:`Trajectory.change_since_scan`
  (which features moved the score since the last scan; the changes add up to the
  change of the risk, or of the model output, exactly);
- :meth:`Trajectory.to_json`: the ``hepatrack predict`` JSON contract, with each
  visit's ``points`` and ``base_risk`` added.

:func:`incidence_curves` gives the cumulative incidence of the endpoint and of each
competing cause over time from one visit, from the same cause-specific hazards and the
same Aalen-Johansen step formula the model uses for its risk, so the endpoint curve at
each horizon equals the risk shown.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from analytics.errors import ModelError
from analytics.explain.breakdown import (
    ChangeSinceScan,
    Waterfall,
    change_rows,
    waterfall_steps,
)
from analytics.explain.contributions import (
    Contribution,
    contributions,
    group_explanation,
    scan_changes,
)
from analytics.explain.points import (
    POINTS,
    ChangeBasis,
    change_basis,
    change_points,
    points_explanation,
)
from analytics.explain.rows import json_rows, previous_rows
from analytics.explain.wording import PREVIOUS_IMPORTED, PREVIOUS_SCAN, imaging_text
from analytics.models.estimators import SurvivalEstimator
from analytics.models.explanation import Explanation
from analytics.models.registry import jsonable
from analytics.models.scoring import Scores, resolve_horizon, score

if TYPE_CHECKING:
    from analytics.models.registry import RegisteredModel

__all__ = [
    "CONTRIBUTION_COLUMNS",
    "POINT_COLUMNS",
    "ChangeSinceScan",
    "IncidenceCurves",
    "Trajectory",
    "Waterfall",
    "incidence_curves",
    "patient_trajectories",
    "patient_trajectories_json",
    "patient_trajectory",
    "reference_visit",
    "reference_visits",
]

POINT_COLUMNS = ("time", "date", "risk", "ci_low", "ci_high", "assessable", "reason",
                 "is_scan", "series_uid", "base_value", "model_output", "requested",
                 "plain_reason")
CONTRIBUTION_COLUMNS = ("feature", "label", "unit", "value", "change", "shap", "points")
INTEREST = "interest"
#: contributions and column changes listed per visit in the JSON output
JSON_TOP = 5


@dataclass(frozen=True)
class IncidenceCurves:
    """Cumulative incidence of the endpoint and each competing cause after one visit.

    Attributes
    ----------
    visit_time
        The visit the curves start from (years since baseline).
    curves
        ``time`` (years after the visit), ``cause`` (``interest`` or a competing cause),
        ``label`` (the events the cause pools), ``cif``.
    """

    visit_time: float
    curves: pd.DataFrame


@dataclass(frozen=True, eq=False)
class Trajectory:
    """Risk at every visit of one patient, at one horizon, with its explanation.

    Attributes
    ----------
    patient
        Pseudonym.
    model_id, event, horizon
        The model, its endpoint label and the horizon in years.
    points
        One row per visit (:data:`POINT_COLUMNS`), by time: ``risk`` and the interval
        are cumulative incidence by ``time + horizon``; unassessable visits have NaN
        risk, a ``reason`` (the model's terms, as ``hepatrack predict`` gives it) and a
        ``plain_reason`` (one sentence: what is missing and what to add);
        ``requested`` marks the extra time ``at``.
    explanation
        SHAP values of every row per model-matrix column (rows as in ``points``).
    grouped
        The same summed per clinical feature; ``data`` holds the patient's values.
    categorical
        Clinical features whose values are categories (no numeric change).
    competing
        Competing causes the model has its own hazard for.
    has_interval
        Whether the model gives risk intervals.
    matrix
        The model-matrix rows scored (for :func:`incidence_curves`).
    scan_change
        Change since the previous scan of each imaging biomarker with a scan history
        (:func:`analytics.explain.contributions.scan_changes`, rows as ``points``).
    in_points
        ``grouped`` in percentage points of the risk at the horizon
        (:func:`analytics.explain.points.points_explanation`): ``base_values`` the base
        risk and ``output`` the risk, in percent; None (a trajectory built without it)
        leaves every view on the model's scale.
    change_basis
        Each visit's reference visit (:func:`reference_visit`) and what apportioning
        the risk change since it in points needs
        (:func:`analytics.explain.points.change_basis`).
    """

    patient: str
    model_id: str | None
    event: str
    horizon: float
    points: pd.DataFrame
    explanation: Explanation
    grouped: Explanation
    categorical: frozenset[str] = frozenset()
    competing: tuple[str, ...] = ()
    has_interval: bool = False
    matrix: pd.DataFrame | None = None
    scan_change: pd.DataFrame | None = None
    in_points: Explanation | None = None
    change_basis: ChangeBasis | None = None

    @property
    def scale(self) -> str:
        """Scale of the SHAP values: ``log_hazard`` or ``risk``."""
        return self.explanation.scale

    @property
    def assessable(self) -> pd.DataFrame:
        return self.points[self.points["assessable"]]

    def latest_index(self) -> int | None:
        """Row of the latest assessable visit, or None."""
        ok = np.flatnonzero(self._visit_mask())
        return int(ok[-1]) if len(ok) else None

    def _visit_mask(self) -> np.ndarray:
        """Assessable visits (not the requested extra time)."""
        return _visit_mask(self.points)

    def previous_visit(self, i: int) -> int | None:
        """Row of the latest assessable visit before row ``i`` (not ``at``), or None."""
        ok = np.flatnonzero(self._visit_mask()[:i])
        return int(ok[-1]) if len(ok) else None

    def _check_assessable(self, i: int) -> None:
        p = self.points.iloc[i]
        if not p["assessable"]:
            raise ModelError(f"visit at {p['time']:.2f} y: not assessable ({p['reason']})")

    # ------------------------------------------------------------------ one visit
    def contributions(self, i: int, top: int | None = None) -> list[Contribution]:
        """Grouped contributions of visit ``i``, largest ``|shap|`` first (empty when the
        visit is not assessable), each with its percentage points of the risk; changes
        are since :meth:`previous_visit`."""
        if not self.points["assessable"].iloc[i]:
            return []
        return contributions(self.grouped, i, self.previous_visit(i), self.categorical,
                             top, self.scan_change, self.in_points, self.imaging_since(i))

    def imaging_since(self, i: int) -> str:
        """What visit ``i``'s imaging changes are since: the previous scan, or, with no
        stored scan up to the visit, the previous imported measurement (imaging values
        that came with the visits file)."""
        scanned = bool(self.points["is_scan"].iloc[:i + 1].any())
        return PREVIOUS_SCAN if scanned else PREVIOUS_IMPORTED

    def imaging(self, i: int) -> list[Contribution]:
        """Contributions of visit ``i``'s measured imaging biomarkers, largest first
        (empty for a patient without scans so far, or a visit not assessable)."""
        return [c for c in self.contributions(i) if c.imaging and c.value is not None]

    def imaging_text(self, i: int, top: int = 3, scale: str = POINTS) -> str:
        """``"Imaging: Spleen volume 410 mL (+120 mL since the previous scan): +1.8
        points."`` for the ``top`` largest of :meth:`imaging` (``""`` without any);
        ``scale`` ``log_hazard`` writes the model's contributions instead."""
        return imaging_text([(c.label, c.unit, c.value, c.change, c.amount(scale))
                             for c in self.imaging(i)[:top]],
                            self._own(scale), self.imaging_since(i))

    def contribution_table(self, i: int) -> pd.DataFrame:
        """:meth:`contributions` as a table (:data:`CONTRIBUTION_COLUMNS`)."""
        return pd.DataFrame([(c.feature, c.label, c.unit, c.value, c.change, c.shap, c.points)
                             for c in self.contributions(i)],
                            columns=list(CONTRIBUTION_COLUMNS))

    def why(self, i: int, top: int = 3, scale: str = POINTS) -> list[str]:
        """The ``top`` largest contributions of visit ``i`` in words, in percentage
        points (``scale`` ``log_hazard``: on the model's scale)."""
        return [c.sentence(scale) for c in self.contributions(i, top)]

    def base_risk(self, i: int) -> float | None:
        """Risk of visit ``i`` (fraction) were its log hazard the explanation's base
        value (:mod:`analytics.explain.points`); NaN when not assessable, None without
        points."""
        if self.in_points is None:
            return None
        return float(self.in_points.base_values[i]) / 100.0

    def _own(self, scale: str) -> str:
        """``scale`` as drawn: ``points`` when asked for and known, else the model's."""
        return POINTS if scale == POINTS and self.in_points is not None else self.scale

    def waterfall(self, i: int, top: int = 8, scale: str = POINTS) -> Waterfall:
        """The steps from the base to the score of visit ``i``.

        ``scale`` ``points`` (default): from the base risk to the risk (percent) in
        percentage points; otherwise from the base value to the model output on the
        model's scale. The ``top`` largest groups are listed; the rest are one
        ``other`` step.

        Raises
        ------
        ModelError
            If visit ``i`` could not be scored (the reason is in the message).
        """
        self._check_assessable(i)
        cs = self.contributions(i)
        if self._own(scale) == POINTS:
            return waterfall_steps(cs, float(self.in_points.base_values[i]),
                                   float(self.in_points.output[i]), POINTS, top,
                                   self.horizon)
        return waterfall_steps(cs, float(self.points["base_value"].iloc[i]),
                               float(self.points["model_output"].iloc[i]), self.scale, top,
                               self.horizon)

    def change_since_scan(self, i: int, top: int = 8, scale: str = POINTS) -> ChangeSinceScan:
        """Which features moved the score of visit ``i`` since the last scored scan.

        The reference is the latest assessable scan visit before ``i``; without one,
        the latest assessable visit before ``i``. Per feature group the change is its
        contribution at ``i`` minus at the reference, in percentage points (``scale``
        ``points``, with a ``__base__`` row when the base risk itself moved: the rows
        add up to the change of the risk) or on the model's scale (exact explainers:
        they add up to the change of the model output). At most ``top`` rows plus one
        "other features" row.
        """
        pts = self.points
        own = POINTS if self._own(scale) == POINTS and self.change_basis is not None \
            else self.scale
        ref = reference_visit(pts, i)
        if not pts["assessable"].iloc[i] or ref is None:
            return ChangeSinceScan(pd.DataFrame(columns=["feature", "label", "change", "text"]),
                                   None, None, None, None, own)
        j, ref_kind = ref
        now, before = self.contributions(i), self.contributions(j)
        shap_a = {c.feature: c.shap for c in now}
        shap_b = {c.feature: c.shap for c in before}
        feats = list(dict.fromkeys([*shap_a, *shap_b]))
        log_change = np.array([shap_a.get(f, 0.0) - shap_b.get(f, 0.0) for f in feats])
        risk = pts["risk"].to_numpy(float)
        if own == POINTS:
            moved, base_move = change_points(log_change, self.change_basis, i, risk)
            score_change = 100.0 * (risk[i] - risk[j])
        else:
            moved, base_move = log_change, 0.0
            out = pts["model_output"].to_numpy(float)
            score_change = float(out[i] - out[j])
        ch = change_rows(now, before, dict(zip(feats, moved.tolist(), strict=True)), top,
                         base_move)
        return ChangeSinceScan(ch, float(pts["time"].iloc[j]), ref_kind, float(score_change),
                               float(risk[i] - risk[j]), own)

    # ------------------------------------------------------------------ JSON
    def to_json(self, top: int = JSON_TOP) -> dict[str, Any]:
        """The ``hepatrack predict`` JSON of this patient (strict JSON values).

        Returns
        -------
        dict
            ``patient``, ``model_id``, ``horizon``, ``event``, ``trajectory``: list of
            ``{time, date, horizon, model_id, requested, shap_scale, risk, ci, shap,
            base_value, model_output, reason, contributions, change, base_risk,
            points}``; unscorable rows have ``risk`` None and a ``reason``.
            ``points`` are the grouped contributions (clinical feature, ``follow_up``)
            in percentage points of the risk, ``base_risk`` the risk they start from
            (fraction): ``base_risk + sum(points) / 100 == risk``. With a requested
            time, ``at`` holds its row.
        """
        return _patient_json(self, self.patient, json_rows(self, top))


def _patient_json(traj: Trajectory, patient: str, rows: list[dict[str, Any]]
                  ) -> dict[str, Any]:
    """One patient's ``predict`` JSON around its rows (:meth:`Trajectory.to_json`)."""
    res: dict[str, Any] = jsonable({"patient": patient, "model_id": traj.model_id,
                                    "horizon": traj.horizon, "event": traj.event})
    # the rows hold strict JSON values already (walking every number again was slow)
    res["trajectory"] = rows
    requested = [r for r in rows if r["requested"]]
    if requested:
        res["at"] = requested[0]
    return res


# --------------------------------------------------------------------------- building
def _visit_mask(points: pd.DataFrame) -> np.ndarray:
    """Assessable visits (not the requested extra time)."""
    ok = points["assessable"].to_numpy(bool)
    if "requested" in points:
        ok = ok & ~points["requested"].to_numpy(bool)
    return ok


def reference_visit(points: pd.DataFrame, i: int) -> tuple[int, str] | None:
    """The visit row ``i``'s change is measured since, and its kind: the latest
    assessable scan visit before ``i`` (``"scan"``), else the latest assessable visit
    before it (``"visit"``); None without one or when ``i`` is not assessable."""
    if not points["assessable"].iloc[i]:
        return None
    ok = _visit_mask(points)[:i]
    cand = np.flatnonzero(ok & points["is_scan"].to_numpy(bool)[:i])
    if len(cand):
        return int(cand[-1]), "scan"
    cand = np.flatnonzero(ok)
    return (int(cand[-1]), "visit") if len(cand) else None


def reference_visits(points: pd.DataFrame, block_start: np.ndarray | None = None
                     ) -> np.ndarray:
    """:func:`reference_visit` of every row at once: its row, -1 for none.

    ``block_start``: the first row of each row's patient when ``points`` holds several
    patients' rows (each patient's by time); a reference is never another patient's.
    """
    ok = points["assessable"].to_numpy(bool)
    if block_start is None:
        block_start = np.zeros(len(ok), dtype=np.intp)
    visit = _visit_mask(points)
    scan = previous_rows(visit & points["is_scan"].to_numpy(bool), block_start)
    latest = previous_rows(visit, block_start)
    return np.where(ok, np.where(scan >= 0, scan, latest), -1)


class _Landmarks(NamedTuple):
    """One patient's scored times (years since baseline, ascending) and which of them is
    the requested extra time."""

    times: list[float]
    requested: list[bool]


def _visit_landmarks(visits: pd.DataFrame, at: float | None) -> _Landmarks:
    rows = [(t, False) for t in sorted(set(visits["time"].to_numpy(float).tolist()))]
    if at is not None:
        rows = [r for r in rows if abs(r[0] - at) > 1e-9]
        rows.append((float(at), True))
        rows.sort(key=lambda r: r[0])  # stable: the requested time after an equal one
    return _Landmarks([r[0] for r in rows], [r[1] for r in rows])


def _dates_at(visits: pd.DataFrame, times: list[float]) -> list[str | None]:
    """ISO date of each of ``times``: that of the nearest dated visit (the first of equally
    near ones), moved by the time difference in whole days (years of 365.25 days)."""
    if "date" not in visits:
        return [None] * len(times)
    d = visits["date"]
    if not pd.api.types.is_datetime64_dtype(d):
        d = pd.to_datetime(d, errors="coerce")
    if isinstance(d.dtype, pd.DatetimeTZDtype):  # the calendar day where it was taken
        d = d.dt.tz_localize(None)
    ok = d.notna().to_numpy()
    if not ok.any():
        return [None] * len(times)
    vt = visits["time"].to_numpy(float)[ok]
    days = d.to_numpy()[ok].astype("datetime64[D]")  # a timestamp's own calendar day
    t = np.asarray(times, dtype=float)
    gap = t[:, None] - vt[None, :]
    near = np.argmin(np.abs(gap), axis=1)
    off = gap[np.arange(len(t)), near]
    shift = np.where(np.abs(off) < 1e-9, 0.0, np.round(off * 365.25)).astype(np.int64)
    return np.datetime_as_string(days[near] + shift, unit="D").tolist()


def _scan_uids(visits: pd.DataFrame) -> dict[float, str]:
    """The first stored series of each visit time (rounded), for scan markers."""
    out: dict[float, str] = {}
    if "series_uid" in visits.columns:
        for t, uid in zip(visits["time"].to_numpy(float), visits["series_uid"], strict=True):
            if isinstance(uid, str) and uid:
                out.setdefault(round(float(t), 9), uid)
    return out


def patient_trajectory(registered: RegisteredModel, visits: pd.DataFrame, patient: str,
                       horizon: float | None = None, at: float | None = None) -> Trajectory:
    """Risk at every visit of one patient (and at ``at``), with its explanation.

    Parameters
    ----------
    registered
        A registered (usually loaded) model; its training domain gates every row.
    visits
        Cohort visits; only this patient's rows are read, so passing just them is
        fastest.
    patient
        Pseudonym.
    horizon
        Years; default the model's longest horizon.
    at
        Extra time (years since baseline) scored from the history up to it.

    Returns
    -------
    Trajectory

    Raises
    ------
    ModelError
        If the horizon is not one the model was trained for, ``at`` is not a time
        since baseline, or the patient has no visit.
    """
    model = registered.model
    h = resolve_horizon(model, horizon, "--horizon")
    pv = visits[visits["patient"] == patient].sort_values("time", kind="stable")
    if pv.empty:
        raise ModelError(f"patient {patient!r}: no visits in the cohort")
    _check_at(at)
    lm = _visit_landmarks(pv, at)
    sc = score(model, pv, pd.DataFrame({"patient": patient, "landmark": lm.times}), h,
               explain=True)
    return _trajectories(registered, [patient], [pv], [lm], sc, h)[0]


def patient_trajectories(registered: RegisteredModel, visits: pd.DataFrame,
                         patients: list[str], horizon: float | None = None,
                         at: float | None = None) -> list[Trajectory]:
    """:func:`patient_trajectory` of each of ``patients``, scored together.

    History features, the domain check, risks, intervals and SHAP values of every
    patient's visits are computed in one pass over the cohort, then split by patient:
    each trajectory is the one :func:`patient_trajectory` gives. A model whose explainer
    samples (its random draws depend on the rows explained together) is scored patient
    by patient.

    Raises
    ------
    ModelError
        As :func:`patient_trajectory`, for the first patient without visits.
    """
    h, together = _scored_together(registered, visits, patients, horizon, at)
    if together is None:
        return [patient_trajectory(registered, visits, p, h, at) for p in patients]
    return _trajectories(registered, patients, *together, h)


def _scored_together(registered: RegisteredModel, visits: pd.DataFrame, patients: list[str],
                     horizon: float | None, at: float | None) -> tuple[float, Any]:
    """The resolved horizon and :func:`_score_together`'s result (None with no patients,
    or when the patients must be scored one by one), the arguments checked first."""
    h = resolve_horizon(registered.model, horizon, "--horizon")
    _check_at(at)
    if not patients:
        return h, None
    return h, _score_together(registered.model, visits, patients, h, at)


def patient_trajectories_json(registered: RegisteredModel, visits: pd.DataFrame,
                              patients: list[str], horizon: float | None = None,
                              at: float | None = None, top: int = JSON_TOP
                              ) -> list[dict[str, Any]]:
    """:meth:`Trajectory.to_json` of each of :func:`patient_trajectories`, equal to it.

    The JSON rows of every patient are built from the cohort's rows in one pass
    (:func:`analytics.explain.rows.json_rows` with each patient's first row), without a
    :class:`Trajectory` per patient: ``hepatrack predict --all`` spent most of its time
    splitting frames by patient and reading them back column by column.

    Raises
    ------
    ModelError
        As :func:`patient_trajectories`.
    """
    h, together = _scored_together(registered, visits, patients, horizon, at)
    if together is None:
        return [t.to_json(top) for t in patient_trajectories(registered, visits, patients,
                                                             h, at)]
    cohort, starts, sizes = _cohort(registered, *together, h, with_basis=False)
    rows = json_rows(cohort, top, np.repeat(starts, sizes))
    ends = (starts + sizes).tolist()
    return [_patient_json(cohort, p, rows[a:b])
            for p, a, b in zip(patients, starts.tolist(), ends, strict=True)]


def _score_together(model: Any, visits: pd.DataFrame, patients: list[str], h: float,
                    at: float | None
                    ) -> tuple[list[pd.DataFrame], list[_Landmarks], Scores] | None:
    """Each patient's visits and landmarks, and the scores of all their rows (patients'
    blocks in turn); None for a model whose explainer samples (scored patient by
    patient)."""
    if type(model.estimators_["interest"]).explain is SurvivalEstimator.explain:
        return None
    wanted = visits[visits["patient"].isin(set(patients))].sort_values("time", kind="stable")
    by_patient = dict(tuple(wanted.groupby("patient", sort=False)))
    missing = next((p for p in patients if p not in by_patient), None)
    if missing is not None:
        raise ModelError(f"patient {missing!r}: no visits in the cohort")
    landmarks = [_visit_landmarks(by_patient[p], at) for p in patients]
    sizes = np.array([len(lm.times) for lm in landmarks])
    rows = pd.DataFrame({"patient": np.repeat(np.asarray(patients, dtype=object), sizes),
                         "landmark": np.fromiter(
                             (t for lm in landmarks for t in lm.times), float, sizes.sum())})
    sc = score(model, wanted, rows, h, explain=True)
    return [by_patient[p] for p in patients], landmarks, sc


def _check_at(at: float | None) -> None:
    if at is not None and (not np.isfinite(at) or at < 0):
        raise ModelError(f"--at {at}: expected years since baseline (>= 0)")


def _part(frame: pd.DataFrame, a: int, b: int) -> pd.DataFrame:
    """Rows ``a:b`` of ``frame``, indexed from 0 as when they are scored alone."""
    return frame.iloc[a:b].reset_index(drop=True)


def _rows_of(expl: Explanation, a: int, b: int, data: pd.DataFrame) -> Explanation:
    return Explanation(expl.values[a:b], expl.base_values[a:b], expl.output[a:b], data,
                       expl.scale, expl.horizon)


def _points(visits_of: list[pd.DataFrame], landmarks: list[_Landmarks],
            sc: Scores) -> pd.DataFrame:
    """:data:`POINT_COLUMNS` of every scored row (patients' blocks in turn)."""
    expl, ok = sc.explanation, sc.assessable
    dates: list[str | None] = []
    uids: list[str | None] = []
    for pv, lm in zip(visits_of, landmarks, strict=True):
        scans = _scan_uids(pv)
        dates += _dates_at(pv, lm.times)
        uids += [scans.get(round(t, 9)) for t in lm.times]
    ci = sc.ci if sc.ci is not None else np.full((len(ok), 2), np.nan)
    points = pd.DataFrame({
        "time": np.array([t for lm in landmarks for t in lm.times], dtype=float),
        "date": dates, "risk": np.where(ok, sc.risk, np.nan),
        "ci_low": np.where(ok, ci[:, 0], np.nan), "ci_high": np.where(ok, ci[:, 1], np.nan),
        "assessable": ok, "reason": list(sc.reasons), "is_scan": [u is not None for u in uids],
        "series_uid": uids, "base_value": np.where(ok, expl.base_values, np.nan),
        "model_output": np.where(ok, expl.output, np.nan),
        "requested": np.array([r for lm in landmarks for r in lm.requested], dtype=bool),
        "plain_reason": list(sc.plain)}, columns=list(POINT_COLUMNS))
    points["date"] = points["date"].astype(object)
    return points


def _cohort(registered: RegisteredModel, visits_of: list[pd.DataFrame],
            landmarks: list[_Landmarks], sc: Scores, h: float, with_basis: bool = True
            ) -> tuple[Trajectory, np.ndarray, np.ndarray]:
    """All patients' landmark rows as one trajectory (``patient`` empty; reference
    visits are row numbers of the whole), with each patient's first row and row count.

    ``sc`` holds the rows of ``landmarks`` of each patient in turn. The grouped
    contributions, their points, every visit's reference visit (found within its own
    patient's rows) and, ``with_basis``, the model calls behind the changes in points
    are computed for all rows at once; every computation is row by row.
    """
    model = registered.model
    expl = sc.explanation
    sizes = np.array([len(lm.times) for lm in landmarks], dtype=np.intp)
    starts = np.cumsum(sizes) - sizes
    points = _points(visits_of, landmarks, sc)
    grouped = group_explanation(expl, model.feature_groups_, sc.history)
    risk = points["risk"].to_numpy(float)
    in_points = points_explanation(model, grouped, sc.matrix, risk, h)
    basis = None
    if with_basis:
        refs = reference_visits(points, np.repeat(starts, sizes))
        basis = change_basis(model, sc.matrix, expl, h, risk, refs)
    cohort = Trajectory(
        patient="", model_id=registered.model_id, event=model.events_.label, horizon=h,
        points=points, explanation=expl, grouped=grouped, in_points=in_points,
        change_basis=basis, categorical=frozenset(model.spec_.categorical),
        competing=tuple(c for c in model.estimators_ if c != INTEREST),
        has_interval=sc.ci is not None, matrix=sc.matrix,
        scan_change=scan_changes(sc.history, model.spec_))
    return cohort, starts, sizes


def _trajectories(registered: RegisteredModel, patients: list[str],
                  visits_of: list[pd.DataFrame], landmarks: list[_Landmarks], sc: Scores,
                  h: float) -> list[Trajectory]:
    """Each patient's trajectory from the scores of all patients' landmark rows
    (:func:`_cohort`, split by patient): a patient's trajectory is the one it gets when
    scored alone."""
    cohort, starts, sizes = _cohort(registered, visits_of, landmarks, sc, h)
    basis, expl, grouped = cohort.change_basis, cohort.explanation, cohort.grouped
    out = []
    for p, a, b in zip(patients, starts.tolist(), (starts + sizes).tolist(), strict=True):
        gdata = _part(grouped.data, a, b)
        ref = basis.reference[a:b]
        out.append(replace(
            cohort, patient=p, points=_part(cohort.points, a, b),
            explanation=_rows_of(expl, a, b, _part(expl.data, a, b)),
            grouped=_rows_of(grouped, a, b, gdata),
            in_points=_rows_of(cohort.in_points, a, b, gdata),
            change_basis=ChangeBasis(np.where(ref >= 0, ref - a, -1), basis.cross_risk[a:b],
                                     basis.slope[a:b]),
            matrix=_part(cohort.matrix, a, b), scan_change=_part(cohort.scan_change, a, b)))
    return out


def incidence_curves(registered: RegisteredModel, trajectory: Trajectory, i: int,
                     times: np.ndarray | list[float] | None = None) -> IncidenceCurves:
    """Cumulative incidence of the endpoint and each competing cause after visit ``i``.

    ``CIF_c(t) = sum_i S(t_{i-1}) (1 - exp(-dA_i)) dA_ci / dA_i`` over the grid steps up
    to ``t`` (``dA_i`` summed over causes, ``S = exp(-A)``): the model's own combination
    (:func:`analytics.models.predict.cumulative_incidence`), so ``CIF_interest`` equals
    the model's risk and the causes plus event-free survival sum to one.

    Parameters
    ----------
    registered
        The model the trajectory was scored with.
    trajectory
        :func:`patient_trajectory` output.
    i
        Row of ``trajectory.points``: the visit the curves start from.
    times
        Years after the visit; default 40 steps up to the longest horizon.
    """
    fitted = registered.model
    if trajectory.matrix is None:
        raise ModelError(f"patient {trajectory.patient!r}: the trajectory holds no model "
                         "rows to compute incidence curves from")
    hs = (np.linspace(0.0, max(registered.horizons), 41)[1:] if times is None
          else np.asarray(times, dtype=float))
    labels = {INTEREST: registered.events.label,
              **{c: ", ".join(v) for c, v in registered.events.competing.items()}}
    x = trajectory.matrix.iloc[[i]]
    parts = [pd.DataFrame({"time": hs, "cause": cause, "label": labels.get(cause, cause),
                           "cif": cif[0]})
             for cause, cif in fitted.incidence_by_cause(x, hs).items()]
    return IncidenceCurves(float(trajectory.points["time"].iloc[i]),
                           pd.concat(parts, ignore_index=True))
