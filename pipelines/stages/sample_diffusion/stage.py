"""Stage ``sample-diffusion``: generative ensembles of a diffusion forecaster into an ensemble store.

A climate diffusion model learns p(x_{t+dt} | x_t). From the analysis at each init time every
member rolls forward autoregressively, drawing fresh noise at every step from its own seed
(GenCast's pattern: no initial perturbation needed), so members differ only through the
sampler noise. Members land in the hindcast's store layout (ARCHITECTURE.md, "The ensemble
store"), written by the same unit scheduler, plus ``hallucination(init_time, member,
lead_time)``: the variance of the predicted clean state over the sampler's last steps, so
analysts can filter suspect members. The store opens with xarray and scores with ``score``.
"""

from __future__ import annotations

import json

from swarmcast.ops.ensemble.lease import StoreLease
from swarmcast.pipelines.cluster.session import check_gpus, check_resources
from swarmcast.pipelines.config import resolve_path
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.ensemble.output import open_ensemble_output
from swarmcast.pipelines.stages.sample_diffusion.config import SampleDiffusionConfig
from swarmcast.pipelines.stages.sample_diffusion.plan import GenerativePlan


def run(config: SampleDiffusionConfig, ctx: StageContext) -> dict:
    from swarmcast.pipelines.ensemble.scheduler import ActorPool, run_units  # imports Ray: only when running
    from swarmcast.pipelines.stages.sample_diffusion.actor import DiffusionUnitRunner

    plan = GenerativePlan(config, ctx)
    check_gpus(config.actors.use_gpu, "actors.use_gpu")
    check_resources(config.actors.resources, "actors.resources")
    out = resolve_path(ctx.base, config.output)
    fingerprint = ctx.fingerprint(config) | {"checkpoint_sha256": plan.weights_sha256}
    sampler = json.dumps({"solver": config.solver, "nfe": config.nfe, "eps": config.eps})
    what = f"sample-diffusion stage {config.label!r}"
    with StoreLease(out, what) as lease, ActorPool(plan, out, DiffusionUnitRunner) as pool:
        pending = open_ensemble_output(
            out,
            plan.layout,
            plan.seeds(),
            ctx,
            fingerprint,
            {"title": "swarmcast generative (diffusion) ensemble", "sampler": sampler},
            extra=plan.hallucination_array,
            before_create=lambda: pool.start(list(plan.layout.units())),  # checkpoints load meanwhile
            run_settings=config.RUN_SETTINGS,
            lease=lease,
        )
        report = run_units(plan, out, pending, label=config.label, runner=DiffusionUnitRunner, pool=pool)
    return {
        "path": str(out),
        "units": len(list(plan.layout.units())),
        "computed": len(pending),
        "redone": report.redone,
        "actors_started": report.actors_started,
        "model_loads": report.model_loads,
        "most_actors": report.most_actors,
    }
