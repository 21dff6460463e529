"""The unit scheduler: work units of an ensemble store computed on Ray actors, one checkpoint each.

Each actor loads its checkpoint once (on its GPU share when ``actors.use_gpu``) and runs that
checkpoint's units one after another. The driver keeps at most ``max_actors`` actors alive and
starts an actor per checkpoint with released units (a campaign releases a few init dates at a
time: ``swarmcast.ops.ensemble.campaign``). When an actor dies the driver replaces it and redoes
its unit (shards are rewritten whole, so the result is identical); an actor that fails while
loading its checkpoint is not retried, since it would fail again. Units are deterministic, so
a retry or a resumed run writes the same bytes (ARCHITECTURE.md, "Work units").
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

from swarmcast.ops.ensemble.campaign import DateWindow
from swarmcast.ops.ensemble.store import Unit
from swarmcast.ops.progress import Progress
from swarmcast.ops.storage import Location
from swarmcast.pipelines.config import ConfigError
from swarmcast.pipelines.ensemble.protocols import PlanT, RunnerClass, UnitPlan


@dataclass
class SchedulerReport:
    """What ``run_units`` did: for the stage's summary and for tests that inject faults."""

    computed: int = 0
    """Units computed and written."""
    redone: int = 0
    """Units started again after their actor died (each counted once per retry)."""
    actors_started: int = 0
    """Actors created (each loads one checkpoint)."""


def _actor_options(plan: UnitPlan) -> dict:
    a = plan.actors
    opts: dict = {"num_cpus": a.cpus, "max_restarts": 0}
    if a.use_gpu:
        opts["num_gpus"] = 1.0 / a.per_gpu
    return opts


def _max_actors(plan: UnitPlan) -> int:
    a = plan.actors
    if a.max_actors:
        return a.max_actors
    res = ray.cluster_resources()
    if a.use_gpu:
        return max(1, int(res.get("GPU", 0) * a.per_gpu))
    return max(1, int(res.get("CPU", 1) // a.cpus))


def _setup_failure(err: RayActorError, checkpoint: str) -> ConfigError:
    """The message of an actor whose constructor raised (e.g. a missing GPU), as a user error."""
    cause = str(err).strip().splitlines()
    last = next((line for line in reversed(cause) if line.strip()), str(err))
    return ConfigError(f"the actor for checkpoint {checkpoint} could not start: {last.strip()}")


def run_units(
    plan: PlanT,
    store: Location,
    pending: list[Unit],
    *,
    label: str,
    runner: RunnerClass[PlanT],
    window: DateWindow | None = None,
) -> SchedulerReport:
    """Compute ``pending`` units with a bounded set of per-checkpoint actors.

    ``runner(plan, checkpoint_index, store)`` is the actor class (its ``run(unit)`` computes and
    writes one unit): the hindcast's SFNO runner or the diffusion sampler's; the scheduling,
    reuse and redo-on-death are the same. ``window`` (a campaign) releases the units of a few
    init dates at a time; by default all at once. At most one actor per checkpoint runs at a
    time, so each loads its checkpoint once and works through that checkpoint's released units
    in date priority order.
    """
    remote_runner = ray.remote(runner).options(**_actor_options(plan))
    window = window or DateWindow(pending)
    queued: dict[int, deque[Unit]] = defaultdict(deque)  # checkpoint -> released units
    active: dict[Any, tuple[int, Any, Unit]] = {}  # ref -> (checkpoint, actor, unit)
    busy: set[int] = set()  # checkpoints with a live actor
    retries: dict[Unit, int] = {}
    limit = _max_actors(plan)
    report = SchedulerReport()

    def release(units: list[Unit]) -> None:
        for u in units:
            queued[u.checkpoint].append(u)

    def start(ck: int, actor: Any = None) -> None:
        if actor is None:
            actor = remote_runner.remote(plan, ck, str(store))
            report.actors_started += 1
        busy.add(ck)
        unit = queued[ck].popleft()
        active[actor.run.remote(unit)] = (ck, actor, unit)

    def fill() -> None:
        for ck in sorted(queued):
            if len(active) >= limit:
                return
            if queued[ck] and ck not in busy:
                start(ck)

    with Progress(f"{label}: units", len(pending), "units") as bar:
        release(window.release())
        fill()
        while active:
            ready, _ = ray.wait(list(active), num_returns=1)
            ck, actor, unit = active.pop(ready[0])
            try:
                ray.get(ready[0])
            except (RayActorError, ActorUnavailableError) as err:  # died, or lost with its node
                if getattr(err, "actor_init_failed", False):
                    raise _setup_failure(err, plan.layout.checkpoints[ck]) from None
                retries[unit] = retries.get(unit, 0) + 1
                if retries[unit] > plan.actors.max_unit_retries:
                    raise RuntimeError(f"unit {unit} failed {retries[unit]} times; rerun to resume") from None
                report.redone += 1
                queued[ck].appendleft(unit)  # redo it on a fresh actor
                start(ck)
                continue
            bar.update(1)
            report.computed += 1
            release(window.finished(unit))
            if queued[ck]:
                start(ck, actor)  # reuse the loaded checkpoint
            else:
                ray.kill(actor)
                busy.discard(ck)
            fill()
        bar.summary = f"{len(pending)} units written"
    return report


__all__ = ["SchedulerReport", "run_units"]
