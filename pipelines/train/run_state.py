"""Ray Train run state shared by every training stage (``train-sfno``, ``train-diffusion``).

One named Train V2 run per model: ``fit_run`` launches it with
``RunConfig(name, storage_path=<output>/.ray)``, so rerunning the same stage resumes it from
its latest reported checkpoint; ``claim_run_state`` ties that run state to the stage config;
inside the worker loop, ``restore_state`` loads the latest training state (model, optimizer,
scheduler and the loop's own JSON state) and ``report_state`` has rank 0 save and report a new
one each epoch while every rank reports its metrics.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from swarmcast.ops.checkpoint import load_training_state, save_training_state
from swarmcast.ops.storage import Location, is_remote, remove
from swarmcast.pipelines.cluster.session import verbose
from swarmcast.pipelines.config import ConfigError


def claim_run_state(out: Location, name: str, fingerprint: dict, *, overwrite: bool) -> None:
    """Tie Ray Train's resumable run state (``<out>/.ray/<name>``) to this stage config.

    Train V2 resumes any run with the same name and storage path, so an interrupted run of a
    *different* config would otherwise be continued under the new one. A marker beside the
    run state records the config; a mismatch is refused, and ``--overwrite`` starts afresh.
    """
    run_dir = out / ".ray" / name
    marker = out / ".ray" / f"{name}.swarmcast_stage.json"
    if overwrite:
        remove(run_dir)
        remove(marker)
    elif marker.exists() and json.loads(marker.read_text()) != fingerprint:
        raise ConfigError(
            f"{run_dir} holds an unfinished training run of a different config; pass --overwrite to restart it"
        )
    if not is_remote(marker):  # object stores have no folders to create
        marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(fingerprint))


def _train_storage(root: Location) -> dict[str, Any]:
    """``RunConfig`` storage arguments for run state under ``root`` (a local folder or URL).

    A URL goes through the same fsspec filesystem as every other output (credentials from the
    environment), wrapped for pyarrow, which is what Ray Train moves checkpoints with.
    """
    if not is_remote(root):
        return {"storage_path": str(root.resolve())}
    import pyarrow.fs

    return {
        "storage_path": root.path,
        "storage_filesystem": pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(root.fs)),
    }


def fit_run(
    loop: Callable[[dict], None],
    loop_config: dict,
    *,
    name: str,
    out: Location,
    workers: int,
    use_gpu: bool,
    cpus_per_worker: float,
    max_failures: int,
    datasets: dict[str, Any] | None = None,
) -> Any:
    """Run (or resume) the Train V2 run ``name`` under ``<out>/.ray``; returns its final checkpoint."""
    import ray.train
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(
        loop,
        train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers, use_gpu=use_gpu, resources_per_worker={"CPU": cpus_per_worker}
        ),
        run_config=ray.train.RunConfig(
            name=name,
            **_train_storage(out / ".ray"),
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            # Ray Train narrates worker-group starts and every checkpoint at INFO; the stages
            # print their own progress (``swarmcast run --verbose`` keeps Ray's)
            logging_config=ray.train.LoggingConfig(log_level="INFO" if verbose() else "WARNING"),
        ),
        datasets=datasets or {},
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"{name}: training finished without a checkpoint")
    return result.checkpoint


def quiet_train_worker() -> None:
    """In a training worker, unless ``--verbose``: Ray Train's report module logs every
    checkpoint at INFO through a logger named by its file path, so outside ``ray.train`` and
    past the run config's ``LoggingConfig``; its level is raised here (the attribute is looked
    up, not assumed, so another Ray version changes nothing)."""
    import logging

    if verbose():
        return
    try:
        from ray.train.v2._internal.execution import context
    except ImportError:
        return
    log = getattr(context, "logger", None)
    if isinstance(log, logging.Logger):
        log.setLevel(logging.WARNING)


def restore_state(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler
) -> dict[str, Any] | None:
    """Load the run's latest training state into the objects (in a worker); None on a fresh run."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        return load_training_state(Path(d), model, optimizer, scheduler)


def report_state(
    rank: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: dict[str, Any],
    metrics: dict[str, Any],
) -> None:
    """Rank 0 saves and reports the training state; every rank reports ``metrics``."""
    import ray.train

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if rank == 0:
            folder = save_training_state(Path(tmp) / "state", model, optimizer, scheduler, state)
            checkpoint = ray.train.Checkpoint.from_directory(str(folder))
        ray.train.report(metrics, checkpoint=checkpoint)


def load_final_state(
    checkpoint: Any,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> dict[str, Any]:
    """The training state of a finished run's checkpoint (on the driver, for export)."""
    with checkpoint.as_directory() as d:
        return load_training_state(Path(d), model, optimizer, scheduler)
