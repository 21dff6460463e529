"""Whether ``hindcast`` has anything to do, read from its store and inputs' metadata (no Ray).

A rerun with nothing to do should not start Ray (ARCHITECTURE.md, "Pipelines and stages"): the
store was made by this config (init times aside, "Growing campaigns"), holds every init time
asked for, every unit is done and still has its shards, its summaries are merged, no extension
is unfinished and no run holds its lease; with ``score:`` the scores store is published too.
Anything uncertain answers False, and the stage then runs and decides for itself.
"""

from __future__ import annotations

import json

import numpy as np

from swarmcast.ops.checkpoint import FORECAST_KEYS, CheckpointError, read_meta
from swarmcast.ops.storage import as_zarr, output_exists
from swarmcast.pipelines.config import resolve_path
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.ensemble.probe import finished_store
from swarmcast.pipelines.stages.hindcast.config import HindcastConfig


def nothing_to_do(config: HindcastConfig, ctx: StageContext) -> str | None:
    """Why a rerun would compute nothing; None when it might (see the module docstring)."""
    import zarr

    from swarmcast.ops.data.readers import open_climate

    out = resolve_path(ctx.base, config.output)
    if not output_exists(out):
        return None
    folder = resolve_path(ctx.base, config.checkpoints)
    paths = sorted(p for p in folder.iterdir() if (p / "checkpoint.json").exists()) if folder.is_dir() else []
    try:
        hashes = [read_meta(p, required=FORECAST_KEYS)["weights_sha256"] for p in paths]
    except CheckpointError:
        return None
    if not paths:
        return None
    fingerprint = json.loads(json.dumps(ctx.fingerprint(config) | {"checkpoint_sha256": hashes}))
    if config.init_times == "latest":
        wanted = np.array([open_climate(resolve_path(ctx.base, config.data))["time"].values.max()])
    else:
        wanted = config.init_times.resolve()
    if not finished_store(out, fingerprint, config.RUN_SETTINGS, wanted):
        return None
    if config.score is not None:
        scores = resolve_path(ctx.base, config.score.output)
        if not output_exists(scores):
            return None
        made_by = zarr.open_group(as_zarr(scores), mode="r").attrs.get("swarmcast_stage")
        if not isinstance(made_by, str) or json.loads(made_by) != fingerprint:
            return None
    shown = ", ".join(str(t.astype("datetime64[h]")) for t in wanted[:3]) + (" ..." if len(wanted) > 3 else "")
    return f"{out.name} already holds init time {shown}, all done; no new dates to append"


__all__ = ["nothing_to_do"]
