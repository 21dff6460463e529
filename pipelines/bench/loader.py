"""``swarmcast bench loader``: Ray Data against a direct read of the same windows.

Windows/s and MB/s through Ray Data (``read_climate_windows`` -> ``iter_torch_batches``) against
a direct, single-process read of the same windows from the same store in the same blocks;
``ratio`` = Ray Data / direct. It also times a training step of a demo-size SFNO on the same
batches, so one can tell whether the loader keeps training fed.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from swarmcast.pipelines.bench.common import check_params, machine


def _direct_epoch(path: str, spec: Any, norm: Any, per_block: int) -> tuple[int, float]:
    from swarmcast.ops.data.readers import open_climate
    from swarmcast.ops.data.windows import blocks_of, read_windows, window_starts

    t0 = time.perf_counter()
    ds = open_climate(path, spec.channels)
    n = 0
    for block in blocks_of(window_starts(ds["time"].values, spec), per_block):
        n += len(read_windows(ds, block, spec, norm))
    return n, time.perf_counter() - t0


def _ray_epoch(path: str, spec: Any, norm: Any, batch_size: int, shuffle: int) -> tuple[int, float]:
    from swarmcast.pipelines.data.climate_windows import read_climate_windows

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


DEFAULTS: dict[str, Any] = {
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


def run(params: dict) -> dict:
    import ray
    from ray.data import DataContext

    from swarmcast.ops.data.readers import open_climate, stored_normalization
    from swarmcast.ops.data.windows import WindowSpec, window_bytes
    from swarmcast.pipelines.context import StageContext
    from swarmcast.pipelines.data.climate_windows import ClimateWindowDatasource
    from swarmcast.pipelines.stages.swe_dataset import SWEDatasetConfig, run

    p = check_params(params, DEFAULTS)
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


__all__ = ["DEFAULTS", "run"]
