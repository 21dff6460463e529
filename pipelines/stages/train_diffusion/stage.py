"""Stage ``train-diffusion``: a diffusion model on images or climate states, on Ray Train.

Data: bundled digits, an image folder or ``.npz`` arrays (unconditional generation, the last
``validation_items`` images held out), or a climate store, where the model becomes a
generative forecaster p(x_{t+dt} | x_t) on standardised fields (the last contiguous segment,
e.g. the last shallow-water year, held out; ``plan.DiffusionTrainingPlan``). The trainer
(``trainer.DiffusionTrainer``) fills the training skeleton the SFNO stage uses too
(``swarmcast.pipelines.train.skeleton``): one named run, resume from the latest reported state,
DDP across ``scaling.workers``, bf16 autocast on GPUs.
"""

from __future__ import annotations

from swarmcast.ops.checkpoint import read_meta
from swarmcast.ops.diffusion.training import FORMAT
from swarmcast.pipelines.cluster.session import check_gpus
from swarmcast.pipelines.config import ConfigError, resolve_path
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.stages.train_diffusion.config import (
    TrainDiffusionConfig,
)
from swarmcast.pipelines.stages.train_diffusion.plan import DiffusionTrainingPlan
from swarmcast.pipelines.train.run_state import claim_run_state
from swarmcast.pipelines.train.skeleton import fit_and_export


def run(config: TrainDiffusionConfig, ctx: StageContext) -> dict:
    from swarmcast.pipelines.stages.train_diffusion.trainer import DiffusionTrainer  # imports Ray: only when running

    plan = DiffusionTrainingPlan(config, ctx)
    check_gpus(config.scaling.use_gpu, "scaling.use_gpu")
    out = resolve_path(ctx.base, config.output)
    fingerprint = ctx.fingerprint(config)
    if (out / "checkpoint.json").exists() and not ctx.overwrite:
        if read_meta(out, FORMAT).get("stage") == fingerprint:
            print(f"[{config.label}] up to date: {out}")
            return {"path": str(out), "trained": False}
        raise ConfigError(f"{out} holds a diffusion checkpoint of a different config; pass --overwrite")
    state_root = out.parent / f".{out.name}.train"  # Ray Train run state (resume) lives here
    claim_run_state(state_root, "run", fingerprint, overwrite=ctx.overwrite)
    summary = fit_and_export(DiffusionTrainer(config, plan), state_root=state_root, folder=out, fingerprint=fingerprint)
    return {"path": str(out), "trained": True, **summary}
