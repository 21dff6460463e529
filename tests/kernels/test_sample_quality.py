"""Sample-set distances against closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from swarmcast.kernels.sample_quality import energy_distance, mmd_rbf, sliced_wasserstein


def test_sliced_wasserstein_of_a_shift_is_its_length_over_root_d():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 4, generator=g, dtype=torch.float64)
    shift = torch.tensor([3.0, 0.0, 4.0, 0.0], dtype=torch.float64)  # |shift| = 5
    assert sliced_wasserstein(x, x) == 0.0
    # a rigid shift moves every projection by theta . shift; E[(theta . shift)^2] = |shift|^2 / d
    got = sliced_wasserstein(x, x + shift, n_projections=4000)
    assert got == pytest.approx(5.0 / math.sqrt(4), rel=0.03)
    # different sample sizes are compared through quantiles
    assert sliced_wasserstein(x[:300], x + shift, n_projections=4000) == pytest.approx(2.5, rel=0.05)
    with pytest.raises(ValueError, match=r"need \(n, d\)"):
        sliced_wasserstein(x, x[:, :2])


def test_mmd_is_near_zero_for_one_distribution_and_positive_for_two():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(400, 3, generator=g), torch.randn(400, 3, generator=g)
    c = torch.randn(400, 3, generator=g) + 1.0
    same, different = mmd_rbf(a, b), mmd_rbf(a, c)
    assert abs(same) < 0.01 and different > 10 * abs(same) and different > 0.05


def test_energy_distance_of_two_point_masses_is_twice_their_distance():
    x = torch.zeros(50, 2)
    y = torch.tensor([[3.0, 4.0]]).repeat(60, 1)
    assert energy_distance(x, y) == pytest.approx(10.0)
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(300, 2, generator=g), torch.randn(300, 2, generator=g)
    assert abs(energy_distance(a, b)) < 0.05 < energy_distance(a, b + 1.0)
