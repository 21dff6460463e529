"""Stage ``train-sfno``: N independently seeded SFNO checkpoints on Ray Train (HENS model spread).

Each seed is its own Ray Train run (``TorchTrainer``; DDP over ``scaling.workers`` workers,
gloo on CPU, NCCL on GPU), named ``seed-<s>`` under ``<output>/.ray``. The runs are launched
together from driver threads: Ray starts each as soon as its workers fit and queues the rest,
and one failing seed does not stop the others. Rerunning resumes every unfinished run from
its latest checkpoint (same RunConfig name and storage path) and skips finished ones. Each
finished run is exported to ``<output>/seed-<s>/`` (see ``swarmcast.ops.checkpoint``). The plan
(``plan.SFNOTrainingPlan``) is checked first; the trainer (``trainer.SFNOTrainer``) fills in the
shared training skeleton (``swarmcast.pipelines.train.skeleton``).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from swarmcast.ops.progress import Progress
from swarmcast.ops.storage import is_remote
from swarmcast.pipelines.cluster.session import check_gpus
from swarmcast.pipelines.config import ConfigError, resolve_path
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.stages.train_sfno.config import TrainSFNOConfig
from swarmcast.pipelines.stages.train_sfno.plan import SFNOTrainingPlan
from swarmcast.pipelines.stages.train_sfno.probe import finished
from swarmcast.pipelines.train.run_state import claim_run_state
from swarmcast.pipelines.train.skeleton import fit_and_export


def run(config: TrainSFNOConfig, ctx: StageContext) -> dict:
    from swarmcast.pipelines.stages.train_sfno.trainer import SFNOTrainer  # imports Ray: only when running

    plan = SFNOTrainingPlan(config, ctx)
    check_gpus(config.scaling.use_gpu, "scaling.use_gpu")
    out = resolve_path(ctx.base, config.output)
    if not is_remote(out):  # object stores have no folders to create
        out.mkdir(parents=True, exist_ok=True)
    fingerprint = ctx.fingerprint(config)
    seeds, skipped = [], []
    for s in config.seed_list(ctx.seed):
        state = finished(out / f"seed-{s}", fingerprint)
        if state is True and not ctx.overwrite:
            skipped.append(s)
        elif state is False and not ctx.overwrite:
            raise ConfigError(f"{out / f'seed-{s}'} holds a checkpoint from a different config; pass --overwrite")
        else:
            claim_run_state(out, f"seed-{s}", fingerprint, overwrite=ctx.overwrite)
            seeds.append(s)

    def train(seed: int) -> dict:
        trainer = SFNOTrainer(config, plan, seed)
        return fit_and_export(trainer, state_root=out, folder=out / f"seed-{seed}", fingerprint=fingerprint)

    results, failures = {}, {}
    with Progress(f"{config.label}: train", len(seeds), "checkpoints") as bar:
        with ThreadPoolExecutor(max_workers=config.concurrent or max(1, len(seeds))) as pool:
            futures = {s: pool.submit(train, s) for s in seeds}
            for s, fut in futures.items():
                try:
                    results[s] = fut.result()
                except Exception as err:  # one failed seed must not lose the others
                    failures[s] = f"{type(err).__name__}: {err}"
                bar.update(1)
        bar.summary = f"{len(results)} trained, {len(skipped)} up to date, {len(failures)} failed"
    if failures:
        detail = "; ".join(f"seed {s}: {e}" for s, e in failures.items())
        raise RuntimeError(f"{len(failures)} of {len(seeds)} seeds failed ({detail}); rerun to resume them")
    return {
        "path": str(out),
        "trained": sorted(results),
        "skipped": skipped,
        "val_rmse": json.loads(json.dumps(results)),
    }
