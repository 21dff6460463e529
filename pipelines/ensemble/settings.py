"""Settings shared by the stages that fill an ensemble store: init times, actors, campaigns."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, PositiveFloat, model_validator

from swarmcast.pipelines.config import Strict


class InitTimes(Strict):
    """Initial times: an explicit list, or a range ``start``..``end`` every ``every_hours``."""

    times: list[str] | None = None
    """Explicit ISO times."""
    start: str | None = None
    """First init time of a range."""
    end: str | None = None
    """Last init time of a range (inclusive)."""
    every_hours: float = Field(24.0, gt=0)
    """Spacing of a range."""

    @model_validator(mode="after")
    def _one_form(self) -> InitTimes:
        if (self.times is None) == (self.start is None):
            raise ValueError("give either 'times' or 'start' (with 'end')")
        if self.start is not None and self.end is None:
            raise ValueError("a range needs 'end'")
        return self

    def resolve(self) -> np.ndarray:
        """datetime64[ns] (n,), sorted."""
        if self.times is not None:
            return np.array(sorted(np.datetime64(t, "ns") for t in self.times))
        start, end = np.datetime64(self.start, "ns"), np.datetime64(self.end, "ns")
        step = np.timedelta64(round(self.every_hours * 3600), "s").astype("timedelta64[ns]")
        if end < start:
            raise ValueError(f"init_times.end {end} is before start {start}")
        return np.arange(start, end + step, step)


class ActorSettings(Strict):
    """Resources of the actors that run units; the pool is as large as these allow."""

    cpus: float = Field(1.0, gt=0)
    """CPUs per actor."""
    use_gpu: bool = False
    """Run on GPUs (refused before any work when the cluster has none)."""
    per_gpu: int = Field(1, ge=1)
    """Actors sharing one GPU (fractional GPUs)."""
    resources: dict[str, PositiveFloat] = Field(default_factory=dict)
    """Custom Ray resources per actor (e.g. ``{"TPU": 1}`` or a node label); they bound the pool too."""
    max_actors: int | None = Field(None, ge=1)
    """Actors at once; None: as many as the cluster's CPUs, GPUs and ``resources`` allow,
    whatever the number of checkpoints."""
    batch_members: int | None = Field(None, ge=1)
    """Members per model call (micro-batches of a unit's block); None: the whole block on the
    CPU, as many as fit on a GPU (one member's peak memory is measured). Halved on out-of-memory;
    the stored bytes do not depend on it."""
    write_behind: bool = True
    """Each actor computes its next unit while the last one's shards are compressed and written
    (two units in flight per actor, so memory for two units' output)."""
    max_unit_retries: int = Field(3, ge=0)
    """Times a unit is redone (its actor died, or its computation or writes raised) before giving up."""


class CampaignSettings(Strict):
    """How many init dates run at once, and in which order (HENS: a job array, two dates at a time)."""

    max_concurrent_dates: int | None = Field(None, ge=1)
    """Dates in flight at once; None: all. When a date finishes (and is merged) the next one starts."""
    order: Literal["oldest-first", "newest-first"] = "oldest-first"
    """Priority of the dates."""


__all__ = ["ActorSettings", "CampaignSettings", "InitTimes"]
