"""Euler step of the probability-flow ODE: x' = x + (s' - s) (x - D(x; s)) / s. One NFE."""

from __future__ import annotations

import torch

from swarmcast.ops.samplers.base import StepContext, first_prediction


class Euler:
    name = "euler"

    def step(self, ctx: StepContext, x: torch.Tensor, s: float, s_next: float) -> torch.Tensor:
        d = first_prediction(ctx, x, s)
        return x + (s_next - s) * (x - d) / s

    def nfe(self, final: bool) -> int:
        return 1
