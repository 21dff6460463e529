"""The ``score`` stage: settings (``config``) and the coordinator that scores an ensemble store
against its truth (``stage``)."""

from swarmcast.pipelines.lazy_exports import lazy_exports
from swarmcast.pipelines.stages.score.config import ScoreConfig

__getattr__ = lazy_exports(__name__, {"run": "stage"})  # these import torch and Ray
__all__ = ["ScoreConfig", "run"]
