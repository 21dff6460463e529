"""Inner chunks of the ensemble store's shards, chosen so that both ways analysts read an
ensemble stay cheap (ARCHITECTURE.md, "Chunks for fields and for points").

A unit owns whole shards ``(1, member_block, leads_per_shard, lat, lon)``; what is read back is
decided by the *inner* chunks zarr's sharding codec keeps inside each shard. One lead of the
whole globe per inner chunk (the layout before tiling) makes a map cheap but a point series
expensive: one grid point for every member, init time and lead reads the whole variable. Tiling
each shard's fields into ``tiles = (lat tiles, lon tiles)`` makes that read fetch
``1 / (lat tiles x lon tiles)`` of the bytes (plus each shard's index).

Tiles cost chunk count, and zarr-python pays ~0.3 ms per inner chunk on top of decoding
(measured on 2 CPUs at 1 degree; ``swarmcast bench chunks``), so a tile keeps several leads
together until it holds ``MIN_CHUNK_BYTES``: on a small grid it spans all the shard's leads
(a shard then has ``tiles`` chunks, no more than it had leads), on a 0.25 degree grid one lead
already fills it. A map at one lead then decodes the leads its tile spans; readers that go
lead by lead (``score``) read a tile's leads together.
"""

from __future__ import annotations

from typing import Any

from zarr.storage import LocalStore, WrapperStore

AUTO_TILES = (4, 4)
"""Tiles per field by default: a point read fetches 1/16 of a variable."""
MIN_TILE_POINTS = 4
"""Fewest grid rows (columns) a tile may have; smaller grids get fewer tiles."""
MIN_CHUNK_BYTES = 1 << 20
"""A tile spans leads until its inner chunk holds this many uncompressed bytes (or all leads)."""


INIT_BLOCK = 64
"""Init times per object of the per-date arrays not sharded one date per object (``init_time``,
``valid_time``, ``seed``, ``summary_merged``): a fixed block, so a store that grows by dates
keeps the bytes readers of its shorter self rely on."""


def auto_tiles(nlat: int, nlon: int) -> tuple[int, int]:
    """The default tiles for a ``nlat`` x ``nlon`` grid: ``AUTO_TILES``, fewer along an axis
    too short to give every tile ``MIN_TILE_POINTS`` rows (columns)."""
    return tuple(min(t, max(1, n // MIN_TILE_POINTS)) for t, n in zip(AUTO_TILES, (nlat, nlon), strict=True))  # type: ignore[return-value]


def check_tiles(tiles: tuple[int, int], nlat: int, nlon: int) -> None:
    """Raise ``ValueError`` naming the axis when ``tiles`` does not fit the grid."""
    for name, t, n in (("lat", tiles[0], nlat), ("lon", tiles[1], nlon)):
        if not 1 <= t <= n:
            raise ValueError(f"tiles: {t} {name} tiles do not fit a grid of {n} {name} points (use 1..{n})")


def tile_shape(n: int, tiles: int) -> int:
    """Grid points per tile along an axis of ``n`` points (the last tile may be partly empty)."""
    return -(-n // tiles)


def leads_per_chunk(member_block: int, leads_per_shard: int, tile_points: int, tiles: tuple[int, int]) -> int:
    """Leads one inner chunk spans: 1 without tiling (one map per chunk); with tiling the fewest
    leads, dividing ``leads_per_shard``, that give ``MIN_CHUNK_BYTES`` of float32."""
    if tiles == (1, 1):
        return 1
    per_lead = member_block * tile_points * 4
    for n in range(1, leads_per_shard + 1):
        if leads_per_shard % n == 0 and n * per_lead >= MIN_CHUNK_BYTES:
            return n
    return leads_per_shard


class ByteCountingStore(WrapperStore):
    """A read-only local Zarr store that counts the bytes of every chunk, shard range or index
    it returns (metadata documents left out): how the cost of a read is measured, by
    ``swarmcast bench chunks`` and the tests."""

    def __init__(self, path: Any) -> None:
        super().__init__(LocalStore(path, read_only=True))
        self.fetched = 0

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        got = await self._store.get(key, prototype, byte_range)
        if got is not None and not key.endswith("zarr.json"):
            self.fetched += len(got)
        return got


__all__ = [
    "AUTO_TILES",
    "INIT_BLOCK",
    "MIN_CHUNK_BYTES",
    "ByteCountingStore",
    "auto_tiles",
    "check_tiles",
    "leads_per_chunk",
    "tile_shape",
]
