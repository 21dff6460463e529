"""The ``train-diffusion`` stage's settings: checked without importing torch or Ray."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from swarmcast.pipelines.config import StageConfig, Strict, resolve_path
from swarmcast.pipelines.train.settings import Scaling


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
    # spelled out rather than kernels.diffusion.PATHS/PREDICTIONS (which import torch), so
    # settings are checked in well under a second; a test holds them equal
    path: Literal["edm", "linear", "trig"] = "edm"
    """Noise path: edm, linear or trig interpolant."""
    gamma: float = Field(0.0, ge=0)
    """Latent noise of the stochastic interpolant (0: none)."""
    prediction: Literal["denoiser", "noise", "velocity", "edm"] = "edm"
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
