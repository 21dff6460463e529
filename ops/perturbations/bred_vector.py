"""HENS bred vectors with hemispheric-centred rescaling.

Toth & Kalnay 1993/1997 (breeding); Mahesh et al. 2024, "Huge Ensembles Part I" (HENS recipe):

1. Seed noise: a correlated Gaussian field (HENS: length scale 500 km at 0.25 degrees; here
   ``length_scale_m``, None: chosen from the grid, ``swarmcast.kernels.random_fields``) times
   the per-channel target amplitude, on the seed channels only (HENS: z500), zero elsewhere.
2. ``cycles`` breeding cycles from t0 - cycles*dt: the control analysis x_i and the perturbed
   x_i + dx are each advanced one model step with the same checkpoint; dx becomes the
   difference, rescaled per channel to the target with the hemispheric-centred RMS
   (``swarmcast.kernels.hemispheric``). After the first cycle every channel carries
   perturbation, grown by the model's own dynamics.
3. Members: x0 + dx (sign +1) and x0 - dx (sign -1) share an index and seed (centred pairs);
   non-negative channels are clipped at zero.

The target per channel is ``amplitude_factor`` (0.35 in HENS) times the checkpoint's 48 h
validation RMSE; breeding with each checkpoint gives each its own vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from swarmcast.kernels.hemispheric import hemispheric_rescale
from swarmcast.kernels.sphere import equiangular_latitudes, quadrature_weights
from swarmcast.ops.perturbations.base import Member, Step, apply_signed
from swarmcast.ops.perturbations.correlated import member_fields


class BredVector:
    """Hemispheric-centred bred vectors (see the module docstring)."""

    def __init__(
        self,
        target_rms: Sequence[float],
        seed_channels: Sequence[bool],
        *,
        cycles: int = 3,
        length_scale_m: float | None = None,
        tropics_deg: float = 20.0,
        nonnegative: Sequence[bool] | None = None,
    ) -> None:
        if cycles < 1:
            raise ValueError(f"bred vectors need cycles >= 1, got {cycles}")
        if len(seed_channels) != len(target_rms):
            raise ValueError("seed_channels and target_rms need one entry per channel")
        if not any(seed_channels):
            raise ValueError("at least one seed channel must carry the initial noise")
        self.target = torch.as_tensor(target_rms, dtype=torch.float32)
        self.seed_mask = torch.as_tensor(seed_channels, dtype=torch.bool)
        self.history_steps = cycles
        self.length_scale_m = length_scale_m
        self.tropics_deg = tropics_deg
        self.nonnegative = None if nonnegative is None else torch.as_tensor(nonnegative, dtype=torch.bool)

    def bred(self, history: torch.Tensor, members: Sequence[Member], step: Step) -> torch.Tensor:
        """The rescaled bred perturbations dx valid at t0, (members, channels, nlat, nlon)."""
        if history.shape[0] != self.history_steps + 1:
            raise ValueError(f"bred vectors need {self.history_steps + 1} history states, got {history.shape[0]}")
        _, c, nlat, nlon = history.shape
        lat = torch.as_tensor(equiangular_latitudes(nlat), dtype=history.dtype, device=history.device)
        w = quadrature_weights(nlat).to(history)
        target = self.target.to(history)
        seed_scale = torch.where(self.seed_mask.to(history.device), target, torch.zeros_like(target))
        dx = member_fields(members, c, nlat, nlon, self.length_scale_m).to(history) * seed_scale.reshape(1, -1, 1, 1)
        for i in range(self.history_steps):
            # the control and the perturbed states in one model call: one batch per cycle, as
            # the forecast steps are (each member's result does not depend on its batch)
            state = history[i].unsqueeze(0)
            stepped = step(torch.cat([state, state + dx]))
            dx = hemispheric_rescale(stepped[1:] - stepped[:1], target, lat, w, self.tropics_deg)
        return dx

    def __call__(self, history: torch.Tensor, members: Sequence[Member], step: Step | None = None) -> torch.Tensor:
        if step is None:
            raise ValueError("bred vectors need the model step")
        breeding = [m for m in members if m.sign != 0]
        seeds: dict[int, int] = {}
        for m in breeding:
            if seeds.setdefault(m.index, m.seed) != m.seed:
                raise ValueError(f"members of pair {m.index} must share one seed, got {seeds[m.index]} and {m.seed}")
        delta = torch.zeros((len(members), *history.shape[1:]), dtype=history.dtype, device=history.device)
        if breeding:
            # breed once per distinct index; +/- members of a pair share it
            unique = list({m.index: m for m in breeding}.values())
            bred = self.bred(history, unique, step)
            row = {m.index: i for i, m in enumerate(unique)}
            picks = np.array([row.get(m.index, 0) for m in members])
            delta = bred[torch.as_tensor(picks, device=bred.device)]
            delta[torch.as_tensor([m.sign == 0 for m in members], device=delta.device)] = 0
        return apply_signed(history[-1], delta, members, self.nonnegative)
