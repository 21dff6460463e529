"""Run one work unit: perturb the analysis, then step every member of the block to the end.

Saved leads are yielded as they are produced, one at a time, so memory is the member block
(plus the store writer's shard buffer), never members x lead times. Lead 0 is the perturbed
initial state. ``output_every`` keeps every k-th model step.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from swarmcast.ops.perturbations.base import Member, Perturbation
from swarmcast.ops.perturbations.stochastic import StochasticTendencies


def saved_steps(n_steps: int, output_every: int) -> list[int]:
    """Model steps whose states are stored: 0, k, 2k, ... <= n_steps."""
    if output_every < 1 or n_steps < 0:
        raise ValueError("output_every must be >= 1 and n_steps >= 0")
    return list(range(0, n_steps + 1, output_every))


@torch.no_grad()
def run_unit(
    model: torch.nn.Module,
    perturbation: Perturbation,
    history: torch.Tensor,
    members: Sequence[Member],
    n_steps: int,
    *,
    output_every: int = 1,
    keep_channels: Sequence[int] | None = None,
    tendencies: StochasticTendencies | None = None,
) -> Iterator[np.ndarray]:
    """Yield float32 (members, 1, kept channels, nlat, nlon) for each saved step, in order.

    ``model``: one model step on physical states, an ``SFNOStepper`` or one
    wrapped in ``swarmcast.ops.ensemble.batching.MicroBatched``.

    ``history``: physical states (perturbation.history_steps + 1, channels, nlat, nlon) ending
    at the initial time, on the model's device. ``tendencies``: SPPT-style model-error noise
    on every forecast step (not on breeding); None: deterministic steps.
    """
    model.eval()
    keep = list(range(history.shape[1])) if keep_channels is None else list(keep_channels)
    saved = set(saved_steps(n_steps, output_every))
    x = perturbation(history, members, model)
    step = model if tendencies is None else tendencies.stepper(model, members, x.shape[-2], x.shape[-1])
    for s in range(n_steps + 1):
        if s:
            x = step(x)
        if s in saved:
            yield x[:, None, keep].float().cpu().numpy()
