"""The ``sample-diffusion`` stage: settings (``config``), coordinator (``stage``), checked plan
(``plan``) and the Ray actor that samples one diffusion checkpoint's units (``actor``)."""

from swarmcast.pipelines.lazy_exports import lazy_exports
from swarmcast.pipelines.stages.sample_diffusion.config import SampleDiffusionConfig

# these import torch and Ray
__getattr__ = lazy_exports(__name__, {"run": "stage", "GenerativePlan": "plan", "HALLUCINATION": "plan"})
__all__ = ["HALLUCINATION", "GenerativePlan", "SampleDiffusionConfig", "run"]
