"""The ``hindcast`` stage: its config and coordinator (``stage``), the checked plan (``plan``) and
the Ray actor that runs one SFNO checkpoint's work units (``actor``)."""

from swarmcast.pipelines.stages.hindcast.plan import HindcastPlan
from swarmcast.pipelines.stages.hindcast.stage import HindcastConfig, PerturbationSettings, SummarySettings, run

__all__ = ["HindcastConfig", "HindcastPlan", "PerturbationSettings", "SummarySettings", "run"]
