"""What each finished work unit wrote, recorded beside its done flag, and the check that finds
units whose shards went missing or changed size since (ARCHITECTURE.md, "Stores that verify
themselves").

A done flag alone says only that a unit finished once: delete or truncate one of its shard
files and the store still claims every member is done, the lost members read as NaN (zarr
fills an absent shard with the fill value) and a truncated one fails later with a checksum
error that names no file. So before its done flag, a unit writes a *receipt*: a small JSON
object ``member_done/receipts/<init>.<checkpoint>.<block>.json`` holding the key and size in
bytes of every shard it wrote, and of its chunks of online-summary partials
(``summary_partials``, written before the receipt too). It lives inside the ``member_done`` array's folder, where zarr
looks only for ``zarr.json`` and chunk keys, so xarray and zarr ignore it; it adds one small
object per unit, as the done flag does.

Checking compares each receipt with the sizes the store reports now, one ``stat`` (or
``getsize``) per shard. A unit whose receipt is missing (a store from before receipts, or a
receipt deleted) is checked for the presence of every shard its layout says it owns. Sizes
find deleted and truncated shards; a shard rewritten in place at the same size is not found
here (that needs a checksum of every byte, which would cost a second read of each shard on
the write path).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from swarmcast.ops.ensemble.objects import fetch_objects, object_sizes
from swarmcast.ops.ensemble.summaries import PARTIALS

if TYPE_CHECKING:
    from swarmcast.ops.ensemble.store import EnsembleLayout, Unit

RECEIPTS = "member_done/receipts"


def receipt_key(unit: Unit) -> str:
    """Store key of ``unit``'s receipt."""
    return f"{RECEIPTS}/{unit.init}.{unit.checkpoint}.{unit.block}.json"


def shard_keys(group: zarr.Group, layout: EnsembleLayout, unit: Unit) -> list[str]:
    """Store keys of every shard ``unit`` owns: one per saved channel and lead shard."""
    col = layout.member_slice(unit.checkpoint, unit.block).start // layout.member_block
    n_lead_shards = -(-len(layout.lead_times) // layout.leads_per_shard)
    keys = []
    for name in layout.channels:
        arr = group[name]
        assert isinstance(arr, zarr.Array)
        keys += [f"{name}/{arr.metadata.encode_chunk_key((unit.init, col, s, 0, 0))}" for s in range(n_lead_shards)]
    return keys


def partial_keys(group: zarr.Group, layout: EnsembleLayout, unit: Unit) -> list[str]:
    """Store keys of ``unit``'s chunks of every summary-partial array (none without summaries):
    one chunk per (init time, unit) and array (``swarmcast.ops.ensemble.summaries``)."""
    if PARTIALS not in group:
        return []
    part = group[PARTIALS]
    assert isinstance(part, zarr.Group)
    column = unit.checkpoint * layout.blocks_per_checkpoint + unit.block
    keys = []
    for name, arr in sorted(part.arrays()):
        coords = (unit.init, column, *([0] * (arr.ndim - 2)))
        keys.append(f"{PARTIALS}/{name}/{arr.metadata.encode_chunk_key(coords)}")
    return keys


def write_receipt(group: zarr.Group, layout: EnsembleLayout, unit: Unit) -> None:
    """Record the size of each shard and summary-partial chunk ``unit`` wrote; call after its
    data and before its done flag. An object zarr did not store (all fill value, e.g. exceedance
    counts of zero) is simply absent from the receipt."""
    keys = shard_keys(group, layout, unit) + partial_keys(group, layout, unit)
    sizes = object_sizes(group.store, keys)
    body = {
        "unit": [unit.init, unit.checkpoint, unit.block],
        "shards": {k: s for k, s in zip(keys, sizes, strict=True) if s is not None},
    }
    raw = json.dumps(body, sort_keys=True, indent=1).encode()
    sync(group.store.set(receipt_key(unit), default_buffer_prototype().buffer.from_bytes(raw)))


def damaged_units(group: zarr.Group, layout: EnsembleLayout, units: Iterable[Unit]) -> dict[Unit, list[str]]:
    """Of ``units`` (those marked done), each whose shards no longer match what it wrote, with
    one line per problem: ``"<key>: missing"`` or ``"<key>: N bytes, M when written"``."""
    units = sorted(units)
    receipts = fetch_objects(group.store, [receipt_key(u) for u in units])
    expected: list[tuple[Unit, str, int | None]] = []
    for unit, raw in zip(units, receipts, strict=True):
        recorded = _parse(raw)
        if recorded is None:  # no receipt: every shard the layout gives the unit must exist
            expected += [(unit, k, None) for k in shard_keys(group, layout, unit)]
        else:
            expected += [(unit, k, int(s)) for k, s in recorded.items()]
    now = object_sizes(group.store, [k for _, k, _ in expected])
    damage: dict[Unit, list[str]] = {}
    for (unit, key, was), size in zip(expected, now, strict=True):
        if size is None:
            damage.setdefault(unit, []).append(f"{key}: missing")
        elif was is not None and size != was:
            damage.setdefault(unit, []).append(f"{key}: {size:,} bytes, {was:,} when written")
    return damage


def forget_done(group: zarr.Group, layout: EnsembleLayout, units: Iterable[Unit]) -> None:
    """Make ``units`` not done, so that they are computed again: clear the done flag first (a
    crash after it leaves a unit that is simply not done), then delete the receipt and every
    shard and summary-partial chunk of the unit. The shards go because zarr reads a shard's index before rewriting it,
    even whole, and a damaged index would fail every rewrite."""
    flags = group["member_done"]
    assert isinstance(flags, zarr.Array)
    for unit in units:
        flags[unit.init, layout.member_slice(unit.checkpoint, unit.block)] = False
        for key in [receipt_key(unit), *shard_keys(group, layout, unit), *partial_keys(group, layout, unit)]:
            sync(group.store.delete(key))  # deleting an absent key is not an error


def _parse(raw: bytes | None) -> dict[str, int] | None:
    if raw is None:
        return None
    try:
        shards = json.loads(raw)["shards"]
        return {str(k): int(v) for k, v in shards.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # an unreadable receipt is treated as none: the presence check still runs


__all__ = ["RECEIPTS", "damaged_units", "forget_done", "partial_keys", "receipt_key", "shard_keys", "write_receipt"]
