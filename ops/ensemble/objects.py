"""Reading many small objects of a store at once: their bytes or their sizes, None where absent.

Zarr's own reads hand every key to its event-loop thread (~220 us each measured here against
~30 us for a plain file read); the done flags and unit receipts read one object per work unit,
42,688 for a HENS-sized campaign, so local stores are read as plain files and remote ones with
up to ``IN_FLIGHT`` requests at once.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import LocalStore

IN_FLIGHT = 64
T = TypeVar("T")


def fetch_objects(store: zarr.abc.store.Store, keys: Sequence[str]) -> list[bytes | None]:
    """Raw bytes of each of ``keys`` (None for a key that is absent)."""
    if isinstance(store, LocalStore):
        root = Path(store.root)
        return [_local(lambda p: p.read_bytes(), root / k) for k in keys]
    proto = default_buffer_prototype()

    async def one(key: str) -> bytes | None:
        buf = await store.get(key, prototype=proto)
        return None if buf is None else buf.to_bytes()

    return sync(_gather(one, keys))


def object_sizes(store: zarr.abc.store.Store, keys: Sequence[str]) -> list[int | None]:
    """Size in bytes of each of ``keys`` (None for a key that is absent)."""
    if isinstance(store, LocalStore):
        root = Path(store.root)
        return [_local(lambda p: os.stat(p).st_size, root / k) for k in keys]

    async def one(key: str) -> int | None:
        try:
            return await store.getsize(key)
        except (FileNotFoundError, KeyError):
            return None

    return sync(_gather(one, keys))


def _local(read: Callable[[Path], T], path: Path) -> T | None:
    try:
        return read(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


async def _gather(one: Callable[[str], Awaitable[T]], keys: Sequence[str]) -> list[T]:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def gated(key: str) -> T:
        async with gate:
            return await one(key)

    return list(await asyncio.gather(*(gated(k) for k in keys)))


__all__ = ["fetch_objects", "object_sizes"]
