"""The ``hepatrack predict`` JSON rows of a trajectory, built column by column.

:func:`json_rows` gives every visit's row of :meth:`Trajectory.to_json
<analytics.explain.trajectory.Trajectory.to_json>`: the columns of the points, the SHAP
values, the grouped contributions and their points are read once, the order of the
contributions, each visit's previous visit and the change of every model-matrix
column since it are computed for all rows at once, and the rows are then assembled
from plain Python lists (a cohort has tens of thousands of visits; indexing a frame per
visit took most of ``predict --all``). The sentences are those of
:func:`analytics.explain.contributions.contribution_at`, the same as the dashboard's.

:func:`previous_rows` is the within-patient shift both this module and the cohort-wide
scoring use: rows are grouped by patient (blocks) and ordered by time inside each.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from analytics.explain.contributions import NO_PREVIOUS, NOT_IMAGING, contribution_at
from analytics.explain.wording import PREVIOUS_IMPORTED, PREVIOUS_SCAN
from analytics.models.registry import jsonable

__all__ = ["descending_order", "json_rows", "previous_rows"]


def previous_rows(mask: np.ndarray, block_start: np.ndarray) -> np.ndarray:
    """Per row, the latest earlier row of the same block where ``mask`` holds; -1 if none.

    Parameters
    ----------
    mask
        ``(n,)`` rows that may be referred to.
    block_start
        ``(n,)`` first row of each row's block (a patient's visits, by time).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` row numbers; a row never refers to another patient's rows.
    """
    n = len(mask)
    marked = np.where(np.asarray(mask, bool), np.arange(n), -1)
    latest = np.maximum.accumulate(marked) if n else marked
    before = np.concatenate([[-1], latest[:-1]]) if n else latest
    return np.where(before >= block_start, before, -1)


def descending_order(a: np.ndarray) -> np.ndarray:
    """Per row of ``a`` (no NaN), its columns largest first, ties broken as pandas'
    ``Series.sort_values(ascending=False)`` breaks them (a reversed quicksort)."""
    p = a.shape[1]
    return (p - 1 - np.argsort(a[:, ::-1], axis=1, kind="quicksort"))[:, ::-1]


def _strict(values: list) -> list:
    """Floats as they are, NaN and infinities as None (strict JSON)."""
    return [v if v is None or math.isfinite(v) else None for v in values]


def _finite(v: float) -> float | None:
    """A float as it is, NaN and infinities as None (strict JSON)."""
    return v if math.isfinite(v) else None


def _column(values: Any) -> Any:
    """A column's values, floats as Python floats (read one at a time per visit)."""
    a = values.to_numpy()
    return a.tolist() if a.dtype == np.float64 else a


def _float_rows(a: np.ndarray) -> list[list[float | None]]:
    """Rows of a float matrix as lists, NaN and infinities as None."""
    rows = np.asarray(a, np.float64).tolist()
    if np.isfinite(a).all():
        return rows
    return [_strict(r) for r in rows]


def _changes(values: np.ndarray, previous: np.ndarray, rows: np.ndarray,
             top: int) -> tuple[np.ndarray, np.ndarray]:
    """Each of ``rows``' change of every column since its previous row, and the column
    order of its ``top`` largest magnitudes (as
    :func:`analytics.explain.importance.change_since_previous` orders them)."""
    d = values[rows] - values[previous[rows]]
    mag = np.abs(d)
    finite = np.isfinite(mag).all(axis=1)
    order = np.empty((len(rows), min(top, d.shape[1])), dtype=np.intp)
    if finite.any():
        order[finite] = descending_order(mag[finite])[:, :top]
    for k in np.flatnonzero(~finite):  # NaN last, as pandas puts it
        nan = np.isnan(mag[k])
        ok = np.flatnonzero(~nan)
        first = ok[descending_order(mag[k, ok][None, :])[0]] if len(ok) else ok
        order[k] = np.concatenate([first, np.flatnonzero(nan)])[:top]
    return d, order


def _unscored(reason: str | None) -> dict[str, Any]:
    """The rest of the row of a visit the model could not score."""
    return {"risk": None, "ci": None, "shap": {}, "base_value": None, "model_output": None,
            "reason": reason, "contributions": [], "change": None, "base_risk": None,
            "points": {}}


def _change_json(since: float, output_change: float, names: list[str], d: np.ndarray,
                 order: np.ndarray) -> dict[str, Any]:
    """A visit's ``change``: since when, the model output's change and the ``order``ed
    columns' changes ``d``."""
    return {"since_time": since, "model_output_change": _finite(output_change),
            "by_feature": {names[c]: _finite(float(d[c])) for c in order}}


def _imaging_since(is_scan: np.ndarray, block_start: np.ndarray | None) -> list[str]:
    """Each row's :meth:`Trajectory.imaging_since
    <analytics.explain.trajectory.Trajectory.imaging_since>`: the previous scan once its
    patient has a stored scan at or before the row, else the previous imported
    measurement."""
    n = len(is_scan)
    start = np.zeros(n, dtype=np.intp) if block_start is None else np.asarray(block_start)
    seen = np.concatenate([[0], np.cumsum(is_scan, dtype=np.int64)])
    scanned = seen[np.arange(n) + 1] - seen[start] > 0
    return [PREVIOUS_SCAN if s else PREVIOUS_IMPORTED for s in scanned.tolist()]


def json_rows(traj: Any, top: int, block_start: np.ndarray | None = None
              ) -> list[dict[str, Any]]:
    """Every visit's row of the ``predict`` JSON of ``traj`` (strict JSON values).

    ``traj`` is a :class:`~analytics.explain.trajectory.Trajectory` (not imported here:
    that module imports this one), of one patient or of several patients' rows in turn,
    ``block_start`` then giving each row's patient's first row: a visit's previous visit
    is always its own patient's.

    Keys in order: ``time, date, horizon, model_id, requested, shap_scale, risk, ci,
    shap, base_value, model_output, reason, contributions, change, base_risk, points``
    (:meth:`Trajectory.to_json <analytics.explain.trajectory.Trajectory.to_json>`).
    """
    pts = traj.points
    n = len(pts)
    times = pts["time"].to_numpy(np.float64)
    ok = pts["assessable"].to_numpy(bool)
    requested = pts["requested"].to_numpy(bool)
    dates, reasons = pts["date"].tolist(), pts["reason"].tolist()
    risk = _strict(pts["risk"].to_numpy(np.float64).tolist())
    ci = list(zip(_strict(pts["ci_low"].to_numpy(np.float64).tolist()),
                  _strict(pts["ci_high"].to_numpy(np.float64).tolist()), strict=True))
    expl, grouped, in_points = traj.explanation, traj.grouped, traj.in_points
    names = expl.feature_names
    shap = _float_rows(expl.values)
    base = _strict(np.asarray(expl.base_values, np.float64).tolist())
    output = _strict(np.asarray(expl.output, np.float64).tolist())
    previous = previous_rows(ok & ~requested, np.zeros(n, dtype=np.intp)
                             if block_start is None else block_start)
    has_prev = np.flatnonzero(ok & (previous >= 0))
    change, change_order = _changes(np.asarray(expl.values, np.float64), previous, has_prev,
                                    top)
    change_of = {int(i): k for k, i in enumerate(has_prev)}
    out_change = np.asarray(expl.output, np.float64)
    groups = grouped.feature_names
    gvalues = np.asarray(grouped.values, np.float64)
    gshap = gvalues.tolist()
    order = np.argsort(-np.abs(gvalues), axis=1, kind="stable")[:, :top].tolist()
    finite_rows = np.isfinite(gvalues).all(axis=1).tolist()
    data = [_column(grouped.data[g]) for g in groups]
    scan = traj.scan_change
    since = _imaging_since(pts["is_scan"].to_numpy(bool), block_start)
    scans = [_column(scan[g]) if scan is not None and g in scan.columns else None
             for g in groups]
    if in_points is not None:
        gpoints = np.asarray(in_points.values, np.float64).tolist()
        points = _float_rows(in_points.values)
        base_risk = _strict((np.asarray(in_points.base_values, np.float64) / 100.0).tolist())
    horizon, model_id, scale = jsonable([traj.horizon, traj.model_id, traj.scale])
    rows = []
    for i in range(n):
        row: dict[str, Any] = {"time": float(times[i]), "date": dates[i],
                               "horizon": horizon, "model_id": model_id,
                               "requested": bool(requested[i]), "shap_scale": scale}
        if not ok[i]:
            row.update(_unscored(reasons[i]))
            rows.append(row)
            continue
        j = int(previous[i])
        pts_i = gpoints[i] if in_points is not None else None
        keys = (order[i] if finite_rows[i]  # NaN: Python's own ordering
                else sorted(range(len(groups)), key=lambda k, r=gshap[i]: -abs(r[k]))[:top])
        texts = [contribution_at(groups[k], gshap[i][k], data[k][i],
                                 data[k][j] if j >= 0 else NO_PREVIOUS,
                                 scans[k][i] if scans[k] is not None else NOT_IMAGING,
                                 traj.categorical, pts_i[k] if pts_i is not None else None,
                                 grouped.scale, since[i]).text
                 for k in keys]
        row.update(risk=risk[i], ci=list(ci[i]) if traj.has_interval else None,
                   shap=dict(zip(names, shap[i], strict=True)), base_value=base[i],
                   model_output=output[i], reason=None, contributions=texts, change=None)
        if j >= 0:
            k = change_of[i]
            row["change"] = _change_json(float(times[j]), float(out_change[i] - out_change[j]),
                                         names, change[k], change_order[k])
        row["base_risk"] = base_risk[i] if in_points is not None else None
        row["points"] = dict(zip(groups, points[i], strict=True)) if in_points is not None \
            else {}
        rows.append(row)
    return rows
