"""Checkpoint folders in words: format, channels, grid and step, and validation RMSE against
the persistence and climatology baselines ``train-sfno`` records (ARCHITECTURE.md,
"Checkpoints and training")."""

from __future__ import annotations

import json
from pathlib import Path

from swarmcast.ops.errors import InputError


def checkpoint_folders(path: Path) -> list[Path]:
    """``path`` itself when it holds a ``checkpoint.json``, else its subfolders that do."""
    if (path / "checkpoint.json").is_file():
        return [path]
    return sorted(p for p in path.iterdir() if (p / "checkpoint.json").is_file())


def _read(folder: Path) -> dict:
    try:
        return json.loads((folder / "checkpoint.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{folder / 'checkpoint.json'} is damaged: not valid JSON ({err})") from None


def _skill(meta: dict) -> dict[str, dict[str, float]]:
    """RMSE per channel, by "model 6h", "persistence 48h", ... (whatever the checkpoint holds)."""
    step = float(meta.get("time_step_hours", 6))
    rows: dict[str, dict[str, float]] = {}
    for lead, per_channel in (meta.get("validation_rmse") or {}).items():
        rows[f"model {lead}"] = per_channel
    for key, per_channel in (meta.get("baselines") or {}).items():  # "persistence_rmse_8step"
        kind, _, steps = key.partition("_rmse_")
        n = 1 if steps == "1step" else int(steps.removesuffix("step") or 1)
        rows[f"{kind} {n * step:g}h"] = per_channel
    return rows


def describe_checkpoints(path: Path) -> dict:
    """``{"path", "checkpoints": [{name, format, channels, grid, time_step_hours, seed,
    training, rmse: {row: {channel: value}}}]}`` for a checkpoint folder or a folder of them."""
    out = []
    for folder in checkpoint_folders(path):
        meta = _read(folder)
        out.append(
            {
                "name": folder.name,
                "format": meta.get("format"),
                "channels": meta.get("channels", []),
                "grid": meta.get("grid"),
                "time_step_hours": meta.get("time_step_hours"),
                "seed": meta.get("seed"),
                "data": (meta.get("data") or {}).get("store"),
                "training": meta.get("training"),
                "rmse": _skill(meta),
                "perturbation_check": meta.get("perturbation_check"),
            }
        )
    return {"path": str(path), "checkpoints": out}


def format_checkpoints(d: dict) -> str:
    """Text of ``describe_checkpoints``: a header per checkpoint and an RMSE table (rows: model
    and baselines at each lead, columns: channels) where the checkpoint has one."""
    lines = [f"{d['path']}: {len(d['checkpoints'])} checkpoint(s)"]
    for c in d["checkpoints"]:
        grid = c["grid"] or {}
        lines.append(
            f"{c['name']}  ({c['format']}; channels {', '.join(c['channels'])}; "
            f"{grid.get('nlat', '?')} x {grid.get('nlon', '?')} {grid.get('type', '')} grid; "
            f"step {c['time_step_hours']:g} h; seed {c['seed']}" + (f"; trained on {c['data']})" if c["data"] else ")")
        )
        if c["rmse"]:
            width = max(len(r) for r in c["rmse"])
            lines.append("  validation RMSE".ljust(width + 4) + "".join(f"{ch:>12}" for ch in c["channels"]))
            for row, per_channel in sorted(c["rmse"].items(), key=lambda kv: (kv[0].split()[1], kv[0])):
                cells = "".join(f"{per_channel.get(ch, float('nan')):>12.4g}" for ch in c["channels"])
                lines.append(f"  {row:<{width + 2}}{cells}")
        check = c.get("perturbation_check")
        if check:
            growth = ", ".join(f"{ch} {r:.2g}x" for ch, r in check["ratio"].items())
            verdict = "passed" if check["passed"] else "FAILED: " + "; ".join(check["problems"])
            lines.append(f"  perturbations at {check['lead_hours']:g} h over its RMSE: {growth} ({verdict})")
    return "\n".join(lines)


__all__ = ["checkpoint_folders", "describe_checkpoints", "format_checkpoints"]
