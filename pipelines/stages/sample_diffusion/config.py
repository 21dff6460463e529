"""The ``sample-diffusion`` stage's settings: checked and sized without importing torch or Ray."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from swarmcast.pipelines.config import StageConfig, resolve_path
from swarmcast.pipelines.ensemble.settings import ActorSettings, InitTimes
from swarmcast.pipelines.plan_bounds import Footprint


class SampleDiffusionConfig(StageConfig):
    """Parameters of the ``sample-diffusion`` stage."""

    RESUMABLE: ClassVar[bool] = True
    RUN_SETTINGS: ClassVar[frozenset[str]] = frozenset({"actors"})

    kind: Literal["sample-diffusion"] = "sample-diffusion"
    """Stage kind."""
    checkpoint: str = "diffusion"
    """Diffusion checkpoint folder of a climate forecaster (``train-diffusion`` on a climate store)."""
    data: str = "data.zarr"
    """Climate store with the initial states."""
    output: str = "generative.zarr"
    """Ensemble store to write."""
    init_times: InitTimes
    """Initial times."""
    lead_hours: float = Field(24.0, gt=0)
    """Forecast length (a multiple of the model step)."""
    members: int = Field(8, ge=1)
    """Members per init time."""
    member_block: int | None = Field(None, ge=1)
    """Members per work unit; None: all (must divide ``members``)."""
    solver: str = "dpm++2m"
    """Sampler: euler, heun, dpm++2m or sde."""
    nfe: int = Field(10, ge=1)
    """Denoiser evaluations per model step."""
    eps: float = Field(0.0, ge=0)
    """Langevin noise of the sde sampler (0: probability-flow ODE)."""
    hallucination_steps: int = Field(5, ge=2)
    """Sampler steps over which the hallucination score is taken."""
    actors: ActorSettings = ActorSettings()
    """Actor resources."""
    seed: int | None = None
    """Run seed for member seeds; None: the pipeline seed."""

    def inputs(self, base: Path) -> list[Path]:
        return [resolve_path(base, self.checkpoint), resolve_path(base, self.data)]

    def outputs(self, base: Path) -> list[Path]:
        return [resolve_path(base, self.output)]

    def plan(self, base: Path) -> str:
        n = len(self.init_times.resolve())
        return f"{n} init times x {self.members} generative members, {self.lead_hours:g} h; write {self.output}"

    def footprint(self, base: Path) -> Footprint:
        n = len(self.init_times.resolve())
        return Footprint(n * self.members, f"{n:,} init times x {self.members:,} members")
