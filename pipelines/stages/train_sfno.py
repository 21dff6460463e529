"""Stage ``train-sfno``: N independently seeded SFNO checkpoints on Ray Train (HENS model spread).

Each seed is its own Ray Train run (``TorchTrainer``; DDP over ``scaling.workers`` workers,
gloo on CPU, NCCL on GPU), named ``seed-<s>`` under ``<output>/.ray``. The runs are launched
together from driver threads: Ray starts each as soon as its workers fit and queues the rest,
and one failing seed does not stop the others. Rerunning resumes every unfinished run from
its latest checkpoint (same RunConfig name and storage path) and skips finished ones. Each
finished run is exported to ``<output>/seed-<s>/`` (see ``swarmcast.ops.checkpoint``).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from swarmcast.ops.checkpoint import META, read_meta
from swarmcast.ops.progress import Progress
from swarmcast.ops.readers import infer_time_step, open_climate, stored_normalization
from swarmcast.ops.samples import WindowSpec, window_starts
from swarmcast.ops.sfno import INTERNAL_GRIDS, SFNOConfig
from swarmcast.ops.storage import is_remote
from swarmcast.pipelines.config import ConfigError, StageConfig, Strict, resolve_path
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.ray_training import claim_run_state


class ModelSettings(Strict):
    """SFNO hyper-parameters (see ``swarmcast.ops.sfno.SFNOConfig``)."""

    embed_dim: int = Field(32, ge=1)
    """Width of the SFNO blocks."""
    num_layers: int = Field(4, ge=1)
    """Number of SFNO blocks."""
    scale_factor: int = Field(1, ge=1)
    """Downsampling of the internal grid; must divide the data grid."""
    grid_internal: Literal[INTERNAL_GRIDS] = "legendre-gauss"  # type: ignore[valid-type]
    """Quadrature grid inside the network."""
    residual: bool = True
    """Predict increments of the standardised state."""


class TrainSettings(Strict):
    """Optimisation settings."""

    epochs: int = Field(10, ge=1)
    """Passes over the training windows."""
    batch_size: int = Field(16, ge=1)
    """Windows per optimiser step per worker."""
    lr: float = Field(2e-3, gt=0)
    """Peak AdamW learning rate (cosine schedule to zero)."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay."""
    grad_clip: float | None = Field(1.0, gt=0)
    """Gradient-norm clip; None disables it."""
    rollout_steps: int = Field(1, ge=1)
    """Autoregressive steps in the loss (1 = one-step training)."""
    shuffle_buffer: int = Field(1024, ge=0)
    """Local shuffle buffer in windows (0 disables shuffling). Read tasks deliver windows in
    time order, so a buffer much smaller than an epoch leaves batches correlated in time."""


class Validation(Strict):
    """Which times are held out for validation."""

    start: str | None = None
    """First validation time; None: the last contiguous segment (the last SWE trajectory)."""
    end: str | None = None
    """Last validation time; None: the end of the data."""
    max_windows: int = Field(64, ge=1)
    """At most this many validation windows (evenly spaced) per evaluation."""
    lead_hours: float = Field(48.0, gt=0)
    """Lead of the validation RMSE stored in checkpoint.json (bred vectors use 48 h)."""


class Scaling(Strict):
    """Ray Train resources per seed."""

    workers: int = Field(1, ge=1)
    """DDP workers per seed."""
    use_gpu: bool = False
    """One GPU per worker (NCCL); CPU workers use gloo."""
    cpus_per_worker: float = Field(0.5, gt=0)
    """CPUs per worker; below 1 leaves room for Ray Data read tasks on small machines."""


class TrainSFNOConfig(StageConfig):
    """Parameters of the ``train-sfno`` stage."""

    RESUMABLE: ClassVar[bool] = True

    kind: Literal["train-sfno"] = "train-sfno"
    """Stage kind."""
    data: str = "data.zarr"
    """Climate store to train on."""
    output: str = "checkpoints"
    """Folder receiving one checkpoint folder per seed."""
    checkpoints: int | None = Field(None, ge=1)
    """How many seeds (0..N-1 offset by the run seed); or give ``seeds``."""
    seeds: list[int] | None = None
    """Explicit seeds (overrides ``checkpoints``)."""
    channels: list[str] | None = None
    """Channels to model; None takes every channel of the store."""
    step_hours: float = Field(6.0, gt=0)
    """Model time step; a whole multiple of the data's step."""
    model: ModelSettings = ModelSettings()
    """Network hyper-parameters."""
    train: TrainSettings = TrainSettings()
    """Optimisation settings."""
    validation: Validation = Validation()
    """Held-out times."""
    scaling: Scaling = Scaling()
    """Resources per seed."""
    max_failures: int = Field(2, ge=0)
    """Worker failures each run survives (Ray Train FailureConfig)."""
    concurrent: int | None = Field(None, ge=1)
    """Seeds launched at once (None: all; Ray queues what does not fit)."""

    @model_validator(mode="after")
    def _seeds_given(self) -> TrainSFNOConfig:
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
        if self.seeds is not None and not self.seeds:
            raise ValueError("seeds must not be empty")
        return self

    def seed_list(self, pipeline_seed: int) -> list[int]:
        if self.seeds is not None:
            return list(self.seeds)
        return [pipeline_seed * 1000 + i for i in range(self.checkpoints or 2)]

    def inputs(self, base: Path) -> list[Path]:
        return [resolve_path(base, self.data)]

    def outputs(self, base: Path) -> list[Path]:
        return [resolve_path(base, self.output)]

    def plan(self, base: Path) -> str:
        n = len(self.seeds) if self.seeds else (self.checkpoints or 2)
        return (
            f"train {n} SFNO checkpoints ({self.model.num_layers} layers x {self.model.embed_dim}) for "
            f"{self.train.epochs} epochs on {resolve_path(base, self.data)}, {self.scaling.workers} worker(s) "
            f"each; write {resolve_path(base, self.output)}/seed-<s>/"
        )


class Prepared:
    """Data-dependent facts checked before any training starts."""

    def __init__(self, config: TrainSFNOConfig, ctx: StageContext) -> None:
        path = resolve_path(ctx.base, config.data)
        ds = open_climate(path, config.channels)
        self.store = path
        self.channels = tuple(config.channels or list(ds.data_vars))
        self.nlat, self.nlon = ds.sizes["lat"], ds.sizes["lon"]
        self.normalization = stored_normalization(ds)
        if self.normalization is None:
            raise ConfigError(f"{path}: no normalisation statistics (write it with swe-dataset or add them)")
        times = ds["time"].values.astype("datetime64[ns]")
        data_step = infer_time_step(times)
        ratio = np.timedelta64(round(config.step_hours * 3600), "s") / data_step
        if ratio < 1 or abs(ratio - round(ratio)) > 1e-9:
            raise ConfigError(f"step_hours {config.step_hours} is not a whole multiple of the data step {data_step}")
        self.stride = round(ratio)
        self.val_start, self.val_end = self._validation_range(config.validation, times)
        self.lead_steps = config.validation.lead_hours / config.step_hours
        if abs(self.lead_steps - round(self.lead_steps)) > 1e-9:
            raise ConfigError(f"validation.lead_hours {config.validation.lead_hours} is not a multiple of step_hours")
        self.lead_steps = round(self.lead_steps)
        self.model = self._model_config(config)
        k = config.train.rollout_steps
        self.train_spec = WindowSpec(
            self.channels, steps=k, stride=self.stride, end=self.val_start - np.timedelta64(1, "ns")
        )
        self.val_spec = WindowSpec(
            self.channels, steps=self.lead_steps, stride=self.stride, start=self.val_start, end=self.val_end
        )
        n_train = len(window_starts(times, self.train_spec))
        if n_train == 0:
            raise ConfigError(
                f"train.rollout_steps={k} needs {k + 1} consecutive states {config.step_hours} h apart before "
                f"{self.val_start}; the data has none"
            )
        starts = window_starts(times, self.val_spec)
        if len(starts) == 0:
            raise ConfigError(
                f"validation range {self.val_start}..{self.val_end} holds no {config.validation.lead_hours} h "
                "window; widen it or lower validation.lead_hours"
            )
        pick = np.unique(np.linspace(0, len(starts) - 1, min(len(starts), config.validation.max_windows)).round())
        self.val_starts = starts[pick.astype(int)]
        self.n_train = n_train

    @staticmethod
    def _validation_range(v: Validation, times: np.ndarray) -> tuple[np.datetime64, np.datetime64]:
        t0, t1 = times[0], times[-1]
        if v.start is None:
            gaps = np.flatnonzero(np.diff(times) > np.diff(times).min())
            start = times[gaps[-1] + 1] if len(gaps) else times[int(len(times) * 0.8)]
        else:
            start = np.datetime64(v.start, "ns")
        end = t1 if v.end is None else np.datetime64(v.end, "ns")
        if not (t0 < start <= end <= t1):
            raise ConfigError(f"validation range {start}..{end} must lie inside the data ({t0}..{t1}) after its start")
        return start, end

    def _model_config(self, config: TrainSFNOConfig) -> SFNOConfig:
        try:
            return SFNOConfig(channels=self.channels, nlat=self.nlat, nlon=self.nlon, **config.model.model_dump())
        except ValueError as err:
            raise ConfigError(f"model: {err}") from None


def _finished(folder: Path, fingerprint: dict) -> bool | None:
    """True: finished with this config; False: finished with another; None: not finished."""
    if not (folder / META).exists():
        return None
    return read_meta(folder).get("stage") == fingerprint


def run(config: TrainSFNOConfig, ctx: StageContext) -> dict:
    from swarmcast.pipelines.sfno_trainer import train_seed

    prepared = Prepared(config, ctx)
    out = resolve_path(ctx.base, config.output)
    if not is_remote(out):  # object stores have no folders to create
        out.mkdir(parents=True, exist_ok=True)
    fingerprint = ctx.fingerprint(config)
    seeds, skipped = [], []
    for s in config.seed_list(ctx.seed):
        state = _finished(out / f"seed-{s}", fingerprint)
        if state is True and not ctx.overwrite:
            skipped.append(s)
        elif state is False and not ctx.overwrite:
            raise ConfigError(f"{out / f'seed-{s}'} holds a checkpoint from a different config; pass --overwrite")
        else:
            claim_run_state(out, f"seed-{s}", fingerprint, overwrite=ctx.overwrite)
            seeds.append(s)
    results, failures = {}, {}
    with Progress(f"{config.label}: train", len(seeds), "checkpoints") as bar:
        with ThreadPoolExecutor(max_workers=config.concurrent or max(1, len(seeds))) as pool:
            futures = {s: pool.submit(train_seed, config, prepared, ctx, s, out, fingerprint) for s in seeds}
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
