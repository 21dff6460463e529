"""``swarmcast bench hindcast mode=io``: the stage's storage path when the model step is nearly free.

On a GPU the model step gets 10-100x faster than on CPUs while compressing and writing do not,
so storage sets the pace. This benchmark makes that so on any machine: the model is emulated
with no cost (``bench scale``'s runner with ``step_s = 0``), the grid is 1 degree (181 x 360)
with 8 channels, and everything else is the hindcast's own storage path: the elastic actor
pool, write-behind (``actors.write_behind``), the ensemble store with its shards, codec and
``member_done`` flags (ARCHITECTURE.md, "Work units"). Each actor's values are a smooth field
plus small noise, made once, so producing them costs nothing and they compress about as a
weather field does.

Figures (GB are uncompressed float32 bytes, the arrays' logical size, so rates compare directly):

* ``stage_gb_per_s``: what the pool stores per second of ``run_units`` (actors already warm);
* ``zarr_gb_per_s``: a plain zarr write of the same arrays into arrays of the same shape, shard,
  chunk and codec, one whole shard per call from ``threads`` threads, where ``threads`` is the
  most writes the stage has in flight (actors, twice that with write-behind);
* ``disk_gb_per_s``: the same bytes written uncompressed as plain files by as many threads,
  through the page cache as zarr's writes go (neither calls fsync);
* ``compression``: logical bytes / bytes on disk of the stage's store.

``ratio`` = ``stage_gb_per_s / zarr_gb_per_s``: 1 means the stage adds nothing to storing.

Each timed write starts with the page cache's dirty pages flushed (``os.sync``): the kernel
writes dirty pages back in the background, on the same CPUs, once they pass a share of memory
(``vm.dirty_background_ratio``), so without the flush a write would pay for the one before it.
"""

from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from swarmcast.pipelines.bench.common import check_params, machine
from swarmcast.pipelines.bench.scale import EmulatedPlan, EmulatedUnitRunner, emulated_layout, one_size
from swarmcast.pipelines.ensemble.settings import ActorSettings

DEFAULTS: dict[str, Any] = {
    "mode": "io",
    "nlat": 181,
    "nlon": 360,
    "channels": 8,
    "member_block": 16,
    "leads": 8,
    "checkpoints": 2,
    "blocks": 2,
    "units_per_actor": 4,
    "actors": 0,
    "write_behind": True,
}
"""``actors`` 0: one per CPU of the Ray session."""


def smooth_field(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """float32 ``shape`` (members, leads, channels, lat, lon): waves of a few wavelengths plus
    noise at 1% of their amplitude, so the bytes compress about as a weather field's do."""
    members, leads, channels, nlat, nlon = shape
    rng = np.random.default_rng(seed)
    lat = np.linspace(-np.pi / 2, np.pi / 2, nlat)[:, None]
    lon = np.linspace(0, 2 * np.pi, nlon, endpoint=False)[None, :]
    out = np.empty(shape, dtype=np.float32)
    for c in range(channels):
        wave = np.cos(lat) * np.sin((c + 2) * lon + c) + 0.5 * np.sin(3 * lat + c)
        for m in range(members):
            out[m, :, c] = wave * (1 + 0.1 * m) + 0.01 * rng.standard_normal((leads, nlat, nlon))
    return out


class StorageUnitRunner(EmulatedUnitRunner):
    """The emulated runner with a free model: every lead's block is one field, made as the
    actor starts (with the "checkpoint load", before the timed part)."""

    def __init__(self, plan: EmulatedPlan, checkpoint: int, store: str) -> None:
        lay = plan.layout
        self._block = smooth_field((lay.member_block, 1, len(lay.channels), len(lay.lat), len(lay.lon)))
        super().__init__(plan, checkpoint, store)

    def lead_values(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return self._block


def _shard_jobs(layout: Any, units: list, block: np.ndarray) -> list[tuple[Any, int, np.ndarray]]:
    """(unit, channel, shard values) for every shard the units write; values are views."""
    leads = np.repeat(block, len(layout.lead_times), axis=1)  # (member_block, leads, C, lat, lon)
    return [(u, k, leads[:, :, k]) for u in units for k in range(len(layout.channels))]


def _plain_zarr(stage_store: Path, folder: Path, layout: Any, jobs: list, threads: int) -> float:
    """Seconds to write ``jobs`` into plain zarr arrays configured as the stage store's are."""
    import zarr

    src = zarr.open_array(stage_store / layout.channels[0], mode="r")
    group = zarr.open_group(folder / "plain.zarr", mode="w", zarr_format=3)
    arrays = [
        group.create_array(
            c,
            shape=src.shape,
            dtype=src.dtype,
            chunks=src.chunks,
            shards=src.shards,
            compressors=src.compressors,
            filters=src.filters,
            fill_value=src.fill_value,
        )
        for c in layout.channels
    ]

    def write(job: tuple[Any, int, np.ndarray]) -> None:
        unit, k, values = job
        arrays[k][unit.init, layout.member_slice(unit.checkpoint, unit.block)] = values

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, jobs))
    return time.perf_counter() - t0


def _plain_files(folder: Path, jobs: list, threads: int) -> float:
    """Seconds to write the jobs' bytes uncompressed, one file per shard."""
    folder.mkdir()

    def write(item: tuple[int, tuple[Any, int, np.ndarray]]) -> None:
        i, (_, _, values) = item
        with open(folder / f"shard-{i}.bin", "wb") as f:
            f.write(np.ascontiguousarray(values).data)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, enumerate(jobs)))
    return time.perf_counter() - t0


def _bytes_on_disk(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run(params: dict) -> dict:
    import ray

    p = check_params(params, DEFAULTS)
    n = int(p["actors"]) or max(1, int(ray.cluster_resources().get("CPU", 1)))
    scale_params = p | {"units_per_accelerator": p["units_per_actor"], "step_s": 0.0, "load_s": 0.0}
    actors = ActorSettings(cpus=0.01, max_actors=n, max_unit_retries=0, write_behind=p["write_behind"])
    threads = n * (2 if p["write_behind"] else 1)
    with tempfile.TemporaryDirectory(prefix="swarmcast-bench-io-") as tmp:
        folder = Path(tmp)
        os.sync()
        stage = one_size(scale_params, n, folder, runner=StorageUnitRunner, actors=actors)
        store = folder / f"scale-{n}.zarr"
        layout = emulated_layout(scale_params, stage["init_dates"])
        units = list(layout.units())[: stage["units"]]
        shape = (layout.member_block, 1, len(layout.channels), len(layout.lat), len(layout.lon))
        jobs = _shard_jobs(layout, units, smooth_field(shape))
        logical = sum(v.nbytes for _, _, v in jobs)
        stored = sum(_bytes_on_disk(store / c) for c in layout.channels)
        os.sync()
        zarr_s = _plain_zarr(store, folder, layout, jobs, threads)
        os.sync()
        disk_s = _plain_files(folder / "raw", jobs, threads)
    stage_rate, zarr_rate = logical / 1e9 / stage["wall_s"], logical / 1e9 / zarr_s
    return {
        "bench": "hindcast",
        "params": p,
        "actors": n,
        "threads": threads,
        "units": stage["units"],
        "logical_gb": round(logical / 1e9, 3),
        "compression": round(logical / max(stored, 1), 2),
        "stage_wall_s": stage["wall_s"],
        "stage_startup_s": stage["startup_s"],
        "stage_gb_per_s": round(stage_rate, 3),
        "zarr_gb_per_s": round(zarr_rate, 3),
        "disk_gb_per_s": round(logical / 1e9 / disk_s, 3),
        "machine_cpu_busy": stage["machine_cpu_busy"],
        "machine": machine(),
        "ratio": round(stage_rate / zarr_rate, 3),
    }


__all__ = ["DEFAULTS", "StorageUnitRunner", "run", "smooth_field"]
