"""``swarmcast bench scale``: the unit scheduler on a simulated cluster of N accelerators.

This machine has no 64 GPUs, so the accelerators are virtual: a Ray custom resource
``virtual_accelerator`` (one per actor), and the model is emulated. An actor "loads" a
checkpoint by sleeping ``load_s`` and "steps" a member block by sleeping ``step_s`` per saved
lead (``time.sleep`` releases the GIL and uses no CPU, as a kernel running on a GPU would);
everything else is real: the scheduler (``swarmcast.pipelines.ensemble.scheduler``), its actor
pool, Ray actors, and a real ensemble store with every unit's shards and done flags written at
a small grid. Each N gets a fresh store and ``units_per_accelerator`` x N units, init-major
over 29 checkpoints (as HENS), so the last date may be partial.

Reported per N: ``startup_s``, the time for the pool's actors to start and load their first
checkpoint (overlapped with creating the store, as the stages do); ``utilization`` = emulated
model time / (N x wall of ``run_units``), loads, writes, scheduling and the tail included;
``utilization_with_startup`` counts the start-up too; the driver's CPU milliseconds per unit;
and ``machine_cpu_busy``, the fraction of this machine's CPUs in use during ``run_units``. On a
real cluster every accelerator brings its own CPU cores; here all N actors share this machine's,
so when ``machine_cpu_busy`` nears 1 the figure measures this machine, not the scheduler, and
``step_s`` must grow with N (real HENS units run for minutes). ``ratio`` is the utilization at
the largest N. ``campaign`` times the driver's bookkeeping (plan, store creation, resume check,
date window) for ``campaign_dates`` x ``checkpoints`` x ``campaign_blocks`` units of 16 members
(``swarmcast.pipelines.bench.bookkeeping``; 0 dates skips it). Ray is started here, with the
virtual accelerators, so the bench refuses to run inside a running Ray session.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from swarmcast.pipelines.bench.bookkeeping import campaign_bookkeeping
from swarmcast.pipelines.bench.common import check_params, machine
from swarmcast.pipelines.config import ConfigError
from swarmcast.pipelines.ensemble.protocols import COMPUTED, WRITTEN
from swarmcast.pipelines.ensemble.settings import ActorSettings

if TYPE_CHECKING:  # the store module imports xarray and zarr: only when the bench runs
    from swarmcast.ops.ensemble.store import EnsembleLayout, Unit

RESOURCE = "virtual_accelerator"

DEFAULTS: dict[str, Any] = {
    "accelerators": [1, 8, 32, 64],
    "checkpoints": 29,
    "blocks": 2,
    "units_per_accelerator": 8,
    "leads": 8,
    "step_s": 1.0,
    "load_s": 0.5,
    "member_block": 4,
    "nlat": 16,
    "nlon": 32,
    "channels": 4,
    "write_behind": True,
    "campaign_dates": 92,
    "campaign_blocks": 16,
}


@dataclass
class EmulatedPlan:
    """A ``UnitPlan`` for emulated units: a layout, actor settings and the emulated costs."""

    actors: ActorSettings
    layout: EnsembleLayout
    step_s: float
    """Seconds of emulated model time per saved lead of a unit."""
    load_s: float
    """Seconds an emulated checkpoint load takes."""
    checkpoint_paths: Sequence[str] = field(default_factory=list)


class EmulatedUnitRunner:
    """A ``UnitRunner`` whose model is a sleep; its store writes are real.

    Each unit's values are a function of the unit and lead alone, so the store's bytes do not
    depend on which actor ran which unit.
    """

    def __init__(self, plan: EmulatedPlan, checkpoint: int, store: str) -> None:
        self.plan, self.store = plan, store
        self.checkpoint = -1
        self._compute = threading.Lock()
        self._hold(checkpoint)

    def _hold(self, checkpoint: int) -> None:
        if checkpoint != self.checkpoint:
            time.sleep(self.plan.load_s)
            self.checkpoint = checkpoint

    def run(self, unit: Unit) -> Iterator[str]:
        from swarmcast.ops.ensemble.store import UnitWriter

        lay = self.plan.layout
        with self._compute:  # the emulated accelerator runs one unit at a time
            self._hold(unit.checkpoint)
            writer = UnitWriter(self.store, lay, unit, defer=self.plan.actors.write_behind)
            shape = (lay.member_block, 1, len(lay.channels), len(lay.lat), len(lay.lon))
            rng = np.random.default_rng([unit.init, unit.checkpoint, unit.block])
            for _ in range(len(lay.lead_times)):
                time.sleep(self.plan.step_s)
                writer.write(self.lead_values(rng, shape))
        yield COMPUTED
        writer.finish()  # write-behind: while the next unit "computes"
        yield WRITTEN

    def lead_values(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """The block written for one lead: float32 ``shape``, from the unit's own generator."""
        return rng.standard_normal(shape, dtype=np.float32)

    def pid(self) -> int:
        return os.getpid()


def emulated_layout(p: dict, n_dates: int) -> EnsembleLayout:
    """The store layout of ``n_dates`` init dates for the bench parameters ``p``."""
    from swarmcast.ops.ensemble.store import EnsembleLayout

    members = p["member_block"] * p["blocks"]
    return EnsembleLayout(
        init_times=np.datetime64("2020-01-01T00", "ns") + np.arange(n_dates) * np.timedelta64(24, "h"),
        lead_times=np.arange(p["leads"]) * np.timedelta64(6, "h").astype("timedelta64[ns]"),
        lat=np.linspace(-90, 90, p["nlat"]),
        lon=np.linspace(0, 360, p["nlon"], endpoint=False),
        channels=tuple(f"c{k}" for k in range(p["channels"])),
        checkpoints=tuple(f"ckpt-{k:02d}" for k in range(p["checkpoints"])),
        perturbation=np.arange(members),
        sign=np.zeros(members, dtype=int),
        member_block=p["member_block"],
        leads_per_shard=p["leads"],
    )


def _cpu_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat via psutil."""
    import psutil

    t = psutil.cpu_times()
    return t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0), sum(t)


def one_size(
    p: dict,
    n: int,
    folder: Path,
    *,
    runner: type[EmulatedUnitRunner] = EmulatedUnitRunner,
    actors: ActorSettings | None = None,
) -> dict:
    """Run ``units_per_accelerator`` x ``n`` emulated units on ``n`` actors; the figures.

    ``actors``: the pool's settings (default: one virtual accelerator and next to no CPU per
    actor). The store is left at ``folder / f"scale-{n}.zarr"``.
    """
    from swarmcast.ops.ensemble.done_flags import done_units
    from swarmcast.ops.ensemble.store import create_ensemble_store
    from swarmcast.pipelines.ensemble.scheduler import ActorPool, run_units

    n_units = p["units_per_accelerator"] * n
    n_dates = math.ceil(n_units / (p["checkpoints"] * p["blocks"]))
    layout = emulated_layout(p, n_dates)
    if actors is None:
        actors = ActorSettings(
            cpus=0.01, resources={RESOURCE: 1.0}, max_actors=n, max_unit_retries=0, write_behind=p["write_behind"]
        )
    plan = EmulatedPlan(actors, layout, p["step_s"], p["load_s"], [""] * p["checkpoints"])
    pending = list(layout.units())[:n_units]  # init-major: whole dates, the last one in part
    with ActorPool(plan, folder / f"scale-{n}.zarr", runner, limit=n) as pool:
        t_start = time.perf_counter()
        pool.start(pending)  # the actors start and load while the store is created, as in a stage
        store = create_ensemble_store(
            folder / f"scale-{n}.zarr",
            layout,
            np.zeros((n_dates, layout.n_members), dtype=np.int64),
            {"swarmcast_stage": "bench scale"},
        )
        pool.wait_started()
        started = time.perf_counter()
        cpu0, busy0 = time.process_time(), _cpu_busy()
        report = run_units(plan, store, pending, label=f"scale N={n}", runner=runner, pool=pool)
        end = time.perf_counter()
        driver_cpu, busy1 = time.process_time() - cpu0, _cpu_busy()
    if len(done_units(store, layout)) != len(pending):
        raise RuntimeError(f"N={n}: not every unit was written")
    model_s = len(pending) * p["leads"] * p["step_s"]
    machine_busy = (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1e-9)
    return {
        "accelerators": n,
        "units": len(pending),
        "init_dates": n_dates,
        "startup_s": round(started - t_start, 2),
        "wall_s": round(end - started, 2),
        "model_s": round(model_s, 2),
        "utilization": round(model_s / (n * (end - started)), 4),
        "utilization_with_startup": round(model_s / (n * (end - t_start)), 4),
        "model_loads": report.model_loads,
        "most_actors": report.most_actors,
        "driver_cpu_ms_per_unit": round(1e3 * driver_cpu / len(pending), 3),
        "machine_cpu_busy": round(machine_busy, 3),
    }


def _sizes(given: object) -> list[int]:
    """Accelerator counts from ``8``, ``[1, 8]`` or ``"1,8"`` (the command line's form)."""
    items = given.split(",") if isinstance(given, str) else given if isinstance(given, list) else [given]
    try:
        sizes = sorted({int(n) for n in items})
    except (TypeError, ValueError):
        sizes = []
    if not sizes or sizes[0] < 1:
        raise ConfigError(f"accelerators: positive whole counts such as 1,8,64; got {given!r}")
    return sizes


def run(params: dict) -> dict:
    import ray

    p = check_params(params, DEFAULTS)
    sizes = _sizes(p["accelerators"])
    if ray.is_initialized():
        raise ConfigError("bench scale starts its own Ray instance with virtual accelerators; run it without --address")
    ray.init(address="local", resources={RESOURCE: float(sizes[-1])}, include_dashboard=False)
    try:
        with tempfile.TemporaryDirectory(prefix="swarmcast-bench-scale-") as tmp:
            rows = [one_size(p, n, Path(tmp)) for n in sizes]
            campaign = None
            if p["campaign_dates"]:  # the driver's bookkeeping at HENS size: 92 x 29 x 16 units by default
                # no data is written here: one lead on a 2 x 2 grid keeps the store to its metadata
                small = {"blocks": p["campaign_blocks"], "member_block": 16, "leads": 1, "nlat": 2, "nlon": 2}
                layout = emulated_layout(p | small | {"channels": 1}, p["campaign_dates"])
                campaign = campaign_bookkeeping(layout, Path(tmp))
    finally:
        ray.shutdown()
    return {
        "bench": "scale",
        "params": p,
        "sizes": rows,
        "campaign": campaign,
        "ratio": rows[-1]["utilization"],
        "machine": machine(),
    }


__all__ = ["DEFAULTS", "EmulatedPlan", "EmulatedUnitRunner", "emulated_layout", "one_size", "run"]
