"""One explanation type for every explainer, and model-agnostic permutation SHAP.

:class:`Explanation` is what every estimator's ``explain`` returns and what the wording,
charts and reports read (``analytics.explain``). :func:`permutation_shap` is the
explainer of estimators without an exact one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Explanation", "permutation_shap"]


@dataclass
class Explanation:
    """SHAP values of ``n`` rows on one scale.

    Attributes
    ----------
    values
        ``(n, p)`` contributions, one column per model-matrix feature.
    base_values
        ``(n,)`` expected model output over the background.
    output
        ``(n,)`` model output on :attr:`scale` (``base + values.sum(1)``).
    data
        The model-matrix rows explained (``(n, p)`` DataFrame).
    scale
        ``"log_hazard"`` or ``"risk"``.
    horizon
        Horizon of a ``risk``-scale explanation (None on the log-hazard scale).
    """

    values: np.ndarray
    base_values: np.ndarray
    output: np.ndarray
    data: pd.DataFrame
    scale: str
    horizon: float | None = None

    @property
    def feature_names(self) -> list[str]:
        return list(self.data.columns)

    def frame(self) -> pd.DataFrame:
        """SHAP values as a DataFrame (rows as in :attr:`data`)."""
        return pd.DataFrame(self.values, index=self.data.index, columns=self.feature_names)

    def row(self, i: int) -> dict[str, float]:
        return {f: float(v) for f, v in zip(self.feature_names, self.values[i], strict=True)}


def permutation_shap(f, x: np.ndarray, background: np.ndarray, n_permutations: int = 2,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Permutation-sampling SHAP values (interventional, independent background).

    For each row and each sampled feature order (antithetic pairs: an order and its
    reverse), features are switched from the background to the row's values one at a
    time and the mean model output over the background is recorded; each feature gets
    its marginal change, averaged over orders. Every order telescopes from
    ``mean f(background)`` to ``f(x)``, so ``base + sum(values) == f(x)`` exactly.
    Cost: ``n_rows x n_permutations x (p + 1) x len(background)`` evaluations, in one
    batch.

    Returns
    -------
    values, base, output
        ``(n, p)``, ``(n,)``, ``(n,)``.
    """
    x = np.atleast_2d(np.asarray(x, np.float64))
    bg = np.asarray(background, np.float64)
    n, p = x.shape
    b = len(bg)
    rng = np.random.default_rng(seed)
    orders = []
    for _ in range(n):
        row_orders = []
        for _k in range(max(1, n_permutations // 2)):
            perm = rng.permutation(p)
            row_orders += [perm, perm[::-1]]
        orders.append(row_orders[:max(1, n_permutations)])
    k_perm = len(orders[0])
    batch = np.empty((n, k_perm, p + 1, b, p))
    for i in range(n):
        for j, perm in enumerate(orders[i]):
            z = np.repeat(bg[None, :, :], p + 1, axis=0)
            for step in range(1, p + 1):
                z[step:, :, perm[step - 1]] = x[i, perm[step - 1]]
            batch[i, j] = z
    out = np.asarray(f(batch.reshape(-1, p)), np.float64).reshape(n, k_perm, p + 1, b)
    v = out.mean(axis=3)  # (n, k_perm, p + 1)
    values = np.zeros((n, p))
    for i in range(n):
        for j, perm in enumerate(orders[i]):
            values[i, perm] += np.diff(v[i, j])
    values /= k_perm
    base = v[:, 0, 0]
    output = v[:, 0, -1]
    return values, base, output
