"""Check a finished (or half-finished) ensemble store against its receipts, from the store alone
(ARCHITECTURE.md, "Stores that verify themselves"): what ``swarmcast verify``, ``inspect``,
``score`` and every rerun use to find units whose shards were lost after they were marked done.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import xarray as xr
import zarr

from swarmcast.ops.ensemble.done_flags import DONE_ARRAY, done_units
from swarmcast.ops.ensemble.receipts import damaged_units, shard_keys
from swarmcast.ops.ensemble.store import EnsembleLayout, Unit
from swarmcast.ops.errors import InputError
from swarmcast.ops.storage import Location, as_zarr, location, open_zarr_group

ENSEMBLE_DIMS = ("init_time", "member", "lead_time", "lat", "lon")


@dataclass(frozen=True)
class StoreCheck:
    """What a check of an ensemble store found."""

    path: str
    layout: EnsembleLayout
    units: int
    """Work units in the store's layout."""
    done: int
    """Units marked done (damaged ones included)."""
    damage: dict[Unit, list[str]]
    """Units marked done whose shards no longer match their receipts, with one line per problem."""

    def lines(self) -> list[str]:
        """One line per damaged unit, naming it and what it lost."""
        return [f"{describe_unit(self.layout, u)}: {'; '.join(p)}" for u, p in sorted(self.damage.items())]


def describe_unit(layout: EnsembleLayout, unit: Unit) -> str:
    """``unit`` as an analyst knows it: its init time, checkpoint and members."""
    init = np.datetime_as_string(layout.init_times[unit.init], unit="h")
    members = layout.member_slice(unit.checkpoint, unit.block)
    return f"init {init}, checkpoint {layout.checkpoints[unit.checkpoint]}, members {members.start}-{members.stop - 1}"


def layout_of_store(path: str | os.PathLike | Location) -> EnsembleLayout:
    """The layout an ensemble store was created with, read back from its coordinates and chunks.

    Raises ``InputError`` when ``path`` is not an ensemble store (no ``member_done`` mask, and
    neither a variable with the ensemble dims nor the member coordinates of a store that keeps
    no members).
    """
    group = open_zarr_group(path)
    if DONE_ARRAY not in group:
        raise InputError(f"{location(path)}: not an ensemble store (no {DONE_ARRAY} mask)")
    channels = tuple(
        sorted(
            name
            for name, arr in group.arrays()
            if arr.metadata.zarr_format == 3 and tuple(arr.metadata.dimension_names or ()) == ENSEMBLE_DIMS
        )
    )
    # `variables: []`: a store that keeps no members (only done flags, summaries, online scores)
    keeps_none = not channels and "checkpoint" in group
    if not channels and not keeps_none:
        raise InputError(f"{location(path)}: not an ensemble store (no variable with dims {ENSEMBLE_DIMS})")
    ds = xr.open_zarr(as_zarr(path), chunks=None)
    member_ckpt = [str(c) for c in ds["checkpoint"].values]
    checkpoints = tuple(dict.fromkeys(member_ckpt))
    per_ckpt = len(member_ckpt) // len(checkpoints)
    done = group[DONE_ARRAY]
    assert isinstance(done, zarr.Array)
    leads, tiles = len(ds["lead_time"]), (1, 1)  # a store that keeps no members has no shards
    if channels:
        first = group[channels[0]]
        assert isinstance(first, zarr.Array)
        shard = first.shards or first.chunks
        leads, tiles = int(shard[2]), (int(shard[3] // first.chunks[3]), int(shard[4] // first.chunks[4]))
    return EnsembleLayout(
        init_times=ds["init_time"].values,
        lead_times=ds["lead_time"].values,
        lat=ds["lat"].values,
        lon=ds["lon"].values,
        channels=channels,
        checkpoints=checkpoints,
        perturbation=ds["perturbation"].values[:per_ckpt],
        sign=ds["sign"].values[:per_ckpt],
        member_block=int(done.chunks[1]),
        leads_per_shard=leads,
        tiles=tiles,
    )


def check_store(
    path: str | os.PathLike | Location,
    layout: EnsembleLayout | None = None,
    done: set[Unit] | None = None,
    *,
    deep: bool = False,
) -> StoreCheck:
    """Check every unit marked done in the ensemble store at ``path`` against its receipt
    (``layout`` and ``done`` when the caller has read them already).

    Costs one object read per done unit and one ``stat`` per shard (a listing's worth of
    metadata, no data is decoded). With ``deep``, every shard of those units is also read and
    decoded, which finds a shard damaged in place at the same size (a failing checksum of its
    index or a chunk that does not decompress) at the cost of reading the whole store.
    """
    layout = layout if layout is not None else layout_of_store(path)
    done = done if done is not None else done_units(path, layout)
    group = zarr.open_group(as_zarr(path), mode="r", use_consolidated=False)
    total = len(layout.init_times) * len(layout.checkpoints) * layout.blocks_per_checkpoint
    damage = damaged_units(group, layout, done)
    if deep:
        for unit, problems in unreadable_shards(group, layout, set(done) - set(damage)).items():
            damage[unit] = problems
    return StoreCheck(str(location(path)), layout, total, len(done), damage)


def unreadable_shards(group: zarr.Group, layout: EnsembleLayout, units: set[Unit]) -> dict[Unit, list[str]]:
    """Of ``units``, each with a shard that zarr cannot read back, naming the shard and why."""
    found: dict[Unit, list[str]] = {}
    for unit in sorted(units):
        members = layout.member_slice(unit.checkpoint, unit.block)
        regions = [(c, f) for c in layout.channels for f in range(0, len(layout.lead_times), layout.leads_per_shard)]
        for (name, first), key in zip(regions, shard_keys(group, layout, unit), strict=True):  # the same order
            try:
                group[name][unit.init, members, first : first + layout.leads_per_shard]  # type: ignore[index]
            except (ValueError, RuntimeError, OSError) as err:  # a checksum, codec or read failure
                found.setdefault(unit, []).append(f"{key}: unreadable ({err})")
    return found


__all__ = ["StoreCheck", "check_store", "describe_unit", "layout_of_store", "unreadable_shards"]
