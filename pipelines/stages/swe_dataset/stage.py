"""Stage ``swe-dataset``: integrate shallow-water trajectories into an ERA5-shaped Zarr store.

Each trajectory is one Ray task (a streaming generator of snapshot blocks); the driver writes
blocks in time order through ``ClimateStoreWriter`` (every chunk written once, whole), then
streams the finished store once to compute normalisation statistics, and renames it into
place. The store layout is documented in ``swarmcast.ops.data.swe``.
"""

from __future__ import annotations

import json

import ray

from swarmcast.kernels.sphere import longitudes
from swarmcast.ops import __version__
from swarmcast.ops.data.climate_store import ClimateStoreWriter, climate_template, default_time_chunk
from swarmcast.ops.data.normalization import ATTR, compute_normalization
from swarmcast.ops.data.readers import open_climate
from swarmcast.ops.data.swe import SWEConfig, latitudes, simulate
from swarmcast.ops.progress import Progress
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.stages.swe_dataset.config import SWEDatasetConfig


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
    template["trajectory"].attrs["long_name"] = "shallow-water trajectory the state belongs to (one per year)"
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
