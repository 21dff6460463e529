"""Ray Train side of ``train-sfno``: the per-worker loop and one seed's run from fit to export.

Workers rebuild the model from the seed (identical initial weights on every rank), restore the
latest Ray Train checkpoint if there is one, and train on their shard of the Ray Data windows.
After each epoch rank 0 validates on held-out windows (model, persistence, climatology) and
reports a training-state checkpoint (safetensors + JSON). When ``fit`` returns, the driver
exports the final state as a model checkpoint folder with the 48 h validation RMSE.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from swarmcast.kernels.sphere import quadrature_weights
from swarmcast.ops import __version__
from swarmcast.ops.checkpoint import save_model, store_metadata_hash
from swarmcast.ops.readers import open_climate
from swarmcast.ops.samples import read_windows
from swarmcast.ops.sfno import SFNOStepper, increment_scale
from swarmcast.ops.training import NormalizedStep, OptimConfig, make_optimizer, train_step, validate
from swarmcast.pipelines.ray_training import fit_run, load_final_state, report_state, restore_state


def build_stepper(prepared: Any, seed: int) -> SFNOStepper:
    mean, std = prepared.normalization.arrays(prepared.channels)
    torch.manual_seed(seed)  # initial weights depend on the seed only, never on the rank
    return SFNOStepper(
        prepared.model, mean.tolist(), std.tolist(), increment_scale(prepared.normalization, prepared.channels)
    )


def _val_windows(prepared: Any) -> np.ndarray:
    ds = open_climate(prepared.store, prepared.channels)
    return read_windows(ds, prepared.val_starts, prepared.val_spec, prepared.normalization)


def _summarise(val: dict, channels: tuple[str, ...], lead_steps: int) -> dict:
    out = {}
    for kind, by_lead in val.items():
        for lead, rmse in by_lead.items():
            key = f"{kind}_rmse_{'1step' if lead == 1 else f'{lead}step'}"
            out[key] = {c: float(r) for c, r in zip(channels, rmse, strict=True)}
    return out


def train_loop(cfg: dict) -> None:
    """Runs on every Ray Train worker (``train_loop_per_worker``)."""
    import ray.train
    import ray.train.torch

    config, prepared, seed = cfg["config"], cfg["prepared"], cfg["seed"]
    torch.set_num_threads(max(1, int(config.scaling.cpus_per_worker)))
    rank = ray.train.get_context().get_world_rank()
    device = ray.train.torch.get_device()
    stepper = build_stepper(prepared, seed)
    ocfg = OptimConfig(
        lr=config.train.lr,
        weight_decay=config.train.weight_decay,
        grad_clip=config.train.grad_clip,
        total_steps=cfg["total_steps"],
    )
    opt, sched = make_optimizer(stepper, ocfg)
    state: dict[str, Any] = {"epoch": 0, "step": 0, "history": [], "resumed_at_epochs": []}
    restored = restore_state(stepper, opt, sched)
    if restored is not None:
        state = restored
        state["resumed_at_epochs"].append(state["epoch"])
    model = ray.train.torch.prepare_model(NormalizedStep(stepper))  # DDP when workers > 1
    stepper.to(device)
    lat_w = quadrature_weights(prepared.nlat).to(device)
    val = _val_windows(prepared) if rank == 0 else None
    shard = ray.train.get_dataset_shard("train")
    for epoch in range(state["epoch"], config.train.epochs):
        t0, losses, windows = time.perf_counter(), [], 0
        stepper.train()
        batches = shard.iter_torch_batches(
            batch_size=config.train.batch_size,
            device=device,
            local_shuffle_buffer_size=config.train.shuffle_buffer or None,
            local_shuffle_seed=seed * 10_000 + epoch,
        )
        for batch in batches:
            losses.append(train_step(model, batch["x"], lat_w, opt, sched, ocfg, config.train.rollout_steps))
            windows += len(batch["x"])
            state["step"] += 1
        metrics = {
            "epoch": epoch + 1,
            "step": state["step"],
            "train_loss": float(np.mean(losses)) if losses else None,
            "lr": sched.get_last_lr()[0],
            "seconds": time.perf_counter() - t0,
            "batches": len(losses),
            "windows": windows,
        }
        if rank == 0:
            scores = validate(stepper, val, lat_w, [1, prepared.lead_steps])
            metrics.update(_summarise(scores, prepared.channels, prepared.lead_steps))
            state["history"].append(metrics)
            print(
                f"[seed {seed}] epoch {epoch + 1}/{config.train.epochs} loss {metrics['train_loss']:.4f} "
                f"({metrics['seconds']:.1f} s)",
                flush=True,
            )
        state["epoch"] = epoch + 1
        report_state(rank, stepper, opt, sched, state, {"epoch": epoch + 1, "train_loss": metrics["train_loss"]})


def train_seed(config: Any, prepared: Any, ctx: Any, seed: int, out: Path, fingerprint: dict) -> dict:
    """Fit one seed (resuming if its run exists) and export its model checkpoint folder."""
    from swarmcast.pipelines.climate_data import read_climate_windows

    dataset = read_climate_windows(prepared.store, prepared.train_spec, normalization=prepared.normalization)
    dataset = dataset.randomize_block_order()
    workers = config.scaling.workers
    per_epoch = -(-prepared.n_train // (config.train.batch_size * workers))
    checkpoint = fit_run(
        train_loop,
        {"config": config, "prepared": prepared, "seed": seed, "total_steps": per_epoch * config.train.epochs},
        name=f"seed-{seed}",
        out=out,
        workers=workers,
        use_gpu=config.scaling.use_gpu,
        cpus_per_worker=config.scaling.cpus_per_worker,
        max_failures=config.max_failures,
        datasets={"train": dataset},
    )
    return export(checkpoint, config, prepared, ctx, seed, out / f"seed-{seed}", fingerprint)


def export(checkpoint: Any, config: Any, prepared: Any, ctx: Any, seed: int, folder: Path, fingerprint: dict) -> dict:
    """Turn the final training state into a model checkpoint folder (atomically)."""
    stepper = build_stepper(prepared, seed)
    opt, sched = make_optimizer(stepper, OptimConfig())
    state = load_final_state(checkpoint, stepper, opt, sched)
    lat_w = quadrature_weights(prepared.nlat)
    scores = validate(stepper, _val_windows(prepared), lat_w, [1, prepared.lead_steps])
    lead = prepared.lead_steps
    rmse_48h = {c: float(v) for c, v in zip(prepared.channels, scores["model"][lead], strict=True)}
    meta = {
        "channels": list(prepared.channels),
        "grid": {"type": "equiangular", "nlat": prepared.nlat, "nlon": prepared.nlon},
        "time_step_hours": config.step_hours,
        "normalization": prepared.normalization.to_attr(),
        "seed": seed,
        "data": {
            "store": str(prepared.store),
            "metadata_sha256": store_metadata_hash(prepared.store),
            "validation": [str(prepared.val_start), str(prepared.val_end)],
            "validation_windows": len(prepared.val_starts),
        },
        "validation_rmse": {
            f"{config.validation.lead_hours:g}h": rmse_48h,
            f"{config.step_hours:g}h": {
                c: float(v) for c, v in zip(prepared.channels, scores["model"][1], strict=True)
            },
        },
        "validation_lead_hours": config.validation.lead_hours,
        "baselines": _summarise({k: v for k, v in scores.items() if k != "model"}, prepared.channels, lead),
        "training": {
            "epochs": state["epoch"],
            "steps": state["step"],
            "resumed_at_epochs": state["resumed_at_epochs"],
            "final_train_loss": state["history"][-1]["train_loss"] if state["history"] else None,
            "workers": config.scaling.workers,
        },
        "stage": fingerprint,
        "source": f"swarmcast {__version__}",
        "created_by_pid": os.getpid(),
    }
    metrics = "".join(json.dumps(h) + "\n" for h in state["history"])
    save_model(folder, stepper, meta, extra_files={"metrics.jsonl": metrics})
    return rmse_48h
