"""Settings scoring shares between the ``score`` stage and the hindcast's ``score:`` section;
imports neither Ray nor xarray, so configs are checked in well under a second."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from swarmcast.pipelines.config import Strict

Region = Literal["global", "northern-extratropics", "tropics", "southern-extratropics"]
DEFAULT_REGIONS: list[Region] = ["global", "northern-extratropics", "tropics"]


class OnlineScoreSettings(Strict):
    """Scores computed while the hindcast runs (``swarmcast.pipelines.scoring.online``): the
    same store the ``score`` stage writes, without a pass over the members afterwards."""

    truth: str | None = None
    """Climate store with the verifying states; None: the hindcast's ``data``."""
    output: str = "scores.zarr"
    """Scores store to write (published when the campaign ends)."""
    variables: list[str] | None = None
    """Model channels to score; None: all. Channels not stored (``variables``) are kept in a
    scratch store only until their date is scored."""
    regions: list[Region] = Field(default_factory=lambda: list(DEFAULT_REGIONS))
    """Latitude bands to average over (more can be finished from the sums later)."""
    ensemble_sizes: list[int] | None = None
    """Sub-ensemble sizes for the skill-versus-size curve; None: 2, 4, 8, ... and all members."""
    bootstrap: int = Field(10, ge=1)
    """Random sub-ensembles drawn per size."""
    spectra: bool = True
    """Compute angular power spectra of members, ensemble mean and truth."""
    weighting: Literal["area", "cos-lat"] = "area"
    """Latitude weighting of the area means."""
    memory_budget_mb: float = Field(1024.0, gt=0)
    """Memory one scoring task may use (MiB); larger blocks are split into latitude bands."""
    task_cpus: float = Field(0.5, gt=0)
    """CPUs each scoring task asks Ray for (they run beside the hindcast's actors)."""
    nonfinite_truth: Literal["refuse", "skip"] = "refuse"
    """Where the truth at a valid time is not finite: refuse, or leave those blocks out."""


__all__ = ["DEFAULT_REGIONS", "OnlineScoreSettings", "Region"]
