"""DPM-Solver++(2M) (Lu et al. 2022), data-prediction multistep, in the variance-exploding frame.

With lambda = -log s and h = lambda' - lambda, the exact solution of the linear part gives
x' = (s'/s) x + (1 - s'/s) D_eff. The first step (no history) and the final step to s = 0
use D_eff = D(x; s) (first order, DDIM); otherwise the previous step's prediction gives the
second-order D_eff = (1 + 1/(2r)) D_i - 1/(2r) D_{i-1}, r = h_{i-1} / h_i. One NFE per step.
"""

from __future__ import annotations

import math

import torch

from swarmcast.ops.samplers.base import StepContext, first_prediction


class DPMSolverPP2M:
    name = "dpm++2m"

    def step(self, ctx: StepContext, x: torch.Tensor, s: float, s_next: float) -> torch.Tensor:
        previous = ctx.history[-1] if ctx.history else None
        d = first_prediction(ctx, x, s)
        if s_next == 0:
            return d
        d_eff = d
        if previous is not None and previous[0] > s:
            h = math.log(s / s_next)
            r = math.log(previous[0] / s) / h
            d_eff = (1 + 1 / (2 * r)) * d - (1 / (2 * r)) * previous[1]
        ratio = s_next / s
        return ratio * x + (1 - ratio) * d_eff

    def nfe(self, final: bool) -> int:
        return 1
