"""The ``train-diffusion`` stage: config and coordinator (``stage``), the checked plan (``plan``)
and the trainer that fills the shared Ray Train skeleton (``trainer``)."""

from swarmcast.pipelines.stages.train_diffusion.plan import DiffusionTrainingPlan
from swarmcast.pipelines.stages.train_diffusion.stage import TrainDiffusionConfig, run

__all__ = ["DiffusionTrainingPlan", "TrainDiffusionConfig", "run"]
