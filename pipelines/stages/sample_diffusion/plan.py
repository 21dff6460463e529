"""What ``sample-diffusion`` needs, checked before any work: the ``GenerativePlan``.

The checkpoint must be a climate forecaster (a diffusion model conditioned on the previous
state) on the data's grid, the lead time a whole number of its steps, every init time in the
data, and ``member_block`` must divide the members. The plan carries the store layout (one
"checkpoint", members numbered 0..M-1, sign 0) and the member seeds to the actors.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import zarr

from swarmcast.ops.checkpoint import CheckpointError, read_meta, verify_weights
from swarmcast.ops.data.readers import open_climate
from swarmcast.ops.data.splits import whole_steps
from swarmcast.ops.diffusion.training import FORMAT
from swarmcast.ops.ensemble.chunking import auto_tiles
from swarmcast.ops.ensemble.store import EnsembleLayout
from swarmcast.ops.perturbations.members import member_seed
from swarmcast.ops.samplers import SOLVERS
from swarmcast.ops.storage import Location
from swarmcast.pipelines.config import ConfigError, resolve_path
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.ensemble.settings import ActorSettings

if TYPE_CHECKING:  # only for annotations: a plan is built from a checked config
    from swarmcast.pipelines.stages.sample_diffusion.config import SampleDiffusionConfig

HALLUCINATION = "hallucination"


class GenerativePlan:
    """Checked inputs, the store layout and member seeds (a ``UnitPlan`` for the scheduler)."""

    def __init__(self, config: SampleDiffusionConfig, ctx: StageContext) -> None:
        self.config = config
        self.checkpoint_paths: list[Location] = [resolve_path(ctx.base, config.checkpoint)]
        try:
            self.meta = read_meta(self.checkpoint_paths[0], FORMAT, required=("model", "weights_sha256"))
            # verified before the store records the hash, so a damaged checkpoint never wedges it
            self.weights_sha256 = verify_weights(self.checkpoint_paths[0], self.meta)
        except CheckpointError as err:
            raise ConfigError(f"checkpoint: {err}") from None
        if not self.meta.get("channels") or not dict(self.meta["model"]).get("cond_channels"):
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
        n_steps = whole_steps(config.lead_hours, self.step_hours)
        if n_steps is None:
            raise ConfigError(f"lead_hours {config.lead_hours} is not a multiple of the model step {self.step_hours} h")
        self.n_steps = n_steps
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
            tiles=auto_tiles(ds.sizes["lat"], ds.sizes["lon"]),
        )
        self.run_seed = config.seed if config.seed is not None else ctx.seed

    @property
    def actors(self) -> ActorSettings:
        return self.config.actors

    def seeds(self) -> np.ndarray:
        """Member seeds (n_init, members), from (run seed, init time, checkpoint, member)."""
        ck = self.layout.checkpoints[0]
        return np.array(
            [
                [member_seed(self.run_seed, t0, ck, m) for m in range(self.config.members)]
                for t0 in self.layout.init_times
            ],
            dtype=np.int64,
        )

    def hallucination_array(self, path: Path) -> None:
        """Create ``hallucination`` in a store being built (``create_ensemble_store``'s ``extra``)."""
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


__all__ = ["HALLUCINATION", "GenerativePlan"]
