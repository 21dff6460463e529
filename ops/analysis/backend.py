"""``engine="swarmcast"``: the Zarr backend, with two changes that make xarray idioms work on
an ensemble or scores store (ARCHITECTURE.md, "Reading the stores").

- **Labels in memory.** ``xr.open_zarr`` makes every non-index coordinate a dask array, so
  ``ens.h.where(ens.checkpoint == "seed-0", drop=True)`` fails ("Indexing with a boolean dask
  array") and ``ens.groupby("checkpoint")`` asks for labels. Here every small 1-D coordinate
  (``checkpoint``, ``perturbation``, ``sign``: at most ``SMALL_COORD`` values) gets a pandas
  index, so it is read at open, stays out of dask, and selects by label
  (``ens.sel(checkpoint="seed-0")``). 2-D coordinates (``valid_time``, ``seed``) stay lazy;
  ``ens.swarmcast.at_valid_time`` selects by valid time.
- **Dask chunks = shards.** xarray's default dask chunk is the Zarr *inner* chunk, one tile of
  the grid (``swarmcast.ops.ensemble.chunking``): a whole-field reduction then runs one task per
  tile, each reading its shard's index again (5x slower on the demo store, 1.6x at 1 degree;
  ``swarmcast bench chunks``). Here the preferred chunk is the shard, one unit's output; a
  point read still fetches only its tile, because zarr decodes only the inner chunks a
  selection touches.

Everything else (paths, ``storage_options`` for object stores, ``decode_*``) is the Zarr
backend's. Written as a thin subclass rather than a helper so that the README's analysis uses
plain ``xr.open_dataset`` and every xarray option still applies.
"""

from __future__ import annotations

import inspect
from typing import Any

import xarray as xr
from xarray.backends.zarr import ZarrBackendEntrypoint

SMALL_COORD = 1_000_000
"""Coordinates with at most this many values are read into memory at open."""


class SwarmcastBackend(ZarrBackendEntrypoint):
    """The ``swarmcast`` xarray engine (entry point ``xarray.backends``)."""

    description = "swarmcast ensemble and scores stores: Zarr with labels in memory and shard-sized dask chunks"
    url = "https://github.com/swarmcast/swarmcast"
    open_dataset_parameters = tuple(inspect.signature(ZarrBackendEntrypoint.open_dataset).parameters)[1:]

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        return False  # only when asked for by name: plain Zarr stays the zarr engine's

    def open_dataset(self, filename_or_obj: Any, **kwargs: Any) -> xr.Dataset:  # type: ignore[override]
        ds = super().open_dataset(filename_or_obj, **kwargs)
        # An index, not just loaded values: open_dataset wraps every non-index variable again
        # before it chunks, so only indexed coordinates stay out of dask (and a label index
        # also gives ``ens.sel(checkpoint="seed-0")``)
        for name in list(ds.coords):
            if name not in ds.indexes and ds[name].ndim == 1 and ds[name].size <= SMALL_COORD:
                ds = ds.set_xindex(name)
        for var in ds.variables.values():
            shards = var.encoding.get("shards")
            if shards:
                var.encoding["preferred_chunks"] = {
                    d: min(int(s), n) for d, s, n in zip(var.dims, shards, var.shape, strict=True)
                }
        return ds


__all__ = ["SMALL_COORD", "SwarmcastBackend"]
