"""Sampler conformance suite against a Gaussian mixture with an exact, analytic denoiser."""

from __future__ import annotations

import pytest
import torch

from swarmcast.kernels.diffusion import sampling_sigmas
from swarmcast.kernels.sample_quality import sliced_wasserstein
from swarmcast.ops.diffusion.mixture import one_d_two_modes, two_d_mixture
from swarmcast.ops.samplers import (
    SOLVERS,
    keep_least_hallucinated,
    sample,
    schedule_nfe,
    solver_schedule,
    steps_for_nfe,
)

MIX = two_d_mixture()
N = 20_000  # the sliced-Wasserstein noise floor between two samples of the truth is ~0.03 at this size
TRUTH = MIX.sample(N, seed=99)
SEEDS = list(range(N))


def draw(name: str, nfe: int, seeds=SEEDS, eps: float = 0.0):
    steps = steps_for_nfe(name, nfe)
    sigmas = sampling_sigmas("log-snr", steps, 0.02, 80.0)
    return sample(MIX.denoise, (2,), seeds, sigmas, solver_schedule(name, steps), eps=eps, dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_each_solver_converges_to_the_mixture_as_nfe_grows(name):
    eps = 0.5 if name == "sde" else 0.0
    dist = {nfe: sliced_wasserstein(draw(name, nfe, eps=eps).samples, TRUTH) for nfe in (4, 12, 64)}
    floor = sliced_wasserstein(MIX.sample(N, seed=1), TRUTH)  # two samples of the truth itself
    assert dist[64] < dist[12] < dist[4], dist
    assert dist[64] < 3 * floor, (dist, floor)


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_samples_depend_only_on_their_seed(name):
    eps = 1.0 if name == "sde" else 0.0
    batch = draw(name, 8, seeds=[3, 4, 5], eps=eps).samples
    alone = draw(name, 8, seeds=[4], eps=eps).samples
    torch.testing.assert_close(batch[1:2], alone, rtol=0, atol=1e-12)
    assert not torch.allclose(batch[0], batch[1])


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_reported_nfe_matches_the_budget(name):
    result = draw(name, 10, seeds=[0])
    steps = steps_for_nfe(name, 10)
    assert result.nfe == schedule_nfe(solver_schedule(name, steps)) <= 10


def test_dpm_solver_2m_beats_euler_at_ten_nfe():
    euler = sliced_wasserstein(draw("euler", 10).samples, TRUTH)
    dpm = sliced_wasserstein(draw("dpm++2m", 10).samples, TRUTH)
    assert dpm < 0.7 * euler, (dpm, euler)  # measured: 0.11 against 0.22


def test_sde_with_zero_noise_is_the_ode_path():
    ode = draw("euler", 12, seeds=[0, 1, 2]).samples
    sde = draw("sde", 12, seeds=[0, 1, 2], eps=0.0).samples
    torch.testing.assert_close(sde, ode, rtol=0, atol=0)
    noisy = draw("sde", 12, seeds=[0, 1, 2], eps=1.0).samples
    assert not torch.allclose(noisy, ode)


def test_mixed_per_step_schedule_runs_and_counts_its_evaluations():
    names = ["heun"] * 3 + ["dpm++2m"] * 4 + ["euler"]
    sigmas = sampling_sigmas("log-snr", 8, 0.02, 80.0)
    result = sample(MIX.denoise, (2,), SEEDS, sigmas, solver_schedule(names, 8), dtype=torch.float64)
    assert result.nfe == 2 * 3 + 4 + 1
    assert sliced_wasserstein(result.samples, TRUTH) < 0.25
    with pytest.raises(ValueError, match="unknown solvers"):
        solver_schedule(["euler", "rk4"], 2)


def test_hallucination_filter_removes_samples_stuck_between_modes():
    """The seed paper's 1-D setting: a mode-interpolating denoiser leaves a few samples between
    two well-separated modes; their predicted x0 varies most over the last steps."""
    mix = one_d_two_modes(separation=6.0, std=0.5)
    result = sample(
        lambda x, s: mix.denoise_interpolating(x, s, tau=1.0),
        (1,),
        range(5000),
        sampling_sigmas("karras", 50, 0.002, 80.0),
        solver_schedule("euler", 50),
        hallucination_steps=5,
        dtype=torch.float64,
    )
    between = result.samples[:, 0].abs() < 1.5  # modes at -3 and +3 with std 0.5
    assert 0.005 < between.float().mean() < 0.1  # a few hallucinations, as in the paper
    kept = torch.zeros(5000, dtype=torch.bool)
    kept[keep_least_hallucinated(result, 0.975)] = True
    removed = (~kept[between]).float().mean()
    kept_in_support = kept[~between].float().mean()
    assert removed > 0.85 and kept_in_support > 0.97, (removed, kept_in_support)
