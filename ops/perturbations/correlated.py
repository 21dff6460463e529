"""Spatially correlated Gaussian noise on the sphere (SPPT-style, length scale ~500 km).

The correlation length is checked against the grid the fields are drawn on: below two grid
spacings it is refused, and None picks one from the grid (``swarmcast.kernels.random_fields``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from swarmcast.kernels.random_fields import auto_length_scale_m, check_length_scale, correlated_field
from swarmcast.ops.perturbations.base import Member, Step, apply_signed, member_generator


def resolved_length_scale(length_scale_m: float | None, nlat: int, nlon: int) -> float:
    """The correlation length (m) to draw with on this grid: ``auto_length_scale_m`` for None,
    otherwise the given one once ``check_length_scale`` accepts it (``ValueError`` if not)."""
    if length_scale_m is None:
        return auto_length_scale_m(nlat, nlon)
    check_length_scale(length_scale_m, nlat, nlon)
    return length_scale_m


def member_fields(
    members: Sequence[Member], channels: int, nlat: int, nlon: int, length_scale_m: float | None
) -> torch.Tensor:
    """Unit-variance correlated fields (members, channels, nlat, nlon), one stream per member;
    ``length_scale_m`` None: chosen from the grid (``resolved_length_scale``)."""
    scale = resolved_length_scale(length_scale_m, nlat, nlon)
    return torch.stack([correlated_field(member_generator(m), channels, nlat, nlon, scale) for m in members])


class CorrelatedNoise:
    """x0 + sign * amplitude * (unit-variance correlated field); ``amplitude`` (channels,) in
    physical units; ``length_scale_m`` None: chosen from the grid."""

    history_steps = 0

    def __init__(
        self, amplitude: Sequence[float], length_scale_m: float | None = None, nonnegative: Sequence[bool] | None = None
    ) -> None:
        self.amplitude = torch.as_tensor(amplitude, dtype=torch.float32)
        self.length_scale_m = length_scale_m
        self.nonnegative = None if nonnegative is None else torch.as_tensor(nonnegative, dtype=torch.bool)

    def __call__(self, history: torch.Tensor, members: Sequence[Member], step: Step | None = None) -> torch.Tensor:
        x0 = history[-1]
        c, nlat, nlon = x0.shape
        fields = member_fields(members, c, nlat, nlon, self.length_scale_m).to(x0)
        return apply_signed(x0, fields * self.amplitude.to(x0).reshape(1, -1, 1, 1), members, self.nonnegative)
