"""Growing a campaign store: more init times appended to an ensemble store, existing bytes untouched.

A daily campaign forecasts one new date a day into one store (ARCHITECTURE.md, "Growing
campaigns"). Every array along ``init_time`` is either sharded one init time per object (the
members, ``member_done``, the summaries and their partials), so a longer axis is new metadata
and nothing else, or is small and stored in fixed blocks of ``INIT_BLOCK`` init times
(``init_time``, ``valid_time``, ``seed``, ``summary_merged``), whose last block is rewritten
with its earlier values unchanged, so a reader of the shorter store reads the same values from
it. The metadata comes from
``build_store_metadata`` for the whole new layout, so an extended store's arrays are byte for
byte those of a store made in one go with every date; only the root attributes differ (the
pipeline of the latest run, and a ``history`` line per extension).

Extending is a sequence of object writes, so it is made restartable: before the first write a
marker (``member_done/extending.json``, where zarr never looks) records the target init times
and the values of the arrays that hold progress (``summary_merged``); the root metadata, which
readers and later runs go by, is written last, and then the marker is deleted. Until then readers see the
store as it was. A run that finds the marker finishes that extension first, from the marker,
whatever state the arrays were left in. (Stores written before ``INIT_BLOCK`` kept those arrays
in one object sized by the date count; extending one rewrites it at the new chunking, and a
reader that opens it while an extension is unfinished may fail until the next run finishes it.)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import zarr
from xarray.coding.times import decode_cf_datetime
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from swarmcast.ops.ensemble.store import EnsembleLayout, build_store_metadata
from swarmcast.ops.errors import InputError
from swarmcast.ops.storage import Location, as_zarr, location

MARKER_KEY = "member_done/extending.json"
DERIVED = frozenset({"init_time", "valid_time", "seed"})
"""Arrays along ``init_time`` whose values follow from the layout and the run seed alone."""


class BackfillError(InputError):
    """Init times asked for before the last one a campaign store holds."""


def stored_init_times(path: str | os.PathLike | Location) -> np.ndarray:
    """datetime64[ns] (n,): the init times the store holds now, or those an interrupted
    extension was growing it to (it is finished before anything else reads the store)."""
    target = _marker(path)
    if target is not None:
        return np.array([np.datetime64(t, "ns") for t in target["init_times"]])
    group = zarr.open_group(as_zarr(path), mode="r")
    return _decode_times(group["init_time"])


def extension_in_progress(path: str | os.PathLike | Location) -> bool:
    """Whether a killed run left an extension of this store unfinished."""
    return _marker(path) is not None


def grown_init_times(stored: np.ndarray, wanted: np.ndarray, what: str) -> np.ndarray:
    """The store's init times followed by the wanted ones it lacks (datetime64[ns]).

    A campaign grows forward: a wanted time before the store's last that the store lacks is
    refused (``what`` names the store), since appending it would leave ``init_time`` unsorted.
    """
    new = np.setdiff1d(wanted, stored)
    early = new[new < stored.max()] if len(stored) else new[:0]
    if len(early):
        shown = ", ".join(str(t.astype("datetime64[h]")) for t in early[:3])
        raise BackfillError(
            f"{what} holds init times up to {stored.max().astype('datetime64[h]')}; {len(early)} asked for "
            f"lie before that and are not in it ({shown}). A campaign store grows forward only: "
            "write earlier dates to another output"
        )
    return np.concatenate([stored, np.sort(new)]).astype("datetime64[ns]")


def extend_init_times(
    path: str | os.PathLike | Location,
    layout: EnsembleLayout,
    seeds: np.ndarray,
    attrs: Mapping[str, object],
    *,
    extra: Callable[[Path], None] | None = None,
) -> int:
    """Grow the store's ``init_time`` axis to ``layout.init_times``; returns the dates added.

    The store's init times (or an interrupted extension's target) must be the first of
    ``layout.init_times``. ``seeds``: int (n_init, n_members) for the whole new layout;
    ``attrs``: the new root attributes; ``extra``: as for ``create_ensemble_store``. The caller
    holds the store's lease. Shards, done flags and receipts already written are not touched.
    """
    p = location(path)
    group = zarr.open_group(as_zarr(p), mode="r+")
    store = group.store
    folder = Path(tempfile.mkdtemp(prefix="swarmcast-extend-"))
    try:
        build_store_metadata(folder, layout, seeds, attrs, extra=extra)
        built = zarr.open_group(folder, mode="r+", use_consolidated=False)
        whole = [name for name, _ in _whole_arrays(built)]
        marker = _marker(p)
        if marker is None:  # nothing written yet: what the rewritten arrays hold now is the truth
            n_old = group["init_time"].shape[0]
            carried = {name: group[name][...].tolist() for name in whole if name not in DERIVED and name in group}
            marker = {"n_old": n_old, "carried": carried}
        # an interrupted extension is finished from its marker, to a target at least as long
        marker["init_times"] = [str(t) for t in layout.init_times]
        n_old = int(marker["n_old"])
        if list(layout.init_times[:n_old]) != [np.datetime64(t, "ns") for t in marker["init_times"][:n_old]]:
            raise ValueError("the new layout must begin with the store's init times")
        _put(store, MARKER_KEY, json.dumps(marker).encode())
        for name, values in marker["carried"].items():
            built[name][:n_old] = np.asarray(values, dtype=built[name].dtype)
        for name in whole:  # objects the new chunking does not rewrite must not linger
            for key in sync(_keys(store, f"{name}/c/")):
                if not (folder / key).exists():
                    sync(store.delete(key))
        for key in _changed_objects(folder, built, whole):
            _put(store, key, (folder / key).read_bytes())
        _put(store, "zarr.json", (folder / "zarr.json").read_bytes())  # what readers go by: last
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    sync(store.delete(MARKER_KEY))
    return len(layout.init_times) - n_old


def _changed_objects(folder: Path, built: zarr.Group, whole: list[str]) -> list[str]:
    """Keys of ``folder`` (a store built for the longer layout) that differ from the store's
    own, the root metadata left out: the metadata of every array along ``init_time`` (their
    shapes grew) and the objects of the ``whole`` arrays (their last block of dates)."""
    keys = []
    for path, arr in built.members(max_depth=None):
        if isinstance(arr, zarr.Array) and "init_time" in (arr.metadata.dimension_names or ()):
            keys.append(f"{path}/zarr.json")
    for name in whole:
        keys += sorted(f.relative_to(folder).as_posix() for f in (folder / name / "c").rglob("*") if f.is_file())
    return keys


def _whole_arrays(group: zarr.Group) -> list[tuple[str, zarr.Array]]:
    """Arrays along ``init_time`` stored in objects of more than one init time (of a layout
    with two init times or more; with one, every array's objects hold one)."""
    out = []
    for name, arr in group.arrays():
        dims = arr.metadata.dimension_names or ()
        if "init_time" in dims and arr.chunks[dims.index("init_time")] != 1:
            out.append((name, arr))
    return out


def _marker(path: str | os.PathLike | Location) -> dict | None:
    store = zarr.open_group(as_zarr(path), mode="r").store
    raw = sync(store.get(MARKER_KEY, prototype=default_buffer_prototype()))
    return None if raw is None else json.loads(raw.to_bytes())


def _decode_times(arr: zarr.Array) -> np.ndarray:
    """The stored ``init_time`` values (CF-encoded integers) as datetime64[ns]."""
    calendar = str(arr.attrs.get("calendar", "proleptic_gregorian"))
    return np.asarray(decode_cf_datetime(arr[...], str(arr.attrs["units"]), calendar)).astype("datetime64[ns]")


def _put(store: zarr.abc.store.Store, key: str, data: bytes) -> None:
    sync(store.set(key, default_buffer_prototype().buffer.from_bytes(data)))


async def _keys(store: zarr.abc.store.Store, prefix: str) -> list[str]:
    return [k async for k in store.list_prefix(prefix)]


__all__ = [
    "MARKER_KEY",
    "BackfillError",
    "extend_init_times",
    "extension_in_progress",
    "grown_init_times",
    "stored_init_times",
]
