"""Optimisation pieces every trainer shares: AdamW with a cosine schedule, and bf16 autocast on GPUs.

The SFNO loop (``swarmcast.ops.sfno.training``) and the diffusion loop
(``swarmcast.ops.diffusion.training``) both build their optimiser here, so a training state
saved by either has the same optimizer and scheduler layout.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser settings (AdamW with a cosine learning-rate schedule)."""

    lr: float = 2e-3
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    total_steps: int = 1000
    """Optimiser steps over the whole run: the cosine schedule's period."""


def make_optimizer(
    model: torch.nn.Module, cfg: OptimConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.total_steps))
    return opt, sched


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, plain float32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
