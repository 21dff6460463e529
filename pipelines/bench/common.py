"""What every benchmark shares: the machine description and parameter checking."""

from __future__ import annotations

import os
import platform

from swarmcast.pipelines.config import ConfigError


def machine() -> dict:
    """CPU count, GPU name (or None), Python and torch versions: printed with every benchmark."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpus": os.cpu_count(), "gpu": gpu, "python": platform.python_version(), "torch": torch.__version__}


def check_params(given: dict, defaults: dict) -> dict:
    """``defaults`` updated with ``given``; unknown names are a ``ConfigError`` listing the known ones."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown bench parameters {unknown}; known: {sorted(defaults)}")
    return {**defaults, **given}


__all__ = ["check_params", "machine"]
