"""``swarmcast bench loader``: Ray Data against a direct read of the same windows.

Windows/s and MB/s through Ray Data (``read_climate_windows`` -> ``iter_window_batches``, rows of
contiguous states cut into windows by the consumer) against a direct, single-process read of
the same windows from the same store (``read_windows`` over blocks of the same size); ``ratio``
= Ray Data / direct. It also times a training step of a demo-size SFNO on the same batches, so
one can tell whether the loader keeps training fed.

The default store is synthetic: ``times`` states of ``channels`` random float32 fields, written as
a climate store. A loader does not care what the numbers mean, and random floats compress about
as badly as real ones; the shallow-water simulation (``source=swe``) makes 7 states/s here, too
slow to build an epoch long enough that Ray's fixed start-up per epoch (~0.2 s on 2 cores) is
the small part of it that it is in training on reanalysis data.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from swarmcast.pipelines.bench.common import check_params, machine


def _direct_epoch(path: str, spec: Any, norm: Any, rows: list[np.ndarray]) -> tuple[int, float]:
    from swarmcast.ops.data.readers import open_climate
    from swarmcast.ops.data.windows import read_windows

    t0 = time.perf_counter()
    ds = open_climate(path, spec.channels)
    n = sum(len(read_windows(ds, starts, spec, norm)) for starts in rows)
    return n, time.perf_counter() - t0


def _ray_epoch(path: str, spec: Any, norm: Any, batch_size: int, shuffle: int) -> tuple[int, float]:
    from swarmcast.pipelines.data.climate_windows import iter_window_batches, read_climate_windows

    t0 = time.perf_counter()
    ds = read_climate_windows(path, spec, normalization=norm)
    n = sum(len(b["x"]) for b in iter_window_batches(ds, spec, batch_size, shuffle_buffer=shuffle))
    return n, time.perf_counter() - t0


def _synthetic_store(path: Path, nlat: int, nlon: int, channels: list[str], times: int) -> str:
    """A climate store of ``times`` 6-hourly states of standard-normal float32 fields, with its
    normalisation statistics (as the stores ``swe-dataset`` writes carry)."""
    from swarmcast.ops.data.climate_store import ClimateStoreWriter, climate_template, default_time_chunk
    from swarmcast.ops.data.normalization import ATTR, compute_normalization
    from swarmcast.ops.data.readers import open_climate

    lat = np.linspace(90, -90, nlat)
    lon = np.arange(nlon) * 360.0 / nlon
    stamps = np.datetime64("2000-01-01T00", "ns") + np.arange(times) * np.timedelta64(6, "h")
    template = climate_template(stamps, lat, lon, channels, attrs={}, time_chunk=default_time_chunk(nlat, nlon, times))
    writer = ClimateStoreWriter(path, template)
    rng = np.random.default_rng(0)
    for lo in range(0, times, 256):
        n = min(256, times - lo)
        writer.write(rng.standard_normal((n, len(channels), nlat, nlon), dtype=np.float32))
    stats = compute_normalization(open_climate(writer.complete(), channels), channels)
    writer.finish({ATTR: stats.to_attr()})
    return str(path)


def _train_step_rate(shape: tuple[int, ...], batch_size: int, steps: int = 5) -> float:
    """Samples/s of forward+backward+AdamW of a demo-size torch-harmonics SFNO on CPU."""
    import torch

    from swarmcast.kernels.harmonics import SphericalFourierNeuralOperator

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
    "source": "synthetic",
    "nlat": 64,
    "nlon": 128,
    "times": 2920,
    "trajectories": 4,
    "days": 90,
    "channels": None,
    "steps": 1,
    "batch_size": 32,
    "shuffle": 0,
    "epochs": 3,
}


def check(params: dict) -> None:
    """Refuse an unknown ``source`` before any work starts."""
    from swarmcast.pipelines.config import ConfigError

    source = params.get("source", DEFAULTS["source"])
    if source not in ("synthetic", "swe"):
        raise ConfigError(f"source must be 'synthetic' or 'swe', got {source!r}")


def _build_store(p: dict, folder: Path) -> str:
    from swarmcast.pipelines.context import StageContext
    from swarmcast.pipelines.stages.swe_dataset import SWEDatasetConfig, run

    if p["source"] == "synthetic":
        return _synthetic_store(folder / "data.zarr", p["nlat"], p["nlon"], p["channels"], p["times"])
    cfg = SWEDatasetConfig(
        grid={"nlat": p["nlat"], "nlon": p["nlon"]},
        trajectories=p["trajectories"],
        days=p["days"],
        channels=p["channels"],
        output=str(folder / "data.zarr"),
    )
    run(cfg, StageContext(base=folder))
    return cfg.output


def run(params: dict) -> dict:
    import ray
    from ray.data import DataContext

    from swarmcast.ops.data.normalization import compute_normalization
    from swarmcast.ops.data.readers import open_climate, stored_normalization
    from swarmcast.ops.data.windows import WindowSpec, window_bytes
    from swarmcast.pipelines.data.climate_windows import TASKS_PER_CPU, ClimateWindowDatasource

    p = check_params(params, DEFAULTS)
    if p["channels"] is None:
        p["channels"] = [f"c{i}" for i in range(8)] if p["source"] == "synthetic" else ["h", "u", "v", "vo"]
    DataContext.get_current().enable_progress_bars = False
    tmp = None
    if p["store"] is None:
        tmp = tempfile.TemporaryDirectory(prefix="swarmcast-bench-")
        path = _build_store(p, Path(tmp.name))
    else:
        path = str(p["store"])
    spec = WindowSpec(tuple(p["channels"]), steps=p["steps"])
    ds = open_climate(path, spec.channels)
    norm = stored_normalization(ds) or compute_normalization(ds, spec.channels)
    tasks = max(2, TASKS_PER_CPU * int(ray.cluster_resources().get("CPU", 1)))
    rows = ClimateWindowDatasource(path, spec, norm, min_rows=tasks).rows  # the direct read's blocks
    mb = window_bytes(ds, spec) / 1e6
    _direct_epoch(path, spec, norm, rows)  # warm the page cache for both
    _ray_epoch(path, spec, norm, p["batch_size"], p["shuffle"])
    direct = [_direct_epoch(path, spec, norm, rows) for _ in range(p["epochs"])]
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
        "direct_epoch_s": round(statistics.median(t for _, t in direct), 3),
        "ray_epoch_s": round(statistics.median(t for _, t in via_ray), 3),
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


__all__ = ["DEFAULTS", "check", "run"]
