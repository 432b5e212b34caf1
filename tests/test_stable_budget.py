"""Budgets that stop when the answer is stable (xai_core/explainers/stable_budget.py):
the estimator's numbers against sklearn and the textbook formula, and LIME / SHAP
Partition stopping early with the answer of a much larger budget."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from xai_core.explainers.stable_budget import (
    StableBudget,
    relative_precision,
    round_budgets,
    top_ranking,
    weighted_ridge,
)
from xai_core.service import explain


def test_weighted_ridge_is_limes_ridge_fit():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    data = rng.integers(0, 2, (300, 12)).astype(float)
    y = data @ rng.normal(size=12) + rng.normal(0, 0.3, 300)
    w = rng.random(300)
    coef, se = weighted_ridge(data, y, w)
    ref = Ridge(alpha=1.0, fit_intercept=True).fit(data, y, sample_weight=w)
    np.testing.assert_allclose(coef, ref.coef_, atol=1e-8)
    assert se.shape == (12,) and np.all(se > 0)


def test_standard_errors_match_ordinary_least_squares():
    rng = np.random.default_rng(1)
    n, p, sigma = 2000, 5, 0.5
    x = rng.normal(size=(n, p))
    y = x @ np.arange(1, p + 1) + rng.normal(0, sigma, n)
    _, se = weighted_ridge(x, y, np.ones(n), alpha=1e-9)
    xc = x - x.mean(0)
    textbook = sigma * np.sqrt(np.diag(np.linalg.inv(xc.T @ xc)))
    np.testing.assert_allclose(se, textbook, rtol=0.1)


def test_stops_only_when_ranking_repeats_and_precision_is_reached():
    check = StableBudget(tolerance=0.1, top_k=3)
    values = np.array([5.0, -4.0, 3.0, 0.1])
    assert not check.settled(values, np.full(4, 0.01))  # first round: nothing to compare with
    assert not check.settled(values, np.full(4, 1.0))  # same ranking, but 1/5 > 0.1
    assert not check.settled(values[[1, 0, 2, 3]], np.full(4, 0.01))  # ranking changed
    assert check.settled(values[[1, 0, 2, 3]], np.full(4, 0.01))
    assert check.extras(spent=500, budget=1000) == {
        "rounds": 4, "stopped_early": True, "tolerance": 0.1, "precision": 0.01 / 5.0}
    assert top_ranking(values, 2) == (0, 1)
    assert relative_precision(np.zeros(3), np.ones(3)) == float("inf")
    assert round_budgets(1000, 125) == [125, 250, 500, 1000]


def test_lime_stops_early_with_the_answer_of_ten_times_the_budget(digits_adapter, digit_image):
    params = {"segments": 16, "segmentation": "slic"}
    stable = explain(digits_adapter, digit_image, "lime", {**params, "samples": 4000, "tolerance": 0.05}, seed=0)
    assert stable.extras["stopped_early"] and stable.model_evals < 4000
    assert stable.extras["precision"] <= 0.05
    large = explain(digits_adapter, digit_image, "lime", {**params, "samples": 10 * stable.model_evals}, seed=1)
    rho = spearmanr(stable.extras["segment_weights"], large.extras["segment_weights"])[0]
    assert rho >= 0.9


def test_lime_fixed_budget_spends_it_and_reports_its_precision(digits_adapter, digit_image):
    result = explain(digits_adapter, digit_image, "lime", {"samples": 200, "segments": 16}, seed=0)
    assert result.model_evals == 201 and result.extras["rounds"] == 1
    assert not result.extras["stopped_early"] and 0 < result.extras["precision"] < 1


def test_shap_partition_rounds_double_the_budget(digits_adapter, digit_image):
    result = explain(digits_adapter, digit_image, "shap_partition", {"max_evals": 400, "tolerance": 0.5}, seed=0)
    rounds = result.extras["rounds"]
    assert 2 <= rounds <= 4
    spent = sum(round_budgets(400, 64)[:rounds])
    assert abs(result.model_evals - 1 - spent) <= 2 * rounds  # shap may overshoot a budget by a few
