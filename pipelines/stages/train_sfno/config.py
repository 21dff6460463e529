"""The ``train-sfno`` stage's settings: checked without importing torch or Ray."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from swarmcast.pipelines.config import StageConfig, Strict, resolve_path
from swarmcast.pipelines.train.settings import Scaling


class ModelSettings(Strict):
    """SFNO hyper-parameters (see ``swarmcast.ops.sfno.model.SFNOConfig``)."""

    embed_dim: int = Field(32, ge=1)
    """Width of the SFNO blocks."""
    num_layers: int = Field(4, ge=1)
    """Number of SFNO blocks."""
    scale_factor: int = Field(1, ge=1)
    """Downsampling of the internal grid; must divide the data grid."""
    # ops.sfno.model.INTERNAL_GRIDS spelled out (that module imports torch); a test holds them equal
    grid_internal: Literal["equiangular", "legendre-gauss"] = "legendre-gauss"
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
    input_noise: float = Field(0.0, ge=0)
    """Std of Gaussian noise added to each window's initial state, in standardised units (0:
    none). The targets stay clean, so the model learns to damp states off the data's manifold
    instead of amplifying them: rollouts, and ensemble perturbations, stay stable (noise
    injection, Sanchez-Gonzalez et al. 2020, "Learning to simulate complex physics")."""
    spectral_weight: float = Field(0.0, ge=0)
    """Weight of a second loss term: each step's error power per spherical-harmonic degree over
    the data's own step power at that degree, averaged over degrees (0 for a perfect step, 1 for
    persistence; ``swarmcast.kernels.losses.spectral_error_ratio``). The MSE alone barely sees
    the small scales, where the model then adds noise the data lacks; this term weighs every
    degree alike (0: off)."""
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


class TrainSFNOConfig(StageConfig):
    """Parameters of the ``train-sfno`` stage."""

    RESUMABLE: ClassVar[bool] = True
    RUN_SETTINGS: ClassVar[frozenset[str]] = frozenset({"concurrent"})
    OMIT_WHEN_DEFAULT: ClassVar[frozenset[str]] = frozenset({"normalization"})

    kind: Literal["train-sfno"] = "train-sfno"
    """Stage kind."""
    data: str = "data.zarr"
    """Climate store to train on."""
    normalization: str | None = None
    """JSON statistics written by ``swarmcast stats`` (for a store swarmcast did not write);
    None: the store's own ``normalization`` attribute (``swe-dataset`` stores carry it)."""
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
        stats = [resolve_path(base, self.normalization)] if self.normalization is not None else []
        return [resolve_path(base, self.data), *stats]

    def outputs(self, base: Path) -> list[Path]:
        return [resolve_path(base, self.output)]

    def plan(self, base: Path) -> str:
        n = len(self.seeds) if self.seeds else (self.checkpoints or 2)
        return (
            f"train {n} SFNO checkpoints ({self.model.num_layers} layers x {self.model.embed_dim}) for "
            f"{self.train.epochs} epochs on {resolve_path(base, self.data)}, {self.scaling.workers} worker(s) "
            f"each; write {resolve_path(base, self.output)}/seed-<s>/"
        )
