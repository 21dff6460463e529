"""The unperturbed control: every member starts from the analysis itself."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from swarmcast.ops.perturbations.base import Member, Step


class Control:
    """No perturbation (HENS runs one control member per checkpoint)."""

    history_steps = 0

    def __call__(self, history: torch.Tensor, members: Sequence[Member], step: Step | None = None) -> torch.Tensor:
        return history[-1].unsqueeze(0).expand(len(members), *history.shape[1:]).clone()
