"""``--dry-run``: every check that needs no compute, and no Ray.

The runner's plan already checks paths, outputs and sizes (``runner.plan_pipeline``). A dry run
also builds each stage's checked plan (the object its coordinator builds first: channels
against the data's variables, seed channels, grids, checkpoints and their weights' hashes,
the history breeding needs before each init time) wherever the stage's inputs exist now. A
stage whose inputs an earlier stage of this run writes is checked when it runs, and says so.
"""

from __future__ import annotations

import importlib

from swarmcast.ops.errors import InputError
from swarmcast.pipelines.config import ConfigError, Pipeline
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.runner import StagePlan

CHECKED_PLANS = {
    "train-sfno": "swarmcast.pipelines.stages.train_sfno.plan:SFNOTrainingPlan",
    "hindcast": "swarmcast.pipelines.stages.hindcast.plan:HindcastPlan",
    "train-diffusion": "swarmcast.pipelines.stages.train_diffusion.plan:DiffusionTrainingPlan",
    "sample-diffusion": "swarmcast.pipelines.stages.sample_diffusion.plan:GenerativePlan",
}
"""Stage kind -> the class its coordinator builds from (config, ctx) before any work."""


def check_plans(pipeline: Pipeline, plans: list[StagePlan], ctx: StageContext) -> list[str]:
    """Build the checked plan of every stage that will run and whose inputs exist; raise one
    ``ConfigError`` with every problem; return a note per stage left to check at run time."""
    later, problems, notes = set(), [], []
    for i, (stage, plan) in enumerate(zip(pipeline.stages, plans, strict=True)):
        if plan.action in ("skip", "not selected"):
            continue
        where = f"stages.{i} ({stage.label})"
        if any(p.resolve() in later for p in stage.inputs(ctx.base)):
            notes.append(f"{where}: its inputs come from an earlier stage; checked when it runs")
        elif stage.kind in CHECKED_PLANS:
            module, name = CHECKED_PLANS[stage.kind].split(":")
            try:
                getattr(importlib.import_module(module), name)(stage, ctx)
            except ConfigError as err:
                problems += [f"{where}: {e}" for e in err.problems]
            except InputError as err:
                problems.append(f"{where}: {err}")
        later.update(p.resolve() for p in stage.outputs(ctx.base))
    if problems:
        raise ConfigError(problems)
    return notes


__all__ = ["CHECKED_PLANS", "check_plans"]
