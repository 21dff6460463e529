"""The ``train-diffusion`` trainer: a diffusion model filled into the training skeleton.

Every worker builds the model from the training seed (identical initial weights), restores the
EMA, optimiser and curriculum when the run resumes, and takes one denoising-loss step per batch
with noise drawn from (seed, rank, epoch), so a resumed epoch repeats exactly. After each epoch
rank 0 computes the EMA's validation loss and advances the curriculum on a plateau.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from swarmcast.ops.diffusion.model import Curriculum, DenoisingLoss, DiffusionModel
from swarmcast.ops.diffusion.training import diffusion_train_step, save_diffusion, validation_loss
from swarmcast.ops.optim import OptimConfig, make_optimizer
from swarmcast.ops.storage import Location
from swarmcast.pipelines.stages.train_diffusion.plan import DiffusionTrainingPlan
from swarmcast.pipelines.train.skeleton import Export, Trainer


def split_batch(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(target, condition): images are unconditional; climate windows are (x_t, x_{t+dt})."""
    if "image" in batch:
        return batch["image"], None
    return batch["x"][:, 1], batch["x"][:, 0]


class DiffusionTrainer(Trainer):
    """The one model of ``train-diffusion`` (``config``: the stage's ``TrainDiffusionConfig``)."""

    def __init__(self, config: Any, plan: DiffusionTrainingPlan) -> None:
        t = config.train
        self.config, self.plan, self.seed = config, plan, plan.seed
        self.run_name = "run"
        self.scaling = config.scaling
        self.epochs, self.batch_size, self.shuffle_buffer = t.epochs, t.batch_size, 512
        self.max_failures = config.max_failures
        self.n_train = plan.n_train
        self.window_spec = None if plan.store is None else plan.train_spec
        self.optim = OptimConfig(lr=t.lr, grad_clip=t.grad_clip)

    def build(self) -> DiffusionModel:
        torch.manual_seed(self.seed)  # initial weights depend on the seed only, never on the rank
        return DiffusionModel(self.plan.spec)

    def optimizer(
        self, model: torch.nn.Module, total_steps: int
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        assert isinstance(model, DiffusionModel)
        return make_optimizer(model.denoiser, replace(self.optim, total_steps=total_steps))

    def dataset(self) -> Any:
        if self.plan.store is None:
            from swarmcast.pipelines.data.images import read_images

            ds, _ = read_images(self.plan.source, items=self.plan.train_items)
            return ds.select_columns(["image"]).randomize_block_order()
        from swarmcast.pipelines.data.climate_windows import read_climate_windows

        return read_climate_windows(
            self.plan.store,
            self.plan.train_spec,
            normalization=self.plan.normalization,
            splits=self.scaling.workers,
        )

    def setup(self, model: torch.nn.Module, device: torch.device, rank: int, state: dict[str, Any]) -> None:
        import ray.train.torch

        assert isinstance(model, DiffusionModel)
        self.model, self.rank = model, rank
        c = self.config.train.curriculum
        self.curriculum = (
            Curriculum.from_json(state["curriculum"]) if "curriculum" in state else Curriculum(c.clusters, c.patience)
        )
        self.loss_fn = ray.train.torch.prepare_model(DenoisingLoss(model.denoiser, self.plan.spec))  # DDP if > 1
        self.val_x, self.val_cond = None, None
        if rank == 0:
            v = torch.as_tensor(np.asarray(self.plan.validation, dtype=np.float32), device=device)
            self.val_x, self.val_cond = (v, None) if self.plan.cond_channels == 0 else (v[:, 1], v[:, 0])

    def start_epoch(self, epoch: int) -> None:
        # noise draws depend on (seed, rank, epoch): a resumed epoch repeats exactly
        self.generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.rank * 7919 + epoch)

    def train_batch(
        self,
        batch: dict[str, torch.Tensor],
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        step: int,
        epoch: int,
    ) -> tuple[float, int]:
        x0, cond = split_batch(batch)
        loss = diffusion_train_step(
            self.loss_fn,
            self.model,
            x0,
            cond,
            optimizer,
            scheduler,
            self.optim,
            self.curriculum,
            self.generator,
            step,
            self.config.train.ema_halflife_steps,
        )
        return loss, len(x0)

    def epoch_metrics(
        self, losses: list[float], items: int, scheduler: torch.optim.lr_scheduler.LRScheduler
    ) -> dict[str, Any]:
        return {"curriculum_stage": self.curriculum.stage}

    def validate(self, model: torch.nn.Module) -> dict[str, Any]:
        model.eval()
        val_loss = validation_loss(self.model, self.val_x, self.val_cond)
        return {"val_loss": val_loss, "curriculum_advanced": self.curriculum.update(val_loss)}

    def save_loop_state(self, state: dict[str, Any]) -> None:
        state["curriculum"] = self.curriculum.to_json()

    def epoch_line(self, metrics: dict[str, Any]) -> str:
        return (
            f"[diffusion] epoch {metrics['epoch']}/{self.epochs} loss {metrics['train_loss']:.4f} "
            f"val {metrics['val_loss']:.4f} ({metrics['seconds']:.1f} s)"
        )

    def export(self, model: torch.nn.Module, state: dict[str, Any]) -> Export:
        plan = self.plan
        last = state["history"][-1] if state["history"] else {}
        climate = plan.store is not None
        meta = {
            "data": self.config.data.model_dump(mode="json"),
            "channels": list(getattr(plan, "channels", ())),
            "normalization": plan.normalization.to_attr() if climate else None,
            "time_step_hours": plan.step / np.timedelta64(1, "h") if climate else None,
            "training": {"final_val_loss": last.get("val_loss"), "curriculum": state.get("curriculum")},
        }
        return Export(meta, {"epochs": state["epoch"], "val_loss": last.get("val_loss")})

    def save(self, folder: Location, model: torch.nn.Module, meta: dict[str, Any], extra_files: dict[str, str]) -> None:
        assert isinstance(model, DiffusionModel)
        save_diffusion(folder, model, meta, extra_files)


__all__ = ["DiffusionTrainer", "split_batch"]
