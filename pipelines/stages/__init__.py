"""Pipeline stages: one per stage kind, each a typed config plus ``run(config, ctx) -> summary``.

Small stages are one module (``swe_dataset``, ``score``, ``report``); stages with a checked plan
and a Ray worker are a package of ``stage`` (config and coordinator), ``plan`` (inputs checked
before any work) and ``trainer`` or ``actor`` (what runs on the workers). Stages never import
each other; what two stages share lives in ``swarmcast.pipelines.ensemble`` or ``.train``.
``STAGES`` maps the YAML ``kind`` to its config class and runner (ARCHITECTURE.md, "Pipelines
and stages").
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
