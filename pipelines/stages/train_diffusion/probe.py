"""Whether ``train-diffusion`` has anything to do, read from its output alone (no torch, no Ray)."""

from __future__ import annotations

from swarmcast.ops.checkpoint import DIFFUSION_FORMAT, META, CheckpointError, read_meta
from swarmcast.pipelines.config import resolve_path
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.stages.train_diffusion.config import TrainDiffusionConfig


def nothing_to_do(config: TrainDiffusionConfig, ctx: StageContext) -> str | None:
    """Why a rerun would train nothing (the exported checkpoint was made by this config); None otherwise."""
    out = resolve_path(ctx.base, config.output)
    if not (out / META).exists():
        return None
    try:
        made_by = read_meta(out, DIFFUSION_FORMAT).get("stage")
    except CheckpointError:
        return None
    return "its checkpoint was finished by this config" if made_by == ctx.fingerprint(config) else None


__all__ = ["nothing_to_do"]
