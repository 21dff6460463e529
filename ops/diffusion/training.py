"""Training and sampling a ``DiffusionModel`` in plain torch (Ray Train only orchestrates this).

A checkpoint folder holds ``weights.safetensors`` (denoiser and EMA) and ``checkpoint.json``
in format ``swarmcast-diffusion/1``; the training state (optimizer, scheduler, step,
curriculum) uses the same safetensors/JSON code as the SFNO trainer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from swarmcast.kernels.diffusion import sampling_sigmas
from swarmcast.ops.checkpoint import DIFFUSION_FORMAT, read_meta, save_model, verified_weights
from swarmcast.ops.diffusion.model import Curriculum, DenoisingLoss, DiffusionModel, DiffusionSpec, ema_decay
from swarmcast.ops.optim import OptimConfig, autocast_for
from swarmcast.ops.samplers import SampleResult, sample, solver_schedule, steps_for_nfe

FORMAT = DIFFUSION_FORMAT


def save_diffusion(
    folder: Path, model: DiffusionModel, meta: dict[str, Any], extra: dict[str, str] | None = None
) -> Path:
    return save_model(folder, model, meta, extra, kind=FORMAT, model_json=model.spec.to_json())


def load_diffusion(folder: str | Path, device: str | torch.device = "cpu") -> tuple[DiffusionModel, dict]:
    """(model in eval mode, checkpoint.json); weights are checked against their sha256."""
    meta = read_meta(folder, FORMAT)
    model = DiffusionModel(DiffusionSpec(**meta["model"]))
    model.load_state_dict(verified_weights(folder, meta))
    return model.to(device).eval(), meta


def diffusion_train_step(
    loss_fn: torch.nn.Module,
    model: DiffusionModel,
    x0: torch.Tensor,
    cond: torch.Tensor | None,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    cfg: OptimConfig,
    curriculum: Curriculum,
    generator: torch.Generator,
    step: int,
    ema_halflife_steps: float,
) -> float:
    """One optimiser step of the denoising loss (``loss_fn``: a ``DenoisingLoss``, maybe DDP), then EMA."""
    u = curriculum.draw(len(x0), generator).to(x0.device)
    z = torch.randn(x0.shape, generator=generator).to(x0.device)
    optimizer.zero_grad(set_to_none=True)
    with autocast_for(x0.device):
        loss = loss_fn(x0, cond, u, z)
    loss.backward()
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.denoiser.parameters(), cfg.grad_clip)
    optimizer.step()
    scheduler.step()
    model.update_ema(ema_decay(step, ema_halflife_steps))
    return float(loss.detach())


@torch.no_grad()
def validation_loss(model: DiffusionModel, x0: torch.Tensor, cond: torch.Tensor | None, levels: int = 8) -> float:
    """EMA denoiser's loss on held-out data at ``levels`` fixed noise quantiles with fixed noise."""
    loss_fn = DenoisingLoss(model.ema, model.spec)
    g = torch.Generator().manual_seed(0)
    total = 0.0
    for q in (torch.arange(levels, dtype=torch.float64) + 0.5) / levels:
        u = torch.full((len(x0),), float(q))
        z = torch.randn(x0.shape, generator=g).to(x0.device)
        total += float(loss_fn(x0, cond, u.to(x0.device), z))
    return total / levels


@torch.no_grad()
def generate(
    model: DiffusionModel,
    shape: tuple[int, ...],
    seeds: Sequence[int],
    *,
    solver: str | Sequence[str] = "dpm++2m",
    nfe: int = 20,
    spacing: str = "log-snr",
    cond: torch.Tensor | None = None,
    eps: float = 0.0,
    hallucination_steps: int = 5,
) -> SampleResult:
    """Samples from the EMA denoiser, one per seed (``cond``: (B, C_cond, H, W) or None)."""
    path = model.spec.noise_path()
    names = solver if isinstance(solver, str) else list(solver)
    steps = steps_for_nfe(names, nfe) if isinstance(names, str) else len(names)
    sigmas = sampling_sigmas(spacing, steps, path.sigma_min, path.sigma_max)
    device = next(model.parameters()).device

    def denoise(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return model.ema(x, s.to(x.dtype), cond)

    return sample(
        denoise,
        shape,
        seeds,
        sigmas,
        solver_schedule(names, steps),
        eps=eps,
        hallucination_steps=hallucination_steps,
        device=device,
    )
