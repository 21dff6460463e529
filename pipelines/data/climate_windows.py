"""Ray Data over climate stores: a ``Datasource`` of training windows.

Ray's ``read_zarr`` refuses zarr 3, so this is our own: one read task per contiguous range of
time chunks; each task opens the store with ``xr.open_zarr(chunks=None)`` where it runs and
yields blocks of windows. The driver only reads coordinates. Rows have two columns:

* ``time``: int64 nanoseconds since the epoch of the window's first state;
* ``x``: float32 (k + 1, channels, lat, lon), the states ``x_t, x_{t+dt}, ..., x_{t+k dt}``,
  standardised per channel when a normalisation is given.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import ray
from ray.data import Datasource, ReadTask
from ray.data.block import BlockAccessor, BlockMetadata

from swarmcast.ops.data.normalization import Normalization
from swarmcast.ops.data.readers import open_climate, stored_normalization
from swarmcast.ops.data.windows import WindowSpec, blocks_of, read_windows, window_bytes, window_starts
from swarmcast.ops.storage import as_zarr

# Measured on 2 cores (see `swarmcast bench loader`): 32 MiB blocks and two read tasks per CPU
# beat Ray's automatic split (which made many small tasks and ran ~3x slower).
DEFAULT_BLOCK_BYTES = 32 * 2**20
TASKS_PER_CPU = 2


def _time_chunk(ds: Any, channel: str) -> int:
    """Chunk length along time of ``channel`` in the store (1 if unknown)."""
    enc = ds[channel].encoding
    chunks = enc.get("preferred_chunks", {}).get("time") or (enc.get("chunks") or (1,))[0]
    return max(1, int(chunks))


class ClimateWindowDatasource(Datasource):
    """Windows of a climate store as Ray Data rows (see the module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike,
        spec: WindowSpec,
        normalization: Normalization | None = None,
        *,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
    ) -> None:
        super().__init__()
        self.path = as_zarr(path)
        self.spec = spec
        self.normalization = normalization
        ds = open_climate(self.path, spec.channels)
        self.starts = window_starts(ds["time"].values, spec)
        self.time_chunk = _time_chunk(ds, spec.channels[0])
        self.bytes_per_window = window_bytes(ds, spec)
        self.windows_per_block = max(1, block_bytes // self.bytes_per_window)

    def estimate_inmemory_data_size(self) -> int:
        return int(len(self.starts) * self.bytes_per_window)

    def task_groups(self, parallelism: int) -> list[np.ndarray]:
        """Start indices per read task: contiguous runs of whole time chunks.

        Windows are assigned to the chunk holding their first state, and chunks are dealt out
        in contiguous runs, so tasks read disjoint chunk ranges (plus the k-step look-ahead).
        """
        if len(self.starts) == 0:
            return []
        chunk_of = self.starts // self.time_chunk
        chunks = np.unique(chunk_of)
        parts = max(1, min(parallelism if parallelism > 0 else len(chunks), len(chunks)))
        groups = []
        for run in np.array_split(chunks, parts):
            if len(run):
                mask = (chunk_of >= run[0]) & (chunk_of <= run[-1])
                groups.append(self.starts[mask])
        return groups

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        tasks = []
        for starts in self.task_groups(parallelism):
            meta = BlockMetadata(
                num_rows=len(starts),
                size_bytes=int(len(starts) * self.bytes_per_window),
                input_files=None,
                exec_stats=None,
            )
            tasks.append(ReadTask(self._reader(starts), meta, per_task_row_limit=per_task_row_limit))
        return tasks

    def _reader(self, starts: np.ndarray):  # noqa: ANN202 (returns a closure Ray pickles)
        path, spec, norm, per_block = self.path, self.spec, self.normalization, self.windows_per_block

        def read_fn():  # noqa: ANN202 (generator of Arrow blocks)
            ds = open_climate(path, spec.channels)
            times = ds["time"].values.astype("datetime64[ns]").astype(np.int64)
            for block in blocks_of(starts, per_block):
                x = read_windows(ds, block, spec, norm)
                yield BlockAccessor.batch_to_block({"time": times[block], "x": x})

        return read_fn


def read_climate_windows(
    path: str | os.PathLike,
    spec: WindowSpec,
    *,
    normalize: bool = True,
    normalization: Normalization | None = None,
    parallelism: int = -1,
    num_cpus: float = 1.0,
) -> ray.data.Dataset:
    """A Ray Dataset of windows from a climate store.

    With ``normalize`` the store's own statistics are used unless ``normalization`` is given;
    a foreign store without statistics then needs ``normalization`` (compute it once with
    ``swarmcast.ops.data.normalization.compute_normalization``).
    """
    if normalize and normalization is None:
        normalization = stored_normalization(open_climate(path, spec.channels))
        if normalization is None:
            raise ValueError(
                f"{as_zarr(path)} carries no normalisation statistics; pass "
                "normalization=compute_normalization(...) or normalize=False"
            )
    source = ClimateWindowDatasource(path, spec, normalization if normalize else None)
    if parallelism <= 0:
        parallelism = max(2, TASKS_PER_CPU * int(ray.cluster_resources().get("CPU", 1)))
    return ray.data.read_datasource(source, override_num_blocks=parallelism, num_cpus=num_cpus)
