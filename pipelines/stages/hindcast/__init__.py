"""The ``hindcast`` stage: its settings (``config``), coordinator (``stage``), the checked plan
(``plan``) and the Ray actor that runs one SFNO checkpoint's work units (``actor``)."""

from swarmcast.pipelines.lazy_exports import lazy_exports
from swarmcast.pipelines.stages.hindcast.config import HindcastConfig, PerturbationSettings, SummarySettings

__getattr__ = lazy_exports(__name__, {"run": "stage", "HindcastPlan": "plan"})  # these import torch and Ray
__all__ = ["HindcastConfig", "HindcastPlan", "PerturbationSettings", "SummarySettings", "run"]
