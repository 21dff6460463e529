"""White Gaussian noise: independent N(0, amplitude_c^2) at every grid point and channel."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from swarmcast.ops.perturbations.base import Member, Step, apply_signed, member_generator


class GaussianNoise:
    """x0 + sign * amplitude * N(0, 1); ``amplitude`` (channels,) in physical units."""

    history_steps = 0

    def __init__(self, amplitude: Sequence[float], nonnegative: Sequence[bool] | None = None) -> None:
        self.amplitude = torch.as_tensor(amplitude, dtype=torch.float32)
        self.nonnegative = None if nonnegative is None else torch.as_tensor(nonnegative, dtype=torch.bool)

    def __call__(self, history: torch.Tensor, members: Sequence[Member], step: Step | None = None) -> torch.Tensor:
        x0 = history[-1]
        noise = torch.stack([torch.randn(x0.shape, generator=member_generator(m)) for m in members])
        delta = noise.to(x0) * self.amplitude.to(x0).reshape(1, -1, 1, 1)
        return apply_signed(x0, delta, members, self.nonnegative)
