"""The ``train-sfno`` stage: settings (``config``), coordinator (``stage``), the checked plan
(``plan``) and the trainer that fills the shared Ray Train skeleton for one seed (``trainer``)."""

from swarmcast.pipelines.lazy_exports import lazy_exports
from swarmcast.pipelines.stages.train_sfno.config import TrainSFNOConfig

__getattr__ = lazy_exports(__name__, {"run": "stage", "SFNOTrainingPlan": "plan"})  # these import torch and Ray
__all__ = ["SFNOTrainingPlan", "TrainSFNOConfig", "run"]
