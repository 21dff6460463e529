"""Ray Train side of ``train-diffusion``: the per-worker loop and the export of the final model.

Every worker builds the model from the training seed (identical initial weights), restores the
latest training state if the run resumes (denoiser, EMA, optimizer, scheduler, step and
curriculum), and trains on its shard of the Ray Data stream. After each epoch rank 0 computes
the EMA's validation loss, advances the curriculum, and reports the training state.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from swarmcast.ops import __version__
from swarmcast.ops.diffusion.model import Curriculum, DenoisingLoss, DiffusionModel
from swarmcast.ops.diffusion.training import diffusion_train_step, save_diffusion, validation_loss
from swarmcast.ops.training import OptimConfig, make_optimizer
from swarmcast.pipelines.ray_training import fit_run, load_final_state, report_state, restore_state


def build(prepared: Any, seed: int) -> DiffusionModel:
    torch.manual_seed(seed)  # initial weights depend on the seed only, never on the rank
    return DiffusionModel(prepared.spec)


def split_batch(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(target, condition): images are unconditional; climate windows are (x_t, x_{t+dt})."""
    if "image" in batch:
        return batch["image"], None
    return batch["x"][:, 1], batch["x"][:, 0]


def _validation(prepared: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    v = torch.as_tensor(np.asarray(prepared.validation, dtype=np.float32), device=device)
    return (v, None) if prepared.cond_channels == 0 else (v[:, 1], v[:, 0])


def train_loop(cfg: dict) -> None:
    """Runs on every Ray Train worker (``train_loop_per_worker``)."""
    import ray.train
    import ray.train.torch

    config, prepared, seed = cfg["config"], cfg["prepared"], cfg["seed"]
    t = config.train
    torch.set_num_threads(max(1, int(config.scaling.cpus_per_worker)))
    rank = ray.train.get_context().get_world_rank()
    device = ray.train.torch.get_device()
    model = build(prepared, seed)
    ocfg = OptimConfig(lr=t.lr, grad_clip=t.grad_clip, total_steps=cfg["total_steps"])
    opt, sched = make_optimizer(model.denoiser, ocfg)
    curriculum = Curriculum(t.curriculum.clusters, t.curriculum.patience)
    state: dict[str, Any] = {"epoch": 0, "step": 0, "history": [], "resumed_at_epochs": []}
    restored = restore_state(model, opt, sched)
    if restored is not None:
        state = restored
        state["resumed_at_epochs"].append(state["epoch"])
        curriculum = Curriculum.from_json(state["curriculum"])
    model.to(device)
    loss_fn = ray.train.torch.prepare_model(DenoisingLoss(model.denoiser, prepared.spec))  # DDP when workers > 1
    val_x, val_cond = _validation(prepared, device) if rank == 0 else (None, None)
    shard = ray.train.get_dataset_shard("train")
    for epoch in range(state["epoch"], t.epochs):
        # noise draws depend on (seed, rank, epoch): a resumed epoch repeats exactly
        gen = torch.Generator().manual_seed(seed * 1_000_003 + rank * 7919 + epoch)
        t0, losses = time.perf_counter(), []
        model.train()
        for batch in shard.iter_torch_batches(
            batch_size=t.batch_size,
            device=device,
            local_shuffle_buffer_size=512,
            local_shuffle_seed=seed * 10_000 + epoch,
        ):
            x0, cond = split_batch(batch)
            state["step"] += 1
            losses.append(
                diffusion_train_step(
                    loss_fn, model, x0, cond, opt, sched, ocfg, curriculum, gen, state["step"], t.ema_halflife_steps
                )
            )
        metrics = {
            "epoch": epoch + 1,
            "step": state["step"],
            "train_loss": float(np.mean(losses)) if losses else None,
            "seconds": time.perf_counter() - t0,
            "curriculum_stage": curriculum.stage,
        }
        if rank == 0:
            model.eval()
            metrics["val_loss"] = validation_loss(model, val_x, val_cond)
            metrics["curriculum_advanced"] = curriculum.update(metrics["val_loss"])
            state["history"].append(metrics)
            print(
                f"[diffusion] epoch {epoch + 1}/{t.epochs} loss {metrics['train_loss']:.4f} "
                f"val {metrics['val_loss']:.4f} ({metrics['seconds']:.1f} s)",
                flush=True,
            )
        state["epoch"], state["curriculum"] = epoch + 1, curriculum.to_json()
        report_state(rank, model, opt, sched, state, {"epoch": epoch + 1, "train_loss": metrics["train_loss"]})


def _dataset(prepared: Any) -> Any:
    if prepared.store is None:
        from swarmcast.pipelines.image_data import read_images

        ds, _ = read_images(prepared.source, items=prepared.train_items)
        return ds.select_columns(["image"]).randomize_block_order()
    from swarmcast.pipelines.climate_data import read_climate_windows

    return read_climate_windows(prepared.store, prepared.train_spec, normalization=prepared.normalization)


def train_model(config: Any, prepared: Any, ctx: Any, out: Path, state_root: Path, fingerprint: dict) -> dict:
    """Fit (or resume) the run, then export the final model as a checkpoint folder."""
    workers = config.scaling.workers
    per_epoch = -(-prepared.n_train // (config.train.batch_size * workers))
    checkpoint = fit_run(
        train_loop,
        {"config": config, "prepared": prepared, "seed": prepared.seed, "total_steps": per_epoch * config.train.epochs},
        name="run",
        out=state_root,
        workers=workers,
        use_gpu=config.scaling.use_gpu,
        cpus_per_worker=config.scaling.cpus_per_worker,
        max_failures=config.max_failures,
        datasets={"train": _dataset(prepared)},
    )
    model = build(prepared, prepared.seed)
    opt, sched = make_optimizer(model.denoiser, OptimConfig())
    state = load_final_state(checkpoint, model, opt, sched)
    last = state["history"][-1] if state["history"] else {}
    meta = {
        "data": config.data.model_dump(mode="json"),
        "channels": list(getattr(prepared, "channels", ())),
        "normalization": prepared.normalization.to_attr() if prepared.store is not None else None,
        "time_step_hours": prepared.step / np.timedelta64(1, "h") if prepared.store is not None else None,
        "seed": prepared.seed,
        "training": {
            "epochs": state["epoch"],
            "steps": state["step"],
            "resumed_at_epochs": state["resumed_at_epochs"],
            "final_val_loss": last.get("val_loss"),
            "curriculum": state.get("curriculum"),
        },
        "stage": fingerprint,
        "source": f"swarmcast {__version__}",
        "created_by_pid": os.getpid(),
    }
    metrics = "".join(json.dumps(h) + "\n" for h in state["history"])
    save_diffusion(out, model, meta, {"metrics.jsonl": metrics})
    return {"epochs": state["epoch"], "val_loss": last.get("val_loss")}
