"""What a stage hands the unit scheduler: a checked plan, and the class of the actor that runs units.

``hindcast`` (SFNO checkpoints x perturbations) and ``sample-diffusion`` (a diffusion
forecaster's samples) fill the same ensemble store through the same scheduler
(``swarmcast.pipelines.ensemble.scheduler.run_units``). Each stage checks its inputs into a
plan (``HindcastPlan``, ``GenerativePlan``) and provides an actor class whose constructor loads
one checkpoint and whose ``run`` computes and writes one unit. The scheduler needs only what
these protocols name; everything else in a plan is between the stage and its own actor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from swarmcast.ops.ensemble.store import EnsembleLayout, Unit
from swarmcast.ops.storage import Location
from swarmcast.pipelines.ensemble.settings import ActorSettings


class UnitPlan(Protocol):
    """A stage's checked plan, as far as the scheduler is concerned."""

    @property
    def actors(self) -> ActorSettings:
        """Resources per actor and the retry budget."""
        ...

    @property
    def layout(self) -> EnsembleLayout:
        """The store's layout: which units exist and which checkpoint each belongs to."""
        ...

    @property
    def checkpoint_paths(self) -> Sequence[Location]:
        """One checkpoint folder per checkpoint index of the layout."""
        ...


class UnitRunner(Protocol):
    """An actor holding one loaded checkpoint at a time (see ``RunnerClass`` for its constructor)."""

    def run(self, unit: Unit) -> Unit:
        """Load ``unit.checkpoint`` unless it is held; compute ``unit``, write its shards, then
        its done flags; return it."""
        ...

    def pid(self) -> int:
        """The actor's process id (fault-injection tests kill it)."""
        ...


PlanT = TypeVar("PlanT", bound=UnitPlan)

RunnerClass = Callable[[PlanT, int, str], UnitRunner]
"""``runner(plan, checkpoint_index, store_url_or_path)``: builds the actor holding that
checkpoint (the one of its first unit); Ray instantiates it."""


__all__ = ["PlanT", "RunnerClass", "UnitPlan", "UnitRunner"]
