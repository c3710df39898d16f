"""Training progress: the steps cross-validation, the bootstrap and the final fit report.

Training calls ``progress(step)`` after each unit of work (a fold fitted, a bootstrap
replicate, a clinical score validated, the final fit), and once with ``done == 0`` when
a stage starts. The Models page's background job turns the steps into a progress bar;
``hepatrack train`` prints them on stderr. A callback may raise to stop training (the
page's job does when its browser session has ended).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["STAGES", "ProgressCallback", "TrainingStep", "report"]

#: the stages in the order training runs them, with their wording
STAGES: dict[str, str] = {
    "folds": "cross-validation",
    "bootstrap": "bootstrap intervals",
    "baselines": "clinical baselines",
    "imaging_folds": "imaging comparison: cross-validation",
    "imaging_bootstrap": "imaging comparison: bootstrap intervals",
    "final_fit": "final fit",
}
_ORDER = tuple(STAGES)


@dataclass(frozen=True)
class TrainingStep:
    """``done`` of ``total`` units of ``stage`` finished; ``detail`` says which one."""

    stage: str
    done: int
    total: int
    detail: str = ""

    @property
    def fraction(self) -> float:
        """Share of the whole training done: each stage counts one equal part."""
        within = self.done / self.total if self.total else 1.0
        return (_ORDER.index(self.stage) + within) / len(_ORDER)

    def describe(self) -> str:
        """One line for people, e.g. ``cross-validation: 3 of 10 (fold 3 of 5, repeat 1
        of 2)``."""
        unit = {"folds": "folds", "imaging_folds": "folds", "bootstrap": "replicates",
                "imaging_bootstrap": "replicates", "baselines": "scores",
                "final_fit": "fits"}[self.stage]
        text = f"{STAGES[self.stage]}: {self.done} of {self.total} {unit} done"
        return f"{text} ({self.detail})" if self.detail else text


ProgressCallback = Callable[[TrainingStep], None]


def report(progress: ProgressCallback | None, stage: str, done: int, total: int,
           detail: str = "") -> None:
    """Send one step to ``progress`` (nothing without a callback)."""
    if progress is not None:
        progress(TrainingStep(stage, done, total, detail))
