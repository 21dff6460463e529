"""Pipeline stages: one module per stage kind, each a typed config plus ``run(config, ctx)``.

``STAGES`` maps the YAML ``kind`` (the contract of design §3) to its config class and runner.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from swarmcast.pipelines.config import StageConfig
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.stages import (
    hindcast,
    report,
    sample_diffusion,
    score,
    swe_dataset,
    train_diffusion,
    train_sfno,
)


@dataclass(frozen=True)
class Stage:
    config: type[StageConfig]
    run: Callable[[StageConfig, StageContext], dict]


STAGES: dict[str, Stage] = {
    "swe-dataset": Stage(swe_dataset.SWEDatasetConfig, swe_dataset.run),
    "train-sfno": Stage(train_sfno.TrainSFNOConfig, train_sfno.run),
    "hindcast": Stage(hindcast.HindcastConfig, hindcast.run),
    "train-diffusion": Stage(train_diffusion.TrainDiffusionConfig, train_diffusion.run),
    "sample-diffusion": Stage(sample_diffusion.SampleDiffusionConfig, sample_diffusion.run),
    "score": Stage(score.ScoreConfig, score.run),
    "report": Stage(report.ReportConfig, report.run),
}
STAGE_CONFIGS: dict[str, type[StageConfig]] = {k: s.config for k, s in STAGES.items()}
