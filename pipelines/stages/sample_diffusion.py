"""Stage ``sample-diffusion``: generative ensembles of a diffusion forecaster into an ensemble store.

A climate diffusion model learns p(x_{t+dt} | x_t). From the analysis at each init time every
member rolls forward autoregressively, drawing fresh noise at every step from its own seed
(GenCast's pattern: no initial perturbation needed), so members differ only through the
sampler noise. Members land in the hindcast's store layout (design §5, written by the same
actor scheduler), plus ``hallucination(init_time, member, lead_time)``: the variance of the
predicted clean state over the sampler's last steps, so analysts can filter suspect members.
The store opens with xarray and scores with the ``score`` stage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import zarr
from pydantic import Field

from swarmcast.ops.checkpoint import CheckpointError, weights_hash
from swarmcast.ops.diffusion.training import FORMAT
from swarmcast.ops.ensemble_store import EnsembleLayout
from swarmcast.ops.perturbations.members import member_seed
from swarmcast.ops.readers import open_climate
from swarmcast.ops.samplers import SOLVERS
from swarmcast.pipelines.config import ConfigError, StageConfig, resolve_path
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.stages.hindcast import ActorSettings, InitTimes, open_ensemble_output

HALLUCINATION = "hallucination"


class SampleDiffusionConfig(StageConfig):
    """Parameters of the ``sample-diffusion`` stage."""

    RESUMABLE: ClassVar[bool] = True

    kind: Literal["sample-diffusion"] = "sample-diffusion"
    """Stage kind."""
    checkpoint: str = "diffusion"
    """Diffusion checkpoint folder of a climate forecaster (``train-diffusion`` on a climate store)."""
    data: str = "data.zarr"
    """Climate store with the initial states."""
    output: str = "generative.zarr"
    """Ensemble store to write."""
    init_times: InitTimes
    """Initial times."""
    lead_hours: float = Field(24.0, gt=0)
    """Forecast length (a multiple of the model step)."""
    members: int = Field(8, ge=1)
    """Members per init time."""
    member_block: int | None = Field(None, ge=1)
    """Members per work unit; None: all (must divide ``members``)."""
    solver: str = "dpm++2m"
    """Sampler: euler, heun, dpm++2m or sde."""
    nfe: int = Field(10, ge=1)
    """Denoiser evaluations per model step."""
    eps: float = Field(0.0, ge=0)
    """Langevin noise of the sde sampler (0: probability-flow ODE)."""
    hallucination_steps: int = Field(5, ge=2)
    """Sampler steps over which the hallucination score is taken."""
    actors: ActorSettings = ActorSettings()
    """Actor resources."""
    seed: int | None = None
    """Run seed for member seeds; None: the pipeline seed."""

    def inputs(self, base: Path) -> list[Path]:
        return [resolve_path(base, self.checkpoint), resolve_path(base, self.data)]

    def outputs(self, base: Path) -> list[Path]:
        return [resolve_path(base, self.output)]

    def plan(self, base: Path) -> str:
        n = len(self.init_times.resolve())
        return f"{n} init times x {self.members} generative members, {self.lead_hours:g} h; write {self.output}"


class Prepared:
    """Checked inputs and the store layout (what the actors need)."""

    def __init__(self, config: SampleDiffusionConfig, ctx: StageContext) -> None:
        from swarmcast.ops.checkpoint import read_meta

        self.config = config
        self.checkpoint_paths = [resolve_path(ctx.base, config.checkpoint)]
        try:
            self.meta = read_meta(self.checkpoint_paths[0], FORMAT)
        except CheckpointError as err:
            raise ConfigError(f"checkpoint: {err}") from None
        if not self.meta.get("channels") or self.meta["model"]["cond_channels"] == 0:
            raise ConfigError(f"checkpoint: {config.checkpoint} is not a climate forecaster (trained on images)")
        if config.solver not in SOLVERS:
            raise ConfigError(f"solver: unknown {config.solver!r}; known: {sorted(SOLVERS)}")
        block = config.member_block or config.members
        if config.members % block:
            raise ConfigError(f"member_block {block} must divide members {config.members}")
        self.channels = tuple(self.meta["channels"])
        self.store = resolve_path(ctx.base, config.data)
        ds = open_climate(self.store, self.channels)
        model = self.meta["model"]
        if (ds.sizes["lat"], ds.sizes["lon"]) != (model["height"], model["width"]):
            raise ConfigError(f"data: grid {ds.sizes['lat']}x{ds.sizes['lon']} differs from the model's")
        self.step_hours = float(self.meta["time_step_hours"])
        n = config.lead_hours / self.step_hours
        if abs(n - round(n)) > 1e-9:
            raise ConfigError(f"lead_hours {config.lead_hours} is not a multiple of the model step {self.step_hours} h")
        self.n_steps = round(n)
        times = ds["time"].values.astype("datetime64[ns]")
        inits = config.init_times.resolve()
        missing = [str(t) for t in inits if not np.isin(t, times)]
        if missing:
            raise ConfigError(f"init_times: {missing[:3]} are not in {self.store}")
        self.init_index = [int(np.searchsorted(times, t)) for t in inits]
        step = np.timedelta64(round(self.step_hours * 3600), "s").astype("timedelta64[ns]")
        self.layout = EnsembleLayout(
            init_times=inits,
            lead_times=np.arange(self.n_steps + 1) * step,
            lat=ds["lat"].values,
            lon=ds["lon"].values,
            channels=self.channels,
            checkpoints=(self.checkpoint_paths[0].name,),
            perturbation=np.arange(config.members),
            sign=np.zeros(config.members, dtype=int),
            member_block=block,
            leads_per_shard=self.n_steps + 1,
        )
        self.run_seed = config.seed if config.seed is not None else ctx.seed

    def seeds(self) -> np.ndarray:
        ck = self.layout.checkpoints[0]
        return np.array(
            [
                [member_seed(self.run_seed, t0, ck, m) for m in range(self.config.members)]
                for t0 in self.layout.init_times
            ],
            dtype=np.int64,
        )

    def hallucination_array(self, path: Path) -> None:
        lay = self.layout
        shape = (len(lay.init_times), lay.n_members, len(lay.lead_times))
        zarr.open_group(path, mode="r+", use_consolidated=False).create_array(
            HALLUCINATION,
            shape=shape,
            chunks=(1, lay.member_block, shape[2]),
            dtype="f4",
            fill_value=np.nan,
            dimension_names=["init_time", "member", "lead_time"],
            attributes={
                "long_name": "variance of the predicted clean state over the sampler's last steps",
                "units": "1 (standardised units squared)",
            },
        )


def run(config: SampleDiffusionConfig, ctx: StageContext) -> dict:
    from swarmcast.pipelines.diffusion_actors import DiffusionUnitRunner
    from swarmcast.pipelines.hindcast_actors import run_units

    prep = Prepared(config, ctx)
    out = resolve_path(ctx.base, config.output)
    fingerprint = ctx.fingerprint(config) | {"checkpoint_sha256": weights_hash(prep.checkpoint_paths[0])}
    sampler = json.dumps({"solver": config.solver, "nfe": config.nfe, "eps": config.eps})
    pending = open_ensemble_output(
        out,
        prep.layout,
        prep.seeds(),
        ctx,
        fingerprint,
        {"title": "swarmcast generative (diffusion) ensemble", "sampler": sampler},
        extra=prep.hallucination_array,
    )
    run_units(prep, out, pending, label=config.label, runner=DiffusionUnitRunner)
    return {"path": str(out), "units": len(list(prep.layout.units())), "computed": len(pending)}
