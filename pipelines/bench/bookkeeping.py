"""The driver's bookkeeping at campaign size, part of ``swarmcast bench scale``.

A HENS year is 92 init dates x 29 checkpoints x 7,424 members; in units of 16 members that is
42,688 units. Before any unit runs, the coordinator plans them, creates the store (all metadata,
no data) and asks which units are done (the resume check); while they run, the date window tracks
each finished unit. This times each of those on that many units, with a minimal grid (the store
holds no data here, only its metadata and done flags), and compares the resume check with a plain
read of the whole ``member_done`` mask, the way it was done before
``swarmcast.ops.ensemble.done_flags``. Half the dates are marked done first (every other one), as
a campaign resumed mid-way. The finished units are then given a shard file and a receipt
each, as a unit writes them, and the receipt check every rerun runs
(``swarmcast.ops.ensemble.verify``) is timed on them, per unit and per shard.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from swarmcast.ops.ensemble.store import EnsembleLayout


def campaign_bookkeeping(layout: EnsembleLayout, folder: Path) -> dict[str, Any]:
    """Seconds for planning, store creation, resume checks and date tracking of ``layout``'s
    units; the store is left at ``folder / "campaign.zarr"``."""
    import zarr

    from swarmcast.ops.ensemble.campaign import DateWindow
    from swarmcast.ops.ensemble.done_flags import done_in_mask, done_units
    from swarmcast.ops.ensemble.store import create_ensemble_store

    dates = len(layout.init_times)
    t0 = time.perf_counter()
    units = list(layout.units())
    plan_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    store = create_ensemble_store(
        folder / "campaign.zarr",
        layout,
        np.zeros((dates, layout.n_members), dtype=np.int64),
        {"swarmcast_stage": "bench"},
    )
    create_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    empty = done_units(store, layout)
    empty_s = time.perf_counter() - t0
    mask = zarr.open_group(str(store), mode="r+", use_consolidated=False)["member_done"]
    mask[::2] = True  # every other date finished
    t0 = time.perf_counter()
    half = done_units(store, layout)
    half_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = np.asarray(mask[...], dtype=bool)
    read_s = time.perf_counter() - t0
    expected = done_in_mask(full, layout, units)
    if empty or half != expected:
        raise RuntimeError("the resume check disagrees with a plain read of member_done")
    verify_s, shards = _time_receipt_check(store, layout, half)
    window = DateWindow(units, max_dates=2)
    t0 = time.perf_counter()
    queue = deque(window.release())
    while queue:
        queue.extend(window.finished(queue.popleft()))
    window_s = time.perf_counter() - t0
    return {
        "units": len(units),
        "plan_s": round(plan_s, 3),
        "create_store_s": round(create_s, 2),
        "resume_check_fresh_s": round(empty_s, 3),
        "resume_check_half_done_s": round(half_s, 3),
        "plain_mask_read_s": round(read_s, 2),
        "units_found_done": len(half),
        "receipt_check_half_done_s": round(verify_s, 2),
        "receipt_check_us_per_shard": round(1e6 * verify_s / max(shards, 1), 1),
        "date_window_us_per_unit": round(1e6 * window_s / len(units), 2),
    }


def _time_receipt_check(store: Path, layout: EnsembleLayout, done: set) -> tuple[float, int]:
    """Write a small shard file and a receipt for each of the ``done`` units (untimed), then time
    the check of every receipt; returns (seconds, shards checked)."""
    import zarr

    from swarmcast.ops.ensemble.receipts import shard_keys, write_receipt
    from swarmcast.ops.ensemble.verify import check_store

    group = zarr.open_group(str(store), mode="r+", use_consolidated=False)
    shards = 0
    for unit in done:
        for key in shard_keys(group, layout, unit):
            (store / key).parent.mkdir(parents=True, exist_ok=True)
            (store / key).write_bytes(b"shard")
            shards += 1
        write_receipt(group, layout, unit)
    t0 = time.perf_counter()
    check = check_store(store, layout, done)
    seconds = time.perf_counter() - t0
    if check.damage or check.done != len(done):
        raise RuntimeError("the receipt check found damage in an intact store")
    return seconds, shards


__all__ = ["campaign_bookkeeping"]
