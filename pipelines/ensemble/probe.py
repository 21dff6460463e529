"""Whether an ensemble store is finished, read from its metadata alone (no torch, no Ray).

The probes of ``hindcast`` and ``sample-diffusion`` ask this so that a rerun with nothing to do
skips the stage without starting Ray (ARCHITECTURE.md, "Pipelines and stages"). It answers True
only when sure; anything uncertain is False, and the stage then runs and decides for itself.
"""

from __future__ import annotations

import json

import numpy as np

from swarmcast.ops.storage import Location, as_zarr, output_exists


def finished_store(
    out: Location, fingerprint: dict, run_settings: frozenset[str], wanted: np.ndarray | None = None
) -> bool:
    """True when ``out`` was made by ``fingerprint`` and holds nothing left to compute.

    That is: it exists, no extension is unfinished and no run holds its lease; its recorded
    fingerprint equals ``fingerprint`` but for ``run_settings`` (and, for a campaign store, given
    ``wanted`` init times, but for its init times, of which it must hold every one of
    ``wanted``); every unit is marked done and still has its shards; its summaries are merged.
    """
    import zarr

    from swarmcast.ops.ensemble.done_flags import done_units
    from swarmcast.ops.ensemble.extend import extension_in_progress, stored_init_times
    from swarmcast.ops.ensemble.lease import live_holder
    from swarmcast.ops.ensemble.store import store_fingerprint
    from swarmcast.ops.ensemble.verify import check_store, layout_of_store
    from swarmcast.pipelines.ensemble.output import same_campaign

    if not output_exists(out) or extension_in_progress(out) or live_holder(out) is not None:
        return False
    fingerprint = json.loads(json.dumps(fingerprint))  # as stored: tuples are lists there
    recorded = store_fingerprint(out)
    if not isinstance(recorded, dict):
        return False
    if wanted is None:
        if {k: v for k, v in recorded.items() if k not in run_settings} != fingerprint:
            return False
    elif not same_campaign(recorded, fingerprint, run_settings) or not set(
        wanted.astype("datetime64[ns]").tolist()
    ) <= set(stored_init_times(out).tolist()):
        return False
    layout = layout_of_store(out)
    done = done_units(out, layout)
    if len(done) != len(list(layout.units())) or check_store(out, layout, done).damage:
        return False
    group = zarr.open_group(as_zarr(out), mode="r")
    return "summary_merged" not in group or bool(np.asarray(group["summary_merged"][...]).all())


__all__ = ["finished_store"]
