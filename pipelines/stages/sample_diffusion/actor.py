"""The Ray actor of ``sample-diffusion``: one diffusion checkpoint loaded at a time, units one by one.

A unit is (init time, member block): from the analysis, every member steps forward with the
diffusion forecaster, one sampler solve per model step with noise from the member's own seed
for that step, so a member is the same whatever block or actor computes it. Everything the
model touches lives on its device; only finished states come back to the host for writing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
import zarr

from swarmcast.ops.data.normalization import Normalization
from swarmcast.ops.diffusion.training import generate, load_diffusion
from swarmcast.ops.ensemble.batching import MicroBatched, probe_batch_size
from swarmcast.ops.ensemble.store import Unit, UnitWriter
from swarmcast.ops.storage import as_zarr
from swarmcast.pipelines.ensemble.actor_base import CheckpointUnitRunner
from swarmcast.pipelines.ensemble.protocols import COMPUTED, WRITTEN
from swarmcast.pipelines.stages.sample_diffusion.plan import HALLUCINATION, GenerativePlan

if TYPE_CHECKING:  # only for annotations
    from swarmcast.pipelines.stages.sample_diffusion.config import SampleDiffusionConfig


def step_seed(member_seed: int, step: int) -> int:
    """Seed of one member's sampler solve at one model step."""
    return int(np.random.SeedSequence([member_seed, step]).generate_state(1, dtype=np.uint64)[0] >> 1)


class SamplerSolve(torch.nn.Module):
    """One sampler solve per member as a module, so ``MicroBatched`` can run a block in slices:
    ``forward(z, seeds)``: z (members, channels, lat, lon) standardised conditioning states,
    seeds int64 (members,) (None: zeros, as the memory probe calls it) -> (samples like z,
    hallucination (members,))."""

    def __init__(self, model: torch.nn.Module, config: SampleDiffusionConfig) -> None:
        super().__init__()
        self.model, self.config = model, config

    def forward(self, z: torch.Tensor, seeds: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        result = generate(
            self.model,
            tuple(z.shape[1:]),
            [0] * len(z) if seeds is None else seeds.tolist(),
            solver=c.solver,
            nfe=c.nfe,
            cond=z,
            eps=c.eps,
            hallucination_steps=c.hallucination_steps,
        )
        return result.samples.float(), result.hallucination.float()


class DiffusionUnitRunner(CheckpointUnitRunner):
    """Holds one loaded diffusion checkpoint; ``run(unit)`` computes and writes one unit, loading
    the unit's checkpoint first when it holds another (a ``UnitRunner``)."""

    plan: GenerativePlan

    def _load(self, checkpoint: int) -> None:
        """The diffusion model and its normalisation, on the device."""
        self.model, meta = load_diffusion(self.plan.checkpoint_paths[checkpoint], device=self.device)
        mean, std = Normalization.from_attr(meta["normalization"]).arrays(self.plan.channels)
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=self.device).reshape(1, -1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32, device=self.device).reshape(1, -1, 1, 1)
        lay, actors = self.plan.layout, self.plan.actors
        member = torch.zeros((1, len(self.plan.channels), len(lay.lat), len(lay.lon)), device=self.device)
        solve = SamplerSolve(self.model, self.plan.config)
        self.solve = MicroBatched(solve, probe_batch_size(solve, member, actors.batch_members, per_gpu=actors.per_gpu))

    def _physical(self, z: torch.Tensor) -> np.ndarray:
        """Standardised states on the device -> float32 (members, 1, channels, lat, lon) on the host."""
        return (z * self.std + self.mean).float().cpu().numpy()[:, None]

    @torch.no_grad()
    def run(self, unit: Unit) -> Iterator[str]:
        plan, lay = self.plan, self.plan.layout
        members = lay.member_slice(unit.checkpoint, unit.block)
        with self._compute:  # one unit computes at a time; another may be writing meanwhile
            self._hold(unit.checkpoint)
            seeds = plan.seeds()[unit.init, members]
            t_index = plan.init_index[unit.init]
            analysis = np.stack([self.data[ch].isel(time=t_index).values for ch in plan.channels])
            z = (torch.as_tensor(analysis, dtype=torch.float32, device=self.device)[None] - self.mean) / self.std
            z = z.expand(len(seeds), -1, -1, -1).contiguous()
            writer = UnitWriter(self.store, lay, unit, defer=self.plan.actors.write_behind)
            hallucination = np.zeros((len(seeds), len(lay.lead_times)), dtype=np.float32)
            writer.write(self._physical(z))
            for step in range(1, plan.n_steps + 1):
                # in micro-batches of actors.batch_members (or what the GPU holds); each member's
                # noise comes from its own seed, so the slicing does not change it
                step_seeds = torch.as_tensor([step_seed(int(s), step) for s in seeds], dtype=torch.int64)
                z, hal = self.solve(z, step_seeds)
                hallucination[:, step] = hal.cpu().numpy()
                writer.write(self._physical(z))
        yield COMPUTED
        # write-behind (the writer's ``defer``): the shards are written here, outside the lock
        group = zarr.open_group(as_zarr(self.store), mode="r+", use_consolidated=False)
        group[HALLUCINATION][unit.init, members] = hallucination  # before the done flags
        writer.finish()
        yield WRITTEN


__all__ = ["DiffusionUnitRunner", "SamplerSolve", "step_seed"]
