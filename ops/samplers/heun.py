"""Heun (2nd-order) step of the probability-flow ODE (Karras et al. 2022, Alg. 1, no churn).

An Euler predictor, then the trapezoidal corrector with the slope at the predicted point; the
final step to s = 0 is Euler only (the slope there is undefined). Two NFE per step.
"""

from __future__ import annotations

import torch

from swarmcast.ops.samplers.base import StepContext, first_prediction


class Heun:
    name = "heun"

    def step(self, ctx: StepContext, x: torch.Tensor, s: float, s_next: float) -> torch.Tensor:
        slope = (x - first_prediction(ctx, x, s)) / s
        x_pred = x + (s_next - s) * slope
        if s_next == 0:
            return x_pred
        slope_next = (x_pred - ctx.predict(x_pred, s_next)) / s_next
        return x + (s_next - s) * 0.5 * (slope + slope_next)

    def nfe(self, final: bool) -> int:
        return 1 if final else 2
