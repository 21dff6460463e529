"""The unit scheduler: work units of an ensemble store computed on an elastic pool of Ray actors.

The pool is sized by the cluster (GPUs x ``per_gpu``, CPUs / ``cpus``, or the scarcest custom
resource), or by ``actors.max_actors``, never by the number of checkpoints. An actor holds one
loaded checkpoint at a time. When it frees up it takes the next released unit of the checkpoint
it holds (no reload); when that checkpoint has nothing left it moves to the checkpoint with the
most queued units per actor already on it, and loads that one (``SchedulerReport.model_loads``
counts every load). So slots beyond the checkpoint count put several actors on one checkpoint,
and fewer slots than checkpoints make actors walk through checkpoints. Units are handed out one
at a time as actors free up; there is no batch barrier. A campaign (``DateWindow``) releases a
few init dates at a time in priority order.

When an actor dies the driver puts its unit back at the head of its queue and the pool refills,
so the unit is redone on another actor (shards are rewritten whole); an actor whose constructor
fails is not retried, since it would fail again. Units are deterministic, so a retry, a resumed
run, another pool size or another assignment of units to actors writes the same bytes
(ARCHITECTURE.md, "Work units"). The driver's work per unit event is bounded by the number of
checkpoints and live actors, not by the number of units.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
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
    """Actors created, replacements included."""
    model_loads: int = 0
    """Checkpoints loaded: one per actor start, plus one each time an actor changes checkpoint."""
    most_actors: int = 0
    """Most actors alive at once (the pool size the cluster allowed)."""


def _actor_options(plan: UnitPlan) -> dict:
    a = plan.actors
    opts: dict = {"num_cpus": a.cpus, "max_restarts": 0}
    if a.use_gpu:
        opts["num_gpus"] = 1.0 / a.per_gpu
    if a.resources:
        opts["resources"] = dict(a.resources)
    return opts


def _max_actors(plan: UnitPlan) -> int:
    """Actors the cluster has room for (or ``max_actors``): the scarcest resource decides."""
    a = plan.actors
    if a.max_actors:
        return a.max_actors
    res = ray.cluster_resources()
    fits = [int(res.get("CPU", 1) // a.cpus)]
    if a.use_gpu:
        fits.append(int(res.get("GPU", 0) * a.per_gpu))
    fits += [int(res.get(name, 0) // amount) for name, amount in a.resources.items()]
    return max(1, min(fits))


def _setup_failure(err: RayActorError, checkpoint: str) -> ConfigError:
    """The message of an actor whose constructor raised (e.g. a missing GPU), as a user error."""
    cause = str(err).strip().splitlines()
    last = next((line for line in reversed(cause) if line.strip()), str(err))
    return ConfigError(f"the actor for checkpoint {checkpoint} could not start: {last.strip()}")


@dataclass
class _Slot:
    """A live actor and the checkpoint it holds loaded."""

    actor: Any
    holds: int


class _Pool:
    """The driver's bookkeeping: queued units per checkpoint, live actors, units in flight."""

    def __init__(self, plan: UnitPlan, store: Location, runner: RunnerClass, limit: int, report: SchedulerReport):
        self.plan, self.store, self.limit, self.report = plan, store, limit, report
        self.remote_runner = ray.remote(runner).options(**_actor_options(plan))
        self.queued: dict[int, deque[Unit]] = defaultdict(deque)  # checkpoint -> released units
        self.holders: Counter[int] = Counter()  # checkpoint -> live actors holding it
        self.active: dict[Any, tuple[_Slot, Unit]] = {}  # ref -> (slot, unit)
        self.idle: list[_Slot] = []

    def release(self, units: list[Unit]) -> None:
        for u in units:
            self.queued[u.checkpoint].append(u)

    def _take(self, holds: int | None) -> Unit | None:
        """The next unit for an actor holding ``holds``: its own checkpoint's first, else the
        checkpoint with the most queued units per actor on it (ties: lowest index)."""
        if holds is not None and self.queued[holds]:
            return self.queued[holds].popleft()
        waiting = [ck for ck, q in self.queued.items() if q]
        if not waiting:
            return None
        ck = min(waiting, key=lambda c: (-len(self.queued[c]) / (self.holders[c] + 1), c))
        return self.queued[ck].popleft()

    def _submit(self, slot: _Slot, unit: Unit) -> None:
        if slot.holds != unit.checkpoint:
            self.holders[slot.holds] -= 1
            self.holders[unit.checkpoint] += 1
            slot.holds = unit.checkpoint
            self.report.model_loads += 1
        self.active[slot.actor.run.remote(unit)] = (slot, unit)

    def dispatch(self) -> None:
        """Give queued units to idle actors (those that need no reload first), then start actors
        while the pool has room."""
        self.idle.sort(key=lambda s: not self.queued[s.holds])
        while self.idle:
            unit = self._take(self.idle[0].holds)
            if unit is None:
                break
            self._submit(self.idle.pop(0), unit)
        while len(self.active) + len(self.idle) < self.limit:
            unit = self._take(None)
            if unit is None:
                break
            actor = self.remote_runner.remote(self.plan, unit.checkpoint, str(self.store))
            self.report.actors_started += 1
            self.report.model_loads += 1
            self.holders[unit.checkpoint] += 1
            self.active[actor.run.remote(unit)] = (_Slot(actor, unit.checkpoint), unit)
        self.report.most_actors = max(self.report.most_actors, len(self.active) + len(self.idle))

    def lost(self, slot: _Slot, unit: Unit) -> None:
        """``slot``'s actor died running ``unit``: queue the unit first for whoever is next."""
        self.holders[slot.holds] -= 1
        self.queued[unit.checkpoint].appendleft(unit)

    def retire_idle(self) -> None:
        for slot in self.idle:
            ray.kill(slot.actor)
            self.holders[slot.holds] -= 1
        self.idle.clear()


def run_units(
    plan: PlanT,
    store: Location,
    pending: list[Unit],
    *,
    label: str,
    runner: RunnerClass[PlanT],
    window: DateWindow | None = None,
) -> SchedulerReport:
    """Compute ``pending`` units on an elastic actor pool (see the module docstring).

    ``runner(plan, checkpoint_index, store)`` is the actor class: it loads that checkpoint, and
    its ``run(unit)`` computes and writes one unit, loading the unit's checkpoint first when it
    holds another. ``window`` (a campaign) releases the units of a few init dates at a time; by
    default all at once.
    """
    window = window or DateWindow(pending)
    report = SchedulerReport()
    pool = _Pool(plan, store, runner, min(_max_actors(plan), max(1, len(pending))), report)
    retries: dict[Unit, int] = {}
    with Progress(f"{label}: units", len(pending), "units") as bar:
        pool.release(window.release())
        pool.dispatch()
        while pool.active:
            ready, _ = ray.wait(list(pool.active), num_returns=1)
            slot, unit = pool.active.pop(ready[0])
            try:
                ray.get(ready[0])
            except (RayActorError, ActorUnavailableError) as err:  # died, or lost with its node
                if getattr(err, "actor_init_failed", False):
                    raise _setup_failure(err, plan.layout.checkpoints[unit.checkpoint]) from None
                retries[unit] = retries.get(unit, 0) + 1
                if retries[unit] > plan.actors.max_unit_retries:
                    raise RuntimeError(f"unit {unit} failed {retries[unit]} times; rerun to resume") from None
                report.redone += 1
                pool.lost(slot, unit)
                pool.dispatch()
                continue
            bar.update(1)
            report.computed += 1
            pool.release(window.finished(unit))
            pool.idle.append(slot)
            pool.dispatch()
            if window.exhausted and not any(pool.queued.values()):
                pool.retire_idle()  # nothing more will be released: free their GPUs now
        pool.retire_idle()
        bar.summary = f"{len(pending)} units written"
    return report


__all__ = ["SchedulerReport", "run_units"]
