"""The ``train-diffusion`` stage: settings (``config``), coordinator (``stage``), the checked plan
(``plan``) and the trainer that fills the shared Ray Train skeleton (``trainer``)."""

from swarmcast.pipelines.lazy_exports import lazy_exports
from swarmcast.pipelines.stages.train_diffusion.config import TrainDiffusionConfig

__getattr__ = lazy_exports(__name__, {"run": "stage", "DiffusionTrainingPlan": "plan"})  # these import torch and Ray
__all__ = ["DiffusionTrainingPlan", "TrainDiffusionConfig", "run"]
