"""The ``score`` stage's settings: checked without importing torch, Ray or xarray."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from swarmcast.pipelines.config import StageConfig, resolve_path
from swarmcast.pipelines.scoring.settings import DEFAULT_REGIONS, Region


class ScoreConfig(StageConfig):
    """Parameters of the ``score`` stage."""

    RUN_SETTINGS: ClassVar[frozenset[str]] = frozenset({"memory_budget_mb", "task_cpus", "max_tasks_in_flight"})
    """How the work is split and spread: the scores do not depend on them."""
    kind: Literal["score"] = "score"
    """Stage kind."""
    forecast: str = "hindcast.zarr"
    """Ensemble store to score (written by ``hindcast``)."""
    truth: str = "data.zarr"
    """Climate store with the verifying states (any layout ``open_climate`` reads)."""
    output: str = "scores.zarr"
    """Scores store to write."""
    variables: list[str] | None = None
    """Variables to score; None: every forecast variable the truth also has."""
    regions: list[Region] = Field(default_factory=lambda: list(DEFAULT_REGIONS))
    """Latitude bands to average over (global, northern-extratropics, tropics, southern-extratropics)."""
    ensemble_sizes: list[int] | None = None
    """Sub-ensemble sizes for the skill-versus-size curve; None: 2, 4, 8, ... and all members."""
    bootstrap: int = Field(10, ge=1)
    """Random sub-ensembles drawn per size."""
    spectra: bool = True
    """Compute angular power spectra of members, ensemble mean and truth."""
    seed: int | None = None
    """Seed for rank tie-breaking and sub-ensemble draws; None: the pipeline seed."""
    memory_budget_mb: float = Field(1024.0, gt=0)
    """Memory one scoring task may use (MiB); a block of all members that does not fit is split
    into bands of latitude rows (exact: every score is a sum of per-row sums)."""
    task_cpus: float = Field(1.0, gt=0)
    """CPUs each scoring task asks Ray for."""
    max_tasks_in_flight: int | None = Field(None, ge=1)
    """Most scoring tasks submitted at once; None: twice what the cluster's CPUs run at once."""
    weighting: Literal["area", "cos-lat"] = "area"
    """Latitude weighting of the area means: cell areas (WeatherBench2's) or cos(latitude)."""
    from_sums: str | None = None
    """A scores store whose partial sums to finish for these ``regions`` and ``weighting``,
    instead of reading the forecast: a new region costs a sum over latitude rows, no pass over
    members. ``forecast`` and ``truth`` are then not read."""
    nonfinite_truth: Literal["refuse", "skip"] = "refuse"
    """Where the truth at a valid time holds NaN or infinite values: ``refuse`` (naming the
    time, variable and count) or ``skip`` those (init time, lead) blocks of that variable,
    counted in the scores store's ``truth_blocks_skipped``."""

    def inputs(self, base: Path) -> list[Path]:
        if self.from_sums is not None:
            return [resolve_path(base, self.from_sums)]
        return [resolve_path(base, self.forecast), resolve_path(base, self.truth)]

    def outputs(self, base: Path) -> list[Path]:
        return [resolve_path(base, self.output)]

    def plan(self, base: Path) -> str:
        if self.from_sums is not None:
            return (
                f"finish the partial sums of {resolve_path(base, self.from_sums)} over {', '.join(self.regions)}; "
                f"write {resolve_path(base, self.output)}"
            )
        return (
            f"score {resolve_path(base, self.forecast)} against {resolve_path(base, self.truth)} "
            f"over {', '.join(self.regions)}; write {resolve_path(base, self.output)}"
        )
