"""Kernel SHAP on table rows: Shapley values by shap's KernelExplainer, hidden
features replaced by background rows (Lundberg & Lee 2017).

With ``tolerance`` > 0 the budget stops when the answer is stable
(``stable_budget.py``): shap's KernelExplainer gives no standard errors, so the
same estimand is computed here in rounds, as Covert & Lee (2021, "Improving
KernelSHAP", arXiv:2012.01536) do: coalitions drawn from the Shapley kernel in
antithetic pairs (z, 1 - z), the constrained least-squares fit (values sum to
f(x) - E f(background)), and its sandwich covariance with the pair as the
independent unit. A model linear in the features has zero residuals, so its
exact answer stops after two rounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from xai_core.explainers.base import Context, Explainer, RawAttribution, param, register
from xai_core.explainers.stable_budget import StableBudget
from xai_core.inputs.backgrounds import ROW_BACKGROUND_FILES, load_background_rows
from xai_core.types import InputError


@dataclass(frozen=True)
class KernelShapParams:
    nsamples: int = param(500, low=16, high=100_000, help="coalitions evaluated per row")
    background_size: int = param(50, low=1, high=1000, help="background rows that stand in for a hidden feature")
    background: str = param("kmeans", choices=("kmeans", "sample"),
                            help="summarise the table with k-means (shap.kmeans) or a seeded random sample")
    l1_reg: str = param("off", choices=("off", "aic", "bic"),
                        help="feature selection before the fit; off keeps every feature")
    background_file: str = param("", file_types=ROW_BACKGROUND_FILES, help="your own background rows: a CSV with the feature columns, or an "
                                          ".npy array (at most 1000 rows, sampled with the seed); "
                                          "summarised like the table")
    tolerance: float = param(
        0.0, low=0.0, high=1.0, step=0.01,
        help="stop early: sample paired coalitions in rounds and stop once the top-10 features keep their "
             "ranking and every value's standard error is at most this fraction of the largest value "
             "(nsamples becomes a maximum; needs l1_reg off; 0: one shap KernelExplainer run)",
    )


@register
class KernelShap(Explainer):
    name = "kernel_shap"
    input_kind = "vector"
    rank = 20
    label = "Kernel SHAP"
    description = ("Shapley values estimated by a weighted linear regression over feature coalitions, "
                   "hidden features replaced by background rows; base value + attributions = output.")
    paper = "Lundberg & Lee, 2017, A Unified Approach to Interpreting Model Predictions (arXiv:1705.07874)"
    Params = KernelShapParams
    stochastic = True
    slow = True

    def planned_evals(self, params: KernelShapParams, adapter) -> int:
        """Each coalition over every background row, the row itself for shap and
        for the output (a maximum: fewer coalitions exist over few features, and
        a smaller table gives fewer background rows)."""
        return params.nsamples * params.background_size + 2

    def planned_prepare_evals(self, params: KernelShapParams, adapter) -> int:
        return params.background_size  # shap's mean output over the background

    def prepare(self, ctx: Context, params: KernelShapParams) -> Any:
        import shap

        if params.tolerance > 0 and params.l1_reg != "off":
            raise InputError("kernel_shap: tolerance (stop when stable) needs l1_reg off")
        if params.background_file:
            data = load_background_rows(params.background_file, list(ctx.data.feature_names), ctx.seed)
        else:
            data = ctx.data.x
        data = data.astype(np.float64)
        k = min(params.background_size, len(data))
        if params.background == "kmeans" and k < len(data):
            background = shap.kmeans(data, k)
        else:
            rng = np.random.default_rng(ctx.seed)
            background = data[np.sort(rng.choice(len(data), size=k, replace=False))]
        return shap.KernelExplainer(ctx.predict_target, background)

    def run(self, ctx: Context, params: KernelShapParams) -> RawAttribution:
        state, x = ctx.prepared, ctx.image
        if params.tolerance > 0:
            return self._stable(ctx, params, state, x)
        saved = np.random.get_state()  # shap samples coalitions with the global NumPy RNG
        np.random.seed(ctx.seed % 2**32)
        try:
            values = state.shap_values(
                x.astype(np.float64)[None], nsamples=params.nsamples,
                l1_reg=False if params.l1_reg == "off" else params.l1_reg, silent=True,
            )
        finally:
            np.random.set_state(saved)
        attributions = np.asarray(values, np.float64).reshape(-1)
        base = float(np.ravel(state.expected_value)[0])
        output = float(ctx.predict_target(x[None])[0])
        return RawAttribution(
            attributions, base_value=base,
            extras={"output": output, "additivity_error": float(base + attributions.sum() - output)},
        )

    def _stable(self, ctx: Context, params: KernelShapParams, state: Any, x: np.ndarray) -> RawAttribution:
        background = np.asarray(state.data.data, np.float64)
        weights = np.asarray(state.data.weights, np.float64)
        weights = weights / weights.sum()
        x = np.asarray(x, np.float64).reshape(-1)
        base = float(np.ravel(state.expected_value)[0])
        output = float(ctx.predict_target(x[None])[0])
        varying = state.varying_groups(x[None])  # shap's rule: a feature equal in every background row gets 0

        def value(coalitions: np.ndarray) -> np.ndarray:
            """n x m bool (over the varying features) -> n values E_b f(x on z, background elsewhere) - base."""
            rows = np.repeat(background[None], len(coalitions), axis=0)  # n x B x F
            keep = np.zeros((len(coalitions), x.size), bool)
            keep[:, varying] = coalitions
            rows = np.where(keep[:, None, :], x, rows)
            scores = ctx.predict_target(rows.reshape(-1, x.size)).reshape(len(coalitions), len(background))
            return scores @ weights - base

        values, errors, spent, check = kernel_shap_rounds(
            value, len(varying), output - base, params.nsamples, params.tolerance, np.random.default_rng(ctx.seed))
        attributions = np.zeros(x.size, np.float64)
        attributions[varying] = values
        standard_errors = np.zeros(x.size, np.float64)
        standard_errors[varying] = errors
        return RawAttribution(
            attributions, base_value=base,
            extras={"output": output, "additivity_error": float(base + attributions.sum() - output),
             "coalitions": spent, "standard_errors": standard_errors,
             **check.extras(spent, params.nsamples)},
        )


def kernel_shap_rounds(value, m: int, total: float, budget: int, tolerance: float,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, StableBudget]:
    """Kernel SHAP by rounds of antithetic coalition pairs until stable (Covert & Lee 2021).

    ``value`` maps an n x m bool array of coalitions to their n values minus the
    empty coalition's; ``total`` is the full coalition's value minus the empty
    one's. At most ``budget`` coalitions are drawn, in rounds of max(64, 2m).
    Returns the m values, their standard errors, the coalitions spent and the
    stopping rule's record."""
    check = StableBudget(tolerance)
    if m <= 1:  # nothing to estimate: one feature takes the whole difference
        check.rounds, check.precision = 1, 0.0
        return np.full(m, total), np.zeros(m), 0, check
    sizes = np.arange(1, m)
    size_p = 1.0 / (sizes * (m - sizes))  # the Shapley kernel's mass per coalition size
    size_p /= size_p.sum()
    pairs_per_round = max(32, m)
    coalitions, ys = [], []
    spent = 0
    while True:
        n = min(pairs_per_round, (budget - spent) // 2)
        if n < 1:
            break
        s = rng.choice(sizes, size=n, p=size_p)
        order = np.argsort(rng.random((n, m)), axis=1)
        z = np.argsort(order, axis=1) < s[:, None]  # a uniform random subset of size s per row
        both = np.concatenate([z, ~z])
        y = value(both)
        coalitions.append(both.reshape(2, n, m).transpose(1, 0, 2))  # n x 2 x m: the pair together
        ys.append(y.reshape(2, n).T)
        spent += 2 * n
        values, errors = _constrained_fit(np.concatenate(coalitions), np.concatenate(ys), total)
        if check.settled(values, errors):
            break
    return values, errors, spent, check


def _constrained_fit(z: np.ndarray, y: np.ndarray, total: float) -> tuple[np.ndarray, np.ndarray]:
    """Least squares y ~ z . beta subject to sum(beta) = total over coalitions drawn
    from the Shapley kernel (z: pairs x 2 x m, y: pairs x 2), with the sandwich
    standard errors of beta (the pair is the independent unit)."""
    pairs, _, m = z.shape
    flat_z = z.reshape(-1, m).astype(np.float64)
    flat_y = y.reshape(-1)
    a_inv = np.linalg.pinv(flat_z.T @ flat_z / len(flat_z))
    b = flat_z.T @ flat_y / len(flat_z)
    ones = np.ones(m)
    a1 = a_inv @ ones
    beta = a_inv @ b - a1 * ((ones @ a_inv @ b - total) / (ones @ a1))
    q = a_inv - np.outer(a1, a1) / (ones @ a1)  # d beta / d b on the constraint (q @ 1 = 0)
    residuals = (flat_y - flat_z @ beta).reshape(pairs, 2)
    units = (z * residuals[..., None]).mean(axis=1)  # pairs x m
    if pairs < 2:
        return beta, np.full(m, np.inf)
    cov = q @ np.cov(units, rowvar=False).reshape(m, m) @ q.T / pairs
    return beta, np.sqrt(np.clip(np.diag(cov), 0, None))
