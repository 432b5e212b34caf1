"""SHAP DeepExplainer: DeepLIFT multipliers averaged over a background set, an
approximation of SHAP values (Lundberg & Lee 2017, arXiv:1705.07874; Shrikumar et
al. 2017, DeepLIFT, arXiv:1704.02685).

The estimation is shap's own ``DeepExplainer`` on the Keras model (with the
normalisation as its first layer and the target's score as its only output).
DeepExplainer needs a rule for every TensorFlow op in the model; when it has none,
or when its values fail shap's additivity check (they must sum to the score minus
the background's mean score), the explainer stops with a message that points to
``shap_gradient`` (expected gradients), which works on any differentiable model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from xai_core.explainers.base import Context, Drawing, Explainer, RawAttribution, channel_sum, param, register
from xai_core.explainers.shap_gradient import background_set
from xai_core.inputs.backgrounds import IMAGE_BACKGROUND_FILES, load_background
from xai_core.types import Capability, UnsupportedError


@dataclass(frozen=True)
class ShapDeepParams:
    background: str = param(
        "blur_black", choices=("blur_black", "blur", "black", "gray", "noise"),
        help="reference images: blurred copies of the image and/or constant images",
    )
    background_size: int = param(16, low=1, high=1000, help="images in the background set")
    background_file: str = param("", file_types=IMAGE_BACKGROUND_FILES, help="your own background: a folder or .zip of images, or an .npy array "
                                          "(at most background_size items, sampled with the seed); "
                                          "replaces 'background'")


@register
class ShapDeep(Explainer):
    name = "shap_deep"
    label = "SHAP DeepExplainer (DeepLIFT)"
    description = "SHAP values by DeepLIFT rules against a background set (shap's DeepExplainer; Keras models and PyTorch modules)."
    paper = "Lundberg & Lee, 2017; Shrikumar et al., 2017, DeepLIFT"
    requires = frozenset({Capability.PREDICT, Capability.DEEP_EXPLAINER})
    Params = ShapDeepParams
    drawing = Drawing(units="output", pixel_level=True)
    slow = True

    def run(self, ctx: Context, params: ShapDeepParams) -> RawAttribution:
        import shap

        x = ctx.image
        if params.background_file:
            bg = load_background(params.background_file, ctx.adapter.spec, params.background_size, ctx.seed)
        else:
            bg = background_set(x, params.background, params.background_size, ctx.rng)
        model = ctx.adapter.deep_explainer_model(ctx.target)
        ctx.progress(0.1, "building DeepExplainer")
        # shap swaps TensorFlow's process-wide gradient registry while it runs: hold the
        # lock every Keras gradient computation takes
        with ctx.adapter.gradient_registry_lock:
            try:
                explainer = shap.DeepExplainer(model, ctx.adapter.deep_explainer_data(bg))
                values = explainer.shap_values(ctx.adapter.deep_explainer_data(x[None]), check_additivity=True)
            except AssertionError:
                raise UnsupportedError(
                    f"SHAP DeepExplainer's values for {ctx.adapter.name} fail shap's additivity "
                    "check (they do not add up to the model's output): DeepLIFT's rules do not "
                    "fit some layer of this model. Use shap_gradient (expected gradients) instead."
                ) from None
            except Exception as exc:  # noqa: BLE001 - shap's failures on odd layers vary
                raise UnsupportedError(_failure_message(exc, ctx.adapter.name)) from None
        ctx.model_evals += len(bg) + 1
        raw = ctx.adapter.deep_explainer_values(values).reshape(x.shape)
        expected = float(np.ravel(explainer.expected_value)[0])
        ctx.progress(1.0)
        return RawAttribution(
            channel_sum(raw), raw=raw,
            extras={"expected_value": expected, "background_size": len(bg)},
        )


def _failure_message(exc: BaseException, model: str) -> str:
    """Name the TensorFlow op shap has no rule for (its KeyError, often wrapped in a
    tf.function StagingError), else quote the error's last line."""
    text = str(exc)
    if isinstance(exc, KeyError) and exc.args:
        op = str(exc.args[0])
    else:
        found = re.search(r"KeyError: '([^']+)'|no entry for: shap_(\w+)", text)
        op = (found.group(1) or found.group(2)) if found else None
    if op:
        return (
            f"SHAP DeepExplainer has no rule for the TensorFlow op {op!r} used by {model} "
            "(e.g. a GELU or softsign activation). Use shap_gradient (expected gradients) instead."
        )
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    last = lines[-1][:300] if lines else ""
    return (
        f"SHAP DeepExplainer failed on {model} ({type(exc).__name__}{': ' + last if last else ''}). "
        "Use shap_gradient (expected gradients) instead."
    )
