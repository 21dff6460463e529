"""``swarmcast bench train``: the Ray Train loop against a bare torch loop on the same batches.

One worker with one CPU and one torch thread trains a small SFNO through the ``train-sfno``
stage; the same model then trains in one process on the same windows held in memory, also with
one thread. ``ratio`` = Ray Train windows/s / bare-loop windows/s over the epochs after the
first (which pays one-off costs in both).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from swarmcast.pipelines.bench.common import check_params, machine

DEFAULTS: dict[str, Any] = {
    "nlat": 32,
    "nlon": 64,
    "trajectories": 4,
    "days": 30,
    "embed_dim": 16,
    "num_layers": 2,
    "batch_size": 8,
    "rollout_steps": 2,
    "epochs": 4,
}


def _bare_loop(plan: Any, seed: int, p: dict) -> float:
    """Windows/s of the same model and batches in one process with everything in memory."""
    import torch

    from swarmcast.kernels.sphere import quadrature_weights
    from swarmcast.ops.data.readers import open_climate
    from swarmcast.ops.data.windows import read_windows, window_starts
    from swarmcast.ops.optim import OptimConfig, make_optimizer
    from swarmcast.ops.sfno.training import NormalizedStep, train_step
    from swarmcast.pipelines.stages.train_sfno.trainer import build_stepper

    ds = open_climate(plan.store, plan.channels)
    starts = window_starts(ds["time"].values, plan.train_spec)
    data = torch.as_tensor(read_windows(ds, starts, plan.train_spec, plan.normalization))
    stepper = build_stepper(plan, seed)
    cfg = OptimConfig(lr=3e-3, total_steps=10_000)
    opt, sched = make_optimizer(stepper, cfg)
    step, w = NormalizedStep(stepper), quadrature_weights(plan.nlat)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    times = []
    for epoch in range(p["epochs"]):
        t0 = time.perf_counter()
        for lo in range(0, len(data), p["batch_size"]):
            train_step(step, data[order[lo : lo + p["batch_size"]]], w, opt, sched, cfg, p["rollout_steps"])
        if epoch:  # the first epoch pays one-off costs, as in the Ray run
            times.append(time.perf_counter() - t0)
    return len(data) * len(times) / sum(times)


def run(params: dict) -> dict:
    """Ray Train (1 worker, 1 CPU, 1 torch thread) vs a bare loop with 1 torch thread."""
    import json

    import torch

    from swarmcast.pipelines.context import StageContext
    from swarmcast.pipelines.stages.swe_dataset import SWEDatasetConfig
    from swarmcast.pipelines.stages.swe_dataset import run as make_data
    from swarmcast.pipelines.stages.train_sfno import SFNOTrainingPlan, TrainSFNOConfig
    from swarmcast.pipelines.stages.train_sfno import run as train

    p = check_params(params, DEFAULTS)
    with tempfile.TemporaryDirectory(prefix="swarmcast-bench-") as tmp:
        base = Path(tmp)
        ctx = StageContext(base=base)
        make_data(
            SWEDatasetConfig(
                grid={"nlat": p["nlat"], "nlon": p["nlon"]}, trajectories=p["trajectories"], days=p["days"]
            ),
            ctx,
        )
        cfg = TrainSFNOConfig(
            seeds=[0],
            model={"embed_dim": p["embed_dim"], "num_layers": p["num_layers"]},
            train={
                "epochs": p["epochs"],
                "batch_size": p["batch_size"],
                "rollout_steps": p["rollout_steps"],
                "lr": 3e-3,
            },
            scaling={"workers": 1, "cpus_per_worker": 1.0},
        )
        t0 = time.perf_counter()
        train(cfg, ctx)
        wall = time.perf_counter() - t0
        history = [json.loads(x) for x in (base / "checkpoints" / "seed-0" / "metrics.jsonl").read_text().splitlines()]
        steady = history[1:]
        ray_rate = sum(h["windows"] for h in steady) / sum(h["seconds"] for h in steady)
        plan = SFNOTrainingPlan(cfg, ctx)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            bare_rate = _bare_loop(plan, 0, p)
        finally:
            torch.set_num_threads(threads)
    total_windows = sum(h["windows"] for h in history)
    return {
        "bench": "train",
        "params": p,
        "train_windows_per_epoch": plan.n_train,
        "ray_train_windows_per_s": round(ray_rate, 2),
        "bare_loop_windows_per_s": round(bare_rate, 2),
        "ray_fit_wall_s": round(wall, 1),
        "ray_end_to_end_windows_per_s": round(total_windows / wall, 2),
        "machine": machine(),
        "ratio": round(ray_rate / bare_rate, 3),
    }


__all__ = ["DEFAULTS", "run"]
