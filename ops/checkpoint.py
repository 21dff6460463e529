"""Checkpoint folders (ARCHITECTURE.md, "Checkpoints and training"): safetensors weights plus JSON, never a pickle.

A *model checkpoint* (what hindcasts load) is a folder with ``weights.safetensors`` and
``checkpoint.json``: model hyper-parameters, channels, grid, time step, normalisation, seed,
data provenance, training summary and the per-channel validation RMSE at 48 h lead.
A *training state* (what resume loads) adds ``optimizer.safetensors`` and ``state.json``
(epoch, step, scheduler, history). Model checkpoints are built in a staging folder and
published (renamed locally, uploaded with ``checkpoint.json`` last to a URL; see
``swarmcast.ops.storage``), so a killed run never leaves a half-written checkpoint where a
later run would look.

Reading and checking ``checkpoint.json`` (all a pipeline's plan does) imports neither torch nor
the SFNO: the functions that touch weights import them when called, so a plan is checked in
well under a second rather than after the seconds torch takes to import.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swarmcast.ops.errors import InputError
from swarmcast.ops.storage import Location, location, publish, staging

if TYPE_CHECKING:
    import torch

    from swarmcast.ops.sfno.model import SFNOStepper

FORMAT = "swarmcast-sfno/1"
DIFFUSION_FORMAT = "swarmcast-diffusion/1"
"""The format of a diffusion checkpoint folder (``swarmcast.ops.diffusion.training``); here so
that code which only reads its ``checkpoint.json`` need not import torch."""
WEIGHTS = "weights.safetensors"
OPTIMIZER = "optimizer.safetensors"
META = "checkpoint.json"
STATE = "state.json"


class CheckpointError(InputError):
    """A checkpoint is missing, malformed, or does not fit the data it is used with."""


def store_metadata_hash(path: str | os.PathLike | Location) -> str:
    """sha256 of a Zarr store's root metadata (consolidated: every array's schema and attrs)."""
    root = location(path) / "zarr.json"
    if not root.exists():
        root = location(path) / ".zmetadata"
    return hashlib.sha256(root.read_bytes()).hexdigest() if root.exists() else ""


def weights_hash(folder: str | os.PathLike | Location) -> str:
    """sha256 of a checkpoint's weights file: its content hash for provenance."""
    return hashlib.sha256((location(folder) / WEIGHTS).read_bytes()).hexdigest()


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def save_model(
    folder: str | os.PathLike | Location,
    model: torch.nn.Module,
    meta: dict[str, Any],
    extra_files: dict[str, str] | None = None,
    *,
    kind: str = FORMAT,
    model_json: dict[str, Any] | None = None,
) -> Path:
    """Write a model checkpoint atomically; ``meta`` goes into checkpoint.json and
    ``extra_files`` (name -> text, e.g. metrics.jsonl) beside it. ``kind`` is the format tag
    (SFNO steppers by default) and ``model_json`` the hyper-parameters (default
    ``model.config.to_json()``). ``folder`` may be an fsspec URL."""
    from safetensors.torch import save_file

    final = location(folder)
    # the pid keeps concurrent writers (one per seed) of sibling checkpoints apart
    tmp = staging(final, suffix=f".tmp-{os.getpid()}")
    for name, text in (extra_files or {}).items():
        (tmp / name).write_text(text)
    save_file(_contiguous(model.state_dict()), str(tmp / WEIGHTS))
    hyper = model_json if model_json is not None else model.config.to_json()  # type: ignore[union-attr]
    full = {"format": kind, "model": hyper, **meta}
    full["weights_sha256"] = weights_hash(tmp)
    (tmp / META).write_text(json.dumps(full, indent=2))
    return publish(tmp, final, marker=META)


SFNO_KEYS = ("model", "normalization", "weights_sha256")
"""Keys a model checkpoint's checkpoint.json needs to be loaded (``save_model`` writes them)."""

FORECAST_KEYS = (*SFNO_KEYS, "channels", "time_step_hours")
"""Keys a checkpoint needs to step a forecast from a climate store (what training writes)."""


def read_meta(
    folder: str | os.PathLike | Location, kind: str = FORMAT, required: Sequence[str] | None = None
) -> dict[str, Any]:
    """checkpoint.json of a checkpoint folder, checked to be of format ``kind`` and to hold
    ``required`` keys (default: ``SFNO_KEYS`` for model checkpoints, ``weights_sha256`` otherwise).

    Every defect is a ``CheckpointError`` naming the file: missing, not JSON, not an object,
    another format, missing keys.
    """
    path = location(folder) / META
    if not path.exists():
        raise CheckpointError(f"{folder}: not a checkpoint folder (no {META})")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err}); the checkpoint is damaged") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    if meta.get("format") != kind:
        raise CheckpointError(f"{folder}: checkpoint format {meta.get('format')!r}, expected {kind!r}")
    keys = required if required is not None else (SFNO_KEYS if kind == FORMAT else ("weights_sha256",))
    missing = [k for k in keys if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: lacks {missing}; the checkpoint is incomplete or not swarmcast's")
    return meta


def verify_weights(folder: str | os.PathLike | Location, meta: dict[str, Any]) -> str:
    """The sha256 of a checkpoint's weights after checking it against ``meta`` (what the
    coordinator does before a store records the hash); ``CheckpointError`` names the file."""
    path = location(folder) / WEIGHTS
    if not path.exists():
        raise CheckpointError(f"{path}: missing")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != meta.get("weights_sha256"):
        raise CheckpointError(f"{path}: does not match the hash in {META} (corrupt or replaced)")
    return digest


def verified_weights(folder: str | os.PathLike | Location, meta: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint folder after checking their sha256 against ``meta``."""
    from safetensors.torch import load

    # read once: hashing and loading the same bytes leaves no window for a swap in between
    data = (location(folder) / WEIGHTS).read_bytes()
    if hashlib.sha256(data).hexdigest() != meta.get("weights_sha256"):
        raise CheckpointError(f"{folder}: weights do not match the hash in {META} (corrupt or replaced)")
    return load(data)


def build_model(meta: dict[str, Any]) -> SFNOStepper:
    """An SFNO stepper with the architecture and normalisation of ``meta`` (weights not loaded)."""
    from swarmcast.ops.data.normalization import Normalization
    from swarmcast.ops.sfno.model import SFNOConfig, SFNOStepper, increment_scale

    norm = Normalization.from_attr(meta["normalization"])
    config = SFNOConfig.from_json(meta["model"])
    mean, std = norm.arrays(config.channels)
    return SFNOStepper(config, mean.tolist(), std.tolist(), increment_scale(norm, config.channels))


def load_model(folder: str | os.PathLike | Location, device: str | torch.device = "cpu") -> tuple[SFNOStepper, dict]:
    """(model in eval mode, checkpoint.json) from a model checkpoint folder; no unpickling."""
    meta = read_meta(folder)
    model = build_model(meta)
    model.load_state_dict(verified_weights(folder, meta))
    return model.to(device).eval(), meta


def check_compatible(meta: dict[str, Any], channels: Sequence[str], nlat: int, nlon: int) -> None:
    """Refuse a checkpoint whose channels or grid differ from the data's, naming the mismatch."""
    model = meta["model"]
    if list(model["channels"]) != list(channels):
        raise CheckpointError(f"checkpoint channels {model['channels']} do not match the data's {list(channels)}")
    if (model["nlat"], model["nlon"]) != (nlat, nlon):
        raise CheckpointError(
            f"checkpoint grid {model['nlat']}x{model['nlon']} does not match the data grid {nlat}x{nlon}"
        )


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    import torch

    tensors, rest = {}, {"param_groups": state["param_groups"], "state": {}}
    for idx, per_param in state["state"].items():
        rest["state"][str(idx)] = {}
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value
            else:
                rest["state"][str(idx)][name] = value
    return _contiguous(tensors), rest


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], rest: dict) -> dict:
    state: dict[int, dict] = {int(i): dict(v) for i, v in rest["state"].items()}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": rest["param_groups"]}


def save_training_state(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: dict[str, Any],
) -> Path:
    """Everything resume needs, in ``folder`` (created, must not exist)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    save_file(_contiguous(model.state_dict()), str(folder / WEIGHTS))
    tensors, rest = _flatten_optimizer(optimizer.state_dict())
    save_file(tensors, str(folder / OPTIMIZER))
    full = {**state, "optimizer": rest, "scheduler": scheduler.state_dict()}
    (folder / STATE).write_text(json.dumps(full))
    return folder


def load_training_state(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> dict[str, Any]:
    """Restore model, optimizer and scheduler in place; returns the saved ``state`` dict."""
    from safetensors.torch import load_file

    full = json.loads((folder / STATE).read_text())
    model.load_state_dict(load_file(str(folder / WEIGHTS)))
    optimizer.load_state_dict(_unflatten_optimizer(load_file(str(folder / OPTIMIZER)), full.pop("optimizer")))
    scheduler.load_state_dict(full.pop("scheduler"))
    return full
