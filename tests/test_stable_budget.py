"""Budgets that stop when the answer is stable (xai_core/explainers/stable_budget.py):
the estimator's numbers against sklearn and the textbook formula, and LIME / SHAP
Partition / Kernel SHAP stopping early with the answer of a much larger budget."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from xai_core.explainers.kernel_shap import kernel_shap_rounds
from xai_core.explainers.stable_budget import (
    StableBudget,
    ranking_holds,
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


def test_shap_partition_rounds_double_the_budget_and_reuse_their_evaluations(digits_adapter, digit_image):
    result = explain(digits_adapter, digit_image, "shap_partition", {"max_evals": 400, "tolerance": 0.5}, seed=0)
    rounds = result.extras["rounds"]
    assert 2 <= rounds <= 4
    last = round_budgets(400, 64)[rounds - 1]
    # each round repeats the previous round's tree walk: only the new masked images cost evaluations
    fixed = explain(digits_adapter, digit_image, "shap_partition", {"max_evals": last}, seed=0)
    assert abs(result.model_evals - fixed.model_evals) <= 2 * rounds  # shap may overshoot a budget by a few
    np.testing.assert_allclose(result.raw, fixed.raw, rtol=1e-5, atol=1e-7)


def test_a_ranking_holds_up_to_swaps_within_the_standard_errors():
    values = np.array([5.0, 4.9, 3.0, 0.1])
    assert ranking_holds((1, 0, 2), values, np.full(4, 0.1))  # 5.0 vs 4.9: a tie within 2 SE
    assert not ranking_holds((1, 0, 2), values, np.full(4, 0.01))  # now 0.1 is 7 SE
    assert not ranking_holds((0, 1, 3), values, np.full(4, 0.1))  # 3.0 left out of the top 3, far above 0.1
    check = StableBudget(tolerance=0.1, top_k=2)  # equal values that swap every round still settle
    assert not check.settled(np.array([2.0, 2.01, 0.0]), np.full(3, 0.05))
    assert check.settled(np.array([2.01, 2.0, 0.0]), np.full(3, 0.05))


def third_order_game(z: np.ndarray) -> np.ndarray:
    """v(z) - v(empty) = 6 z0 z1 z2 + 3 z3: Shapley values 2, 2, 2, 3, 0, 0."""
    return 6.0 * z[:, 0] * z[:, 1] * z[:, 2] + 3.0 * z[:, 3]


SHAPLEY = np.array([2.0, 2.0, 2.0, 3.0, 0.0, 0.0])


def test_kernel_shap_rounds_reach_the_exact_shapley_values_within_their_errors():
    for seed in range(3):
        values, errors, spent, check = kernel_shap_rounds(third_order_game, 6, 9.0, 20000, 0.02,
                                                          np.random.default_rng(seed))
        assert check.precision <= 0.02 and spent < 20000 and spent == 128 * check.rounds / 2
        assert np.all(np.abs(values - SHAPLEY) <= 4 * errors + 1e-9)
        assert abs(values.sum() - 9.0) < 1e-9  # efficiency holds exactly
        assert np.abs(values - SHAPLEY).max() < 0.3


def test_kernel_shap_rounds_stop_after_two_rounds_on_an_additive_game():
    w = np.array([1.0, -2.0, 0.5, 0.0, 3.0, 0.0, 0.0, 1.0])
    values, errors, spent, check = kernel_shap_rounds(lambda z: z @ w, 8, w.sum(), 20000, 0.01,
                                                      np.random.default_rng(0))
    np.testing.assert_allclose(values, w, atol=1e-9)
    assert check.rounds == 2 and spent == 128 and errors.max() < 1e-9
    one, _, spent, _ = kernel_shap_rounds(lambda z: z @ w[:1], 1, 1.0, 500, 0.01, np.random.default_rng(0))
    assert one.tolist() == [1.0] and spent == 0


def test_kernel_shap_stops_early_with_the_answer_of_shap_at_ten_times_the_budget():
    from tabular_helpers import SAMPLE_CSV

    from xai_core.loading.tables import open_tabular_model
    from xai_core.tabular import explain_row, load_table

    model = open_tabular_model("breast_cancer_mlp")
    data = load_table(SAMPLE_CSV, label_column="target", n_features=model.n_features)
    base = {"background_size": 10, "background": "sample"}
    stable = explain_row(model, data, 5, "kernel_shap", {**base, "nsamples": 5000, "tolerance": 0.05}, seed=0)
    extras = stable.extras
    assert extras["stopped_early"] and extras["coalitions"] < 5000 and extras["precision"] <= 0.05
    # the coalitions x 10 background rows, the row itself, the background (its mean)
    assert stable.model_evals == 10 * extras["coalitions"] + 1 + 10 and abs(stable.additivity_error) < 1e-6
    reference = explain_row(model, data, 5, "kernel_shap", {**base, "nsamples": 10 * extras["coalitions"]}, seed=0)
    ours, theirs = np.array(list(stable.by_feature().values())), np.array(list(reference.by_feature().values()))
    assert stable.base_value == reference.base_value
    assert spearmanr(ours, theirs)[0] >= 0.95
    assert np.abs(ours - theirs).max() <= 0.15 * np.abs(theirs).max()


def test_kernel_shap_tolerance_with_feature_selection_is_refused():
    import pytest
    from tabular_helpers import SAMPLE_CSV

    from xai_core.loading.tables import open_tabular_model
    from xai_core.tabular import explain_row, load_table
    from xai_core.types import InputError

    model = open_tabular_model("breast_cancer_mlp")
    data = load_table(SAMPLE_CSV, label_column="target", n_features=model.n_features)
    with pytest.raises(InputError, match="tolerance .* needs l1_reg off"):
        explain_row(model, data, 0, "kernel_shap", {"tolerance": 0.05, "l1_reg": "aic"})
