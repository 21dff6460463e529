"""The Ray actor of the ``hindcast`` stage: one SFNO checkpoint loaded at a time, units one by one.

Each unit: read the analysis history, perturb (``swarmcast.ops.perturbations``), roll every
member of the block forward (``swarmcast.ops.ensemble.rollout``), write the unit's shards and
online summaries, then its done flags. Scheduling, reuse and retries are the scheduler's
(``swarmcast.pipelines.ensemble.scheduler``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from swarmcast.ops.checkpoint import load_model
from swarmcast.ops.ensemble.batching import MicroBatched, probe_batch_size
from swarmcast.ops.ensemble.rollout import run_unit
from swarmcast.ops.ensemble.store import Unit, UnitWriter
from swarmcast.ops.ensemble.summaries import UnitSummary
from swarmcast.ops.perturbations import BredVector, Control, CorrelatedNoise, GaussianNoise, Perturbation
from swarmcast.pipelines.ensemble.actor_base import CheckpointUnitRunner
from swarmcast.pipelines.ensemble.protocols import COMPUTED, WRITTEN
from swarmcast.pipelines.scoring.online import scratch_path
from swarmcast.pipelines.stages.hindcast.plan import HindcastPlan


def make_perturbation(plan: HindcastPlan, meta: dict) -> Perturbation:
    """The configured perturbation for one checkpoint (targets from its 48 h RMSE)."""
    p = plan.config.perturbation
    if p.kind == "control":  # no amplitude: a checkpoint without validation RMSEs will do
        return Control()
    rmse = meta["validation_rmse"][f"{meta.get('validation_lead_hours', 48):g}h"]
    target = [p.amplitude_factor * rmse[c] for c in plan.channels]
    nonneg = [c in p.nonnegative for c in plan.channels]
    if p.kind == "bred-vector":
        return BredVector(
            target, plan.seed_mask, cycles=p.cycles, length_scale_m=plan.length_scale_m, nonnegative=nonneg
        )
    if p.kind == "correlated":
        return CorrelatedNoise(target, length_scale_m=plan.length_scale_m, nonnegative=nonneg)
    if p.kind == "gaussian":
        return GaussianNoise(target, nonnegative=nonneg)
    raise AssertionError(f"unknown perturbation kind {p.kind!r}")  # the config's Literal forbids it


class SFNOUnitRunner(CheckpointUnitRunner):
    """Holds one loaded checkpoint; ``run(unit)`` computes and writes one work unit, loading the
    unit's checkpoint first when it holds another (a ``UnitRunner``)."""

    plan: HindcastPlan

    def _load(self, checkpoint: int) -> None:
        """The model (in micro-batches, ``swarmcast.ops.ensemble.batching``) and its perturbation."""
        model, meta = load_model(self.plan.checkpoint_paths[checkpoint], device=self.device)
        lay = self.plan.layout
        member = torch.zeros((1, len(self.plan.channels), len(lay.lat), len(lay.lon)), device=self.device)
        actors = self.plan.actors
        self.model = MicroBatched(model, probe_batch_size(model, member, actors.batch_members, per_gpu=actors.per_gpu))
        self.perturbation = make_perturbation(self.plan, meta)

    def run(self, unit: Unit) -> Iterator[str]:
        plan, layout = self.plan, self.plan.layout
        with self._compute:  # one unit computes at a time; another may be writing meanwhile
            self._hold(unit.checkpoint)
            idx = plan.history_index[unit.init]
            history = np.stack([self.data[c].isel(time=idx).values for c in plan.channels], axis=1)
            t0 = layout.init_times[unit.init]
            members = plan.members(t0, plan.ids[unit.checkpoint])
            block = members[unit.block * layout.member_block : (unit.block + 1) * layout.member_block]
            writer = UnitWriter(self.store, layout, unit, defer=plan.actors.write_behind)
            scratch = (  # scored, not stored: kept until the date is scored (pipelines.scoring.online)
                UnitWriter(scratch_path(self.store), plan.scratch_layout, unit, defer=plan.actors.write_behind)
                if plan.scratch_layout is not None
                else None
            )
            summary = UnitSummary(plan.summary_spec, plan.channels) if plan.summary_spec is not None else None
            h = torch.as_tensor(history, device=self.device)
            for chunk in run_unit(
                self.model,
                self.perturbation,
                h,
                block,
                plan.n_steps,
                output_every=plan.config.output_every,
                tendencies=plan.tendencies,
            ):
                writer.write(chunk[:, :, plan.keep])
                if scratch is not None:
                    scratch.write(chunk[:, :, plan.scratch_keep])
                if summary is not None:
                    summary.add(chunk)
        yield COMPUTED
        # write-behind (the writer's ``defer``): the unit's shards are compressed and written
        # here, outside the compute lock, while the next unit computes
        if summary is not None:  # before the done flags, which writer.finish() sets last
            summary.write(self.store, unit.init, unit.checkpoint * layout.blocks_per_checkpoint + unit.block)
        if scratch is not None:
            scratch.finish()
        writer.finish()
        yield WRITTEN


__all__ = ["SFNOUnitRunner", "make_perturbation"]
