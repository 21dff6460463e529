"""SPPT-style stochastic tendencies against the AR(1) closed form and the member-stream rules."""

import math

import pytest
import torch

from swarmcast.ops.perturbations import Member
from swarmcast.ops.perturbations.stochastic import StochasticTendencies

NLAT, NLON = 17, 32


def constant_increment(x: torch.Tensor) -> torch.Tensor:
    """A model whose increment is 1 everywhere: x_n = x_0 + sum_k (1 + r_k)."""
    return x + 1.0


def roll(sppt: StochasticTendencies, members: list[Member], steps: int) -> torch.Tensor:
    step = sppt.stepper(constant_increment, members, NLAT, NLON)
    x = torch.zeros(len(members), 1, NLAT, NLON)
    for _ in range(steps):
        x = step(x)
    return x


def test_spread_after_n_steps_is_the_ar1_sum_variance():
    # sum of a stationary AR(1) with variance s^2: Var = s^2 (n + 2 sum_{j<n} (n - j) phi^j)
    sigma, tau, n = 0.1, 4.0, 6  # small sigma: the [0, 2] clip never binds
    sppt = StochasticTendencies(sigma, tau)
    members = [Member(k, 1, 1000 + k) for k in range(300)]
    x = roll(sppt, members, n) - n  # = sum_k r_k at every point
    phi = math.exp(-1 / tau)
    expected = sigma**2 * (n + 2 * sum((n - j) * phi**j for j in range(1, n)))
    assert float(x.var(dim=0).mean()) == pytest.approx(expected, rel=0.1)
    assert abs(float(x.mean())) < 0.05 * math.sqrt(expected)


def test_a_member_alone_equals_the_member_in_a_block_and_pairs_are_mirror_images():
    sppt = StochasticTendencies(0.5, 4.0)
    block = [Member(0, 0, 1), Member(1, 1, 7), Member(1, -1, 7), Member(2, 1, 9)]
    together = roll(sppt, block, 5)
    alone = roll(sppt, [Member(2, 1, 9)], 5)
    assert torch.equal(together[3], alone[0])
    assert torch.equal(together[0], torch.full_like(together[0], 5.0))  # the control is deterministic
    assert torch.allclose(together[1] - 5, -(together[2] - 5), atol=1e-5)  # r and -r
    assert not torch.allclose(together[1], together[3])  # other seeds, other patterns


def test_the_factor_stays_in_zero_to_two_and_bad_settings_are_refused():
    x = roll(StochasticTendencies(5.0, 1.0), [Member(1, 1, 3)], 4)  # huge sigma: clipped every step
    assert float(x.min()) >= 0.0 and float(x.max()) <= 8.0
    assert torch.equal(roll(StochasticTendencies(0.0, 1.0), [Member(1, 1, 3)], 3), torch.full((1, 1, NLAT, NLON), 3.0))
    with pytest.raises(ValueError, match="sigma >= 0 and tau_steps > 0"):
        StochasticTendencies(0.3, 0.0)
