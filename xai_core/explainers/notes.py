"""Quality notes a method declares (``Explainer.notes``): plain-language warnings
for results whose own diagnostics say they are unreliable.

Each note reads the method's extras (and the baseline's output where the extras
lack it) and returns one sentence, or None when the diagnostic looks fine. LIME
reports the R^2 of its local linear surrogate (how much of the model's behaviour
around the input the weights explain), Integrated Gradients its convergence delta
(sum of attributions minus the change of the score from baseline to input; 0 for
an exact path integral), so that a fit with R^2 0.10 or a delta of -0.77 is never
shown without comment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LIME_MIN_R2 = 0.3  # below this the surrogate explains less than 30% of the local variation
IG_MAX_RELATIVE_DELTA = 0.05  # |delta| above 5% of the score change from baseline to input
IG_MIN_ABS_DELTA = 1e-3  # deltas this small are rounding, whatever the score change


def surrogate_fit(extras: Mapping[str, Any], base_value: float | None = None) -> str | None:
    """LIME: the local linear fit's R^2 (image: ``fit_r2``; rows: ``r2_score``)."""
    r2 = extras.get("fit_r2", extras.get("r2_score"))
    if isinstance(r2, (int, float)) and r2 < LIME_MIN_R2:
        return (
            f"LIME's local linear fit has R² {r2:.2f}: it explains little of how the model behaves around "
            "this input, so read these weights with care. More samples, or fewer and larger segments "
            "(images) or a wider kernel (tables), usually give a better fit."
        )
    return None


def path_convergence(extras: Mapping[str, Any], base_value: float | None = None) -> str | None:
    """Integrated Gradients: ``convergence_delta`` against the score change from the
    baseline (``baseline_score``, or ``base_value``) to the input (``score`` / ``output``)."""
    delta = extras.get("convergence_delta")
    score = extras.get("score", extras.get("output"))
    base = extras.get("baseline_score", base_value)
    if not (isinstance(delta, (int, float)) and isinstance(score, (int, float)) and isinstance(base, (int, float))):
        return None
    change = abs(float(score) - float(base))
    if abs(delta) > IG_MIN_ABS_DELTA and abs(delta) > IG_MAX_RELATIVE_DELTA * change:
        share = f" ({abs(delta) / change:.0%} of it)" if change > 0 else ""
        return (
            f"Integrated Gradients has not converged: the attributions sum to {float(score) - float(base) + delta:.4g} "
            f"but the score changes by {float(score) - float(base):.4g} from baseline to input "
            f"(convergence delta {delta:.3g}{share}). Use more steps, or the gausslegendre method."
        )
    return None


LRP_MAX_RELATIVE_LEAK = 0.1  # relevance lost or gained beyond 10% of the logit


def relevance_conservation(extras: Mapping[str, Any], base_value: float | None = None) -> str | None:
    """LRP: the relevances' sum (``relevance_sum``) against the logit (``score``), and
    the canonizer's note (``canonizer_note``) where batch norms stayed unmerged."""
    notes = []
    total, score = extras.get("relevance_sum"), extras.get("score")
    if isinstance(total, (int, float)) and isinstance(score, (int, float)):
        if abs(total - score) > LRP_MAX_RELATIVE_LEAK * max(abs(score), 1e-12):
            notes.append(f"LRP's relevances sum to {total:.4g} but the logit is {score:.4g}: biases and the "
                         "rules' stabilisers absorbed the difference, so the map is not a full decomposition "
                         "of the score.")
    if extras.get("canonizer_note"):
        notes.append(f"LRP: {extras['canonizer_note']}.")
    return " ".join(notes) or None
