"""The sampler interface: per-step solvers integrating dx/ds = (x - D(x; s)) / s from s_max to 0.

A *solver schedule* names the solver of every step (as in the unified sampling framework of
Liu et al.: choose solver and order per step); ``sample`` runs any schedule with any mix of
solvers, since they share one ``StepContext``. Noise comes from one ``torch.Generator`` per
sample seed, so a sample depends only on its seed: ensembles are reproducible and can be
sharded across workers in any batch size. Every denoiser call's clean-sample prediction is
recorded for the hallucination score (Aithal et al. 2024): the variance of the predicted x0
over the last K calls, averaged over dimensions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""D(x (B, ...), s (scalar tensor)) -> predicted clean sample (B, ...)."""


class PerSampleNoise:
    """Standard normal noise drawn sample by sample from one generator per seed."""

    def __init__(self, seeds: Sequence[int], shape: tuple[int, ...], device: torch.device | str = "cpu") -> None:
        self.shape, self.device = shape, torch.device(device)
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def __call__(self) -> torch.Tensor:
        draws = [torch.randn(self.shape, generator=g, dtype=torch.float64) for g in self.generators]
        return torch.stack(draws).to(self.device)


@dataclass
class StepContext:
    """State shared by the solvers of one sampling run."""

    denoise: Denoise
    noise: PerSampleNoise
    eps: Callable[[float], float] = lambda s: 0.0
    """Langevin noise rate of the SDE sampler at level s (0: the probability-flow ODE)."""
    history: list[tuple[float, torch.Tensor]] = field(default_factory=list)
    """(s, D(x; s)) at the start of every step so far (for multistep solvers)."""
    predictions: list[torch.Tensor] = field(default_factory=list)
    """Every denoiser output, in call order (for the hallucination score)."""
    keep_predictions: int = 0

    def predict(self, x: torch.Tensor, s: float) -> torch.Tensor:
        d = self.denoise(x, torch.tensor(s, dtype=x.dtype, device=x.device))
        self.nfe += 1
        if self.keep_predictions:
            self.predictions = [*self.predictions[-(self.keep_predictions - 1) :], d.detach()]
        return d

    nfe: int = 0


class Solver(Protocol):
    """One step from noise level ``s`` to ``s_next`` (``s_next`` may be 0: the final denoise)."""

    name: str

    def step(self, ctx: StepContext, x: torch.Tensor, s: float, s_next: float) -> torch.Tensor: ...

    def nfe(self, final: bool) -> int:
        """Denoiser evaluations of one step (``final``: the step to s = 0)."""
        ...


@dataclass(frozen=True)
class SampleResult:
    samples: torch.Tensor
    """(B, ...) generated samples."""
    hallucination: torch.Tensor
    """(B,) variance of the predicted clean sample over the last K denoiser calls."""
    nfe: int
    """Denoiser evaluations per sample."""


def first_prediction(ctx: StepContext, x: torch.Tensor, s: float) -> torch.Tensor:
    """D(x; s) at a step's start, recorded in the history multistep solvers read."""
    d = ctx.predict(x, s)
    ctx.history.append((s, d))
    return d


def hallucination_score(predictions: list[torch.Tensor]) -> torch.Tensor:
    """Per-sample variance over the recorded predictions, averaged over all other dims."""
    if len(predictions) < 2:
        return torch.zeros(predictions[0].shape[0] if predictions else 0)
    stack = torch.stack(predictions)  # (K, B, ...)
    return stack.var(dim=0, unbiased=False).flatten(1).mean(dim=1)


def sample(
    denoise: Denoise,
    shape: tuple[int, ...],
    seeds: Sequence[int],
    sigmas: torch.Tensor,
    schedule: Sequence[Solver],
    *,
    eps: Callable[[float], float] | float = 0.0,
    hallucination_steps: int = 5,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    x_init: torch.Tensor | None = None,
) -> SampleResult:
    """Samples of ``shape`` per seed: x = s_0 z, then ``schedule[i]`` steps sigmas[i] -> sigmas[i+1].

    ``sigmas``: decreasing noise levels ending in 0 (``kernels.diffusion.karras_sigmas``);
    ``schedule``: one solver per step (len(sigmas) - 1). ``x_init`` replaces the initial noisy
    state (e.g. to resume a trajectory at sigmas[0]).
    """
    if len(schedule) != len(sigmas) - 1:
        raise ValueError(f"the schedule has {len(schedule)} solvers for {len(sigmas) - 1} steps")
    rate = eps if callable(eps) else (lambda s, e=float(eps): e)
    noise = PerSampleNoise(seeds, shape, device)
    ctx = StepContext(denoise, noise, rate, keep_predictions=hallucination_steps)
    x = (float(sigmas[0]) * noise()).to(dtype) if x_init is None else x_init.to(device=device, dtype=dtype)
    for i, solver in enumerate(schedule):
        x = solver.step(ctx, x, float(sigmas[i]), float(sigmas[i + 1]))
    return SampleResult(x, hallucination_score(ctx.predictions), ctx.nfe)


def keep_least_hallucinated(result: SampleResult, fraction: float) -> torch.Tensor:
    """Indices of the ``fraction`` of samples with the lowest hallucination score, ascending."""
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    keep = max(1, round(fraction * len(result.hallucination)))
    return torch.argsort(result.hallucination)[:keep]
