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

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from swarmcast.kernels.diffusion import PATHS, PREDICTIONS
from swarmcast.ops.checkpoint import read_meta
from swarmcast.ops.diffusion.training import FORMAT
from swarmcast.pipelines.cluster.session import check_gpus
from swarmcast.pipelines.config import ConfigError, StageConfig, Strict, resolve_path
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.stages.train_diffusion.plan import DiffusionTrainingPlan
from swarmcast.pipelines.train.run_state import claim_run_state
from swarmcast.pipelines.train.settings import Scaling
from swarmcast.pipelines.train.skeleton import fit_and_export


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
