"""Whether ``train-sfno`` has anything to do, read from its output alone (no torch, no Ray)."""

from __future__ import annotations

from pathlib import Path

from swarmcast.ops.checkpoint import META, read_meta
from swarmcast.pipelines.config import resolve_path
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.stages.train_sfno.config import TrainSFNOConfig


def finished(folder: Path, fingerprint: dict) -> bool | None:
    """True: finished with this config; False: finished with another; None: not finished."""
    if not (folder / META).exists():
        return None
    return read_meta(folder).get("stage") == fingerprint


def nothing_to_do(config: TrainSFNOConfig, ctx: StageContext) -> str | None:
    """Why a rerun would skip every seed (each one's checkpoint exists, made by this config); None otherwise."""
    out = resolve_path(ctx.base, config.output)
    fingerprint = ctx.fingerprint(config)
    seeds = config.seed_list(ctx.seed)
    if all(finished(out / f"seed-{s}", fingerprint) is True for s in seeds):
        return f"all {len(seeds)} checkpoints finished by this config"
    return None


__all__ = ["finished", "nothing_to_do"]
