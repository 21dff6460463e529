"""Scoring fanned out as Ray tasks: the ``score`` stage's engine, and the hindcast's online scorer.

Each task (``swarmcast.ops.verification.blocks``: one variable, init time, stored chunk's leads
and band of latitude rows) runs in a Ray worker that opens the two stores itself (once per
worker process, kept in ``_SOURCES``), reads its members and its truth once, and returns row
sums; the driver only places them (``SumsCollector.add``), so its work per task is constant.
Tasks ask Ray for ``memory_budget`` bytes of the ``memory`` resource, so a node never runs more
of them at once than its memory holds; a task whose worker dies is retried by Ray
(``max_retries``) and, being a pure function of the stores, returns the same sums.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray

from swarmcast.ops.data.readers import open_climate
from swarmcast.ops.storage import Location, open_zarr_dataset
from swarmcast.ops.verification.blocks import BlockTask, DatasetSource, ScoringSpec, TaskSums, score_task
from swarmcast.ops.verification.metrics import align_truth

TASK_NAME = "score_block"
"""Ray titles a task's process ``ray::score_block`` while it runs (the kill test finds it so)."""


@dataclass(frozen=True)
class ScoringInputs:
    """Where a task's data is: the two stores, the variables and the init times (values, so a
    store that gains dates meanwhile is read at the same ones), the blocks to leave out and the
    climatology fields (per variable (lat, lon))."""

    forecast: Location
    truth: Location
    variables: tuple[str, ...]
    init_times: tuple[np.datetime64, ...]
    skip: Mapping[str, np.ndarray]
    climatology: Mapping[str, np.ndarray]


_SOURCES: dict[int, DatasetSource] = {}
"""Per worker process: the opened stores of the inputs seen last (opening costs more than a task)."""


def _source(inputs: ScoringInputs) -> DatasetSource:
    key = hash((str(inputs.forecast), str(inputs.truth), inputs.variables, inputs.init_times))
    if key not in _SOURCES:
        _SOURCES.clear()
        # no dask: xarray's lazy indexing reads just the chunks a task's slab touches
        ens = open_zarr_dataset(inputs.forecast, chunks=None)
        ens = ens.sel(init_time=np.asarray(inputs.init_times, dtype="datetime64[ns]"))
        truth = open_climate(inputs.truth, list(inputs.variables))
        _SOURCES[key] = DatasetSource(ens, align_truth(ens, truth), inputs.climatology, inputs.skip)
    return _SOURCES[key]


@ray.remote(name=TASK_NAME)
def _score_block(inputs: ScoringInputs, spec: ScoringSpec, task: BlockTask) -> TaskSums:
    result = score_task(_source(inputs), task, spec)
    result.peak_rss_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return result


@ray.remote
def _warm(seconds: float) -> tuple[int, int]:
    import os

    import swarmcast.ops.verification.blocks  # noqa: F401  (torch, xarray, zarr: what a task imports)

    time.sleep(seconds)  # overlap, so each call holds its own worker
    return os.getpid(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def warm_workers(cpus: float = 1.0) -> tuple[int, int]:
    """Start and import into as many workers as the cluster runs scoring tasks at once (for
    benchmarks, so worker start-up is not timed): (distinct workers, their largest resident
    bytes before any task), the memory a worker holds before it scores anything."""
    n = max(1, int(ray.cluster_resources().get("CPU", 1) / cpus))
    answers = ray.get([_warm.options(num_cpus=cpus).remote(1.0) for _ in range(n)])
    return len({pid for pid, _ in answers}), max(rss for _, rss in answers)


def _remote(cpus: float, memory_budget: int, max_retries: int = 3) -> Any:
    return _score_block.options(num_cpus=cpus, memory=memory_budget, max_retries=max_retries)


def submit_tasks(
    inputs: ScoringInputs, spec: ScoringSpec, tasks: Sequence[BlockTask], *, memory_budget: int, cpus: float = 1.0
) -> list[ray.ObjectRef]:
    """Submit every one of ``tasks`` at once (a date of an online scorer: a few dozen); their refs."""
    inputs_ref, spec_ref = ray.put(inputs), ray.put(spec)
    remote = _remote(cpus, memory_budget)
    return [remote.remote(inputs_ref, spec_ref, t) for t in tasks]


def run_tasks(
    inputs: ScoringInputs,
    spec: ScoringSpec,
    tasks: Sequence[BlockTask],
    on_result: Callable[[TaskSums], None],
    *,
    memory_budget: int,
    cpus: float = 1.0,
    max_retries: int = 3,
    in_flight: int | None = None,
) -> int:
    """Run ``tasks`` on the cluster, calling ``on_result`` with each task's sums as it finishes.

    At most ``in_flight`` tasks are submitted at a time (default: twice the tasks the cluster's
    CPUs can run at once), so the driver holds few results however many tasks there are.
    Returns the number of tasks run.
    """
    inputs_ref, spec_ref = ray.put(inputs), ray.put(spec)
    remote = _remote(cpus, memory_budget, max_retries)
    limit = in_flight or max(2, int(2 * ray.cluster_resources().get("CPU", 1) / cpus))
    waiting, running, done = list(reversed(tasks)), [], 0
    while waiting or running:
        while waiting and len(running) < limit:
            running.append(remote.remote(inputs_ref, spec_ref, waiting.pop()))
        finished, running = ray.wait(running, num_returns=1)
        on_result(ray.get(finished[0]))
        done += 1
    return done


__all__ = ["TASK_NAME", "ScoringInputs", "run_tasks", "submit_tasks", "warm_workers"]
