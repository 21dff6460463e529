"""``swarmcast bench NAME``: measured ratios, printed as one JSON object (design §7).

``loader``: windows/s and MB/s through Ray Data (``read_climate_windows`` ->
``iter_torch_batches``) against a direct, single-process read of the same windows from the
same store in the same blocks; ``ratio`` = Ray Data / direct. It also times a training step of
a demo-size SFNO on the same batches, so one can tell whether the loader keeps training fed.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from swarmcast.pipelines.config import ConfigError


def machine() -> dict:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpus": os.cpu_count(), "gpu": gpu, "python": platform.python_version(), "torch": torch.__version__}


def check_params(given: dict, defaults: dict) -> dict:
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown bench parameters {unknown}; known: {sorted(defaults)}")
    return {**defaults, **given}


def _direct_epoch(path: str, spec: Any, norm: Any, per_block: int) -> tuple[int, float]:
    from swarmcast.ops.readers import open_climate
    from swarmcast.ops.samples import blocks_of, read_windows, window_starts

    t0 = time.perf_counter()
    ds = open_climate(path, spec.channels)
    n = 0
    for block in blocks_of(window_starts(ds["time"].values, spec), per_block):
        n += len(read_windows(ds, block, spec, norm))
    return n, time.perf_counter() - t0


def _ray_epoch(path: str, spec: Any, norm: Any, batch_size: int, shuffle: int) -> tuple[int, float]:
    from swarmcast.pipelines.climate_data import read_climate_windows

    t0 = time.perf_counter()
    ds = read_climate_windows(path, spec, normalization=norm)
    n = 0
    for batch in ds.iter_torch_batches(batch_size=batch_size, local_shuffle_buffer_size=shuffle or None):
        n += len(batch["x"])
    return n, time.perf_counter() - t0


def _train_step_rate(shape: tuple[int, ...], batch_size: int, steps: int = 5) -> float:
    """Samples/s of forward+backward+AdamW of a demo-size torch-harmonics SFNO on CPU."""
    import torch
    from torch_harmonics.examples.models import SphericalFourierNeuralOperator

    _, c, nlat, nlon = shape
    model = SphericalFourierNeuralOperator(
        img_size=(nlat, nlon), grid="equiangular", in_chans=c, out_chans=c, embed_dim=32, num_layers=4, scale_factor=1
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch_size, c, nlat, nlon)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = (model(x) - x).pow(2).mean()
        loss.backward()
        opt.step()
        if i:  # the first step pays one-off costs
            times.append(time.perf_counter() - t0)
    return batch_size / statistics.median(times)


LOADER_DEFAULTS: dict[str, Any] = {
    "store": None,
    "nlat": 32,
    "nlon": 64,
    "trajectories": 4,
    "days": 90,
    "channels": ["h", "u", "v", "vo"],
    "steps": 1,
    "batch_size": 32,
    "shuffle": 0,
    "epochs": 3,
}


def bench_loader(params: dict) -> dict:
    import ray
    from ray.data import DataContext

    from swarmcast.ops.readers import open_climate, stored_normalization
    from swarmcast.ops.samples import WindowSpec, window_bytes
    from swarmcast.pipelines.climate_data import ClimateWindowDatasource
    from swarmcast.pipelines.context import StageContext
    from swarmcast.pipelines.stages.swe_dataset import SWEDatasetConfig, run

    p = check_params(params, LOADER_DEFAULTS)
    DataContext.get_current().enable_progress_bars = False
    tmp = None
    if p["store"] is None:
        tmp = tempfile.TemporaryDirectory(prefix="swarmcast-bench-")
        cfg = SWEDatasetConfig(
            grid={"nlat": p["nlat"], "nlon": p["nlon"]},
            trajectories=p["trajectories"],
            days=p["days"],
            channels=p["channels"],
            output=str(Path(tmp.name) / "data.zarr"),
        )
        run(cfg, StageContext(base=Path(tmp.name)))
        path = cfg.output
    else:
        path = str(p["store"])
    spec = WindowSpec(tuple(p["channels"]), steps=p["steps"])
    ds = open_climate(path, spec.channels)
    norm = stored_normalization(ds)
    per_block = ClimateWindowDatasource(path, spec, norm).windows_per_block
    mb = window_bytes(ds, spec) / 1e6
    _direct_epoch(path, spec, norm, per_block)  # warm the page cache for both
    _ray_epoch(path, spec, norm, p["batch_size"], p["shuffle"])
    direct = [_direct_epoch(path, spec, norm, per_block) for _ in range(p["epochs"])]
    via_ray = [_ray_epoch(path, spec, norm, p["batch_size"], p["shuffle"]) for _ in range(p["epochs"])]
    n_direct, n_ray = direct[0][0], via_ray[0][0]
    if n_direct != n_ray:
        raise RuntimeError(f"Ray Data yielded {n_ray} windows, direct read {n_direct}")
    direct_rate = n_direct / statistics.median(t for _, t in direct)
    ray_rate = n_ray / statistics.median(t for _, t in via_ray)
    shape = (p["batch_size"], len(spec.channels), ds.sizes["lat"], ds.sizes["lon"])
    train_rate = _train_step_rate(shape, p["batch_size"])
    if tmp is not None:
        tmp.cleanup()
    return {
        "bench": "loader",
        "params": {k: v for k, v in p.items() if k != "store"} | {"store": str(p["store"])},
        "windows": n_direct,
        "window_mb": round(mb, 4),
        "direct_windows_per_s": round(direct_rate, 1),
        "direct_mb_per_s": round(direct_rate * mb, 1),
        "ray_windows_per_s": round(ray_rate, 1),
        "ray_mb_per_s": round(ray_rate * mb, 1),
        "sfno_train_samples_per_s": round(train_rate, 1),
        "loader_over_train_step": round(ray_rate / train_rate, 2),
        "ray_cpus": ray.cluster_resources().get("CPU"),
        "machine": machine(),
        "ratio": round(ray_rate / direct_rate, 3),
    }


BENCHES = {"loader": (bench_loader, LOADER_DEFAULTS)}


def run_bench(name: str, params: dict, *, address: str | None = None) -> dict:
    from swarmcast.pipelines.runner import ray_session

    if name not in BENCHES:
        raise ConfigError(f"unknown bench {name!r}; known: {sorted(BENCHES)}")
    fn, defaults = BENCHES[name]
    check_params(params, defaults)  # refuse unknown parameters before starting Ray
    if name in WITHOUT_RAY:
        return fn(params)
    with ray_session(address):
        return fn(params)


__all__ = ["machine", "run_bench"]


TRAIN_DEFAULTS: dict[str, Any] = {
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


def _bare_loop(prepared: Any, seed: int, p: dict) -> float:
    """Windows/s of the same model and batches in one process with everything in memory."""
    import torch

    from swarmcast.kernels.sphere import quadrature_weights
    from swarmcast.ops.readers import open_climate
    from swarmcast.ops.samples import read_windows, window_starts
    from swarmcast.ops.training import NormalizedStep, OptimConfig, make_optimizer, train_step
    from swarmcast.pipelines.sfno_trainer import build_stepper

    ds = open_climate(prepared.store, prepared.channels)
    starts = window_starts(ds["time"].values, prepared.train_spec)
    data = torch.as_tensor(read_windows(ds, starts, prepared.train_spec, prepared.normalization))
    stepper = build_stepper(prepared, seed)
    cfg = OptimConfig(lr=3e-3, total_steps=10_000)
    opt, sched = make_optimizer(stepper, cfg)
    step, w = NormalizedStep(stepper), quadrature_weights(prepared.nlat)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    times = []
    for epoch in range(p["epochs"]):
        t0 = time.perf_counter()
        for lo in range(0, len(data), p["batch_size"]):
            train_step(step, data[order[lo : lo + p["batch_size"]]], w, opt, sched, cfg, p["rollout_steps"])
        if epoch:  # the first epoch pays one-off costs, as in the Ray run
            times.append(time.perf_counter() - t0)
    return len(data) * len(times) / sum(times)


def bench_train(params: dict) -> dict:
    """Ray Train (1 worker, 1 CPU, 1 torch thread) vs a bare loop with 1 torch thread."""
    import json

    import torch

    from swarmcast.pipelines.context import StageContext
    from swarmcast.pipelines.stages.swe_dataset import SWEDatasetConfig
    from swarmcast.pipelines.stages.swe_dataset import run as make_data
    from swarmcast.pipelines.stages.train_sfno import Prepared, TrainSFNOConfig
    from swarmcast.pipelines.stages.train_sfno import run as train

    p = check_params(params, TRAIN_DEFAULTS)
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
        prepared = Prepared(cfg, ctx)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            bare_rate = _bare_loop(prepared, 0, p)
        finally:
            torch.set_num_threads(threads)
    total_windows = sum(h["windows"] for h in history)
    return {
        "bench": "train",
        "params": p,
        "train_windows_per_epoch": prepared.n_train,
        "ray_train_windows_per_s": round(ray_rate, 2),
        "bare_loop_windows_per_s": round(bare_rate, 2),
        "ray_fit_wall_s": round(wall, 1),
        "ray_end_to_end_windows_per_s": round(total_windows / wall, 2),
        "machine": machine(),
        "ratio": round(ray_rate / bare_rate, 3),
    }


BENCHES["train"] = (bench_train, TRAIN_DEFAULTS)


def _hindcast(params: dict) -> dict:
    from swarmcast.pipelines.bench_hindcast import bench_hindcast

    return bench_hindcast(params)


def _hindcast_defaults() -> dict[str, Any]:
    from swarmcast.pipelines.bench_hindcast import HINDCAST_DEFAULTS

    return HINDCAST_DEFAULTS


BENCHES["hindcast"] = (_hindcast, _hindcast_defaults())


def _crps(params: dict) -> dict:
    from swarmcast.pipelines.bench_crps import bench_crps

    return bench_crps(params)


BENCHES["crps"] = (_crps, {"members": [64, 1024, 8192], "values": 2**24, "repeats": 3, "seed": 0})


def _sample(params: dict) -> dict:
    from swarmcast.pipelines.bench_sample import bench_sample

    return bench_sample(params)


BENCHES["sample"] = (_sample, {"samples": 20_000, "nfe": [5, 10, 20], "eps": 0.5, "seed": 0})
WITHOUT_RAY = {"crps", "sample"}  # pure numpy/torch: no Ray session to start
