"""Ensemble score kernels against brute force, published estimators and closed forms."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scoringrules as sr
import torch

from swarmcast.kernels.ensemble_scores import (
    best_member_squared_error,
    energy_score,
    ensemble_mean_variance,
    expected_outlier_rate,
    extreme_forecast_index,
    fair_crps,
    fair_crps_torch,
    gaussian_outlier_rate,
    outside_range,
    rank_histogram,
    spread_skill_ratio,
    truth_rank,
)


def brute_fair_crps(ens: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """O(M^2) definition, members on axis 0."""
    m = ens.shape[0]
    skill = np.abs(ens - obs).mean(axis=0)
    pairs = np.abs(ens[:, None] - ens[None, :]).sum(axis=(0, 1))
    return skill - pairs / (2 * m * (m - 1))


@pytest.mark.parametrize("m", [2, 3, 17, 64])
def test_fair_crps_equals_pairwise_definition_and_scoringrules(m):
    rng = np.random.default_rng(m)
    ens = rng.normal(size=(m, 7, 5)) * rng.uniform(0.1, 3, size=(7, 5)) + rng.normal(size=(7, 5))
    obs = rng.normal(size=(7, 5))
    ours = fair_crps(ens, obs, axis=0)
    np.testing.assert_allclose(ours, brute_fair_crps(ens, obs), rtol=0, atol=1e-12)
    theirs = sr.crps_ensemble(obs, np.moveaxis(ens, 0, -1), estimator="fair", backend="numpy")
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    # any member axis gives the same answer
    np.testing.assert_allclose(fair_crps(np.moveaxis(ens, 0, 2), obs, axis=2), ours, atol=1e-12)


def test_fair_crps_torch_matches_numpy():
    rng = np.random.default_rng(0)
    ens, obs = rng.normal(size=(33, 40)), rng.normal(size=40)
    got = fair_crps_torch(torch.as_tensor(ens), torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(got, brute_fair_crps(ens, obs), atol=1e-12)


def test_fair_crps_of_one_member_is_absolute_error():
    ens, obs = np.array([[1.5, -2.0, 0.0]]), np.array([1.0, 1.0, 0.0])
    np.testing.assert_allclose(fair_crps(ens, obs), [0.5, 3.0, 0.0])
    np.testing.assert_allclose(fair_crps_torch(torch.as_tensor(ens), torch.as_tensor(obs)).numpy(), [0.5, 3.0, 0.0])


def test_fair_crps_closed_form_for_two_members():
    # M=2: skill (|a-y|+|b-y|)/2 minus |a-b|/2
    np.testing.assert_allclose(fair_crps(np.array([[0.0], [2.0]]), np.array([3.0])), [(3 + 1) / 2 - 1.0])


def test_fair_crps_rejects_mismatched_truth():
    with pytest.raises(ValueError, match="obs shape"):
        fair_crps(np.zeros((4, 3)), np.zeros(2))


def test_rank_histogram_is_flat_for_calibrated_and_u_shaped_for_underdispersed():
    rng = np.random.default_rng(1)
    m, n = 9, 40_000
    centre = rng.normal(size=n)  # a different predictable signal at every point
    calibrated = centre + rng.normal(size=(m, n))
    truth = centre + rng.normal(size=n)
    counts = rank_histogram(truth_rank(calibrated, truth, rng=rng), m)
    expected = n / (m + 1)
    # chi-square with M degrees of freedom; 99.9% quantile for 9 dof is 27.9
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert counts.sum() == n and chi2 < 27.9
    narrow = centre + 0.3 * rng.normal(size=(m, n))
    u = rank_histogram(truth_rank(narrow, truth, rng=rng), m) / n
    assert u[0] > 3 / (m + 1) and u[-1] > 3 / (m + 1) and u[m // 2] < 0.5 / (m + 1)


def test_truth_rank_counts_and_breaks_ties_uniformly():
    ens = np.array([[0.0], [1.0], [1.0], [1.0], [2.0]])
    ranks = truth_rank(np.repeat(ens, 30_000, axis=1), np.ones(30_000), rng=np.random.default_rng(0))
    # one member below, three tied: ranks 1..4 equally likely
    counts = rank_histogram(ranks, 5)
    assert counts[0] == 0 and counts[5] == 0
    np.testing.assert_allclose(counts[1:5] / 30_000, 0.25, atol=0.01)
    assert truth_rank(
        np.array([[1.0, 5.0], [2.0, 6.0]]), np.array([1.5, 7.0]), rng=np.random.default_rng(0)
    ).tolist() == [1, 2]


def test_weighted_rank_histogram_sums_weights():
    h = rank_histogram(np.array([[0, 2], [2, 1]]), 2, weights=np.array([[1.0, 3.0], [1.0, 3.0]]))
    np.testing.assert_allclose(h, [1.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="ranks must lie"):
        rank_histogram(np.array([3]), 2)


def test_spread_skill_ratio_of_calibrated_ensemble_is_one_for_small_m():
    rng = np.random.default_rng(2)
    m, n = 5, 200_000
    centre = rng.normal(size=n)
    ens = centre + rng.normal(size=(m, n))
    truth = centre + rng.normal(size=n)
    mean, var = ensemble_mean_variance(ens)
    ssr = spread_skill_ratio(var.mean(), ((mean - truth) ** 2).mean(), m)
    assert abs(ssr - 1) < 0.01
    # without the correction the ratio would be sqrt(M/(M+1)) = 0.913
    assert abs(np.sqrt(var.mean() / ((mean - truth) ** 2).mean()) - np.sqrt(m / (m + 1))) < 0.01


def test_outliers_follow_two_over_m_plus_one():
    rng = np.random.default_rng(3)
    m, n = 19, 100_000
    ens, truth = rng.normal(size=(m, n)), rng.normal(size=n)
    rate = outside_range(ens, truth).mean()
    assert abs(rate - expected_outlier_rate(m)) < 4 * np.sqrt(0.1 * 0.9 / n)
    assert outside_range(np.array([[0.0], [1.0]]), np.array([1.0])).tolist() == [False]


def test_best_member_error_is_min_over_members():
    ens = np.array([[0.0, 5.0], [2.0, 3.0], [-1.0, 10.0]])
    np.testing.assert_allclose(best_member_squared_error(ens, np.array([1.5, 4.0])), [0.25, 1.0])


def test_energy_score_matches_pairwise_norms_and_crps_in_one_dimension():
    rng = np.random.default_rng(4)
    ens, obs, w = rng.normal(size=(6, 10)), rng.normal(size=10), rng.uniform(0.5, 2, size=10)
    norm = lambda v: np.sqrt((w * v * v).sum())  # noqa: E731
    m = len(ens)
    skill = np.mean([norm(x - obs) for x in ens])
    spread = sum(norm(a - b) for a in ens for b in ens) / (m * (m - 1))
    assert energy_score(ens, obs, w) == pytest.approx(skill - 0.5 * spread, rel=1e-10)
    # with D = 1 the energy score is the fair CRPS
    assert energy_score(ens[:, :1], obs[:1]) == pytest.approx(fair_crps(ens[:, 0], np.array(obs[0])), rel=1e-10)


def test_efi_hand_worked_cases():
    clim = np.array([0.0, 1.0, 2.0])[:, None]  # quantiles at p = 0, 0.5, 1
    # every member between the median and the maximum: F = 0 on [0, .5], 2p - 1 on [.5, 1]
    above_median = np.array([[1.2], [1.5], [1.9], [1.99]])
    assert extreme_forecast_index(clim, above_median)[0] == pytest.approx(1 - 2 / np.pi, abs=1e-12)
    # all members beyond the climate's maximum: EFI = 1; below its minimum: -1
    assert extreme_forecast_index(clim, np.array([[3.0], [4.0]]))[0] == pytest.approx(1.0)
    assert extreme_forecast_index(clim, np.array([[-3.0], [-4.0]]))[0] == pytest.approx(-1.0)
    # an ensemble distributed like the climate gives EFI ~ 0
    fine = np.linspace(0, 1, 101)[:, None]
    like_clim = np.random.default_rng(0).uniform(size=(20_000, 1))
    assert abs(extreme_forecast_index(fine, like_clim)[0]) < 0.01
    with pytest.raises(ValueError, match="sorted"):
        extreme_forecast_index(clim[::-1], above_median)


def test_empirical_crps_equals_scoringrules_nrg():
    rng = np.random.default_rng(5)
    ens, obs = rng.normal(size=(12, 30)), rng.normal(size=30)
    theirs = sr.crps_ensemble(obs, ens.T, estimator="nrg", backend="numpy")
    np.testing.assert_allclose(fair_crps(ens, obs, fair=False), theirs, atol=1e-10)


def test_spread_skill_ratio_is_undefined_when_the_mean_is_exact_to_rounding():
    got = spread_skill_ratio(np.array([4.0, 4.0, 4.0]), np.array([1.0, 0.0, 4e-13]), 3)
    np.testing.assert_allclose(got[0], np.sqrt(4 / 3) * 2.0)
    assert np.isnan(got[1]) and np.isnan(got[2])


@pytest.mark.parametrize("members", [2, 5, 10, 50])
def test_gaussian_outlier_rate_of_a_consistent_ensemble_is_two_over_m_plus_one(members):
    assert gaussian_outlier_rate(1.0, members) == pytest.approx(2 / (members + 1), rel=1e-9)


@pytest.mark.parametrize("spread", [0.6, 0.8, 1.3])
def test_gaussian_outlier_rate_matches_sampled_ensembles(spread):
    """Brute force: 200,000 draws of 10 members N(0, spread^2) and a truth N(0, 1); the scored
    spread-skill ratio of the sample and its outlier rate, against the closed form."""
    rng = np.random.default_rng(3)
    m, n = 10, 200_000
    ens = rng.standard_normal((m, n)) * spread
    obs = rng.standard_normal(n)
    mean, var = ensemble_mean_variance(ens)
    ssr = float(spread_skill_ratio(var.mean(), ((mean - obs) ** 2).mean(), m))
    rate = float(outside_range(ens, obs).mean())
    expected = gaussian_outlier_rate(ssr, m)
    sigma = np.sqrt(expected * (1 - expected) / n)
    assert abs(rate - expected) < 4 * sigma + 0.002, (ssr, rate, expected)


def test_gaussian_outlier_rate_falls_as_spread_grows_and_refuses_impossible_ratios():
    rates = [gaussian_outlier_rate(r, 10) for r in (0.3, 0.6, 1.0, 1.5, 2.5)]
    assert all(a > b for a, b in itertools.pairwise(rates))
    with pytest.raises(ValueError, match="ssr"):
        gaussian_outlier_rate(3.4, 10)  # 3.4^2 > 11: more than 10 members can score
