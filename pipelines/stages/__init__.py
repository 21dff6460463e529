"""Pipeline stages: one per stage kind, each a typed config plus ``run(config, ctx) -> summary``.

Each stage is a package: ``config`` (its settings, which import neither torch nor Ray, so a
pipeline is checked and planned in well under a second), ``stage`` (the coordinator, imported
only to run it) and, where the stage has them, ``plan`` (inputs checked before any work) and
``trainer`` or ``actor`` (what runs on the workers). Stages never import
each other; what two stages share lives in ``swarmcast.pipelines.ensemble`` or ``.train``.
``STAGES`` maps the YAML ``kind`` to its config class and runner (ARCHITECTURE.md, "Pipelines
and stages").
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from swarmcast.pipelines.config import StageConfig
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.stages.hindcast.config import HindcastConfig
from swarmcast.pipelines.stages.report.config import ReportConfig
from swarmcast.pipelines.stages.sample_diffusion.config import SampleDiffusionConfig
from swarmcast.pipelines.stages.score.config import ScoreConfig
from swarmcast.pipelines.stages.swe_dataset.config import SWEDatasetConfig
from swarmcast.pipelines.stages.train_diffusion.config import TrainDiffusionConfig
from swarmcast.pipelines.stages.train_sfno.config import TrainSFNOConfig


@dataclass(frozen=True)
class Stage:
    config: type[StageConfig]
    """The stage's settings (imports neither torch nor Ray)."""
    module: str
    """The module whose ``run(config, ctx) -> summary`` runs the stage; imported only to run it."""
    probe: str | None = None
    """For a resumable stage, a module whose ``nothing_to_do(config, ctx)`` says, without Ray,
    that a rerun would do nothing and why (then the runner skips it and need not start Ray)."""

    def run(self, config: StageConfig, ctx: StageContext) -> dict:
        return importlib.import_module(self.module).run(config, ctx)

    def nothing_to_do(self, config: StageConfig, ctx: StageContext) -> str | None:
        """Why a rerun would do nothing, only when the probe is sure; None: run the stage. A
        probe that fails (a store it cannot read, say) is not sure: the stage then runs and
        reports what is wrong itself, with the checks it was built for."""
        if self.probe is None:
            return None
        try:
            return importlib.import_module(self.probe).nothing_to_do(config, ctx)
        except Exception:  # not sure: run the stage, whose own checks name the problem
            return None


_STAGES = "swarmcast.pipelines.stages"
STAGES: dict[str, Stage] = {
    "swe-dataset": Stage(SWEDatasetConfig, f"{_STAGES}.swe_dataset.stage"),
    "train-sfno": Stage(TrainSFNOConfig, f"{_STAGES}.train_sfno.stage", f"{_STAGES}.train_sfno.probe"),
    "hindcast": Stage(HindcastConfig, f"{_STAGES}.hindcast.stage", f"{_STAGES}.hindcast.probe"),
    "train-diffusion": Stage(
        TrainDiffusionConfig, f"{_STAGES}.train_diffusion.stage", f"{_STAGES}.train_diffusion.probe"
    ),
    "sample-diffusion": Stage(
        SampleDiffusionConfig, f"{_STAGES}.sample_diffusion.stage", f"{_STAGES}.sample_diffusion.probe"
    ),
    "score": Stage(ScoreConfig, f"{_STAGES}.score.stage"),
    "report": Stage(ReportConfig, f"{_STAGES}.report.stage"),
}
STAGE_CONFIGS: dict[str, type[StageConfig]] = {k: s.config for k, s in STAGES.items()}
