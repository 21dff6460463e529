"""What every benchmark shares: the machine description and parameter checking."""

from __future__ import annotations

import math
import os
import platform

from swarmcast.pipelines.config import ConfigError


def machine() -> dict:
    """CPU count, GPU name (or None), Python and torch versions: printed with every benchmark."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpus": os.cpu_count(), "gpu": gpu, "python": platform.python_version(), "torch": torch.__version__}


def check_params(given: dict, defaults: dict) -> dict:
    """``defaults`` updated with ``given``. Unknown names, and values of another kind than the
    default's (a word for a count, a negative count or size, a number for a switch), are one
    ``ConfigError`` naming each; lists and parameters without a default are checked by the bench."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown bench parameters {unknown}; known: {sorted(defaults)}")
    problems = [f"{k}={v!r}: {why}" for k, v in given.items() if (why := _kind_problem(v, defaults[k]))]
    if problems:
        raise ConfigError(problems)
    return {**defaults, **given}


def _kind_problem(value: object, default: object) -> str | None:
    """Why ``value`` cannot stand in for ``default`` (None when it can)."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "expected true or false"
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            return "expected a whole number"
        return None if value >= 0 else "expected a number of at least 0"
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return "expected a number"
        return None if value >= 0 else "expected a number of at least 0"
    if isinstance(default, str) and not isinstance(value, str):
        return f"expected a word such as {default!r}"
    return None


__all__ = ["check_params", "machine"]
