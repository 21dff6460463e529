"""The ensemble store analysts open (ARCHITECTURE.md, "The ensemble store"): one Zarr v3 store per hindcast campaign.

Dims ``(init_time, member, lead_time, lat, lon)``; one float32 variable per saved channel;
coords ``valid_time(init_time, lead_time)``, per member ``checkpoint``, ``perturbation`` and
``sign``, per (init time, member) ``seed``; a completion mask ``member_done(init_time, member)``.

Members are laid out checkpoint-major: member ``m`` belongs to checkpoint
``m // members_per_checkpoint``. A *work unit* is (init time, checkpoint, member block) and
owns, by construction, whole shards of every variable — shards are ``(1, member_block,
leads_per_shard, lat, lon)``, their inner chunks tiles of the grid (``chunking``) — and its own chunk of
``member_done`` (``(1, member_block)``). So no shard or chunk is ever written by two units, a
reduction over members reads ``members / member_block`` objects per lead and variable, and
the object count per init date stays bounded. The coordinator writes all metadata once;
workers write only data regions, then a receipt of the shards they wrote, then their done
flags (read back by ``swarmcast.ops.ensemble.done_flags``, checked against the receipts by
``swarmcast.ops.ensemble.receipts``).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr
import zarr
from zarr.codecs import BloscCodec

from swarmcast.ops.data.cf import (
    INIT_TIME_ATTRS,
    LAT_ATTRS,
    LEAD_TIME_ATTRS,
    LON_ATTRS,
    MEMBER_ATTRS,
    NO_FILL,
    VALID_TIME_ATTRS,
)
from swarmcast.ops.data.channels import channel_attrs
from swarmcast.ops.ensemble.chunking import INIT_BLOCK, check_tiles, leads_per_chunk, tile_shape
from swarmcast.ops.ensemble.receipts import write_receipt
from swarmcast.ops.errors import OutputExistsError
from swarmcast.ops.storage import Location, as_zarr, discard, location, output_exists, publish, staging

COMPRESSOR = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")
STAGE_ATTR = "swarmcast_stage"


@dataclass(frozen=True)
class EnsembleLayout:
    """Shape and chunking of an ensemble store."""

    init_times: np.ndarray
    """datetime64[ns] (n_init,)."""
    lead_times: np.ndarray
    """timedelta64[ns] (n_lead,), the saved leads (lead 0 = the initial state)."""
    lat: np.ndarray
    lon: np.ndarray
    channels: tuple[str, ...]
    checkpoints: tuple[str, ...]
    """Checkpoint ids, in member order."""
    perturbation: np.ndarray
    """int (members_per_checkpoint,): perturbation index of each member within a checkpoint."""
    sign: np.ndarray
    """int (members_per_checkpoint,): +1, -1 or 0 (control)."""
    member_block: int
    """Members per work unit; divides members_per_checkpoint."""
    leads_per_shard: int
    """Leads per shard (a unit buffers this many leads before writing)."""
    tiles: tuple[int, int] = (1, 1)
    """(lat, lon) tiles of each shard's inner chunks (``swarmcast.ops.ensemble.chunking``)."""

    def __post_init__(self) -> None:
        mpc = self.members_per_checkpoint
        if len(self.sign) != mpc:
            raise ValueError("perturbation and sign need one entry per member of a checkpoint")
        if self.member_block < 1 or mpc % self.member_block:
            raise ValueError(f"member_block {self.member_block} must divide the {mpc} members per checkpoint")
        if not 1 <= self.leads_per_shard <= len(self.lead_times):
            raise ValueError(f"leads_per_shard must be in 1..{len(self.lead_times)}")
        check_tiles(self.tiles, len(self.lat), len(self.lon))

    @property
    def members_per_checkpoint(self) -> int:
        return len(self.perturbation)

    @property
    def n_members(self) -> int:
        return self.members_per_checkpoint * len(self.checkpoints)

    @property
    def blocks_per_checkpoint(self) -> int:
        return self.members_per_checkpoint // self.member_block

    def member_slice(self, checkpoint: int, block: int) -> slice:
        lo = checkpoint * self.members_per_checkpoint + block * self.member_block
        return slice(lo, lo + self.member_block)

    def units(self) -> Iterator[Unit]:
        """Every work unit, init-major."""
        for i in range(len(self.init_times)):
            for c in range(len(self.checkpoints)):
                for b in range(self.blocks_per_checkpoint):
                    yield Unit(i, c, b)

    def shard_shape(self) -> tuple[int, ...]:
        """One unit's shard: the whole grid, padded up to whole tiles (zarr lets the last shard
        along an axis run past the array's edge; the padding is never stored as data)."""
        ny, nx = self.inner_shape()[3:]
        return (1, self.member_block, self.leads_per_shard, ny * self.tiles[0], nx * self.tiles[1])

    def inner_shape(self) -> tuple[int, ...]:
        """The inner chunks zarr decodes one at a time: one tile over ``leads_per_chunk`` leads."""
        ny, nx = tile_shape(len(self.lat), self.tiles[0]), tile_shape(len(self.lon), self.tiles[1])
        leads = leads_per_chunk(self.member_block, self.leads_per_shard, ny * nx, self.tiles)
        return (1, self.member_block, leads, ny, nx)


@dataclass(frozen=True, order=True)
class Unit:
    """One work unit: (init time index, checkpoint index, member block index)."""

    init: int
    checkpoint: int
    block: int


def create_ensemble_store(
    path: str | os.PathLike | Location,
    layout: EnsembleLayout,
    seeds: np.ndarray,
    attrs: Mapping[str, object],
    *,
    overwrite: bool = False,
    extra: Callable[[Path], None] | None = None,
) -> Location:
    """Write the store's metadata and coordinates once (the coordinator's job).

    ``seeds``: int (n_init, n_members). ``attrs`` must hold ``swarmcast_stage`` (the config
    fingerprint that later runs compare against). Built in a local staging folder and
    published (``swarmcast.ops.storage``), so a store at ``path`` always has complete metadata;
    ``extra(staging_folder)`` may add more arrays (e.g. online summaries) before the metadata
    is consolidated. ``path`` may be an fsspec URL; workers then write their units there.
    Unless ``overwrite``, a store another process published meanwhile is kept (and returned):
    the caller checks that it was made by the same config.
    """
    p = location(path)
    if output_exists(p) and not overwrite:
        raise OutputExistsError(f"{p} already exists (pass --overwrite to replace it)")
    # a staging folder of its own: another coordinator may be creating the same store right now
    tmp = staging(p, suffix=f".partial-{uuid.uuid4().hex[:12]}")
    try:
        build_store_metadata(tmp, layout, seeds, attrs, extra=extra)
    except BaseException:
        discard(tmp)
        raise
    return publish(tmp, p, marker="zarr.json", replace=overwrite)


def build_store_metadata(
    folder: Path,
    layout: EnsembleLayout,
    seeds: np.ndarray,
    attrs: Mapping[str, object],
    *,
    extra: Callable[[Path], None] | None = None,
) -> None:
    """Write an ensemble store's metadata and coordinates into the empty local ``folder`` and
    consolidate them (no member data): what ``create_ensemble_store`` publishes, and what
    ``swarmcast.ops.ensemble.extend`` copies in when a store's init times grow. The same layout
    gives the same bytes."""
    if STAGE_ATTR not in attrs:
        raise ValueError(f"attrs need {STAGE_ATTR!r}")
    n_i, n_m, n_l = len(layout.init_times), layout.n_members, len(layout.lead_times)
    shape = (n_i, n_m, n_l, len(layout.lat), len(layout.lon))
    shard = layout.shard_shape()
    data_vars: dict[str, object] = {}
    for c in layout.channels:
        data_vars[c] = (
            ("init_time", "member", "lead_time", "lat", "lon"),
            da.zeros(shape, chunks=-1, dtype="f4"),
            channel_attrs(c),
        )
    # Lazy and never computed (to_zarr(compute=False) writes metadata only), in one dask chunk:
    # chunked like the store, dask spent 24 s building the graph of 85,000 writes nobody runs
    # (92 dates x 7,424 members in blocks of 16; ``swarmcast bench scale``, "campaign").
    done = da.zeros((n_i, n_m), chunks=-1, dtype=bool)
    data_vars["member_done"] = (
        ("init_time", "member"),
        done,
        {
            "long_name": "member finished and fully written",
            "comment": "members not yet written read as NaN",
        },
    )
    ckpt_of = np.repeat(np.arange(len(layout.checkpoints)), layout.members_per_checkpoint)
    valid = layout.init_times[:, None] + layout.lead_times[None, :]
    coords = {
        "init_time": ("init_time", layout.init_times.astype("datetime64[ns]"), INIT_TIME_ATTRS),
        "lead_time": ("lead_time", layout.lead_times.astype("timedelta64[ns]"), LEAD_TIME_ATTRS),
        "valid_time": (("init_time", "lead_time"), valid.astype("datetime64[ns]"), VALID_TIME_ATTRS),
        "member": ("member", np.arange(n_m), MEMBER_ATTRS["member"]),
        "lat": ("lat", layout.lat, LAT_ATTRS),
        "lon": ("lon", layout.lon, LON_ATTRS),
        # variable-length strings: zarr v3 has a stable spec for them, not for fixed-width UTF-32
        "checkpoint": ("member", np.array(layout.checkpoints, dtype=object)[ckpt_of], MEMBER_ATTRS["checkpoint"]),
        "perturbation": (
            "member",
            np.tile(layout.perturbation, len(layout.checkpoints)).astype("int32"),
            MEMBER_ATTRS["perturbation"],
        ),
        "sign": ("member", np.tile(layout.sign, len(layout.checkpoints)).astype("int8"), MEMBER_ATTRS["sign"]),
        "seed": (("init_time", "member"), np.asarray(seeds, dtype="int64"), MEMBER_ATTRS["seed"]),
    }
    ds = xr.Dataset(data_vars, coords=coords, attrs=json.loads(json.dumps(dict(attrs))))
    encoding: dict[str, dict] = {
        c: {"chunks": layout.inner_shape(), "shards": shard, "compressors": (COMPRESSOR,)} for c in layout.channels
    }
    encoding["member_done"] = {"chunks": (1, layout.member_block)}
    # per-date arrays too small to shard by date come in fixed blocks of dates, never sized by
    # the date count: a campaign that grows rewrites only its last block, whose earlier values
    # stay where readers of the shorter store find them (``swarmcast.ops.ensemble.extend``)
    encoding["init_time"] = {"units": "hours since 1900-01-01", "dtype": "int64", "chunks": (INIT_BLOCK,)}
    encoding["valid_time"] = {
        "units": "hours since 1900-01-01",
        "dtype": "int64",
        "chunks": (INIT_BLOCK, len(layout.lead_times)),
    }
    encoding["seed"] = {"chunks": (INIT_BLOCK, layout.n_members)}
    encoding |= {c: NO_FILL for c in ("lat", "lon")}
    ds.to_zarr(folder, mode="w", compute=False, zarr_format=3, consolidated=False, encoding=encoding)
    if extra is not None:
        extra(folder)
    zarr.consolidate_metadata(folder, zarr_format=3)


def store_fingerprint(path: str | os.PathLike | Location) -> object:
    """The config fingerprint an ensemble store was created with (None if absent)."""
    return zarr.open_group(as_zarr(path), mode="r").attrs.get(STAGE_ATTR)


class ShardBuffers:
    """A few float32 shard-sized arrays kept for reuse within a process.

    A fresh array of hundreds of MB pays a page fault per 4 KiB page when first written: measured
    0.4-0.5 s for the 267 MB of one unit at 181 x 360 x 8 channels, half as long as compressing
    and writing those bytes (``swarmcast bench hindcast mode=io``). A kept array costs only the
    copy. At most ``keep`` idle arrays are held, so memory stays bounded by the writes in flight
    plus ``keep``.
    """

    def __init__(self, keep: int = 2) -> None:
        self.keep = keep
        self._idle: list[np.ndarray] = []
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        """An uninitialised float32 array of ``shape``, reused when one is idle."""
        with self._lock:
            for i, buf in enumerate(self._idle):
                if buf.shape == shape:
                    return self._idle.pop(i)
        return np.empty(shape, dtype=np.float32)

    def give(self, buf: np.ndarray) -> None:
        """Return ``buf`` (its writer no longer uses it)."""
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append(buf)


SHARD_BUFFERS = ShardBuffers()


class UnitWriter:
    """Writes one work unit's members lead by lead; each shard is written once, whole.

    ``write(data)`` takes float32 (member_block, n, channels, lat, lon) for the next ``n``
    saved leads and copies them into a shard buffer (``SHARD_BUFFERS``), so the caller may
    reuse ``data`` at once. A full buffer is compressed and written, one array per channel, at
    once or, with ``defer`` (write-behind), in ``finish()``, which the caller runs after
    releasing the model for the next unit. ``finish()`` checks every lead was written, writes
    the deferred shards, records their sizes in the unit's receipt
    (``swarmcast.ops.ensemble.receipts``) and then sets its ``member_done`` flags, after its
    data, so a done flag implies complete data and later damage to that data can be found.
    """

    def __init__(
        self, path: str | os.PathLike | Location, layout: EnsembleLayout, unit: Unit, *, defer: bool = False
    ) -> None:
        self.layout, self.unit, self.defer = layout, unit, defer
        self._deferred: list[tuple[int, np.ndarray]] = []
        group = zarr.open_group(as_zarr(path), mode="r+", use_consolidated=False)
        self._group = group
        self._arrays = [group[c] for c in layout.channels]
        self._done = group["member_done"]
        self._members = layout.member_slice(unit.checkpoint, unit.block)
        self._shard: np.ndarray | None = None
        self._filled = 0
        self._next_lead = 0

    def write(self, data: np.ndarray) -> None:
        lay = self.layout
        expected = (lay.member_block, len(lay.channels), len(lay.lat), len(lay.lon))
        if data.ndim != 5 or (data.shape[0], *data.shape[2:]) != expected:
            raise ValueError(f"expected (member_block, n_leads, channels, lat, lon) = {expected}, got {data.shape}")
        n_leads = len(lay.lead_times)
        if self._next_lead + self._filled + data.shape[1] > n_leads:
            raise ValueError("more leads written than the store holds")
        i = 0
        while i < data.shape[1]:
            if self._shard is None:
                size = min(lay.leads_per_shard, n_leads - self._next_lead)
                self._shard = SHARD_BUFFERS.take((lay.member_block, size, *expected[1:]))
                self._filled = 0
            n = min(data.shape[1] - i, self._shard.shape[1] - self._filled)
            self._shard[:, self._filled : self._filled + n] = data[:, i : i + n]
            self._filled += n
            i += n
            if self._filled == self._shard.shape[1]:
                if self.defer:
                    self._deferred.append((self._next_lead, self._shard))
                else:
                    self._write_shard(self._next_lead, self._shard)
                self._next_lead += self._shard.shape[1]
                self._shard, self._filled = None, 0

    def _write_shard(self, first_lead: int, shard: np.ndarray) -> None:
        leads = slice(first_lead, first_lead + shard.shape[1])
        for k, arr in enumerate(self._arrays):
            arr[self.unit.init, self._members, leads] = shard[:, :, k]
        SHARD_BUFFERS.give(shard)

    def finish(self) -> None:
        if self._next_lead != len(self.layout.lead_times):
            written = self._next_lead + self._filled
            raise RuntimeError(f"unit {self.unit}: {written} of {len(self.layout.lead_times)} leads written")
        while self._deferred:
            self._write_shard(*self._deferred.pop(0))
        write_receipt(self._group, self.layout, self.unit)  # what the done flag vouches for
        self._done[self.unit.init, self._members] = True


def unit_chunk_keys(layout: EnsembleLayout, unit: Unit) -> set[tuple[int, ...]]:
    """Shard grid indices of the data arrays that ``unit`` writes (for layout checks)."""
    m = layout.member_slice(unit.checkpoint, unit.block).start // layout.member_block
    n_lead_shards = -(-len(layout.lead_times) // layout.leads_per_shard)
    return {(unit.init, m, s, 0, 0) for s in range(n_lead_shards)}


__all__ = [
    "SHARD_BUFFERS",
    "EnsembleLayout",
    "ShardBuffers",
    "Unit",
    "UnitWriter",
    "build_store_metadata",
    "create_ensemble_store",
    "store_fingerprint",
    "unit_chunk_keys",
]
