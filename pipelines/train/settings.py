"""Ray Train resources of one training run (the ``scaling`` key of the training stages)."""

from __future__ import annotations

from pydantic import Field

from swarmcast.pipelines.config import Strict


class Scaling(Strict):
    """Ray Train resources per model."""

    workers: int = Field(1, ge=1)
    """DDP workers per model."""
    use_gpu: bool = False
    """One GPU per worker (NCCL; refused before training when the cluster has none); CPU workers use gloo."""
    cpus_per_worker: float = Field(0.5, gt=0)
    """CPUs per worker; below 1 leaves room for Ray Data read tasks on small machines."""


__all__ = ["Scaling"]
