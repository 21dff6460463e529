"""Writing climate stores: Zarr v3, dims (time, lat, lon), one float32 variable per channel.

A store is built in a staging folder and published only when complete
(``swarmcast.ops.storage``: a rename for local paths, an upload with the root ``zarr.json``
last for URLs), so a killed run never leaves a store at ``path`` that looks finished, and an
existing store is never touched unless the caller asked to overwrite it (then it is replaced
only at the very end).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr
import zarr
from zarr.codecs import BloscCodec

from swarmcast.ops.data.cf import LAT_ATTRS, LON_ATTRS, NO_FILL
from swarmcast.ops.data.channels import channel_attrs
from swarmcast.ops.errors import OutputExistsError
from swarmcast.ops.storage import Location, discard, location, output_exists, publish, staging

DEFAULT_COMPRESSOR = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")
# ~1 MiB per chunk of one channel: small enough that read tasks split a store over many
# chunks, large enough that object counts stay low (zarr advises >= 1 MB).
TARGET_CHUNK_BYTES = 2**20


def default_time_chunk(nlat: int, nlon: int, n_times: int) -> int:
    """Snapshots per chunk so one chunk of one channel is about 1 MiB (at least 1)."""
    per_snapshot = nlat * nlon * 4
    return int(max(1, min(n_times, TARGET_CHUNK_BYTES // per_snapshot)))


def climate_template(
    times: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    channels: Sequence[str],
    *,
    attrs: Mapping[str, object],
    time_coords: Mapping[str, np.ndarray] | None = None,
    time_chunk: int,
) -> xr.Dataset:
    """A lazy (dask zeros) dataset with the store's full schema, for a metadata-only write."""
    shape = (len(times), len(lat), len(lon))
    chunks = (time_chunk, len(lat), len(lon))
    data_vars = {}
    for c in channels:
        data_vars[c] = (("time", "lat", "lon"), da.zeros(shape, chunks=chunks, dtype="float32"), channel_attrs(c))
    coords: dict[str, object] = {
        "time": ("time", times.astype("datetime64[ns]"), {"standard_name": "time", "axis": "T"}),
        "lat": ("lat", lat.astype("float64"), LAT_ATTRS),
        "lon": ("lon", lon.astype("float64"), LON_ATTRS),
    }
    for name, values in (time_coords or {}).items():
        coords[name] = ("time", values)
    return xr.Dataset(data_vars, coords=coords, attrs=dict(attrs))


class ClimateStoreWriter:
    """Appends snapshots in time order; each Zarr chunk is written exactly once, whole.

    ``write(fields)`` takes float32 (n, channels, lat, lon) blocks of any size; they are
    buffered up to chunk boundaries so no chunk is ever rewritten. ``finish()`` checks that
    every snapshot arrived, adds attributes, and publishes the store to ``path``.
    """

    def __init__(self, path: str | os.PathLike | Location, template: xr.Dataset, *, overwrite: bool = False) -> None:
        self.path = location(path)
        if output_exists(self.path) and not overwrite:
            raise OutputExistsError(f"{self.path} already exists (pass --overwrite to replace it)")
        self.overwrite = overwrite
        self.channels = list(template.data_vars)
        self.n_times = template.sizes["time"]
        self.time_chunk = template[self.channels[0]].data.chunksize[0]
        self._tmp = staging(self.path)
        encoding = {c: {"compressors": (DEFAULT_COMPRESSOR,)} for c in self.channels}
        encoding["time"] = {"units": "hours since 1900-01-01", "dtype": "int64"}
        encoding |= {c: NO_FILL for c in ("lat", "lon")}
        template.to_zarr(self._tmp, mode="w", compute=False, zarr_format=3, consolidated=False, encoding=encoding)
        self._group = zarr.open_group(self._tmp, mode="r+")
        self._arrays = [self._group[c] for c in self.channels]
        self._buffer: list[np.ndarray] = []
        self._buffered = 0
        self._written = 0

    @property
    def partial_store(self) -> Path:
        """The local folder the store is built in until ``finish`` publishes it to ``path``."""
        return self._tmp

    @property
    def written(self) -> int:
        """Snapshots already flushed to disk."""
        return self._written

    def write(self, fields: np.ndarray) -> None:
        if fields.ndim != 4 or fields.shape[1] != len(self.channels):
            raise ValueError(f"expected (n, {len(self.channels)}, lat, lon), got {fields.shape}")
        if self._written + self._buffered + len(fields) > self.n_times:
            raise ValueError("more snapshots written than the store holds")
        self._buffer.append(np.asarray(fields, dtype=np.float32))
        self._buffered += len(fields)
        self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        if not self._buffer:
            return
        data = np.concatenate(self._buffer)
        n = len(data) if final else (len(data) // self.time_chunk) * self.time_chunk
        if n == 0:
            self._buffer = [data]
            return
        lo, hi = self._written, self._written + n
        for i, arr in enumerate(self._arrays):
            arr[lo:hi] = data[:n, i]
        self._written = hi
        rest = data[n:]
        self._buffer = [rest] if len(rest) else []
        self._buffered = len(rest)

    def complete(self) -> Path:
        """Flush the last partial chunk and check every snapshot arrived; returns the partial
        store's path, which may then be read (e.g. for statistics) before ``finish``."""
        self._flush(final=True)
        if self._written != self.n_times:
            raise RuntimeError(f"store incomplete: {self._written} of {self.n_times} snapshots")
        return self._tmp

    def finish(self, attrs: Mapping[str, object] | None = None) -> Location:
        """Complete the store, add ``attrs``, consolidate metadata and publish it to ``path``."""
        self.complete()
        if attrs:
            self._group.attrs.update(json.loads(json.dumps(dict(attrs))))
        # One writer, written once: consolidating here is safe, and readers then open the
        # store with one metadata read (and without xarray's fallback warning).
        zarr.consolidate_metadata(self._tmp, zarr_format=3)
        return publish(self._tmp, self.path, marker="zarr.json")

    def abort(self) -> None:
        """Remove the partial store; an existing store at ``path`` stays untouched."""
        discard(self._tmp)
