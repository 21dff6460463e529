"""The ``swe-dataset`` stage: settings (``config``) and the coordinator that integrates
shallow-water trajectories on Ray into a climate store (``stage``)."""

from swarmcast.pipelines.lazy_exports import lazy_exports
from swarmcast.pipelines.stages.swe_dataset.config import SWEDatasetConfig

__getattr__ = lazy_exports(__name__, {"run": "stage"})  # these import torch and Ray
__all__ = ["SWEDatasetConfig", "run"]
