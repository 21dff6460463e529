"""The perturbation interface shared by every kind, and per-member random streams.

A perturbation turns the analysis at the initial time (and, for bred vectors, the states
before it) into one initial state per ensemble member. Members are described by ``Member``:
the perturbation index (members sharing it are a +/- pair), the sign (+1, -1, or 0 for the
unperturbed control) and the seed of that index. Every random draw of a member comes from a
generator seeded by its own seed only, so a member regenerated alone equals the member
generated in any batch: the property that makes work units resumable and members shardable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

Step = Callable[[torch.Tensor], torch.Tensor]
"""One model step on physical states (batch, channels, nlat, nlon) -> same shape."""


@dataclass(frozen=True)
class Member:
    """One ensemble member's perturbation: index, sign (+1, -1, 0 = control) and seed."""

    index: int
    sign: int
    seed: int

    def __post_init__(self) -> None:
        if self.sign not in (-1, 0, 1):
            raise ValueError(f"sign must be +1, -1 or 0, got {self.sign}")


def member_generator(member: Member) -> torch.Generator:
    """The CPU generator of a member's random draws (the same for both signs of a pair)."""
    return torch.Generator().manual_seed(member.seed % (2**63))


@runtime_checkable
class Perturbation(Protocol):
    """Makes initial states for members from the analysis history."""

    history_steps: int
    """Model steps of history before the initial time the perturbation needs (0: none)."""

    def __call__(self, history: torch.Tensor, members: Sequence[Member], step: Step | None = None) -> torch.Tensor:
        """Initial states (len(members), channels, nlat, nlon) in physical units.

        ``history``: (history_steps + 1, channels, nlat, nlon), the analysis at
        t0 - history_steps * dt, ..., t0 (last). ``step`` is the model, for bred vectors.
        """
        ...


def apply_signed(
    x0: torch.Tensor, delta: torch.Tensor, members: Sequence[Member], nonnegative: torch.Tensor | None
) -> torch.Tensor:
    """x0 + sign * delta per member, clipping channels flagged in ``nonnegative`` at zero.

    ``delta``: (members, channels, nlat, nlon); ``nonnegative``: bool (channels,) or None.
    """
    signs = torch.tensor([m.sign for m in members], dtype=x0.dtype, device=x0.device).reshape(-1, 1, 1, 1)
    out = x0.unsqueeze(0) + signs * delta
    if nonnegative is not None and bool(nonnegative.any()):
        mask = nonnegative.to(x0.device).reshape(1, -1, 1, 1)
        out = torch.where(mask, out.clamp_min(0), out)
    return out
