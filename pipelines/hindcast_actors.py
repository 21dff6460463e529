"""Ray actors that run hindcast work units, one checkpoint per actor.

Each actor loads its checkpoint once (on its GPU share when ``actors.use_gpu``) and runs that
checkpoint's units one after another: read the analysis history, perturb, roll out, write the
unit's shards, set its done flags. The driver keeps at most ``max_actors`` actors alive and
starts an actor per checkpoint with released units (a campaign releases a few init dates at a
time: ``swarmcast.pipelines.campaign``). When an actor dies the driver replaces it and redoes
its unit (shards are rewritten whole, so the result is identical). Units are deterministic, so
a retry or a resumed run writes the same bytes.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any

import numpy as np
import ray
import torch
from ray.exceptions import ActorUnavailableError, RayActorError

from swarmcast.ops.checkpoint import load_model
from swarmcast.ops.ensemble_store import Unit, UnitWriter
from swarmcast.ops.ensemble_summaries import UnitSummary
from swarmcast.ops.perturbations import BredVector, Control, CorrelatedNoise, GaussianNoise, Perturbation
from swarmcast.ops.progress import Progress
from swarmcast.ops.readers import open_climate
from swarmcast.ops.rollout import run_unit
from swarmcast.ops.storage import Location
from swarmcast.pipelines.campaign import DateWindow


def make_perturbation(prep: Any, meta: dict) -> Perturbation:
    """The configured perturbation for one checkpoint (targets from its 48 h RMSE)."""
    p = prep.config.perturbation
    rmse = meta["validation_rmse"][f"{meta.get('validation_lead_hours', 48):g}h"]
    target = [p.amplitude_factor * rmse[c] for c in prep.channels]
    nonneg = [c in p.nonnegative for c in prep.channels]
    if p.kind == "bred-vector":
        return BredVector(
            target, prep.seed_mask, cycles=p.cycles, length_scale_m=p.length_scale_km * 1e3, nonnegative=nonneg
        )
    if p.kind == "correlated":
        return CorrelatedNoise(target, length_scale_m=p.length_scale_km * 1e3, nonnegative=nonneg)
    if p.kind == "gaussian":
        return GaussianNoise(target, nonnegative=nonneg)
    return Control()


class UnitRunner:
    """Holds one checkpoint; ``run(unit)`` computes and writes one work unit."""

    def __init__(self, prep: Any, checkpoint: int, store: str) -> None:
        self.prep, self.checkpoint, self.store = prep, checkpoint, store
        device = "cuda" if prep.config.actors.use_gpu and torch.cuda.is_available() else "cpu"
        torch.set_num_threads(max(1, int(prep.config.actors.cpus)))
        self.device = torch.device(device)
        self.model, meta = load_model(prep.checkpoint_paths[checkpoint], device=self.device)
        self.perturbation = make_perturbation(prep, meta)
        self.data = open_climate(prep.store, prep.channels)

    def run(self, unit: Unit) -> Unit:
        prep, layout = self.prep, self.prep.layout
        idx = prep.history_index[unit.init]
        history = np.stack([self.data[c].isel(time=idx).values for c in prep.channels], axis=1)
        t0 = layout.init_times[unit.init]
        members = prep.members(t0, prep.ids[self.checkpoint])
        block = members[unit.block * layout.member_block : (unit.block + 1) * layout.member_block]
        writer = UnitWriter(self.store, layout, unit)
        summary = UnitSummary(prep.summary_spec, prep.channels) if prep.summary_spec is not None else None
        h = torch.as_tensor(history, device=self.device)
        for chunk in run_unit(
            self.model, self.perturbation, h, block, prep.n_steps, output_every=prep.config.output_every
        ):
            writer.write(chunk[:, :, prep.keep])
            if summary is not None:
                summary.add(chunk)
        if summary is not None:  # before the done flags, which writer.finish() sets last
            summary.write(self.store, unit.init, unit.checkpoint * layout.blocks_per_checkpoint + unit.block)
        writer.finish()
        return unit

    def pid(self) -> int:
        import os

        return os.getpid()


def _actor_options(prep: Any) -> dict:
    a = prep.config.actors
    opts: dict = {"num_cpus": a.cpus, "max_restarts": 0}
    if a.use_gpu:
        opts["num_gpus"] = 1.0 / a.per_gpu
    return opts


def _max_actors(prep: Any) -> int:
    a = prep.config.actors
    if a.max_actors:
        return a.max_actors
    res = ray.cluster_resources()
    if a.use_gpu:
        return max(1, int(res.get("GPU", 0) * a.per_gpu))
    return max(1, int(res.get("CPU", 1) // a.cpus))


def run_units(
    prep: Any,
    store: Location,
    pending: list[Unit],
    *,
    label: str,
    runner: type = UnitRunner,
    window: DateWindow | None = None,
) -> None:
    """Compute ``pending`` units with a bounded set of per-checkpoint actors.

    ``runner(prep, checkpoint_index, store)`` is the actor class (``run(unit)`` computes and
    writes one unit): ``UnitRunner`` for SFNO hindcasts, the diffusion sampler's for
    generative ensembles; the scheduling, reuse and redo-on-death are the same. ``window``
    (a campaign) releases the units of a few init dates at a time; by default all at once.
    At most one actor per checkpoint runs at a time, so each loads its checkpoint once and
    works through that checkpoint's released units in date priority order.
    """
    remote_runner = ray.remote(runner).options(**_actor_options(prep))
    window = window or DateWindow(pending)
    queued: dict[int, deque[Unit]] = defaultdict(deque)  # checkpoint -> released units
    active: dict[Any, tuple[int, Any, Unit]] = {}  # ref -> (checkpoint, actor, unit)
    busy: set[int] = set()  # checkpoints with a live actor
    retries: dict[Unit, int] = {}
    limit = _max_actors(prep)

    def release(units: list[Unit]) -> None:
        for u in units:
            queued[u.checkpoint].append(u)

    def start(ck: int, actor: Any = None) -> None:
        actor = actor or remote_runner.remote(prep, ck, str(store))
        busy.add(ck)
        unit = queued[ck].popleft()
        active[actor.run.remote(unit)] = (ck, actor, unit)

    def fill() -> None:
        for ck in sorted(queued):
            if len(active) >= limit:
                return
            if queued[ck] and ck not in busy:
                start(ck)

    with Progress(f"{label}: units", len(pending), "units") as bar:
        release(window.release())
        fill()
        while active:
            ready, _ = ray.wait(list(active), num_returns=1)
            ck, actor, unit = active.pop(ready[0])
            try:
                ray.get(ready[0])
            except (RayActorError, ActorUnavailableError):  # died, or lost with its node
                retries[unit] = retries.get(unit, 0) + 1
                if retries[unit] > prep.config.actors.max_unit_retries:
                    raise RuntimeError(f"unit {unit} failed {retries[unit]} times; rerun to resume") from None
                queued[ck].appendleft(unit)  # redo it on a fresh actor
                start(ck)
                continue
            bar.update(1)
            release(window.finished(unit))
            if queued[ck]:
                start(ck, actor)  # reuse the loaded checkpoint
            else:
                ray.kill(actor)
                busy.discard(ck)
            fill()
        bar.summary = f"{len(pending)} units written"
