"""The ``report`` stage: settings (``config``) and the coordinator that draws the report
folder from a scores store (``stage``)."""

from swarmcast.pipelines.lazy_exports import lazy_exports
from swarmcast.pipelines.stages.report.config import ReportConfig

__getattr__ = lazy_exports(__name__, {"run": "stage"})  # these import torch and Ray
__all__ = ["ReportConfig", "run"]
