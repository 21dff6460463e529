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

import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

from swarmcast.ops.ensemble.campaign import DateWindow
from swarmcast.ops.ensemble.store import Unit
from swarmcast.ops.errors import StorageFullError, storage_full_reason
from swarmcast.ops.progress import Progress
from swarmcast.ops.storage import Location
from swarmcast.pipelines.config import ConfigError
from swarmcast.pipelines.ensemble.protocols import COMPUTED, PlanT, RunnerClass, UnitPlan


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
    first_unit_s: float | None = None
    """Seconds from the start of ``run_units`` until the first unit was written (actor start-up
    and checkpoint loads not overlapped with store creation, plus that unit); None if none was."""
    units_s: float = 0.0
    """Seconds ``run_units`` took in all."""


def _actor_options(plan: UnitPlan) -> dict:
    a = plan.actors
    # write-behind: a second thread writes one unit's shards while the first computes the next
    opts: dict = {"num_cpus": a.cpus, "max_restarts": 0, "max_concurrency": 2 if a.write_behind else 1}
    if a.use_gpu:
        opts["num_gpus"] = 1.0 / a.per_gpu
    if a.resources:
        opts["resources"] = dict(a.resources)
    return opts


def task_options(plan: UnitPlan) -> dict:
    """Options of a Ray task that needs what one actor has (CPUs, GPU share, custom resources)."""
    return {k: v for k, v in _actor_options(plan).items() if k in ("num_cpus", "num_gpus", "resources")}


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


def setup_failure(err: Exception, checkpoint: str, what: str = "the actor") -> ConfigError:
    """The message of an actor (or task) that could not start on its resources (e.g. a missing
    GPU), as a user error: one line."""
    return ConfigError(f"{what} for checkpoint {checkpoint} could not start: {_last_line(err)}")


@dataclass
class _Slot:
    """A live actor, the checkpoint it holds (that of the last unit given to it), how many
    units it has in flight and how many of those are still computing (0 or 1: the runner's
    lock lets one compute at a time)."""

    actor: Any
    holds: int
    running: int = 0
    computing: int = 0
    alive: bool = True


@dataclass
class _Flight:
    """A unit in flight on an actor, and whether its ``COMPUTED`` event has come."""

    slot: _Slot
    unit: Unit
    computed: bool = False


def _busiest(counts: dict[int, int], holders: Counter[int]) -> int | None:
    """The checkpoint with the most units per actor on it (counting the one being placed);
    ties go to the lowest index. None when no checkpoint has units."""
    waiting = [ck for ck, n in counts.items() if n]
    if not waiting:
        return None
    return min(waiting, key=lambda c: (-counts[c] / (holders[c] + 1), c))


class ActorPool:
    """The elastic pool of unit runners and the driver's bookkeeping: queued units per
    checkpoint, live actors, units in flight. ``start`` may warm it before ``run_units`` (while
    the store is being created); ``run_units`` makes one otherwise. Used once; as a context
    manager it kills whatever actors are left when the block ends (an error included).

    With ``actors.write_behind`` an actor has up to two units in flight: it computes one while
    the other's shards are written (the runner serialises compute with a lock). Its ``run``
    streams ``COMPUTED`` then ``WRITTEN``, so an actor takes its next unit the moment its
    compute is free: never queued behind another unit's compute, never idle while one is written.
    """

    def __init__(self, plan: UnitPlan, store: Location, runner: RunnerClass, limit: int | None = None) -> None:
        self.plan, self.store = plan, store
        self.limit = limit or _max_actors(plan)
        self.depth = 2 if plan.actors.write_behind else 1
        self.report = SchedulerReport()
        self.remote_runner = ray.remote(runner).options(**_actor_options(plan))
        self.queued: dict[int, deque[Unit]] = defaultdict(deque)  # checkpoint -> released units
        self.holders: Counter[int] = Counter()  # checkpoint -> live actors holding it
        self.active: dict[Any, _Flight] = {}  # the unit's event stream (ObjectRefGenerator) -> flight
        self.slots: list[_Slot] = []
        self._starting: list[tuple[Any, int]] = []  # (pid() ref, checkpoint) of ``start``'s actors

    def _new_actor(self, checkpoint: int) -> _Slot:
        slot = _Slot(self.remote_runner.remote(self.plan, checkpoint, str(self.store)), checkpoint)
        self.slots.append(slot)
        self.holders[checkpoint] += 1
        self.report.actors_started += 1
        self.report.model_loads += 1
        self.report.most_actors = max(self.report.most_actors, len(self.slots))
        return slot

    def start(self, units: list[Unit]) -> None:
        """Start up to ``limit`` actors for ``units`` now (not waiting for them), spread over
        the checkpoints as ``run_units`` would place them; they wait idle for their units."""
        want = Counter(u.checkpoint for u in units)
        while len(self.slots) < self.limit:
            ck = _busiest(want, self.holders)
            if ck is None:
                return
            want[ck] -= 1
            slot = self._new_actor(ck)
            self._starting.append((slot.actor.pid.remote(), ck))

    def wait_started(self) -> None:
        """Block until the actors ``start`` launched have loaded their checkpoints."""
        for ref, checkpoint in self._starting:
            try:
                ray.get(ref)
            except RayActorError as err:
                if getattr(err, "actor_init_failed", False):
                    raise setup_failure(err, self.plan.layout.checkpoints[checkpoint]) from None
                # died otherwise (a lost node): its first unit fails and is redone elsewhere
        self._starting.clear()

    def release(self, units: list[Unit]) -> None:
        for u in units:
            self.queued[u.checkpoint].append(u)

    def _take(self, holds: int | None) -> Unit | None:
        """The next unit for an actor holding ``holds``: its own checkpoint's first, else the
        checkpoint with the most queued units per actor on it."""
        if holds is not None and self.queued[holds]:
            return self.queued[holds].popleft()
        ck = _busiest({c: len(q) for c, q in self.queued.items()}, self.holders)
        return None if ck is None else self.queued[ck].popleft()

    def _submit(self, slot: _Slot, unit: Unit) -> None:
        if slot.holds != unit.checkpoint:
            self.holders[slot.holds] -= 1
            self.holders[unit.checkpoint] += 1
            slot.holds = unit.checkpoint
            self.report.model_loads += 1
        slot.running += 1
        slot.computing += 1
        self.active[slot.actor.run.remote(unit)] = _Flight(slot, unit)

    def dispatch(self) -> None:
        """Give a unit to every actor whose compute is free (none computing, fewer than the
        write-behind depth in flight), those with units of the checkpoint they hold first; then
        start actors while the pool has room."""
        free = [s for s in self.slots if s.computing == 0 and s.running < self.depth]
        for slot in sorted(free, key=lambda s: (not self.queued[s.holds], s.running)):
            unit = self._take(slot.holds)
            if unit is None:
                return  # nothing queued at all
            self._submit(slot, unit)
        while len(self.slots) < self.limit:
            unit = self._take(None)
            if unit is None:
                return
            self._submit(self._new_actor(unit.checkpoint), unit)

    def computed(self, flight: _Flight) -> None:
        """``flight``'s compute is over: its actor may take the next unit."""
        flight.computed = True
        flight.slot.computing -= 1

    def finished(self, slot: _Slot) -> None:
        slot.running -= 1

    def retry(self, flight: _Flight, *, actor_died: bool) -> None:
        """``flight`` failed: queue its unit first for whoever is next; a dead actor leaves the
        pool (a unit that raised leaves its actor in place)."""
        slot = flight.slot
        slot.running -= 1
        if not flight.computed:
            slot.computing -= 1
        if actor_died and slot.alive:
            slot.alive = False
            self.slots.remove(slot)
            self.holders[slot.holds] -= 1
        self.queued[flight.unit.checkpoint].appendleft(flight.unit)

    def retire_idle(self) -> None:
        for slot in [s for s in self.slots if s.running == 0]:
            ray.kill(slot.actor)
            self.holders[slot.holds] -= 1
            self.slots.remove(slot)

    def __enter__(self) -> ActorPool:
        return self

    def __exit__(self, *exc: object) -> None:
        """Kill every actor still alive (after an error: none is left running or loading)."""
        for slot in self.slots:
            ray.kill(slot.actor)
        self.slots.clear()
        self.active.clear()


def run_units(
    plan: PlanT,
    store: Location,
    pending: list[Unit],
    *,
    label: str,
    runner: RunnerClass[PlanT],
    window: DateWindow | None = None,
    pool: ActorPool | None = None,
) -> SchedulerReport:
    """Compute ``pending`` units on an elastic actor pool (see the module docstring).

    ``runner(plan, checkpoint_index, store)`` is the actor class: it loads that checkpoint, and
    its ``run(unit)`` computes and writes one unit, loading the unit's checkpoint first when it
    holds another. ``window`` (a campaign) releases the units of a few init dates at a time; by
    default all at once. ``pool``: one already started (``ActorPool.start``) for these units.
    A unit whose ``run`` raises (a failed write, say) is redone like one whose actor died; it
    was not marked done, so after ``max_unit_retries`` the error is raised and a rerun resumes.
    """
    window = window or DateWindow(pending)
    if pool is None:
        pool = ActorPool(plan, store, runner, min(_max_actors(plan), max(1, len(pending))))
    report = pool.report
    retries: dict[Unit, int] = {}
    began = time.perf_counter()
    with Progress(f"{label}: units", len(pending), "units") as bar:
        pool.release(window.release())
        pool.dispatch()
        while pool.active:
            ready, _ = ray.wait(list(pool.active), num_returns=1)
            flight = pool.active[ready[0]]
            unit = flight.unit
            try:
                event = ray.get(next(ready[0]))
            except (RayActorError, ActorUnavailableError, RayTaskError) as err:
                del pool.active[ready[0]]
                if getattr(err, "actor_init_failed", False):
                    raise setup_failure(err, plan.layout.checkpoints[unit.checkpoint]) from None
                full = storage_full_reason(err)
                if full is not None:  # retrying cannot help; every actor would hit the same wall
                    raise StorageFullError(
                        f"cannot write to {store}: {full} (unit {unit}). Units already written are "
                        "marked done and this one is not: make room, then rerun to resume"
                    ) from None
                retries[unit] = retries.get(unit, 0) + 1
                if retries[unit] > plan.actors.max_unit_retries:
                    raise RuntimeError(
                        f"unit {unit} failed {retries[unit]} times; its members are not marked done, "
                        f"so a rerun resumes it. Last error: {_last_line(err)}"
                    ) from None
                report.redone += 1
                # RayTaskError: the unit raised and its actor lives on; otherwise the actor died
                # or was lost with its node
                pool.retry(flight, actor_died=not isinstance(err, RayTaskError))
                pool.dispatch()
                continue
            if event == COMPUTED:
                pool.computed(flight)
                pool.dispatch()
                continue
            del pool.active[ready[0]]  # WRITTEN: the unit's shards and done flags are durable
            bar.update(1)
            report.computed += 1
            if report.first_unit_s is None:
                report.first_unit_s = time.perf_counter() - began
            pool.finished(flight.slot)
            pool.release(window.finished(unit))
            pool.dispatch()
            if window.exhausted and not any(pool.queued.values()):
                pool.retire_idle()  # nothing more will be released: free their GPUs now
        pool.retire_idle()
        bar.summary = f"{len(pending)} units written"
    report.units_s = time.perf_counter() - began
    return report


def _last_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


__all__ = ["ActorPool", "SchedulerReport", "run_units", "setup_failure", "task_options"]
