"""The SFNO training loop in plain torch: one optimiser step and one validation pass.

Batches are standardised windows ``(batch, k + 1, channels, nlat, nlon)`` as the Ray Data
datasource yields them. The loss is the area-weighted MSE on the sphere (grid quadrature
weights), averaged over ``rollout_steps`` autoregressive steps: 1 is plain one-step training,
more is multi-step fine-tuning. Ray Train only orchestrates this; a notebook can call it too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from swarmcast.kernels.losses import area_weighted_mse, area_weighted_sse_per_channel, spectral_error_ratio
from swarmcast.ops.optim import OptimConfig, autocast_for
from swarmcast.ops.sfno.model import SFNOStepper


class NormalizedStep(torch.nn.Module):
    """``forward(z) = stepper.step_normalized(z)``: the module DDP wraps for training.

    Wrapping this (not the stepper, whose ``forward`` works in physical units) keeps the
    stepper's parameters and ``state_dict`` keys unchanged however many workers train it.
    """

    def __init__(self, stepper: SFNOStepper) -> None:
        super().__init__()
        self.stepper = stepper

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.stepper.step_normalized(z)


def rollout_loss(
    step: Callable[[torch.Tensor], torch.Tensor],
    windows: torch.Tensor,
    lat_weights: torch.Tensor,
    rollout_steps: int,
    input_noise: float = 0.0,
    spectral_weight: float = 0.0,
) -> torch.Tensor:
    """Mean area-weighted MSE over ``rollout_steps`` autoregressive steps from ``windows[:, 0]``.

    ``step`` maps a standardised state to the next (a ``NormalizedStep``, maybe DDP-wrapped).
    ``input_noise``: std of white noise added to the initial state only (standardised units);
    the targets stay clean, so the model is trained to pull noisy states back to the data.
    ``spectral_weight``: adds that times ``spectral_error_ratio`` of each step (the error's
    power per degree relative to the true step's), which keeps small scales as smooth as the
    data's.
    """
    if windows.shape[1] < rollout_steps + 1:
        raise ValueError(f"windows hold {windows.shape[1] - 1} steps, rollout needs {rollout_steps}")
    z = windows[:, 0]
    if input_noise > 0:
        z = z + input_noise * torch.randn_like(z)
    loss = windows.new_zeros((), dtype=torch.float32)
    for s in range(1, rollout_steps + 1):
        z = step(z)
        loss = loss + area_weighted_mse(z, windows[:, s], lat_weights)
        if spectral_weight > 0:  # each degree's error relative to the data's own step there
            loss = loss + spectral_weight * spectral_error_ratio(z, windows[:, s], windows[:, s - 1])
    return loss / rollout_steps


def train_step(
    step: torch.nn.Module,
    windows: torch.Tensor,
    lat_weights: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    cfg: OptimConfig,
    rollout_steps: int,
    input_noise: float = 0.0,
    spectral_weight: float = 0.0,
) -> float:
    """One optimiser step of ``step`` (a ``NormalizedStep``, maybe DDP-wrapped); returns the loss."""
    optimizer.zero_grad(set_to_none=True)
    with autocast_for(windows.device):
        loss = rollout_loss(step, windows, lat_weights, rollout_steps, input_noise, spectral_weight)
    loss.backward()
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(step.parameters(), cfg.grad_clip)
    optimizer.step()
    scheduler.step()
    return float(loss.detach())


@torch.no_grad()
def validate(
    stepper: SFNOStepper,
    windows: np.ndarray,
    lat_weights: torch.Tensor,
    leads: Sequence[int],
    *,
    batch_size: int = 32,
) -> dict[str, dict[int, np.ndarray]]:
    """Per-channel RMSE in physical units at each lead (model steps) for the model and baselines.

    ``windows``: standardised (n, K + 1, channels, nlat, nlon) with K >= max(leads). Returns
    ``{"model"|"persistence"|"climatology": {lead: rmse (channels,)}}``; persistence predicts
    the initial state, climatology the data mean (zero in standardised units).
    """
    device = next(stepper.parameters()).device
    std = stepper.std.reshape(-1).double().cpu().numpy()
    kmax = max(leads)
    sse = {k: {lead: 0.0 for lead in leads} for k in ("model", "persistence", "climatology")}
    n = 0
    stepper.eval()
    for lo in range(0, len(windows), batch_size):
        w = torch.as_tensor(windows[lo : lo + batch_size], device=device)
        with autocast_for(device):
            states = stepper.rollout_normalized(w[:, 0], kmax).float()
        for lead in leads:
            truth = w[:, lead]
            sse["model"][lead] += area_weighted_sse_per_channel(states[lead - 1], truth, lat_weights).cpu().numpy()
            sse["persistence"][lead] += area_weighted_sse_per_channel(w[:, 0], truth, lat_weights).cpu().numpy()
            sse["climatology"][lead] += (
                area_weighted_sse_per_channel(torch.zeros_like(truth), truth, lat_weights).cpu().numpy()
            )
        n += len(w)
    return {k: {lead: np.sqrt(v / n) * std for lead, v in by_lead.items()} for k, by_lead in sse.items()}
