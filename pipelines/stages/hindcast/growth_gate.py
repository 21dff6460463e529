"""The hindcast's perturbation-growth gate: every checkpoint is checked with the campaign's own
perturbation before the store is created (``swarmcast.ops.perturbations.growth``).

One Ray task per checkpoint, on the resources of one actor (a GPU where the actors use one), rolls
the members of the first init dates forward to the lead of the checkpoint's validation RMSE. A
checkpoint that fails is refused with its numbers; ``perturbation.growth_check: false`` skips
the gate (for a model whose perturbations are known to grow this way on purpose).
"""

from __future__ import annotations

import numpy as np
import ray
import torch

from swarmcast.ops.checkpoint import load_model
from swarmcast.ops.data.channels import physical_lower_bound
from swarmcast.ops.data.normalization import Normalization
from swarmcast.ops.data.readers import open_climate
from swarmcast.ops.data.splits import whole_steps
from swarmcast.ops.devices import compute_device
from swarmcast.ops.perturbations.growth import GrowthCheck, check_growth
from swarmcast.pipelines.config import ConfigError
from swarmcast.pipelines.ensemble.scheduler import setup_failure, task_options
from swarmcast.pipelines.stages.hindcast.actor import make_perturbation
from swarmcast.pipelines.stages.hindcast.plan import HindcastPlan


def growth_of(plan: HindcastPlan, checkpoint: int, dates: int = 2) -> GrowthCheck:
    """``check_growth`` of one checkpoint on the first ``dates`` init times of the plan."""
    device = compute_device(plan.actors.use_gpu)
    torch.set_num_threads(max(1, int(plan.actors.cpus)))
    model, meta = load_model(plan.checkpoint_paths[checkpoint], device=device)
    lead = float(meta.get("validation_lead_hours", 48))
    n_steps = whole_steps(lead, plan.step_hours) or plan.n_steps
    data = open_climate(plan.store, plan.channels)
    picks = range(min(dates, len(plan.layout.init_times)))
    histories = np.stack(
        [np.stack([data[c].isel(time=plan.history_index[i]).values for c in plan.channels], axis=1) for i in picks]
    )
    t0 = plan.layout.init_times[0]
    mean, std = Normalization.from_attr(meta["normalization"]).arrays(plan.channels)
    return check_growth(
        model,
        torch.as_tensor(histories, device=device),
        make_perturbation(plan, meta),
        plan.members(t0, plan.ids[checkpoint]),
        n_steps,
        step_hours=plan.step_hours,
        channels=plan.channels,
        rmse=meta["validation_rmse"][f"{lead:g}h"],
        mean=mean.tolist(),
        std=std.tolist(),
        lower_bound=physical_lower_bound,
    )


def check_checkpoints(plan: HindcastPlan) -> dict[str, GrowthCheck]:
    """Run the gate for every checkpoint; raise ``ConfigError`` naming each that fails."""
    task = ray.remote(growth_of).options(**task_options(plan))
    refs = {name: task.remote(plan, k) for k, name in enumerate(plan.ids)}
    checks = {}
    for name, ref in refs.items():
        try:
            checks[name] = ray.get(ref)
        except ray.exceptions.RayTaskError as err:  # e.g. a node that advertises a GPU torch cannot see
            raise setup_failure(err, name, "the growth check") from None
    failed = [f"checkpoints: {name}: {'; '.join(c.problems)}" for name, c in checks.items() if not c.passed]
    if failed:
        advice = (
            "these checkpoints cannot carry the configured perturbations (lower amplitude_factor, retrain "
            "with train.input_noise or more rollout_steps, or set perturbation.growth_check: false)"
        )
        raise ConfigError([*failed, advice])
    return checks


__all__ = ["check_checkpoints", "growth_of"]
