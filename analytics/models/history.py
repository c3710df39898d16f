"""History features of each patient at a landmark time ``s``, from the visits up to ``s``.

History features of a feature ``f`` at ``s`` use only visits with ``time <= s``:

- ``f``: last observed value (LOCF);
- ``f_slope``: ordinary least-squares slope per year over every measurement so far;
  0 with fewer than two measurements (no change observed yet; ``n_visits`` tells the
  model how much history there is);
- ``f_worst``: the worst value so far: the minimum when low is worse (the
  direction of :mod:`analytics.vocabulary`), the maximum otherwise;
- ``age_years`` is carried forward as age at ``s`` (last recorded age + elapsed time);
  ``age_years`` and categorical columns get no slope or worst value.

Imaging biomarkers (``FeatureSpec.imaging``: scans come every year or two, and only for
part of a cohort) get a scan history instead of the slope and worst value:

- ``f``: the value of the last scan so far (LOCF);
- ``f_measured``: 1 once a scan has measured ``f``, else 0;
- ``f_years_since_scan``: years from that scan to ``s``;
- ``f_scan_change``: last value minus the previous scan's value (0 with one scan).

Which of the last three enter the model is a setting, because each costs a coefficient
learnt only from the scanned patients' events (``LandmarkSettings.imaging_stats``,
``scan_change``): by default every biomarker gets its last value and ``f_measured``, and
only the spleen volume (``DEFAULT_SCAN_CHANGE`` of :mod:`analytics.models.history_spec`,
the biomarker whose change between scans tracks portal hypertension) gets
``f_scan_change``. Models stored before the setting existed keep all three for every
biomarker. ``f_scan_change`` of every imaging biomarker is still returned beside the
model columns, for the explanations' "change since the previous scan".

Before ``f`` is measured, all of them are missing (``f_measured`` is 0), and the design
(:class:`analytics.models.design.Design`, ``neutral`` columns) turns every one of them
into exactly 0: an unscanned patient's imaging terms add nothing to the linear predictor,
whatever the scanned patients measured. A withheld value (NaN in the store, with its
reason) is a missing value like any other, never a zero. Values measured on an
automatic segmentation are read only when ``FeatureSpec.automatic_segmentation`` allows
it (the visits' ``automatic_segmentation`` column names them).

Global history features: ``landmark_years`` (= time since baseline), its square,
``n_visits`` (visits so far) and ``years_since_last_visit``. What is still missing is
imputed later by :class:`analytics.models.estimators.Design` (training medians plus
missing indicators, stored with the model).

Which features and statistics are built is the model's
:class:`~analytics.models.history_spec.FeatureSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analytics.models.history_spec import STATIC_FEATURES, FeatureSpec, model_visits
from analytics.vocabulary import LANDMARK, LANDMARK_SQ

__all__ = ["RECENT_WINDOW", "history_features"]

#: window of the recent mean (years)
RECENT_WINDOW = 1.0
_KEY_SCALE = 1.0e4  # patient code * scale + time: years stay far below the scale


@dataclass(frozen=True)
class _HistoryIndex:
    """Finds, for each requested ``(patient, landmark)``, the last visit at or before it.

    Visits are keyed ``patient code * _KEY_SCALE + time`` in one sorted array, so one
    ``searchsorted`` answers every request at once.
    """

    vcode: np.ndarray
    acode: np.ndarray
    vt: np.ndarray
    q: np.ndarray

    @classmethod
    def build(cls, v: pd.DataFrame, at: pd.DataFrame) -> _HistoryIndex:
        codes, _uniques = pd.factorize(pd.concat([v["patient"], at["patient"]],
                                                 ignore_index=True))
        vcode = codes[: len(v)].astype(np.float64)
        acode = codes[len(v):].astype(np.float64)
        s = at["landmark"].to_numpy(np.float64)
        return cls(vcode, acode, v["time"].to_numpy(np.float64), acode * _KEY_SCALE + s + 1e-9)

    def locate(self, mask: np.ndarray, qq: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Index (into the ``mask``-selected visits) of the last one at or before each
        request (``qq``: other query keys), and whether it is the patient's own."""
        qq = self.q if qq is None else qq
        keys = self.vcode[mask] * _KEY_SCALE + self.vt[mask]
        idx = np.searchsorted(keys, qq, side="right") - 1
        ok = idx >= 0
        ok[ok] = self.vcode[mask][idx[ok]] == self.acode[ok]
        return idx, ok


def history_features(visits: pd.DataFrame, at: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """History features of each ``(patient, landmark)`` from visits up to the landmark.

    Parameters
    ----------
    visits
        Cohort visits (``patient``, ``time`` in years, feature columns).
    at
        Rows ``patient``, ``landmark`` (years since baseline). Order is kept.
    spec
        Which columns to build; values measured on an automatic segmentation are read
        only if ``spec.automatic_segmentation`` (:func:`model_visits`), and a feature
        column absent from ``visits`` counts as never measured.

    Returns
    -------
    pandas.DataFrame
        One row per row of ``at`` (same index): ``patient``, ``landmark`` and
        :attr:`FeatureSpec.columns`, then ``<f>_scan_change`` of every imaging biomarker
        not already among them, plus ``last_visit_time``, ``modality`` and
        ``contrast_phase`` of the last imaging visit so far (None if none).
        Only visits with ``time <= landmark`` are read.
    """
    v = model_visits(visits, spec.automatic_segmentation)
    absent = [f for f in (*spec.numeric, *spec.categorical) if f not in v.columns]
    if absent:  # a feature the patient's visits never mention is a feature never measured
        v = v.assign(**dict.fromkeys(absent, np.nan))
    v = v.sort_values(["patient", "time"], kind="stable")
    index = _HistoryIndex.build(v, at)
    s = at["landmark"].to_numpy(np.float64)
    out, last_t = _global_history(v, index, s)
    for f in spec.numeric:
        out.update(_numeric_history(v, f, index, s, spec))
    for f in spec.categorical:
        col = v[f]
        mask = col.notna().to_numpy()
        idx, ok = index.locate(mask)
        vals = col[mask].astype(str).to_numpy()
        last = np.full(len(at), None, dtype=object)
        last[ok] = vals[idx[ok]]
        out[f] = last
    modality, phase = _imaging_source(v, index, len(at))
    res = pd.DataFrame(out, index=at.index)
    # every biomarker's change since the previous scan, in the model or not (explanations)
    shown = [f"{f}_scan_change" for f in spec.numeric if spec.has_scan_history(f)]
    res = res[[*spec.columns, *(c for c in shown if c not in spec.columns)]]
    res.insert(0, "landmark", s)
    res.insert(0, "patient", at["patient"].to_numpy())
    res["last_visit_time"] = last_t
    res["modality"] = modality
    res["contrast_phase"] = phase
    return res


def _global_history(v: pd.DataFrame, index: _HistoryIndex, s: np.ndarray
                    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The global history columns and the time of the last visit so far."""
    all_idx, has_visit = index.locate(np.ones(len(v), bool))
    n_so_far = np.zeros(len(s))
    if len(v):
        first_pos = v.groupby("patient", sort=False).cumcount().to_numpy()
        n_so_far[has_visit] = first_pos[all_idx[has_visit]] + 1
    last_t = np.full(len(s), np.nan)
    last_t[has_visit] = index.vt[all_idx[has_visit]]
    out = {LANDMARK: s, LANDMARK_SQ: s**2, "n_visits": n_so_far,
           "years_since_last_visit": s - last_t}
    return out, last_t


def _numeric_history(v: pd.DataFrame, f: str, index: _HistoryIndex, s: np.ndarray,
                     spec: FeatureSpec) -> dict[str, np.ndarray]:
    """Last value, history statistics and interaction of one numeric feature."""
    vals = pd.to_numeric(v[f], errors="coerce").to_numpy(np.float64)
    mask = ~np.isnan(vals)
    idx, ok = index.locate(mask)
    fv, ft, fc = vals[mask], index.vt[mask], pd.Series(index.vcode)[mask]
    last = np.full(len(s), np.nan)
    last[ok] = fv[idx[ok]]
    if f == "age_years":
        last[ok] += s[ok] - ft[idx[ok]]  # age at the landmark, not at the last record
    out = {f: last}
    if spec.has_scan_history(f):
        out.update(_scan_history(f, fv, ft, fc.to_numpy(), idx, ok, s, last))
        return out
    if f not in STATIC_FEATURES:
        stats = _history_stats(f, fv, ft, fc.to_numpy(), idx, ok, index, mask, last, spec)
        for st in spec.stats:
            out[f"{f}_{st}"] = stats[st]
    if spec.interactions:
        out[f"{f}_x_landmark"] = last * s
    return out


def _history_stats(f: str, fv: np.ndarray, ft: np.ndarray, grp: np.ndarray, idx: np.ndarray,
                   ok: np.ndarray, index: _HistoryIndex, mask: np.ndarray, last: np.ndarray,
                   spec: FeatureSpec) -> dict[str, np.ndarray]:
    """Slope, worst value, recent mean and change since the first value (module docstring)."""
    n_at = len(ok)
    low = spec.low_is_worse.get(f, False)
    if len(grp) and grp[0] == grp[-1]:  # one patient (sorted by patient): no grouping
        cs = _kahan_cumsum(np.column_stack([ft, fv, ft * ft, ft * fv, np.ones(len(fv))]))
        worst_all = (np.minimum if low else np.maximum).accumulate(fv)
        first_of = np.full(len(fv), fv[0])
    else:
        df = pd.DataFrame({"g": grp, "t": ft, "v": fv, "tt": ft * ft, "tv": ft * fv,
                           "one": 1.0})
        by = df.groupby("g", sort=False)
        cs = by[["t", "v", "tt", "tv", "one"]].cumsum().to_numpy()
        worst_all = (by["v"].cummin() if low else by["v"].cummax()).to_numpy()
        first_of = (by["v"].transform("first").to_numpy() if "change" in spec.stats
                    else None)
    slope = np.zeros(n_at)
    worst = np.full(n_at, np.nan)
    if ok.any():
        st, sv, stt, stv, n = cs[idx[ok]].T
        den = n * stt - st * st
        with np.errstate(invalid="ignore", divide="ignore"):
            b = np.where((n >= 2) & (den > 1e-12 * np.maximum(n * n, 1)),
                         (n * stv - st * sv) / den, 0.0)
        slope[ok] = b
        worst[ok] = worst_all[idx[ok]]
    stats = {"slope": slope, "worst": worst}
    if "mean_1y" in spec.stats:
        # values in (s - window, s]: cumulative sums at s minus those at s - window
        idx0, ok0 = index.locate(mask, index.q - RECENT_WINDOW)
        mean = np.full(n_at, np.nan)
        if ok.any():
            sv1, n1 = cs[idx[ok], 1], cs[idx[ok], 4]
            sub = ok0[ok]
            sv0 = np.where(sub, cs[np.where(sub, idx0[ok], 0), 1], 0.0)
            n0 = np.where(sub, cs[np.where(sub, idx0[ok], 0), 4], 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean[ok] = np.where(n1 > n0, (sv1 - sv0) / (n1 - n0), last[ok])
        stats["mean_1y"] = mean
    if "change" in spec.stats:
        change = np.zeros(n_at)
        change[ok] = fv[idx[ok]] - first_of[idx[ok]]
        stats["change"] = change
    return stats


def _kahan_cumsum(a: np.ndarray) -> np.ndarray:
    """Running sums down the columns of ``a``, compensated as pandas' grouped ``cumsum``
    adds (Kahan), so one patient's sums equal those of the grouped cohort-wide pass."""
    out = np.empty_like(a)
    acc = np.zeros(a.shape[1])
    comp = np.zeros(a.shape[1])
    for i in range(len(a)):
        y = a[i] - comp
        t = acc + y
        comp = (t - acc) - y
        acc = t
        out[i] = t
    return out


def _scan_history(f: str, fv: np.ndarray, ft: np.ndarray, grp: np.ndarray, idx: np.ndarray,
                  ok: np.ndarray, s: np.ndarray, last: np.ndarray) -> dict[str, np.ndarray]:
    """Measured indicator, years since the last scan and change since the previous scan
    of an imaging biomarker (module docstring); NaN before its first scan."""
    since = np.full(len(s), np.nan)
    change = np.full(len(s), np.nan)
    if ok.any():
        i = idx[ok]
        since[ok] = s[ok] - ft[i]
        prev = np.maximum(i - 1, 0)
        has_prev = (i > 0) & (grp[prev] == grp[i])
        change[ok] = np.where(has_prev, last[ok] - fv[prev], 0.0)
    return {f"{f}_measured": ok.astype(np.float64), f"{f}_years_since_scan": since,
            f"{f}_scan_change": change}


def _imaging_source(v: pd.DataFrame, index: _HistoryIndex, n: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The modality / contrast phase that produced the imaging values carried forward."""
    modality = np.full(n, None, dtype=object)
    phase = np.full(n, None, dtype=object)
    if "modality" in v.columns:
        img = v["modality"].notna().to_numpy()
        if img.any():
            idx, ok = index.locate(img)
            modality[ok] = v["modality"].to_numpy()[img][idx[ok]]
            if "contrast_phase" in v.columns:
                phase[ok] = v["contrast_phase"].to_numpy()[img][idx[ok]]
    return modality, phase
