"""The ``train-sfno`` stage: config and coordinator (``stage``), the checked plan (``plan``) and the
trainer that fills the shared Ray Train skeleton for one seed (``trainer``)."""

from swarmcast.pipelines.stages.train_sfno.plan import SFNOTrainingPlan
from swarmcast.pipelines.stages.train_sfno.stage import TrainSFNOConfig, run

__all__ = ["SFNOTrainingPlan", "TrainSFNOConfig", "run"]
