"""Which torch device a worker computes on, and a clear error when a GPU was asked for but is missing."""

from __future__ import annotations

import torch

from swarmcast.ops.errors import InputError


class DeviceError(InputError):
    """A GPU was requested where this process sees none."""


def compute_device(use_gpu: bool) -> torch.device:
    """``cuda`` (the first visible GPU; Ray sets which) when ``use_gpu``, else ``cpu``.

    Never falls back silently: ``use_gpu`` without a usable CUDA device raises ``DeviceError``.
    """
    if not use_gpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"use_gpu is set but this process sees no CUDA GPU (torch {torch.__version__}, "
            f"CUDA build: {torch.version.cuda or 'no'})"
        )
    return torch.device("cuda")


__all__ = ["DeviceError", "compute_device"]
