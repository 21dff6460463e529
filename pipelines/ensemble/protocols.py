"""What a stage hands the unit scheduler: a checked plan, and the class of the actor that runs units.

``hindcast`` (SFNO checkpoints x perturbations) and ``sample-diffusion`` (a diffusion
forecaster's samples) fill the same ensemble store through the same scheduler
(``swarmcast.pipelines.ensemble.scheduler.run_units``). Each stage checks its inputs into a
plan (``HindcastPlan``, ``GenerativePlan``) and provides an actor class whose constructor loads
one checkpoint and whose ``run`` computes and writes one unit, saying when each is done. The scheduler needs only what
these protocols name; everything else in a plan is between the stage and its own actor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:  # annotations only: the command line lists the benches, which import this, and
    # should not pay for xarray and dask (ops.ensemble.store) to do so
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


COMPUTED = "computed"
"""What ``UnitRunner.run`` yields first: the unit has left the accelerator; its writes go on."""
WRITTEN = "written"
"""What ``UnitRunner.run`` yields last: the unit's shards, then its done flags, are written."""


class UnitRunner(Protocol):
    """An actor holding one loaded checkpoint at a time (see ``RunnerClass`` for its constructor)."""

    def run(self, unit: Unit) -> Iterator[str]:
        """Load ``unit.checkpoint`` unless it is held and compute ``unit`` (under the actor's
        compute lock), then yield ``COMPUTED``; write its shards, then its done flags, then yield
        ``WRITTEN``. Ray streams the two events to the scheduler as they happen, so it hands the
        actor its next unit the moment its compute is free, while this one is still written."""
        ...

    def pid(self) -> int:
        """The actor's process id (fault-injection tests kill it)."""
        ...


PlanT = TypeVar("PlanT", bound=UnitPlan)

RunnerClass = Callable[[PlanT, int, str], UnitRunner]
"""``runner(plan, checkpoint_index, store_url_or_path)``: builds the actor holding that
checkpoint (the one of its first unit); Ray instantiates it."""


__all__ = ["COMPUTED", "WRITTEN", "PlanT", "RunnerClass", "UnitPlan", "UnitRunner"]
