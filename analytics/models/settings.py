"""How a landmark model is trained and validated: one frozen, validated settings object.

:class:`ModelSettings` is the one source of the training options and their defaults. The
command line (``hepatrack train``), the Models page, :func:`analytics.models.training.train_model`,
cross-validation and :class:`analytics.models.predict.LandmarkModel` all read it; each
of them maps its own inputs (flags, widgets) onto the field names here, and nothing else
keeps a default of its own.

Validation is by field name: an unknown field or a value out of range raises
:class:`SettingsError` (a :class:`ValueError` and a :class:`ModelError`) naming the field,
what was expected and what was given.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from analytics.errors import SettingsError

if TYPE_CHECKING:
    from analytics.models.landmark import LandmarkSettings

__all__ = ["KINDS", "ModelSettings", "SettingsError"]

#: estimator kinds (``analytics.models.estimators.ESTIMATORS`` has one class per kind)
KINDS = ("cox", "gbm", "rsf")


def _int(name: str, value: Any, minimum: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) \
            or value < minimum:
        raise SettingsError(name, f"expected {what} (an integer >= {minimum}), got {value!r}")
    return int(value)


def _events(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise SettingsError("event", f"expected event names (a list or a comma-separated "
                                     f"string), got {value!r}")
    names = tuple(dict.fromkeys(str(e).strip() for e in items if str(e).strip()))
    return names or None


def _horizons(value: Any) -> tuple[float, ...]:
    items = value.split(",") if isinstance(value, str) else value
    try:
        hs = tuple(float(h) for h in items)
    except (TypeError, ValueError):
        hs = ()
    if not hs or any(not math.isfinite(h) or h <= 0 for h in hs):
        raise SettingsError("horizons", f"expected positive years, got {value!r}")
    return hs


@dataclass(frozen=True)
class ModelSettings:
    """Training and validation options of one landmark model.

    Attributes
    ----------
    kind
        Estimator: ``cox`` (penalised Cox), ``gbm`` (xgboost Cox) or ``rsf`` (random
        survival forest on xgboost).
    event
        Event names forming the endpoint; None: every event except transplant (see
        :func:`analytics.models.endpoint.resolve_events`).
    horizons
        Prediction horizons, years.
    folds, repeats
        Patient-grouped K-fold cross-validation, repeated.
    n_bootstrap
        Patient-bootstrap replicates of the 95% intervals of the validation metrics.
    seed
        Seed of folds, bootstrap samples and estimators.
    params
        Estimator parameters (names as in the estimator's ``__init__``).
    interval_refits
        Patient-bootstrap refits of a gradient-boosted endpoint model kept for its risk
        intervals (Cox intervals come from its robust variance; none for RSF).
    landmark
        How landmark rows are stacked; None: the defaults with :attr:`horizons`.
    """

    kind: str = "cox"
    event: tuple[str, ...] | None = None
    horizons: tuple[float, ...] = (1.0, 2.0, 3.0)
    folds: int = 5
    repeats: int = 2
    n_bootstrap: int = 50
    seed: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)
    interval_refits: int = 20
    landmark: LandmarkSettings | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SettingsError("kind", f"expected one of {', '.join(KINDS)}, got {self.kind!r}")
        put = object.__setattr__  # frozen: normalise once, here
        put(self, "event", _events(self.event))
        put(self, "horizons", _horizons(self.horizons))
        put(self, "folds", _int("folds", self.folds, 2, "at least 2 folds"))
        put(self, "repeats", _int("repeats", self.repeats, 1, "at least 1 repeat"))
        put(self, "n_bootstrap", _int("n_bootstrap", self.n_bootstrap, 0,
                                      "a number of bootstrap replicates"))
        put(self, "seed", _int("seed", self.seed, 0, "a seed"))
        put(self, "interval_refits", _int("interval_refits", self.interval_refits, 0,
                                          "a number of refits"))
        put(self, "params", MappingProxyType(self._checked_params()))
        put(self, "landmark", self._checked_landmark())

    def _checked_params(self) -> dict[str, Any]:
        if not isinstance(self.params, Mapping):
            raise SettingsError("params", f"expected a mapping of estimator parameters, "
                                          f"got {type(self.params).__name__}")
        params = dict(self.params)
        if params:
            from analytics.models.estimators import make_estimator

            known = set(make_estimator(self.kind).get_params())
            unknown = sorted(set(params) - known)
            if unknown:
                raise SettingsError("params", f"{', '.join(unknown)}: not a parameter of the "
                                              f"{self.kind} estimator (known: "
                                              f"{', '.join(sorted(known))})")
        return params

    def _checked_landmark(self) -> LandmarkSettings | None:
        from analytics.models.landmark import LandmarkSettings

        lm = self.landmark
        if lm is None:
            return None
        if isinstance(lm, Mapping):
            try:
                lm = LandmarkSettings(**lm)
            except TypeError as e:
                raise SettingsError("landmark", f"expected LandmarkSettings fields ({e})") from e
        if not isinstance(lm, LandmarkSettings):
            raise SettingsError("landmark", f"expected LandmarkSettings, got {lm!r}")
        return dataclasses.replace(lm, horizons=self.horizons)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ModelSettings:
        """Settings from a mapping of field names; absent (or None) fields keep defaults.

        Raises
        ------
        SettingsError
            If a key is not a field, or a value is out of range.
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise SettingsError(unknown[0], f"not a model setting (settings: "
                                            f"{', '.join(sorted(names))})")
        return cls(**{k: v for k, v in values.items() if v is not None})

    def landmark_settings(self) -> LandmarkSettings:
        """How landmark rows are stacked (:attr:`landmark` or the defaults), at :attr:`horizons`."""
        from analytics.models.landmark import LandmarkSettings

        return self.landmark or LandmarkSettings(horizons=self.horizons)

    def to_json(self) -> dict[str, Any]:
        """JSON-able fields (``landmark`` as its own fields)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["params"] = dict(self.params)
        out["event"] = list(self.event) if self.event else None
        out["horizons"] = list(self.horizons)
        out["landmark"] = dataclasses.asdict(self.landmark) if self.landmark else None
        return out
