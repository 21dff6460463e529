"""Stage ``swe-dataset``: integrate shallow-water trajectories into an ERA5-shaped Zarr store.

Each trajectory is one Ray task (a streaming generator of snapshot blocks); the driver writes
blocks in time order through ``ClimateStoreWriter`` (every chunk written once, whole), then
streams the finished store once to compute normalisation statistics, and renames it into
place. The store layout is documented in ``swarmcast.ops.data.swe``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import ray
from pydantic import Field, model_validator

from swarmcast.kernels.sphere import longitudes
from swarmcast.ops import __version__
from swarmcast.ops.data.climate_store import ClimateStoreWriter, climate_template, default_time_chunk
from swarmcast.ops.data.normalization import ATTR, compute_normalization
from swarmcast.ops.data.readers import open_climate
from swarmcast.ops.data.swe import SWE_CHANNELS, SWEConfig, latitudes, simulate
from swarmcast.ops.progress import Progress
from swarmcast.pipelines.config import StageConfig, Strict, resolve_path
from swarmcast.pipelines.context import StageContext


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


@ray.remote(num_cpus=1)
def _trajectory(config: SWEConfig, k: int, device: str):  # noqa: ANN202 (Ray generator)
    import torch

    torch.set_num_threads(1)  # one trajectory per core; Ray runs several at once
    yield from simulate(config, trajectories=[k], device=device)


def run(config: SWEDatasetConfig, ctx: StageContext) -> dict:
    """Write the store; returns a summary dict (path, times, channels, seconds)."""
    swe = config.to_swe(ctx.seed)
    out = config.outputs(ctx.base)[0]
    time_chunk = config.time_chunk or default_time_chunk(swe.nlat, swe.nlon, swe.n_times)
    times = swe.times()
    trajectory = (times.astype("datetime64[Y]").astype(int) + 1970 - swe.start_year).astype("int32")
    attrs = {
        "Conventions": "CF-1.10",
        "title": "Shallow-water equations on the sphere (swarmcast embedded reanalysis)",
        "source": f"swarmcast {__version__}; torch-harmonics ShallowWaterSolver",
        "history": "trajectories laid end to end as consecutive years; see coordinate 'trajectory'",
        "swe_config": json.dumps(swe.to_attrs()),
        "swarmcast_stage": json.dumps(ctx.fingerprint(config)),
        "pipeline": json.dumps(ctx.pipeline_raw),
    }
    template = climate_template(
        times,
        latitudes(swe),
        longitudes(swe.nlon),
        swe.channels,
        attrs=attrs,
        time_coords={"trajectory": trajectory},
        time_chunk=time_chunk,
    )
    writer = ClimateStoreWriter(out, template, overwrite=ctx.overwrite)
    try:
        gens = [
            _trajectory.options(_generator_backpressure_num_objects=8).remote(swe, k, config.device)
            for k in range(swe.trajectories)
        ]
        with Progress(f"{config.label}: simulate", swe.n_times, "snapshots") as bar:
            for gen in gens:  # in trajectory order; later ones compute meanwhile
                for ref in gen:
                    _, fields = ray.get(ref)
                    writer.write(fields)
                    bar.update(len(fields))
            bar.summary = f"{swe.n_times} snapshots of {len(swe.channels)} channels"
        written = writer.complete()
        stats = compute_normalization(
            open_climate(written, swe.channels), swe.channels, tendency_hours=config.tendency_hours
        )
        writer.finish({ATTR: stats.to_attr()})
    except BaseException:
        writer.abort()
        raise
    return {"path": str(out), "times": swe.n_times, "channels": list(swe.channels)}
