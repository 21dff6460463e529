"""Spatially correlated Gaussian noise on the sphere (SPPT-style, length scale ~500 km)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from swarmcast.kernels.random_fields import correlated_field
from swarmcast.ops.perturbations.base import Member, Step, apply_signed, member_generator


def member_fields(
    members: Sequence[Member], channels: int, nlat: int, nlon: int, length_scale_m: float
) -> torch.Tensor:
    """Unit-variance correlated fields (members, channels, nlat, nlon), one stream per member."""
    return torch.stack([correlated_field(member_generator(m), channels, nlat, nlon, length_scale_m) for m in members])


class CorrelatedNoise:
    """x0 + sign * amplitude * (unit-variance correlated field); ``amplitude`` (channels,)."""

    history_steps = 0

    def __init__(
        self, amplitude: Sequence[float], length_scale_m: float = 5.0e5, nonnegative: Sequence[bool] | None = None
    ) -> None:
        self.amplitude = torch.as_tensor(amplitude, dtype=torch.float32)
        self.length_scale_m = length_scale_m
        self.nonnegative = None if nonnegative is None else torch.as_tensor(nonnegative, dtype=torch.bool)

    def __call__(self, history: torch.Tensor, members: Sequence[Member], step: Step | None = None) -> torch.Tensor:
        x0 = history[-1]
        c, nlat, nlon = x0.shape
        fields = member_fields(members, c, nlat, nlon, self.length_scale_m).to(x0)
        return apply_signed(x0, fields * self.amplitude.to(x0).reshape(1, -1, 1, 1), members, self.nonnegative)
