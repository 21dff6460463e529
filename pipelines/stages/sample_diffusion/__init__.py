"""The ``sample-diffusion`` stage: config and coordinator (``stage``), checked plan (``plan``) and
the Ray actor that samples one diffusion checkpoint's units (``actor``)."""

from swarmcast.pipelines.stages.sample_diffusion.plan import HALLUCINATION, GenerativePlan
from swarmcast.pipelines.stages.sample_diffusion.stage import SampleDiffusionConfig, run

__all__ = ["HALLUCINATION", "GenerativePlan", "SampleDiffusionConfig", "run"]
