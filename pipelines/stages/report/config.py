"""The ``report`` stage's settings: checked without importing torch, Ray or xarray."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from swarmcast.pipelines.config import StageConfig, resolve_path
from swarmcast.pipelines.scoring.settings import Region


class ReportConfig(StageConfig):
    """Parameters of the ``report`` stage."""

    kind: Literal["report"] = "report"
    """Stage kind."""
    scores: str = "scores.zarr"
    """Scores store written by the ``score`` stage."""
    forecast: str | None = "hindcast.zarr"
    """Ensemble store for maps; None: no maps."""
    truth: str | None = "data.zarr"
    """Truth store for the error maps (needed with ``forecast``)."""
    output: str = "report"
    """Folder to write (PNG files and index.html)."""
    map_lead_hours: float | None = None
    """Lead time of the maps; None: three leads (the first after 0, the middle, the last)."""
    compare: str | None = None
    """Another run's scores store: the page adds this run against it (CRPS differences per
    lead with intervals over their common init dates, and where they are significant)."""
    regions: list[Region] | None = None
    """Regions to draw beside ``global`` (the headline figures' region); None: those of the
    scores store. Finished from its partial sums (``swarmcast.ops.verification.finish``), with no
    pass over the ensemble."""
    init_times: list[str] | None = None
    """Init dates (ISO, e.g. "2003-01-04T00") the scores are taken over; None: all. Finished
    from the partial sums, like ``regions``."""
    title: str = "swarmcast ensemble verification"
    """Page title."""

    def inputs(self, base: Path) -> list[Path]:
        extra = [resolve_path(base, p) for p in (self.forecast, self.truth, self.compare) if p is not None]
        return [resolve_path(base, self.scores), *extra]

    def outputs(self, base: Path) -> list[Path]:
        return [resolve_path(base, self.output)]

    def plan(self, base: Path) -> str:
        return f"plot {resolve_path(base, self.scores)}; write {resolve_path(base, self.output)}/index.html"
