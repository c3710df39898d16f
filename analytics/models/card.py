"""Model cards (TRIPOD+AI reporting items) for trained landmark models.

A card is a JSON-able dict stored with the model artifact and in the ``models`` table.
:func:`check_card` is what the registry runs before a model may load.
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

from analytics.errors import ModelIntegrityError
from analytics.models.estimators import AUTO_PENALTY
from analytics.vocabulary import describe_column

#: sections every card must have (TRIPOD+AI items they answer in the comments)
REQUIRED_SECTIONS = (
    "model_id",          # 1 title / identification
    "intended_use",      # 3a-c background, objectives, intended users
    "data",              # 5-6 source of data, participants
    "outcome",           # 8 outcome definition, 9 competing risks
    "predictors",        # 7 predictors, 10 missing data
    "model",             # 12 analysis methods
    "validation",        # 12e, 16 performance, 18 calibration
    "limitations",       # 20-21
    "horizons",
)

ESTIMATOR_TEXT = {
    "cox": "Cox proportional hazards with a ridge penalty (Efron ties; lifelines "
           "CoxPHFitter's penalised model, fitted by a vectorised Newton-Raphson; "
           f"patient-clustered robust variance); by default the penalty is {AUTO_PENALTY:g} / "
           "the number of patients with an event, so its strength per event does not change "
           "with the cohort's size (the value used per cause is under params)",
    "gbm": "gradient-boosted Cox model (xgboost survival:cox, depth-limited trees, rounds "
           "chosen by early stopping on a patient-grouped inner split), Breslow baseline "
           "hazard on its margin",
    "rsf": "random survival forest (xgboost random-forest mode on the Cox partial "
           "likelihood: one round of parallel trees on row and column samples, leaves "
           "holding one-step log hazard ratios, averaged), Breslow baseline hazard on "
           "its log hazard",
}

#: what every card says the model cannot do (TRIPOD+AI items 20-21)
LIMITATIONS = (
    "internal validation only; performance on other sites, scanners and populations "
    "is unknown until externally validated",
    "risk intervals ignore baseline-hazard uncertainty (Cox) or come from a small "
    "bootstrap ensemble (GBM); RSF gives none",
    "history features assume visits are missing at random given the history",
    "landmark times beyond the trained range are out of domain",
)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("hepatrack", "lifelines", "scikit-survival", "xgboost-cpu", "shap",
                "scikit-learn", "numpy", "pandas"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def build_card(*, model_id: str, kind: str, params: dict[str, Any], events: dict[str, Any],
               horizons: list[float], landmarks: list[float], features: list[str],
               design: dict[str, Any], n_patients: int, n_rows: int, n_events: int,
               event_counts: dict[str, int], training_data_sha256: str,
               cv: dict[str, Any], baselines: dict[str, Any],
               oracle_c_index: float | None, created: str,
               explainer: str, excluded: dict[str, str] | None = None,
               support: dict[str, dict[str, int]] | None = None,
               groups: dict[str, str] | None = None,
               automatic_segmentation: bool = True) -> dict[str, Any]:
    """Assemble the card from what training knows. All arguments are keyword-only.

    ``support``: per clinical feature considered, the patients it was measured in and
    the endpoint events among them (:attr:`FeatureSpec.support`); ``groups``: model
    column -> clinical feature, so each column names what it was learnt from.
    """
    interest = ", ".join(events["of_interest"])
    return {
        "model_id": model_id,
        "created": created,
        "title": f"Landmark {kind} model for {interest} within {', '.join(f'{h:g}' for h in horizons)} years",
        "intended_use": _intended_use(interest),
        "data": {
            "source": "the HepaTrack store (imported visits/outcomes and imaging biomarkers)",
            "training_data_sha256": training_data_sha256,
            "n_patients": n_patients,
            "n_landmark_rows": n_rows,
            "n_endpoint_events_in_window": n_events,
            "event_counts": event_counts,
            "landmarks_years": landmarks,
        },
        "outcome": _outcome(events, interest, horizons),
        "horizons": [float(h) for h in horizons],
        "predictors": _predictors(features, design, excluded, support, groups,
                                  automatic_segmentation),
        "model": {"kind": kind, "estimator": ESTIMATOR_TEXT.get(kind, kind),
                  "params": params,
                  "structure": "landmark supermodel (van Houwelingen 2007): stacked landmark "
                               "rows, landmark time as covariates, one model for every s",
                  "explanations": explainer},
        "validation": _validation(cv, baselines, oracle_c_index),
        "limitations": list(LIMITATIONS),
        "software": _versions(),
    }


def _intended_use(interest: str) -> dict[str, str]:
    """Purpose, users and what the model is not for (TRIPOD+AI 3a-c)."""
    return {
        "purpose": "Decision support for hepatologists and MDT meetings: the risk of "
                   f"{interest} within each horizon, updated at every visit from the "
                   "history so far. It does not diagnose and does not replace clinical "
                   "judgement.",
        "users": "clinicians and researchers reviewing adult patients with chronic liver "
                 "disease in follow-up",
        "not_for": "patients or visits outside the training domain (the model then "
                   "returns no number and the reason), other endpoints, or populations "
                   "unlike the training cohort without external validation",
    }


def _outcome(events: dict[str, Any], interest: str, horizons: list[float]) -> dict[str, Any]:
    """The endpoint, its competing risks and censoring (TRIPOD+AI 8-9)."""
    competing = events.get("competing", {})
    comp_text = (
        "Competing events (" + "; ".join(f"{k}: {', '.join(v)}" for k, v in competing.items())
        + ") are modelled with their own cause-specific hazard model of the same kind, "
        "and the endpoint risk is the Aalen-Johansen cumulative incidence combining all "
        "cause-specific hazards; they are not treated as censoring. Discrimination and "
        "Brier metrics (scikit-survival) treat competing events as censored; calibration "
        "and net benefit use the Aalen-Johansen cumulative incidence."
        if competing else "No competing events were observed; risk is 1 - exp(-H(t)).")
    return {
        "endpoint": list(events["of_interest"]),
        "definition": f"first {interest} in (s, s + H] for a patient event-free at "
                      "landmark time s",
        "competing_risks": comp_text,
        "censoring": f"administrative at s + {max(horizons):g} years; loss to follow-up "
                     "assumed independent of the outcome",
        "default_rule": "without --event, the endpoint is every observed event except "
                        "transplant (which is a competing risk)",
    }


def _predictors(features: list[str], design: dict[str, Any],
                excluded: dict[str, str] | None,
                support: dict[str, dict[str, int]] | None = None,
                groups: dict[str, str] | None = None,
                automatic_segmentation: bool = True) -> dict[str, Any]:
    """Predictors with label and unit, what each was learnt from, history features and
    missing data (TRIPOD+AI 7, 10)."""
    support, groups = support or {}, groups or {}
    out = {
        "features": [_feature_entry(f, support.get(groups.get(f, f))) for f in features],
        "history": "at landmark s: last value, OLS slope per year (0 with fewer than two "
                   "measurements), worst value so far, age at s, number of visits, "
                   "years since the last visit, landmark time and its square; imaging "
                   "biomarkers instead: value at the last scan, measured yet (1/0), "
                   "years since that scan and change since the previous scan; only "
                   "visits at or before s",
        "left_out": {f: f"{describe_column(f)[0]}: {why}"
                     for f, why in (excluded or {}).items()},
        "missing_data": "training medians plus missing indicators (stored with the "
                        "model); features never missing in training are required. An "
                        "imaging biomarker not yet measured enters as exactly 0 in each "
                        "of its columns (measured values enter as the distance from the "
                        "training median), so it adds nothing for patients without scans; "
                        "a withheld value is missing, never 0",
        "imputation_medians": design.get("medians", {}),
        "automatic_segmentation": "values measured on an automatic segmentation were "
                                  + ("used" if automatic_segmentation else
                                     "left out (site setting model_automatic_segmentation)"),
    }
    if support:
        out["support"] = {f: {**n, "entered": f not in (excluded or {})}
                          for f, n in support.items()}
    return out


def _feature_entry(f: str, support: dict[str, int] | None) -> dict[str, Any]:
    label, unit = describe_column(f)
    entry: dict[str, Any] = {"name": f, "label": label, "unit": unit}
    if support is not None:
        entry.update(patients=support["patients"], events=support["events"])
    return entry


def _validation(cv: dict[str, Any], baselines: dict[str, Any],
                oracle_c_index: float | None) -> dict[str, Any]:
    """Cross-validated performance, calibration and clinical baselines (TRIPOD+AI 16, 18)."""
    cal = cv.get("calibration", {})
    return {
        "method": f"{cv.get('repeats')}x repeated {cv.get('folds')}-fold cross-validation "
                  "grouped by patient; out-of-fold predictions only; 95% intervals by "
                  "patient bootstrap",
        "c_index": cv.get("c_index"), "uno_c": cv.get("uno_c"),
        "td_auc": cv.get("td_auc"), "ibs": cv.get("ibs"), "brier": cv.get("brier"),
        "calibration": {h: {k: v for k, v in c.items() if k != "curve"}
                        for h, c in cal.items()},
        "calibration_method": "jackknife pseudo-observations of the Aalen-Johansen "
                              "cumulative incidence, loess-smoothed (ICI/E50/E90); slope "
                              "from a cloglog fit (Austin & Steyerberg 2020)",
        "ci": cv.get("ci", {}),
        "baselines": {k: {"c_index": v.get("c_index"), "td_auc": v.get("td_auc"),
                          "model_c_index_same_rows": v.get("model_c_index_same_rows")}
                      for k, v in baselines.items()},
        "oracle_c_index": oracle_c_index,
        "external_validation": "none yet",
    }


def check_card(card: Any, model_id: str, horizons: list[float]) -> None:
    """Refuse a missing or inconsistent card.

    Raises
    ------
    ModelIntegrityError
        If the card is not a dict, lacks a required section, or names another model or
        other horizons.
    """
    if not isinstance(card, dict) or not card:
        raise ModelIntegrityError(f"model {model_id}: model card is missing")
    missing = [s for s in REQUIRED_SECTIONS if not card.get(s)]
    if missing:
        raise ModelIntegrityError(f"model {model_id}: model card lacks {', '.join(missing)}")
    if card["model_id"] != model_id:
        raise ModelIntegrityError(f"model {model_id}: model card names {card['model_id']!r}")
    if [float(h) for h in card["horizons"]] != [float(h) for h in horizons]:
        raise ModelIntegrityError(f"model {model_id}: card horizons {card['horizons']} differ "
                                  f"from the model's {horizons}")


def imaging_comparison_section(comparison: dict[str, Any]) -> dict[str, Any]:
    """The card's "what imaging adds" section (TRIPOD+AI 12e, 16: incremental value of a
    predictor group) from :func:`analytics.models.crossval.compare_imaging`.

    Returns
    -------
    dict
        ``method``, then either ``statement`` (no imaging feature in the model) or
        ``imaging_features`` and per row set (``all``, ``with_scans``): ``label``,
        ``n_patients``, ``n_events``, and ``c_index`` / ``td_auc`` (by horizon) as
        ``{with_imaging, without_imaging, difference, difference_ci}``.
    """
    method = ("the same estimator refitted without every column derived from an imaging "
              "feature, cross-validated on the same patient-grouped folds; difference = "
              "with - without imaging; 95% intervals from a paired patient bootstrap "
              "(both models scored on the same resample)")
    if comparison.get("status") != "compared":
        return {"method": method, "statement": comparison.get("message", "")}

    def figures(part: dict[str, Any], metric: str, h: str | None = None) -> dict[str, Any]:
        def get(m: dict[str, Any], name: str) -> Any:
            return m[name] if h is None else m[name][h]
        return {"with_imaging": get(part["with_imaging"], metric),
                "without_imaging": get(part["without_imaging"], metric),
                "difference": get(part["difference"], metric),
                "difference_ci": get(part["difference"], f"{metric}_ci")}

    out: dict[str, Any] = {"method": method,
                           "imaging_features": list(comparison["imaging_features"])}
    for key in ("all", "with_scans"):
        part = comparison.get(key) or {}
        if not part:
            continue
        out[key] = {
            "label": part.get("label"), "n_patients": part.get("n_patients"),
            "n_events": part.get("n_events"),
            **({"statement": part["message"]} if part.get("message") else {}),
            "c_index": figures(part, "c_index"),
            "td_auc": {h: figures(part, "td_auc", h)
                       for h in part["difference"].get("td_auc") or {}},
        }
    return out
