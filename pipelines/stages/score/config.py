"""The ``score`` stage's settings: checked without importing torch, Ray or xarray."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from swarmcast.pipelines.config import StageConfig, resolve_path

Region = Literal["global", "northern-extratropics", "tropics", "southern-extratropics"]


class ScoreConfig(StageConfig):
    """Parameters of the ``score`` stage."""

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
    regions: list[Region] = Field(default_factory=lambda: ["global", "northern-extratropics", "tropics"])
    """Latitude bands to average over (global, northern-extratropics, tropics, southern-extratropics)."""
    ensemble_sizes: list[int] | None = None
    """Sub-ensemble sizes for the skill-versus-size curve; None: 2, 4, 8, ... and all members."""
    bootstrap: int = Field(10, ge=1)
    """Random sub-ensembles drawn per size."""
    spectra: bool = True
    """Compute angular power spectra of members, ensemble mean and truth."""
    seed: int | None = None
    """Seed for rank tie-breaking and sub-ensemble draws; None: the pipeline seed."""
    nonfinite_truth: Literal["refuse", "skip"] = "refuse"
    """Where the truth at a valid time holds NaN or infinite values: ``refuse`` (naming the
    time, variable and count) or ``skip`` those (init time, lead) blocks of that variable,
    counted in the scores store's ``truth_blocks_skipped``."""

    def inputs(self, base: Path) -> list[Path]:
        return [resolve_path(base, self.forecast), resolve_path(base, self.truth)]

    def outputs(self, base: Path) -> list[Path]:
        return [resolve_path(base, self.output)]

    def plan(self, base: Path) -> str:
        return (
            f"score {resolve_path(base, self.forecast)} against {resolve_path(base, self.truth)} "
            f"over {', '.join(self.regions)}; write {resolve_path(base, self.output)}"
        )
