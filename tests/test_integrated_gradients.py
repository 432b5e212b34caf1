"""Integrated Gradients completeness (Sundararajan et al. 2017, axiom 'completeness'):
the attributions add up to f(x) - f(baseline) within 1% at enough steps."""

from __future__ import annotations

import pytest

from xai_core.explainers.integrated_gradients import quadrature
from xai_core.service import explain


def relative_delta(e) -> float:
    x = e.extras
    return abs(x["convergence_delta"]) / abs(x["score"] - x["baseline_score"])


@pytest.mark.parametrize("baseline", ["black", "gray", "blur"])
def test_completeness_on_digits_cnn(digits_adapter, digit_image, baseline):
    coarse = explain(digits_adapter, digit_image, "integrated_gradients", {"steps": 4, "baseline": baseline})
    fine = explain(digits_adapter, digit_image, "integrated_gradients", {"steps": 256, "baseline": baseline})
    assert relative_delta(fine) < 0.01
    assert relative_delta(fine) <= relative_delta(coarse) + 1e-6
    assert fine.attribution.sum() == pytest.approx(fine.raw.sum(), rel=1e-4)


def test_completeness_on_efficientnet(lite0_adapter, cat_image):
    # ReLU6 networks converge slowly along the path: 200 Gauss-Legendre points
    # give 0.27% on this photo, 50 give about 5%
    e = explain(lite0_adapter, cat_image, "integrated_gradients", {"steps": 200})
    assert relative_delta(e) < 0.01
    assert e.model_evals == 200 + 2 + 1


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid", "riemann_middle"])
def test_quadrature_integrates_polynomials(method):
    alphas, weights = quadrature(64, method)
    assert weights.sum() == pytest.approx(1.0, abs=1e-9)
    assert (alphas * weights).sum() == pytest.approx(0.5, abs=1e-3)  # integral of a on [0, 1]
