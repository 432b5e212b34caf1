"""Tabular attribution methods, registered by their user-facing names.

They share the typed-parameter machinery of the image explainers
(:func:`~xai_core.explainers.base.param`, ``parse_params``) but live in their own
registry, :data:`TABULAR_REGISTRY`, so that image method names (``lime``,
``integrated_gradients``) stay unambiguous on both sides.

Each method explains one output column (``target``) of the model, in the model's
own output space (probability, logit or score). A method has a ``setup`` step run
once per table (fit LIME's statistics, summarise the SHAP background) and an
``explain`` step run per row, so many rows reuse the setup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..explainers.base import Explainer, param
from ..explainers.integrated_gradients import quadrature
from ..types import Capability, InputError, UnsupportedError
from .adapters import TabularModel
from .data import TabularData

TABULAR_REGISTRY: dict[str, TabularExplainer] = {}


@dataclass
class TabularRaw:
    """What an explain step returns: one signed value per feature (F,)."""

    attributions: np.ndarray
    base_value: float | None = None  # where the method has one: base + sum = output
    extras: dict[str, Any] = field(default_factory=dict)


class TabularContext:
    """The model, the table (LIME's statistics, the SHAP background, IG's mean
    baseline), the target column, the seed, and a counter of model evaluations."""

    def __init__(
        self,
        model: TabularModel,
        data: TabularData,
        target: int,
        seed: int,
    ) -> None:
        self.model = model
        self.data = data
        self.target = target
        self.seed = seed
        self.model_evals = 0

    def predict_target(self, x: np.ndarray) -> np.ndarray:
        """N x F -> N values of the target output (float64, as shap and lime expect)."""
        x = np.asarray(x, np.float32).reshape(-1, self.data.n_features)
        self.model_evals += len(x)
        return self.model.predict(x)[:, self.target].astype(np.float64)

    def gradients(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.model_evals += len(x)
        return self.model.gradients(x, self.target)


class TabularExplainer(Explainer):
    """Subclass, set the class attributes, implement :meth:`explain` (and
    :meth:`setup` when something can be prepared once per table)."""

    modality = "tabular"

    def setup(self, ctx: TabularContext, params: Any) -> Any:
        return None

    def explain(self, ctx: TabularContext, params: Any, state: Any, x: np.ndarray) -> TabularRaw:
        raise NotImplementedError

    def missing_capabilities(self, model: TabularModel) -> list[str]:  # type: ignore[override]
        return sorted(r for r in self.requires if not model.supports(r))


def register_tabular(cls: type[TabularExplainer]) -> type[TabularExplainer]:
    TABULAR_REGISTRY[cls.name] = cls()
    return cls


def get_tabular_explainer(name: str) -> TabularExplainer:
    if name not in TABULAR_REGISTRY:
        raise InputError(f"unknown tabular method {name!r}; available: {', '.join(TABULAR_REGISTRY)}")
    return TABULAR_REGISTRY[name]


def tabular_methods_for(model: TabularModel) -> list[TabularExplainer]:
    """Methods whose required capabilities the model has."""
    return [e for e in TABULAR_REGISTRY.values() if not e.missing_capabilities(model)]


def _fresh_random_state(seed: int) -> np.random.RandomState:
    return np.random.RandomState(seed % 2**32)


# -- LIME --------------------------------------------------------------------------------
@dataclass(frozen=True)
class LimeTabularParams:
    samples: int = param(2000, low=50, high=100_000, help="perturbed rows the local linear model is fitted on")
    discretize: bool = param(True, help="explain 'value in this quartile/decile' features (LIME's default)")
    discretizer: str = param("quartile", choices=("quartile", "decile"), help="bins for discretized features")
    kernel_width: float = param(0.0, low=0.0, high=1000.0, help="proximity kernel width; 0 = 0.75 * sqrt(features)")


@register_tabular
class LimeTabular(TabularExplainer):
    name = "lime"
    label = "LIME"
    description = ("A weighted linear model fitted on perturbed rows drawn from the table's statistics; "
                   "the weights are the attributions (local, not additive to the output).")
    paper = "Ribeiro, Singh & Guestrin, 2016, \"Why Should I Trust You?\" (arXiv:1602.04938)"
    Params = LimeTabularParams
    stochastic = True

    def setup(self, ctx: TabularContext, params: LimeTabularParams) -> Any:
        from lime.lime_tabular import LimeTabularExplainer

        if ctx.data.n_rows < 2:
            raise InputError("lime needs a table of at least 2 rows for its statistics")
        return LimeTabularExplainer(
            ctx.data.x.astype(np.float64),
            mode="regression",
            feature_names=list(ctx.data.feature_names),
            discretize_continuous=params.discretize,
            discretizer=params.discretizer,
            kernel_width=params.kernel_width or None,
            random_state=_fresh_random_state(ctx.seed),
        )

    def explain(self, ctx: TabularContext, params: LimeTabularParams, state: Any, x: np.ndarray) -> TabularRaw:
        # a fresh seeded RandomState per row: the same row gives the same answer
        # whether explained alone or among many
        rs = _fresh_random_state(ctx.seed)
        state.random_state = rs
        state.base.random_state = rs
        if state.discretizer is not None:
            state.discretizer.random_state = rs
        n = ctx.data.n_features
        exp = state.explain_instance(
            x.astype(np.float64), ctx.predict_target, num_features=n, num_samples=params.samples
        )
        attributions = np.zeros(n, np.float64)
        for index, weight in exp.local_exp[1]:
            attributions[int(index)] = weight
        return TabularRaw(
            attributions,
            None,
            {
                "intercept": float(np.ravel(exp.intercept[1])[0]),
                "local_prediction": float(np.ravel(exp.local_pred)[0]),
                "r2_score": float(exp.score),
            },
        )


# -- Kernel SHAP -------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelShapParams:
    nsamples: int = param(500, low=16, high=100_000, help="coalitions evaluated per row")
    background_size: int = param(50, low=1, high=1000, help="background rows that stand in for a hidden feature")
    background: str = param("kmeans", choices=("kmeans", "sample"),
                            help="summarise the table with k-means (shap.kmeans) or a seeded random sample")
    l1_reg: str = param("off", choices=("off", "aic", "bic"),
                        help="feature selection before the fit; off keeps every feature")


@register_tabular
class KernelShap(TabularExplainer):
    name = "kernel_shap"
    label = "Kernel SHAP"
    description = ("Shapley values estimated by a weighted linear regression over feature coalitions, "
                   "hidden features replaced by background rows; base value + attributions = output.")
    paper = "Lundberg & Lee, 2017, A Unified Approach to Interpreting Model Predictions (arXiv:1705.07874)"
    Params = KernelShapParams
    stochastic = True
    slow = True

    def setup(self, ctx: TabularContext, params: KernelShapParams) -> Any:
        import shap

        data = ctx.data.x.astype(np.float64)
        k = min(params.background_size, len(data))
        if params.background == "kmeans" and k < len(data):
            background = shap.kmeans(data, k)
        else:
            rng = np.random.default_rng(ctx.seed)
            background = data[np.sort(rng.choice(len(data), size=k, replace=False))]
        return shap.KernelExplainer(ctx.predict_target, background)

    def explain(self, ctx: TabularContext, params: KernelShapParams, state: Any, x: np.ndarray) -> TabularRaw:
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
        return TabularRaw(
            attributions, base,
            {"output": output, "additivity_error": float(base + attributions.sum() - output)},
        )


# -- Integrated Gradients ----------------------------------------------------------------
@dataclass(frozen=True)
class TabularIGParams:
    steps: int = param(64, low=2, high=4096, help="integration points along the path")
    baseline: str = param("mean", choices=("mean", "zeros"),
                          help="the reference row the path starts from: the table's feature means, or all zeros")
    method: str = param("gausslegendre", choices=("gausslegendre", "riemann_trapezoid", "riemann_middle"),
                        help="quadrature rule for the path integral")


@register_tabular
class TabularIntegratedGradients(TabularExplainer):
    name = "integrated_gradients"
    label = "Integrated Gradients"
    description = ("Gradients integrated along a straight path from a baseline row to the row; "
                   "attributions add up to output(row) - output(baseline), up to the convergence delta.")
    paper = "Sundararajan, Taly & Yan, 2017, Axiomatic Attribution for Deep Networks (arXiv:1703.01365)"
    requires = frozenset({Capability.PREDICT, Capability.INPUT_GRADIENTS})
    Params = TabularIGParams

    def setup(self, ctx: TabularContext, params: TabularIGParams) -> Any:
        if not ctx.model.supports(Capability.INPUT_GRADIENTS):
            raise UnsupportedError(f"integrated_gradients needs gradients, which {ctx.model.name} does not provide")
        if params.baseline == "mean":
            return ctx.data.feature_means()
        return np.zeros(ctx.data.n_features, np.float32)

    def explain(self, ctx: TabularContext, params: TabularIGParams, state: Any, x: np.ndarray) -> TabularRaw:
        base = np.asarray(state, np.float32)
        alphas, weights = quadrature(params.steps, params.method)
        diff = (x - base).astype(np.float32)
        path = base[None] + alphas.astype(np.float32)[:, None] * diff[None]
        grads, _ = ctx.gradients(path)
        attributions = (weights @ grads.astype(np.float64)) * diff.astype(np.float64)
        _, ends = ctx.gradients(np.stack([x.astype(np.float32), base]))
        output, base_value = float(ends[0]), float(ends[1])
        delta = float(attributions.sum() - (output - base_value))
        return TabularRaw(
            attributions, base_value,
            {"output": output, "convergence_delta": delta, "baseline": params.baseline},
        )


TABULAR_METHODS = tuple(TABULAR_REGISTRY)
