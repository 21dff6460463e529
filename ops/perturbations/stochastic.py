"""Stochastic tendencies for an ML stepper: SPPT's model-error term, member by member.

Initial-condition perturbations give an ensemble the spread of its initial uncertainty; they
say nothing about the model's own error, which grows with every step. Measured on the demo's
SFNO checkpoints: bred perturbations hardly grow in 48 h while the error triples, so the
spread-skill ratio falls from ~1.5 at 12 h to ~0.65 at 48 h whatever the amplitude. Operational
ensembles represent model error with stochastically perturbed parametrisation tendencies
(SPPT; Buizza, Miller & Palmer 1999; Palmer et al. 2009): each step's tendency is multiplied
by (1 + r), with r a random pattern correlated in space (``length_scale_m``) and in time
(first-order autoregressive with time scale ``tau_steps``), standard deviation ``sigma``, the
same pattern for every channel, and 1 + r kept in [0, 2]. Here the "tendency" is the model's
whole increment over a step, x_{t+1} = x_t + (1 + r_t) (f(x_t) - x_t).

Each member's pattern comes from its own generator (seeded by its seed), so a member computed
alone equals the member computed in any block; the two members of a +/- pair use r and -r
(centred, as their initial perturbations are); the control (sign 0) stays deterministic.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence

import torch

from swarmcast.kernels.random_fields import correlated_field
from swarmcast.ops.perturbations.base import Member
from swarmcast.ops.perturbations.correlated import resolved_length_scale


def _generator(member: Member) -> torch.Generator:
    """The member's own stream for its tendency pattern (distinct from its initial noise)."""
    digest = hashlib.sha256(f"sppt|{member.seed}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


class StochasticTendencies:
    """Wraps a model step with SPPT-style multiplicative noise (module docstring).

    ``sigma``: std of r; ``tau_steps``: its e-folding time in model steps; ``length_scale_m``:
    its correlation length (None: chosen from the grid, as for the seed noise).
    """

    def __init__(self, sigma: float, tau_steps: float, length_scale_m: float | None = None) -> None:
        if sigma < 0 or tau_steps <= 0:
            raise ValueError(f"stochastic tendencies need sigma >= 0 and tau_steps > 0, got {sigma}, {tau_steps}")
        self.sigma, self.tau_steps, self.length_scale_m = sigma, tau_steps, length_scale_m

    @property
    def phi(self) -> float:
        """The AR(1) coefficient per step, exp(-1 / tau_steps)."""
        return math.exp(-1.0 / self.tau_steps)

    def stepper(
        self, model: Callable[[torch.Tensor], torch.Tensor], members: Sequence[Member], nlat: int, nlon: int
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """A step function for a batch of ``members`` (in order) on an (nlat, nlon) grid whose
        patterns evolve one step per call."""
        scale = resolved_length_scale(self.length_scale_m, nlat, nlon)
        gens = [_generator(m) for m in members]
        signs = torch.tensor([float(m.sign) for m in members]).reshape(-1, 1, 1, 1)
        phi, innovation = self.phi, math.sqrt(1 - self.phi**2)
        state: dict[str, torch.Tensor] = {}

        def draw() -> torch.Tensor:
            return torch.stack([correlated_field(g, 1, nlat, nlon, scale) for g in gens])  # (members, 1, nlat, nlon)

        def step(x: torch.Tensor) -> torch.Tensor:
            r = self.sigma * draw() if "r" not in state else phi * state["r"] + innovation * self.sigma * draw()
            state["r"] = r
            factor = (1 + (signs * r).clamp(-1, 1)).to(x)
            out = model(x)
            return x + factor * (out - x)

        return step


__all__ = ["StochasticTendencies"]
