"""Stage ``train-diffusion``: a diffusion model on images or climate states, on Ray Train.

Data: bundled digits, an image folder or ``.npz`` arrays (unconditional generation, the last
``validation_items`` images held out), or a climate store, where the model becomes a
generative forecaster p(x_{t+dt} | x_t) on standardised fields (the last contiguous segment,
e.g. the last shallow-water year, held out). Training shares the SFNO stage's Ray Train
plumbing (``swarmcast.pipelines.ray_training``): one named run, resume from the latest
reported state, DDP across ``scaling.workers``, bf16 autocast on GPUs.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from swarmcast.kernels.diffusion import PATHS, PREDICTIONS
from swarmcast.ops.diffusion.model import DiffusionSpec
from swarmcast.ops.images import ImageSource, list_items, load_items, split_items
from swarmcast.ops.readers import infer_time_step, open_climate, stored_normalization
from swarmcast.ops.samples import WindowSpec, read_windows, window_starts
from swarmcast.ops.storage import is_remote
from swarmcast.pipelines.config import ConfigError, StageConfig, Strict, resolve_path
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.ray_training import claim_run_state
from swarmcast.pipelines.stages.train_sfno import Scaling


class DataSettings(Strict):
    """What to learn: images (digits, folder, npz) or a climate store."""

    kind: Literal["digits", "folder", "npz", "climate"] = "digits"
    """Data kind."""
    path: str | None = None
    """Folder, .npz file/folder or climate store; unused for digits."""
    channels: list[str] | None = None
    """Climate channels (None: all)."""
    validation_items: int = Field(180, ge=1)
    """Images held out for validation (the last ones)."""
    max_validation: int = Field(64, ge=1)
    """At most this many validation samples per evaluation."""


class ModelSettings(Strict):
    """Network and objective."""

    width: int = Field(32, ge=4)
    """U-Net width or SFNO embed_dim."""
    num_layers: int = Field(4, ge=1)
    """SFNO blocks (climate data)."""
    sigma_data: float | None = Field(None, gt=0)
    """Data std for preconditioning; None: 0.5 for images, 1 for standardised climate fields."""
    path: Literal[PATHS] = "edm"  # type: ignore[valid-type]
    """Noise path: edm, linear or trig interpolant."""
    gamma: float = Field(0.0, ge=0)
    """Latent noise of the stochastic interpolant (0: none)."""
    prediction: Literal[PREDICTIONS] = "edm"  # type: ignore[valid-type]
    """Objective: edm, denoiser, noise or velocity."""
    sigma_min: float = Field(0.002, gt=0)
    """Smallest noise level."""
    sigma_max: float = Field(80.0, gt=0)
    """Largest noise level."""


class CurriculumSettings(Strict):
    """Easy-to-hard noise curriculum (1 cluster: off)."""

    clusters: int = Field(1, ge=1)
    """Noise-level clusters, trained from the noisiest."""
    patience: int = Field(2, ge=1)
    """Validations without improvement before the next cluster is added."""


class DiffusionTrainSettings(Strict):
    """Optimisation settings."""

    epochs: int = Field(20, ge=1)
    """Passes over the training data."""
    batch_size: int = Field(64, ge=1)
    """Samples per optimiser step per worker."""
    lr: float = Field(2e-3, gt=0)
    """Peak AdamW learning rate (cosine schedule)."""
    grad_clip: float | None = Field(1.0, gt=0)
    """Gradient-norm clip; None disables it."""
    ema_halflife_steps: float = Field(200.0, gt=0)
    """EMA half-life in optimiser steps (ramped up over the first steps)."""
    curriculum: CurriculumSettings = CurriculumSettings()
    """Noise curriculum."""


class TrainDiffusionConfig(StageConfig):
    """Parameters of the ``train-diffusion`` stage."""

    RESUMABLE: ClassVar[bool] = True

    kind: Literal["train-diffusion"] = "train-diffusion"
    """Stage kind."""
    data: DataSettings = DataSettings()
    """Training data."""
    output: str = "diffusion"
    """Checkpoint folder to write."""
    model: ModelSettings = ModelSettings()
    """Network and objective."""
    train: DiffusionTrainSettings = DiffusionTrainSettings()
    """Optimisation."""
    scaling: Scaling = Scaling()
    """Ray Train workers."""
    max_failures: int = Field(2, ge=0)
    """Worker failures tolerated (each resumes from the last epoch)."""
    seed: int | None = None
    """Training seed; None: the pipeline seed."""

    def inputs(self, base: Path) -> list[Path]:
        return [resolve_path(base, self.data.path)] if self.data.path else []

    def outputs(self, base: Path) -> list[Path]:
        return [resolve_path(base, self.output)]

    def plan(self, base: Path) -> str:
        return f"{self.train.epochs} epochs on {self.data.kind}; write {resolve_path(base, self.output)}"


class Prepared:
    """Data facts and the model spec, checked before training."""

    def __init__(self, config: TrainDiffusionConfig, ctx: StageContext) -> None:
        d, m = config.data, config.model
        self.config = config
        if m.sigma_min >= m.sigma_max:
            raise ConfigError("model.sigma_min must be below model.sigma_max")
        if d.kind == "climate":
            self._climate(config, ctx)
        else:
            self._images(config, ctx)
        sigma_data = m.sigma_data or (1.0 if d.kind == "climate" else 0.5)
        path = {"kind": m.path, "sigma_min": m.sigma_min, "sigma_max": m.sigma_max, "gamma": m.gamma}
        c, h, w = self.shape
        network = "spherical" if d.kind == "climate" else "unet"
        if network == "unet" and (h % 2 or w % 2):
            raise ConfigError(f"data: images of {h}x{w} pixels; the U-Net needs even sizes")
        self.spec = DiffusionSpec(
            network,
            c,
            h,
            w,
            cond_channels=self.cond_channels,
            width_factor=m.width,
            num_layers=m.num_layers,
            sigma_data=sigma_data,
            path=path,
            prediction=m.prediction,
        )
        self.seed = config.seed if config.seed is not None else ctx.seed

    def _images(self, config: TrainDiffusionConfig, ctx: StageContext) -> None:
        d = config.data
        where = resolve_path(ctx.base, d.path) if d.path else None
        if where is not None and is_remote(where):
            raise ConfigError(f"data.path: {where}: image folders and .npz files are read from local paths only")
        path = str(where) if where is not None else None
        self.source = ImageSource(d.kind, path)  # type: ignore[arg-type]
        try:
            items = list_items(self.source)
            self.train_items, held = split_items(items, d.validation_items)
        except (ValueError, FileNotFoundError) as err:
            raise ConfigError(f"data: {err}") from None
        images, _ = load_items(self.source, held)
        self.validation = images[np.linspace(0, len(images) - 1, min(d.max_validation, len(images))).astype(int)]
        self.shape = tuple(images.shape[1:])
        self.cond_channels, self.n_train = 0, sum(i.hi - i.lo for i in self.train_items)
        self.store = None

    def _climate(self, config: TrainDiffusionConfig, ctx: StageContext) -> None:
        d = config.data
        if d.path is None:
            raise ConfigError("data.path: a climate store is needed for data.kind 'climate'")
        self.store = resolve_path(ctx.base, d.path)
        ds = open_climate(self.store, d.channels)
        self.channels = tuple(d.channels or list(ds.data_vars))
        self.normalization = stored_normalization(ds)
        if self.normalization is None:
            raise ConfigError(f"data.path: {self.store} has no normalisation statistics")
        times = ds["time"].values.astype("datetime64[ns]")
        self.step = infer_time_step(times)
        gaps = np.flatnonzero(np.diff(times) > np.diff(times).min())
        val_start = times[gaps[-1] + 1] if len(gaps) else times[int(len(times) * 0.8)]
        self.train_spec = WindowSpec(self.channels, steps=1, end=val_start - np.timedelta64(1, "ns"))
        val_spec = WindowSpec(self.channels, steps=1, start=val_start)
        self.n_train = len(window_starts(times, self.train_spec))
        starts = window_starts(times, val_spec)
        if self.n_train == 0 or len(starts) == 0:
            raise ConfigError(f"data.path: {self.store} needs consecutive states before and after {val_start}")
        pick = starts[np.linspace(0, len(starts) - 1, min(d.max_validation, len(starts))).astype(int)]
        self.validation = read_windows(ds, pick, val_spec, self.normalization)  # (n, 2, C, H, W)
        self.shape = (len(self.channels), ds.sizes["lat"], ds.sizes["lon"])
        self.cond_channels = len(self.channels)


def run(config: TrainDiffusionConfig, ctx: StageContext) -> dict:
    from swarmcast.ops.checkpoint import read_meta
    from swarmcast.ops.diffusion.training import FORMAT
    from swarmcast.pipelines.diffusion_trainer import train_model

    prepared = Prepared(config, ctx)
    out = resolve_path(ctx.base, config.output)
    fingerprint = ctx.fingerprint(config)
    if (out / "checkpoint.json").exists() and not ctx.overwrite:
        if read_meta(out, FORMAT).get("stage") == fingerprint:
            print(f"[{config.label}] up to date: {out}")
            return {"path": str(out), "trained": False}
        raise ConfigError(f"{out} holds a diffusion checkpoint of a different config; pass --overwrite")
    state_root = out.parent / f".{out.name}.train"  # Ray Train run state (resume) lives here
    claim_run_state(state_root, "run", fingerprint, overwrite=ctx.overwrite)
    summary = train_model(config, prepared, ctx, out, state_root, fingerprint)
    return {"path": str(out), "trained": True, **summary}
