"""The training skeleton: one Ray Train run from fit to export, filled in by each stage's trainer.

``train-sfno`` and ``train-diffusion`` differ in their model, in how a batch becomes a loss, in
what validation measures and in what their checkpoint folder holds; everything else is done here,
the same way for both (ARCHITECTURE.md, "Checkpoints and training"):

* every worker builds the model from the seed (identical initial weights on every rank), puts
  it on its device, builds the optimiser and restores the latest training state when the run
  resumes (a dead worker, or a rerun of the stage);
* each epoch streams the worker's shard of the Ray Dataset with a local shuffle seeded by
  (seed, epoch), so a resumed epoch sees the same order;
* after the epoch rank 0 validates, prints one line and appends the epoch's metrics to the
  history; then rank 0 reports a training-state checkpoint (``run_state.report_state``);
* when ``fit`` returns, the driver loads the final state and the trainer exports it as a
  checkpoint folder, with the common provenance (seed, epochs, steps, resumes, stage config,
  swarmcast version) and ``metrics.jsonl`` (one line per epoch) added here.
"""

from __future__ import annotations

import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from swarmcast.ops import __version__
from swarmcast.ops.data.windows import WindowSpec
from swarmcast.ops.storage import Location
from swarmcast.pipelines.train.run_state import (
    fit_run,
    load_final_state,
    quiet_train_worker,
    report_state,
    restore_state,
)
from swarmcast.pipelines.train.settings import Scaling


@dataclass(frozen=True)
class Export:
    """What a trainer contributes to its checkpoint folder and to the stage's summary."""

    meta: dict[str, Any]
    """Trainer-specific ``checkpoint.json`` keys; a ``training`` dict is merged with the common one."""
    summary: Any
    """Returned to the stage (e.g. the validation RMSE per channel)."""
    extra_files: dict[str, str] = field(default_factory=dict)


class Trainer(ABC):
    """What differs between trainers. Built on the driver, pickled to every worker (each worker
    then changes only its own copy, in ``setup``), and used on the driver again to export."""

    run_name: str
    """Ray Train run name: rerunning a stage resumes the run of the same name."""
    seed: int
    """Training seed: initial weights, shuffle order and noise draws derive from it."""
    scaling: Scaling
    epochs: int
    batch_size: int
    """Items per optimiser step per worker."""
    shuffle_buffer: int
    """Local shuffle buffer of each worker (0: no shuffling)."""
    max_failures: int
    """Worker failures the run survives (Ray Train ``FailureConfig``)."""
    n_train: int
    """Training items per epoch over all workers (sizes the learning-rate schedule)."""

    @abstractmethod
    def build(self) -> torch.nn.Module:
        """The model whose state is checkpointed, with initial weights from the seed only."""

    @abstractmethod
    def optimizer(
        self, model: torch.nn.Module, total_steps: int
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        """Optimiser and schedule for ``model`` over ``total_steps`` optimiser steps."""

    @abstractmethod
    def dataset(self) -> Any:
        """The Ray Dataset of training items (on the driver)."""

    window_spec: WindowSpec | None = None
    """The windows of a climate dataset (``read_climate_windows``), None for datasets of items."""

    def batches(self, shard: Any, epoch: int, device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
        """The worker's torch batches of ``epoch`` from its ``shard`` of the dataset, shuffled in a
        local buffer seeded by (seed, epoch). A climate dataset's rows are runs of states, which
        the worker cuts into windows here."""
        if self.window_spec is not None:
            from swarmcast.pipelines.data.climate_windows import iter_window_batches

            return iter_window_batches(
                shard,
                self.window_spec,
                self.batch_size,
                shuffle_buffer=self.shuffle_buffer,
                seed=self.shuffle_seed(epoch),
                device=device,
            )
        return shard.iter_torch_batches(
            batch_size=self.batch_size,
            device=device,
            local_shuffle_buffer_size=self.shuffle_buffer or None,
            local_shuffle_seed=self.shuffle_seed(epoch),
        )

    def shuffle_seed(self, epoch: int) -> int:
        """Seed of ``epoch``'s local shuffle: a resumed epoch sees the same order."""
        return self.seed * 10_000 + epoch

    @abstractmethod
    def setup(self, model: torch.nn.Module, device: torch.device, rank: int, state: dict[str, Any]) -> None:
        """In a worker, after ``model`` is on ``device`` and ``state`` restored: wrap the trained
        module for DDP, restore trainer-specific loop state, load validation data on rank 0."""

    def start_epoch(self, epoch: int) -> None:  # noqa: B027 (an optional hook; most trainers need none)
        """Before the first batch of ``epoch`` (0-based), on every rank."""

    @abstractmethod
    def train_batch(
        self,
        batch: dict[str, torch.Tensor],
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        step: int,
        epoch: int,
    ) -> tuple[float, int]:
        """One optimiser step (``step`` counts it, from 1); returns (loss, items in the batch)."""

    def epoch_metrics(
        self, losses: list[float], items: int, scheduler: torch.optim.lr_scheduler.LRScheduler
    ) -> dict[str, Any]:
        """Trainer-specific metrics of an epoch (``items`` trained on), before validation (every rank)."""
        return {}

    @abstractmethod
    def validate(self, model: torch.nn.Module) -> dict[str, Any]:
        """Validation metrics after an epoch (rank 0 only)."""

    def save_loop_state(self, state: dict[str, Any]) -> None:  # noqa: B027 (an optional hook)
        """Store trainer-specific loop state in ``state`` before it is checkpointed (every rank)."""

    @abstractmethod
    def epoch_line(self, metrics: dict[str, Any]) -> str:
        """The line printed after an epoch."""

    @abstractmethod
    def export(self, model: torch.nn.Module, state: dict[str, Any]) -> Export:
        """Checkpoint contents of the trained model (on the driver)."""

    @abstractmethod
    def save(self, folder: Location, model: torch.nn.Module, meta: dict[str, Any], extra_files: dict[str, str]) -> None:
        """Write the checkpoint folder (built in staging, published when complete)."""


def worker_loop(config: dict) -> None:
    """Runs on every Ray Train worker (``train_loop_per_worker``)."""
    import ray.train
    import ray.train.torch

    quiet_train_worker()
    trainer: Trainer = config["trainer"]
    torch.set_num_threads(max(1, int(trainer.scaling.cpus_per_worker)))
    rank = ray.train.get_context().get_world_rank()
    device = ray.train.torch.get_device()
    # on the device before the optimiser exists, so restored optimiser state lands there too
    model = trainer.build().to(device)
    opt, sched = trainer.optimizer(model, config["total_steps"])
    state: dict[str, Any] = {"epoch": 0, "step": 0, "history": [], "resumed_at_epochs": []}
    restored = restore_state(model, opt, sched)
    if restored is not None:
        state = restored
        state["resumed_at_epochs"].append(state["epoch"])
    trainer.setup(model, device, rank, state)
    shard = ray.train.get_dataset_shard("train")
    for epoch in range(state["epoch"], trainer.epochs):
        t0, losses, items = time.perf_counter(), [], 0
        model.train()
        trainer.start_epoch(epoch)
        for batch in trainer.batches(shard, epoch, device):
            state["step"] += 1
            loss, n = trainer.train_batch(batch, opt, sched, state["step"], epoch)
            losses.append(loss)
            items += n
        metrics = {
            "epoch": epoch + 1,
            "step": state["step"],
            "train_loss": float(np.mean(losses)) if losses else None,
            "seconds": time.perf_counter() - t0,
            **trainer.epoch_metrics(losses, items, sched),
        }
        if rank == 0:
            metrics.update(trainer.validate(model))
            state["history"].append(metrics)
            print(trainer.epoch_line(metrics), flush=True)
        state["epoch"] = epoch + 1
        trainer.save_loop_state(state)
        report_state(rank, model, opt, sched, state, {"epoch": epoch + 1, "train_loss": metrics["train_loss"]})


def fit_and_export(trainer: Trainer, *, state_root: Location, folder: Location, fingerprint: dict) -> Any:
    """Fit (or resume) the trainer's run under ``state_root``, then export it to ``folder``.

    Returns the trainer's ``Export.summary``.
    """
    workers = trainer.scaling.workers
    per_epoch = -(-trainer.n_train // (trainer.batch_size * workers))
    checkpoint = fit_run(
        worker_loop,
        {"trainer": trainer, "total_steps": per_epoch * trainer.epochs},
        name=trainer.run_name,
        out=state_root,
        workers=workers,
        use_gpu=trainer.scaling.use_gpu,
        cpus_per_worker=trainer.scaling.cpus_per_worker,
        max_failures=trainer.max_failures,
        datasets={"train": trainer.dataset()},
    )
    model = trainer.build()
    opt, sched = trainer.optimizer(model, 1)  # the saved state replaces the schedule's length
    state = load_final_state(checkpoint, model, opt, sched)
    export = trainer.export(model, state)
    training = {
        "epochs": state["epoch"],
        "steps": state["step"],
        "resumed_at_epochs": state["resumed_at_epochs"],
        **export.meta.get("training", {}),
    }
    meta = {
        **export.meta,
        "seed": trainer.seed,
        "training": training,
        "stage": fingerprint,
        "source": f"swarmcast {__version__}",
        "created_by_pid": os.getpid(),
    }
    metrics = "".join(json.dumps(h) + "\n" for h in state["history"])
    trainer.save(folder, model, meta, {"metrics.jsonl": metrics, **export.extra_files})
    return export.summary


__all__ = ["Export", "Trainer", "fit_and_export", "worker_loop"]
