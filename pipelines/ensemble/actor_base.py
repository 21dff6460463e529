"""What the unit runners of ``hindcast`` and ``sample-diffusion`` share.

A runner is a Ray actor (a ``UnitRunner``) that holds one loaded checkpoint at a time on its
device, reads the analysis from the climate store, and computes units one at a time under a
lock: with ``actors.write_behind`` Ray runs two ``run`` calls at once, and the lock lets one
compute while the other writes (ARCHITECTURE.md, "Work units"). Subclasses load a checkpoint
in ``_load`` and compute a unit in ``run``.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Protocol

import torch

from swarmcast.ops.data.readers import open_climate
from swarmcast.ops.devices import compute_device
from swarmcast.ops.storage import Location
from swarmcast.pipelines.ensemble.protocols import UnitPlan


class AnalysisPlan(UnitPlan, Protocol):
    """A plan whose units start from analyses in a climate store."""

    @property
    def store(self) -> Location:
        """The climate store the initial states come from."""
        ...

    @property
    def channels(self) -> tuple[str, ...]:
        """The model's channels, in order."""
        ...


class CheckpointUnitRunner:
    """The shared half of a unit runner: device, torch threads, the analysis, the compute lock,
    and loading a checkpoint only when a unit needs another one."""

    def __init__(self, plan: AnalysisPlan, checkpoint: int, store: str) -> None:
        self.plan, self.store = plan, store
        self.device = compute_device(plan.actors.use_gpu)
        torch.set_num_threads(max(1, int(plan.actors.cpus)))
        self.data = open_climate(plan.store, plan.channels)
        self._compute = threading.Lock()  # held while a unit computes; released for its writes
        self.checkpoint: int | None = None
        self.model: Any = None
        self._hold(checkpoint)

    def _hold(self, checkpoint: int) -> None:
        """Load ``checkpoint`` unless it is the one held (call with ``_compute`` held)."""
        if self.checkpoint == checkpoint:
            return
        self.model = None  # free the old weights (device memory) before loading the next
        self._load(checkpoint)
        self.checkpoint = checkpoint

    def _load(self, checkpoint: int) -> None:
        """Set ``self.model`` (and whatever else the runner needs) from checkpoint ``checkpoint``."""
        raise NotImplementedError

    def pid(self) -> int:
        return os.getpid()


__all__ = ["AnalysisPlan", "CheckpointUnitRunner"]
