"""The ``swe-dataset`` stage's settings: checked without importing torch or Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from swarmcast.ops.data.swe_settings import SWE_CHANNELS, SWEConfig
from swarmcast.pipelines.config import StageConfig, Strict, resolve_path


class Grid(Strict):
    """An equiangular lat-lon grid with both poles."""

    nlat: int = Field(32, ge=8)
    """Number of latitudes, 90 -> -90."""
    nlon: int = Field(64, ge=8)
    """Number of longitudes, 0 <= lon < 360."""


class SWEDatasetConfig(StageConfig):
    """Parameters of the ``swe-dataset`` stage (see ``swarmcast.ops.data.swe.SWEConfig``)."""

    kind: Literal["swe-dataset"] = "swe-dataset"
    """Stage kind."""
    output: str = "data.zarr"
    """Zarr store to write (relative to the pipeline file)."""
    grid: Grid = Grid()
    """Output grid; 32 x 64 is the fast demo, 256 x 512 wants a GPU."""
    trajectories: int = Field(4, ge=1)
    """Independent trajectories, laid end to end as consecutive years."""
    days: float = Field(30.0, gt=0, le=365)
    """Stored days per trajectory."""
    output_step_hours: int = Field(6, ge=1)
    """Hours between snapshots."""
    spinup_days: float = Field(2.0, ge=0)
    """Days integrated and discarded before the first snapshot."""
    mach: float = Field(0.06, gt=0, lt=1)
    """Initial RMS wind relative to the gravity-wave speed."""
    peak_wavenumber: float | None = Field(None, gt=0)
    """Wavenumber where the initial vorticity spectrum peaks; None: min(6, lmax / 3)."""
    channels: list[str] = Field(default_factory=lambda: list(SWE_CHANNELS))
    """Channels to store: any of h, u, v, vo."""
    seed: int | None = None
    """Dataset seed; None uses the pipeline seed."""
    solver_step_seconds: float | None = None
    """Solver step; None picks a stable divisor of the output step."""
    tendency_hours: float = Field(6.0, gt=0)
    """Interval of the tendency statistics stored with the data."""
    time_chunk: int | None = Field(None, ge=1)
    """Snapshots per Zarr chunk; None targets ~1 MiB chunks."""
    device: Literal["cpu", "cuda"] = "cpu"
    """Where the solver runs."""

    @model_validator(mode="after")
    def _physics_ok(self) -> SWEDatasetConfig:
        self.to_swe(0)  # raises ValueError with a readable message
        if self.tendency_hours % self.output_step_hours:
            raise ValueError(
                f"tendency_hours ({self.tendency_hours}) must be a multiple of output_step_hours "
                f"({self.output_step_hours})"
            )
        return self

    def to_swe(self, pipeline_seed: int) -> SWEConfig:
        return SWEConfig(
            nlat=self.grid.nlat,
            nlon=self.grid.nlon,
            trajectories=self.trajectories,
            days=self.days,
            output_step_hours=self.output_step_hours,
            spinup_days=self.spinup_days,
            mach=self.mach,
            peak_wavenumber=self.peak_wavenumber,
            seed=self.seed if self.seed is not None else pipeline_seed,
            channels=tuple(self.channels),
            solver_step_seconds=self.solver_step_seconds,
        )

    def outputs(self, base: Path) -> list[Path]:
        return [resolve_path(base, self.output)]

    def plan(self, base: Path) -> str:
        c = self.to_swe(0)
        nbytes = c.n_times * len(c.channels) * c.nlat * c.nlon * 4
        return (
            f"integrate {c.trajectories} shallow-water trajectories x {c.days:g} days "
            f"(+{c.spinup_days:g} spin-up) at {c.nlat}x{c.nlon}, solver step {c.solver_step():g} s; "
            f"write {self.outputs(base)[0]}: {c.n_times} times x {len(c.channels)} channels "
            f"({nbytes / 2**20:.1f} MiB uncompressed)"
        )
