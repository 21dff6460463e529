"""The perturbation-growth check against a linear model whose growth is known exactly."""

import pytest
import torch

from swarmcast.kernels.sphere import quadrature_weights
from swarmcast.ops.perturbations import CorrelatedNoise, Member
from swarmcast.ops.perturbations.growth import GrowthLimits, check_growth

NLAT, NLON = 17, 32
CHANNELS = ("h", "u")
MEAN, STD = [10_000.0, 0.0], [300.0, 10.0]
RMSE = {"h": 100.0, "u": 5.0}
MEMBERS = [Member(0, 0, 1), Member(1, 1, 11), Member(1, -1, 11), Member(2, 1, 22), Member(2, -1, 22)]


def histories(n: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    base = (
        torch.tensor(MEAN).reshape(1, 1, 2, 1, 1)
        + torch.randn(n, 1, 2, NLAT, NLON, generator=g) * torch.tensor(STD).reshape(1, 1, 2, 1, 1) * 0.1
    )
    return base.double()


def linear(growth: float):
    """x -> mean + growth * (x - mean): a perturbation grows by exactly ``growth`` per step."""
    mean = torch.tensor(MEAN, dtype=torch.float64).reshape(1, 2, 1, 1)
    return lambda x: mean + growth * (x - mean)


def check(growth: float, amplitude: list[float], steps: int = 4, bound=lambda c: 0.0 if c == "h" else None):
    return check_growth(
        linear(growth),
        histories(),
        CorrelatedNoise(amplitude),
        MEMBERS,
        steps,
        step_hours=12.0,
        channels=CHANNELS,
        rmse=RMSE,
        mean=MEAN,
        std=STD,
        lower_bound=bound,
        limits=GrowthLimits(),
    )


def test_the_ratio_is_the_exact_growth_of_the_perturbation_over_the_rmse():
    amplitude = [35.0, 1.75]  # 0.35 x RMSE
    # the perturbations themselves: members minus the initial state, area-weighted RMS
    w = quadrature_weights(NLAT).double().reshape(1, 1, -1, 1)
    w = w / w.mean()
    sq = torch.zeros(2, dtype=torch.float64)
    for h in histories():
        delta = CorrelatedNoise(amplitude)(h, MEMBERS)[1:] - h[-1]
        sq += (delta**2 * w).mean(dim=(2, 3)).sum(dim=0)
    initial = torch.sqrt(sq / 8)
    got = check(1.1, amplitude)
    assert got.lead_hours == 48.0 and got.passed
    for k, c in enumerate(CHANNELS):
        assert got.ratio[c] == pytest.approx(1.1**4 * float(initial[k]) / RMSE[c], rel=1e-5)


def test_exploding_perturbations_are_flagged_with_their_numbers():
    got = check(1.6, [35.0, 1.75])  # 1.6^4 = 6.6: ~2.3x the RMSE
    assert got.passed
    got = check(2.0, [35.0, 1.75])  # 2^4 = 16: ~5.6x
    assert not got.passed
    assert any(
        p.startswith("h: perturbations grow to") and "x the checkpoint's 48 h RMSE (100; at most 3x)" in p
        for p in got.problems
    )
    assert got.to_json()["passed"] is False and got.to_json()["ratio"]["h"] > 3


def test_members_leaving_the_physical_range_are_flagged():
    # growth 1.25 over 4 steps: 2.4x, under the limit, but u reaches beyond 10 std (100 m/s)
    got = check(1.25, [35.0, 40.0])
    assert any(p.startswith("u: members reach") and "outside -100 to 100" in p for p in got.problems)
    # a depth pushed below zero: amplitude 3,000 m on a 10,000 m layer grows past it
    got = check(1.0, [3000.0, 1.0], bound=lambda c: 0.0 if c == "h" else None)
    assert any(p.startswith("h: members reach") and "and above 0" in p for p in got.problems)
