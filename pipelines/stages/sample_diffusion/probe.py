"""Whether ``sample-diffusion`` has anything to do, read from its store's metadata (no torch, no Ray).

Sure only when the store was made by this config and this checkpoint (the hash its
``checkpoint.json`` records) and every unit is done with its shards in place
(``swarmcast.pipelines.ensemble.probe``); otherwise the stage runs and decides for itself.
"""

from __future__ import annotations

from swarmcast.ops.checkpoint import DIFFUSION_FORMAT, CheckpointError, read_meta
from swarmcast.ops.storage import output_exists
from swarmcast.pipelines.config import resolve_path
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.ensemble.probe import finished_store
from swarmcast.pipelines.stages.sample_diffusion.config import SampleDiffusionConfig


def nothing_to_do(config: SampleDiffusionConfig, ctx: StageContext) -> str | None:
    """Why a rerun would compute nothing; None when it might."""
    out = resolve_path(ctx.base, config.output)
    if not output_exists(out):
        return None
    try:
        meta = read_meta(resolve_path(ctx.base, config.checkpoint), DIFFUSION_FORMAT, required=("weights_sha256",))
    except CheckpointError:
        return None
    fingerprint = ctx.fingerprint(config) | {"checkpoint_sha256": meta["weights_sha256"]}
    if not finished_store(out, fingerprint, config.RUN_SETTINGS):
        return None
    n = len(config.init_times.resolve())
    return f"{out.name} holds its {n} init times x {config.members} members, all done"


__all__ = ["nothing_to_do"]
