"""The explanation stage: SHAP values of landmark predictions, returned as data.

One object travels from the model to every chart and sentence:
:class:`Trajectory` (:func:`patient_trajectory`) holds a patient's risk at every visit
with the model's SHAP values per model-matrix column and the same values grouped per
clinical feature. Its waterfall, change since the last scan, cumulative-incidence
curves and JSON are read from it; the figure builders in :mod:`analytics.viz` take
these types, and every sentence about a score is written by
:mod:`analytics.explain.wording`.

Scales and exactness:

- Cox: ``log_hazard`` scale, exact: ``shap_j = beta_j (x_j - mean_j)`` with ``mean`` the
  training-sample mean (the background), base value 0 (the log hazard is centred there).
- GBM (xgboost ``survival:cox``) and RSF (an xgboost random forest on the same Cox
  likelihood): ``log_hazard`` (margin) scale, exact path-dependent TreeSHAP (xgboost
  ``pred_contribs``); the background is the training sample through the trees' cover
  statistics.
- An estimator without an exact explainer (the base class's; none of the built-in
  kinds): ``risk`` scale (cumulative incidence by the horizon), permutation-sampling SHAP
  (:func:`permutation_shap`, the algorithm of shap's ``PermutationExplainer`` with an
  independent masker) against ``SAMPLED_BACKGROUND`` rows of the training background
  stored with the model and ``SAMPLED_PERMUTATIONS`` feature orders (an antithetic pair;
  both in ``analytics.models.estimators``):
  a budget of ``2 (p + 1) x 10`` model evaluations per row; seeded, so reproducible, and
  exactly additive by construction (each order telescopes).

For every scale ``base_value + sum(shap) == model_output``. With competing risks the
log-hazard explanations are of the endpoint's cause-specific hazard.

What the clinic reads: the same grouped contributions in percentage points of the risk
at the horizon (:mod:`analytics.explain.points`): from the base risk (the risk at the
base log hazard, the visit's competing causes unchanged) to the shown risk, exactly.
Each group gets its log-hazard contribution times the secant slope of the risk in the
log hazard (the Aumann-Shapley value along the straight path, exact because the risk
depends on the features only through their summed log hazard), so the sign of every
group is kept and the points add up to the shown risk to float precision. Time since
baseline and the visit count are one group, ``Follow-up``.

Layering: ``analytics.models`` (fit, score, explain rows) -> ``analytics.explain``
(trajectory, grouping, wording) -> ``analytics.viz``, the pages and the report. Nothing
in ``analytics.models`` imports this package.
"""

from analytics.explain.breakdown import ChangeSinceScan, Waterfall
from analytics.explain.contributions import (
    FOLLOW_UP,
    Contribution,
    clinical_contributions,
    clinical_label,
    contributions,
    feature_groups,
    group_explanation,
    scan_changes,
)
from analytics.explain.importance import (
    ClinicalImportance,
    OutputChange,
    beeswarm_data,
    change_since_previous,
    clinical_importance,
    dependence_data,
    explain,
    global_importance,
)
from analytics.explain.points import POINTS, points_explanation
from analytics.explain.trajectory import (
    CONTRIBUTION_COLUMNS,
    POINT_COLUMNS,
    IncidenceCurves,
    Trajectory,
    incidence_curves,
    patient_trajectories,
    patient_trajectories_json,
    patient_trajectory,
)
from analytics.explain.wording import (
    amount_text,
    change_sentence,
    contribution_sentence,
    imaging_text,
    points_text,
    risk_sentence,
    value_text,
    why_text,
)
from analytics.models.explanation import Explanation, permutation_shap

__all__ = [
    "CONTRIBUTION_COLUMNS",
    "FOLLOW_UP",
    "POINTS",
    "POINT_COLUMNS",
    "ChangeSinceScan",
    "ClinicalImportance",
    "Contribution",
    "Explanation",
    "IncidenceCurves",
    "OutputChange",
    "Trajectory",
    "Waterfall",
    "amount_text",
    "beeswarm_data",
    "change_sentence",
    "change_since_previous",
    "clinical_contributions",
    "clinical_importance",
    "clinical_label",
    "contribution_sentence",
    "contributions",
    "dependence_data",
    "explain",
    "feature_groups",
    "global_importance",
    "group_explanation",
    "imaging_text",
    "incidence_curves",
    "patient_trajectories",
    "patient_trajectories_json",
    "patient_trajectory",
    "permutation_shap",
    "points_explanation",
    "points_text",
    "risk_sentence",
    "scan_changes",
    "value_text",
    "why_text",
]
