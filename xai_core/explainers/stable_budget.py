"""Budgets that stop when the answer is stable.

A sampling explainer given a ``tolerance`` > 0 treats its budget as a maximum: it
evaluates in rounds, and after each round its estimator gives one value per
feature (superpixel, pixel block, column) and a standard error for each. It stops
as soon as both hold:

1. the ranking of the top ``TOP_K`` features by |value| after the previous round
   still holds now, up to swaps the standard errors cannot tell apart (no feature
   ranked below another there is now above it by more than ``Z`` combined standard
   errors, and none outside that top is now above one inside it by that much;
   features of equal value would otherwise swap forever), and
2. the precision, max standard error / max |value|, is at most ``tolerance``.

The precision reached, the rounds and whether it stopped early are reported in the
explanation's extras; the evaluations spent are its ``model_evals``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TOP_K = 10
Z = 2.0  # standard errors by which one |value| must exceed another to contradict a ranking


def top_ranking(values: np.ndarray, k: int = TOP_K) -> tuple[int, ...]:
    """Indices of the ``k`` largest |values|, largest first (ties broken by index)."""
    v = np.abs(np.ravel(values))
    return tuple(int(i) for i in np.lexsort((np.arange(v.size), -v))[: min(k, v.size)])


def relative_precision(values: np.ndarray, standard_errors: np.ndarray) -> float:
    """Largest standard error relative to the largest |value| (inf for an all-zero answer)."""
    scale = float(np.abs(values).max(initial=0.0))
    return float(np.max(standard_errors, initial=0.0)) / scale if scale > 0 else float("inf")


def ranking_holds(previous: tuple[int, ...], values: np.ndarray, standard_errors: np.ndarray,
                  z: float = Z) -> bool:
    """Whether the earlier top ranking ``previous`` (indices, largest first) is not
    contradicted by ``values``: no feature placed below another in it (or left out
    of it) now exceeds that one in |value| by more than z combined standard errors."""
    v = np.abs(np.ravel(values)).astype(np.float64)
    se = np.ravel(standard_errors).astype(np.float64)
    floor = 1e-9 * float(v.max(initial=0.0))  # rounding noise is no evidence
    ranked = np.asarray(previous, int)
    below = np.ones(v.size, bool)
    for i in ranked:  # everything after i in the ranking, and everything outside it
        below[i] = False
        gap = v[below] - v[i]
        if np.any(gap > z * np.sqrt(se[below] ** 2 + se[i] ** 2) + floor):
            return False
    return True


@dataclass
class StableBudget:
    """Tracks the rounds of one run; :meth:`settled` says when to stop."""

    tolerance: float
    top_k: int = TOP_K
    rounds: int = 0
    precision: float = float("inf")
    _previous: tuple[int, ...] | None = field(default=None, repr=False)

    def settled(self, values: np.ndarray, standard_errors: np.ndarray) -> bool:
        self.rounds += 1
        ranking = top_ranking(values, self.top_k)
        self.precision = relative_precision(values, standard_errors)
        same = self._previous is not None and ranking_holds(self._previous, values, standard_errors)
        self._previous = ranking
        return self.tolerance > 0 and same and self.precision <= self.tolerance

    def extras(self, spent: int, budget: int) -> dict:
        """What the explanation reports; no precision where none could be estimated."""
        out = {"rounds": self.rounds, "stopped_early": spent < budget, "tolerance": self.tolerance}
        if np.isfinite(self.precision):
            out["precision"] = self.precision
        return out


def weighted_ridge(data: np.ndarray, y: np.ndarray, weights: np.ndarray, alpha: float = 1.0):
    """Coefficients and standard errors of the weighted ridge regression with an
    intercept that ``lime``'s ``LimeBase`` fits (sklearn ``Ridge(alpha=1)`` with
    sample weights, all features): data N x p, y N, weights N -> (p,), (p,).
    Standard errors are the sandwich form sigma^2 A^-1 X'WX A^-1, A = X'WX + alpha I,
    with sigma^2 the weighted residual variance."""
    x = np.asarray(data, np.float64)
    w = np.asarray(weights, np.float64)
    y = np.asarray(y, np.float64).ravel()
    total = w.sum()
    xc = x - (w @ x) / total
    yc = y - (w @ y) / total
    xtwx = xc.T @ (xc * w[:, None])
    a_inv = np.linalg.pinv(xtwx + alpha * np.eye(x.shape[1]))
    coef = a_inv @ (xc.T @ (w * yc))
    resid = yc - xc @ coef
    dof = max(total * (1 - (x.shape[1] + 1) / len(y)), 1e-12)
    sigma2 = float(w @ resid**2) / dof
    cov = sigma2 * a_inv @ xtwx @ a_inv
    return coef, np.sqrt(np.clip(np.diag(cov), 0, None))


def round_budgets(budget: int, first: int) -> list[int]:
    """Cumulative budgets of the rounds: first, 2 x first, 4 x first, ..., budget."""
    out, size = [], max(1, first)
    while size < budget:
        out.append(size)
        size *= 2
    return out + [budget]
