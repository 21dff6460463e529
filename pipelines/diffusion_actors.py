"""The Ray actor that runs generative-ensemble units (one diffusion checkpoint per actor).

A unit is (init time, member block): from the analysis, every member steps forward with the
diffusion forecaster, one sampler solve per model step with noise from the member's own seed
for that step, so a member is the same whatever block or actor computes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import zarr

from swarmcast.ops.diffusion.training import generate, load_diffusion
from swarmcast.ops.ensemble_store import Unit, UnitWriter
from swarmcast.ops.normalization import Normalization
from swarmcast.ops.readers import open_climate
from swarmcast.ops.storage import as_zarr


def step_seed(member_seed: int, step: int) -> int:
    """Seed of one member's sampler solve at one model step."""
    return int(np.random.SeedSequence([member_seed, step]).generate_state(1, dtype=np.uint64)[0] >> 1)


class DiffusionUnitRunner:
    """Holds one diffusion checkpoint; ``run(unit)`` computes and writes one unit."""

    def __init__(self, prep: Any, checkpoint: int, store: str) -> None:
        self.prep, self.store = prep, store
        torch.set_num_threads(max(1, int(prep.config.actors.cpus)))
        device = "cuda" if prep.config.actors.use_gpu and torch.cuda.is_available() else "cpu"
        self.model, meta = load_diffusion(prep.checkpoint_paths[checkpoint], device=device)
        mean, std = Normalization.from_attr(meta["normalization"]).arrays(prep.channels)
        self.mean = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
        self.data = open_climate(prep.store, prep.channels)

    @torch.no_grad()
    def run(self, unit: Unit) -> Unit:
        prep, lay, c = self.prep, self.prep.layout, self.prep.config
        members = lay.member_slice(unit.checkpoint, unit.block)
        seeds = prep.seeds()[unit.init, members]
        t_index = prep.init_index[unit.init]
        analysis = np.stack([self.data[ch].isel(time=t_index).values for ch in prep.channels])
        z = (torch.as_tensor(analysis, dtype=torch.float32)[None] - self.mean) / self.std
        z = z.expand(len(seeds), -1, -1, -1).contiguous()
        writer = UnitWriter(self.store, lay, unit)
        hallucination = np.zeros((len(seeds), len(lay.lead_times)), dtype=np.float32)
        writer.write((z * self.std + self.mean).numpy()[:, None])
        for step in range(1, prep.n_steps + 1):
            result = generate(
                self.model,
                tuple(z.shape[1:]),
                [step_seed(int(s), step) for s in seeds],
                solver=c.solver,
                nfe=c.nfe,
                cond=z,
                eps=c.eps,
                hallucination_steps=c.hallucination_steps,
            )
            z = result.samples.float()
            hallucination[:, step] = result.hallucination.numpy()
            writer.write((z * self.std + self.mean).numpy()[:, None])
        group = zarr.open_group(as_zarr(self.store), mode="r+", use_consolidated=False)
        group["hallucination"][unit.init, members] = hallucination  # before the done flags
        writer.finish()
        return unit

    def pid(self) -> int:
        import os

        return os.getpid()
