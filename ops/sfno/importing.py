"""Bringing an SFNO trained elsewhere: a torch-harmonics (or makani-style) state dict to a checkpoint folder.

HENS and earth2studio users hold their SFNOs as state dicts of torch-harmonics'
``SphericalFourierNeuralOperator``. ``import_sfno`` builds the swarmcast stepper the declared
hyper-parameters describe, checks the file's tensors against it name by name and shape by
shape (the first mismatch is named: a wrong ``embed_dim`` shows as a wrong shape, a wrong
``num_layers`` as a missing or unexpected block), and writes the same checkpoint folder
training writes (``weights.safetensors`` + ``checkpoint.json``, ``swarmcast.ops.checkpoint``),
with the per-channel validation RMSE at one step and at ``lead_hours`` computed on a store you
name, so bred vectors can be scaled by it. Files are read without executing pickled code:
safetensors, or ``torch.load(weights_only=True)``, whose unpickler accepts tensors and plain
containers only.

The stepper contract (what any imported network must satisfy, ARCHITECTURE.md, "Checkpoints
and training"): it maps standardised states ``(batch, channels, nlat, nlon)``,
``z = (x - mean) / std`` with the statistics of ``normalization``, to the next standardised
state one ``time_step_hours`` later (``residual=False``, torch-harmonics' own models) or to the
increment in units of each channel's tendency std over std (``residual=True``, how swarmcast
trains).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from swarmcast.kernels.sphere import quadrature_weights
from swarmcast.ops.checkpoint import save_model
from swarmcast.ops.data.normalization import Normalization
from swarmcast.ops.data.readers import infer_time_step, open_climate
from swarmcast.ops.data.splits import evenly_spaced, whole_steps
from swarmcast.ops.data.windows import WindowSpec, read_windows, window_starts
from swarmcast.ops.errors import InputError
from swarmcast.ops.sfno.model import SFNOConfig, SFNOStepper, increment_scale
from swarmcast.ops.sfno.training import validate

WRAPPERS = ("model_state", "state_dict", "model")
"""Keys under which training frameworks nest the model's tensors (makani: ``model_state``)."""


class StateDictMismatchError(InputError):
    """A state dict whose tensors do not fit the declared hyper-parameters."""


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file or a torch checkpoint, loaded without running
    pickled code; unwrapped from ``WRAPPERS`` and stripped of DDP's ``module.`` prefix."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such state dict file")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(p))
    else:
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as err:  # the safe unpickler refuses code; anything else is damage
            raise InputError(f"{p}: cannot be read as a state dict without running code ({err})") from None
    while isinstance(state, dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
        inner = next((state[k] for k in WRAPPERS if isinstance(state.get(k), dict)), None)
        if inner is None:
            raise InputError(f"{p}: holds no tensors (keys {sorted(state)[:8]})")
        state = inner
    if not isinstance(state, dict):
        raise InputError(f"{p}: expected a dict of tensors, got {type(state).__name__}")
    tensors = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    return tensors


def fit_state_dict(model: SFNOStepper, tensors: dict[str, torch.Tensor]) -> None:
    """Load torch-harmonics SFNO ``tensors`` into ``model.net``; refuse, naming the first
    tensor that does not fit, when names or shapes differ from the declared architecture."""
    expected = model.net.state_dict()
    problems = []
    for name, want in expected.items():
        got = tensors.get(name)
        if got is None:
            problems.append(f"tensor {name!r} {tuple(want.shape)} is missing from the file")
        elif tuple(got.shape) != tuple(want.shape):
            problems.append(f"tensor {name!r} is {tuple(got.shape)} in the file, {tuple(want.shape)} for this config")
    problems += [
        f"tensor {name!r} {tuple(t.shape)} is not part of this config"
        for name, t in tensors.items()
        if name not in expected
    ]
    if problems:
        more = f" ({len(problems) - 1} more mismatches)" if len(problems) > 1 else ""
        raise StateDictMismatchError(f"the state dict does not fit {_describe(model.config)}: {problems[0]}{more}")
    model.net.load_state_dict({k: tensors[k].to(expected[k].dtype) for k in expected})


def import_sfno(
    tensors: dict[str, torch.Tensor],
    config: SFNOConfig,
    normalization: Normalization,
    time_step_hours: float,
    store: str | os.PathLike,
    output: str | os.PathLike,
    *,
    lead_hours: float = 48.0,
    max_windows: int = 32,
    source: str = "",
) -> dict[str, Any]:
    """Write the checkpoint folder ``output`` for an SFNO's ``tensors``; returns its checkpoint.json.

    Validation windows are ``max_windows`` evenly spaced starts in ``store`` (any layout
    ``open_climate`` reads, on the model's grid) with ``lead_hours`` of states after them.
    """
    mean, std = normalization.arrays(config.channels)  # refuses channels without statistics
    model = SFNOStepper(config, mean.tolist(), std.tolist(), increment_scale(normalization, config.channels))
    fit_state_dict(model, tensors)
    ds = open_climate(store, config.channels)
    if (ds.sizes["lat"], ds.sizes["lon"]) != (config.nlat, config.nlon):
        raise InputError(
            f"{store}: grid {ds.sizes['lat']}x{ds.sizes['lon']}, the model's is {config.nlat}x{config.nlon}"
        )
    times = ds["time"].values.astype("datetime64[ns]")
    stride = whole_steps(time_step_hours * 3600, infer_time_step(times) / np.timedelta64(1, "s"))
    lead_steps = whole_steps(lead_hours, time_step_hours)
    if stride is None or lead_steps is None:
        raise InputError(f"{time_step_hours} h steps do not divide the data's steps or {lead_hours} h")
    spec = WindowSpec(config.channels, steps=lead_steps, stride=stride)
    starts = window_starts(times, spec)
    if len(starts) == 0:
        raise InputError(f"{store}: no {lead_hours:g} h stretch of states to validate on")
    windows = read_windows(ds, starts[evenly_spaced(len(starts), max_windows)], spec, normalization)
    scores = validate(model, windows, quadrature_weights(config.nlat), [1, lead_steps])
    rmse = {
        k: {c: float(v) for c, v in zip(config.channels, scores["model"][s], strict=True)}
        for k, s in (("lead", lead_steps), ("step", 1))
    }
    meta = {
        "channels": list(config.channels),
        "grid": {"type": "equiangular", "nlat": config.nlat, "nlon": config.nlon},
        "time_step_hours": time_step_hours,
        "normalization": normalization.to_attr(),
        "data": {"store": Path(store).name, "validation_windows": len(windows)},
        "validation_rmse": {f"{lead_hours:g}h": rmse["lead"], f"{time_step_hours:g}h": rmse["step"]},
        "validation_lead_hours": lead_hours,
        "imported": {"from": Path(source).name if source else "", "kind": "torch-harmonics SFNO state dict"},
    }
    save_model(output, model, meta)
    return meta


def _describe(c: SFNOConfig) -> str:
    return (
        f"{len(c.channels)} channels, {c.nlat}x{c.nlon}, embed_dim {c.embed_dim}, num_layers {c.num_layers}, "
        f"scale_factor {c.scale_factor}, mlp_ratio {c.mlp_ratio:g}"
    )


__all__ = ["StateDictMismatchError", "fit_state_dict", "import_sfno", "read_state_dict"]
