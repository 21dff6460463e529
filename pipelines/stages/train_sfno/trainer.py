"""The ``train-sfno`` trainer: one seed's SFNO, filled into the training skeleton.

Workers train the stepper on standardised windows with the area-weighted rollout loss
(``swarmcast.ops.sfno.training``); after each epoch rank 0 validates on held-out windows (model,
persistence, climatology at one step and at the validation lead). The export writes the model
checkpoint folder with the per-channel validation RMSE that bred vectors scale to, and the
baselines (ARCHITECTURE.md, "Checkpoints and training").
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from swarmcast.kernels.sphere import quadrature_weights
from swarmcast.ops.checkpoint import save_model, store_metadata_hash
from swarmcast.ops.data.cf import portable_path
from swarmcast.ops.data.channels import physical_lower_bound
from swarmcast.ops.data.readers import open_climate
from swarmcast.ops.data.windows import read_windows
from swarmcast.ops.optim import OptimConfig, make_optimizer
from swarmcast.ops.perturbations import BredVector, Member
from swarmcast.ops.perturbations.growth import GrowthCheck, check_growth
from swarmcast.ops.sfno.model import SFNOStepper, increment_scale
from swarmcast.ops.sfno.training import NormalizedStep, train_step, validate
from swarmcast.ops.storage import Location
from swarmcast.pipelines.stages.train_sfno.plan import SFNOTrainingPlan
from swarmcast.pipelines.train.skeleton import Export, Trainer


def build_stepper(plan: SFNOTrainingPlan, seed: int) -> SFNOStepper:
    """The seeded, untrained stepper (identical weights for the same seed on every rank)."""
    mean, std = plan.normalization.arrays(plan.channels)
    torch.manual_seed(seed)  # initial weights depend on the seed only, never on the rank
    return SFNOStepper(plan.model, mean.tolist(), std.tolist(), increment_scale(plan.normalization, plan.channels))


def _val_windows(plan: SFNOTrainingPlan) -> np.ndarray:
    ds = open_climate(plan.store, plan.channels)
    return read_windows(ds, plan.val_starts, plan.val_spec, plan.normalization)


def _summarise(val: dict, channels: tuple[str, ...]) -> dict:
    """``{"model_rmse_1step": {channel: rmse}, "persistence_rmse_8step": ...}`` from ``validate``."""
    out = {}
    for kind, by_lead in val.items():
        for lead, rmse in by_lead.items():
            key = f"{kind}_rmse_{'1step' if lead == 1 else f'{lead}step'}"
            out[key] = {c: float(r) for c, r in zip(channels, rmse, strict=True)}
    return out


def perturbation_check(
    stepper: SFNOStepper, windows: np.ndarray, plan: SFNOTrainingPlan, rmse: dict, seed: int, step_hours: float
) -> GrowthCheck:
    """``check_growth`` of a trained stepper with HENS's bred vectors (0.35 x its 48 h RMSE, seeded
    on the first channel, 3 cycles, fewer when the validation windows are shorter) on the first two
    validation windows: breeding on their first cycles + 1 states, then the validation lead from the
    last of them (``swarmcast.ops.perturbations.growth``)."""
    cycles = max(1, min(3, windows.shape[1] - 1))  # a window holds lead_steps + 1 >= 2 states
    mean, std = plan.normalization.arrays(plan.channels)
    shape = (1, 1, -1, 1, 1)
    states = torch.as_tensor(windows[:2, : cycles + 1]) * torch.as_tensor(std).reshape(shape).float()
    states = states + torch.as_tensor(mean).reshape(shape).float()
    bred = BredVector(
        [0.35 * rmse[c] for c in plan.channels], [i == 0 for i in range(len(plan.channels))], cycles=cycles
    )
    members = [Member(0, 0, seed), *[Member(k, sign, seed * 1000 + k) for k in (1, 2) for sign in (1, -1)]]
    return check_growth(
        stepper,
        states,
        bred,
        members,
        plan.lead_steps,
        step_hours=step_hours,
        channels=plan.channels,
        rmse=rmse,
        mean=mean.tolist(),
        std=std.tolist(),
        lower_bound=physical_lower_bound,
    )


class SFNOTrainer(Trainer):
    """One seed of ``train-sfno`` (``config``: the stage's ``TrainSFNOConfig``)."""

    def __init__(self, config: Any, plan: SFNOTrainingPlan, seed: int) -> None:
        self.config, self.plan, self.seed = config, plan, seed
        self.run_name = f"seed-{seed}"
        self.scaling = config.scaling
        self.epochs = config.train.epochs
        self.batch_size = config.train.batch_size
        self.shuffle_buffer = config.train.shuffle_buffer
        self.max_failures = config.max_failures
        self.n_train = plan.n_train
        self.window_spec = plan.train_spec
        t = config.train
        self.optim = OptimConfig(lr=t.lr, weight_decay=t.weight_decay, grad_clip=t.grad_clip)

    def build(self) -> SFNOStepper:
        return build_stepper(self.plan, self.seed)

    def optimizer(
        self, model: torch.nn.Module, total_steps: int
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        return make_optimizer(model, replace(self.optim, total_steps=total_steps))

    def dataset(self) -> Any:
        from swarmcast.pipelines.data.climate_windows import read_climate_windows

        ds = read_climate_windows(
            self.plan.store,
            self.plan.train_spec,
            normalization=self.plan.normalization,
            splits=self.scaling.workers,
        )
        return ds.randomize_block_order()

    def setup(self, model: torch.nn.Module, device: torch.device, rank: int, state: dict[str, Any]) -> None:
        import ray.train.torch

        self.stepper = model
        self.step = ray.train.torch.prepare_model(NormalizedStep(model))  # DDP when workers > 1
        self.lat_weights = quadrature_weights(self.plan.nlat).to(device)
        self.val = _val_windows(self.plan) if rank == 0 else None

    def train_batch(
        self,
        batch: dict[str, torch.Tensor],
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        step: int,
        epoch: int,
    ) -> tuple[float, int]:
        x, t = batch["x"], self.config.train
        loss = train_step(
            self.step,
            x,
            self.lat_weights,
            optimizer,
            scheduler,
            self.optim,
            t.rollout_steps,
            t.input_noise,
            t.spectral_weight,
        )
        return loss, len(x)

    def epoch_metrics(
        self, losses: list[float], items: int, scheduler: torch.optim.lr_scheduler.LRScheduler
    ) -> dict[str, Any]:
        return {"lr": scheduler.get_last_lr()[0], "batches": len(losses), "windows": items}

    def validate(self, model: torch.nn.Module) -> dict[str, Any]:
        scores = validate(self.stepper, self.val, self.lat_weights, [1, self.plan.lead_steps])
        return _summarise(scores, self.plan.channels)

    def epoch_line(self, metrics: dict[str, Any]) -> str:
        return (
            f"[seed {self.seed}] epoch {metrics['epoch']}/{self.epochs} loss {metrics['train_loss']:.4f} "
            f"({metrics['seconds']:.1f} s)"
        )

    def export(self, model: torch.nn.Module, state: dict[str, Any]) -> Export:
        plan, config = self.plan, self.config
        windows = _val_windows(plan)
        scores = validate(model, windows, quadrature_weights(plan.nlat), [1, plan.lead_steps])
        lead = plan.lead_steps
        rmse_at_lead = {c: float(v) for c, v in zip(plan.channels, scores["model"][lead], strict=True)}
        check = perturbation_check(model, windows, plan, rmse_at_lead, self.seed, config.step_hours)
        if not check.passed:  # kept (a deterministic forecast may still be good), but said
            print(f"[seed {self.seed}] perturbation check failed: " + "; ".join(check.problems), flush=True)
        meta = {
            "channels": list(plan.channels),
            "grid": {"type": "equiangular", "nlat": plan.nlat, "nlon": plan.nlon},
            "time_step_hours": config.step_hours,
            "normalization": plan.normalization.to_attr(),
            "data": {
                "store": portable_path(self.config.data),  # as the pipeline names it: no machine path
                "metadata_sha256": store_metadata_hash(plan.store),
                "validation": [str(plan.val_start), str(plan.val_end)],
                "validation_windows": len(plan.val_starts),
            },
            "validation_rmse": {
                f"{config.validation.lead_hours:g}h": rmse_at_lead,
                f"{config.step_hours:g}h": {
                    c: float(v) for c, v in zip(plan.channels, scores["model"][1], strict=True)
                },
            },
            "validation_lead_hours": config.validation.lead_hours,
            "perturbation_check": check.to_json(),
            "baselines": _summarise({k: v for k, v in scores.items() if k != "model"}, plan.channels),
            "training": {
                "final_train_loss": state["history"][-1]["train_loss"] if state["history"] else None,
                "workers": config.scaling.workers,
            },
        }
        return Export(meta, rmse_at_lead)

    def save(self, folder: Location, model: torch.nn.Module, meta: dict[str, Any], extra_files: dict[str, str]) -> None:
        save_model(folder, model, meta, extra_files=extra_files)


__all__ = ["SFNOTrainer", "build_stepper"]
