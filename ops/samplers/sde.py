"""Euler–Maruyama step of the reverse SDE with tunable Langevin noise eps(s) (Karras et al. eq. 6).

With beta = eps / s in the s-parameterisation, a step from s down to s' (|ds| = s - s') is

    x' = x + (1 + eps) (D(x; s) - x) |ds| / s + sqrt(2 eps s |ds|) z,

so eps = 0 is exactly the Euler step of the probability-flow ODE, and larger eps injects fresh
noise while pulling harder towards the data. The final step to s = 0 is the plain denoise.
Noise comes from the per-sample generators. One NFE per step.
"""

from __future__ import annotations

import math

import torch

from swarmcast.ops.samplers.base import StepContext, first_prediction


class EulerMaruyamaSDE:
    name = "sde"

    def step(self, ctx: StepContext, x: torch.Tensor, s: float, s_next: float) -> torch.Tensor:
        d = first_prediction(ctx, x, s)
        if s_next == 0:
            return d
        ds = s - s_next
        eps = float(ctx.eps(s))
        x_next = x + (1 + eps) * (d - x) * ds / s
        if eps > 0:
            x_next = x_next + math.sqrt(2 * eps * s * ds) * ctx.noise().to(x.dtype)
        return x_next

    def nfe(self, final: bool) -> int:
        return 1
