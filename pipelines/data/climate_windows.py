"""Ray Data over climate stores: training windows moved as rows of contiguous states.

Ray's ``read_zarr`` refuses zarr 3, so this is our own: one read task per contiguous run of rows;
each task opens the store with ``xr.open_zarr(chunks=None)`` where it runs. The driver only reads
coordinates. A row is a run of consecutive windows carried as the states they need, once
(``swarmcast.ops.data.window_rows`` says why, and how rows are made equal for several workers);
the consumer cuts windows from rows with ``iter_window_batches``. Each row is its own block, with
these columns:

* ``first``: int64, store time index of the row's first state;
* ``states``: float32 (n, channels, lat, lon), standardised per channel when a normalisation is
  given;
* ``offsets``: int64 (q,), where each of the row's windows begins in ``states``;
* ``time``: int64 (q,), nanoseconds since the epoch of each window's first state.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import ray
import torch
from ray.data import Datasource, ReadTask
from ray.data.block import BlockAccessor, BlockMetadata

from swarmcast.ops.data.normalization import Normalization
from swarmcast.ops.data.readers import open_climate, stored_normalization
from swarmcast.ops.data.window_rows import plan_rows, window_batches
from swarmcast.ops.data.windows import WindowSpec, read_block, state_bytes, window_starts
from swarmcast.ops.storage import as_zarr

# Measured on 2 cores (see `swarmcast bench loader`): rows of up to 32 MiB and two read tasks per
# CPU; many small tasks cost more in Ray's per-task overhead than they gain in overlap.
DEFAULT_ROW_BYTES = 32 * 2**20
TASKS_PER_CPU = 2


class ClimateWindowDatasource(Datasource):
    """Rows of windows of a climate store (see the module docstring).

    ``splits``: the number of workers the dataset is split between (rows then hold equal window
    counts); ``min_rows``: rows to make at least, so that several read tasks have work.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        spec: WindowSpec,
        normalization: Normalization | None = None,
        *,
        row_bytes: int = DEFAULT_ROW_BYTES,
        splits: int = 1,
        min_rows: int = 1,
    ) -> None:
        super().__init__()
        self.path = as_zarr(path)
        self.spec = spec
        self.normalization = normalization
        ds = open_climate(self.path, spec.channels)
        self.starts = window_starts(ds["time"].values, spec)
        self.state_bytes = state_bytes(ds, spec)
        self.rows, self.dropped = plan_rows(
            self.starts,
            span=spec.span,
            state_bytes=self.state_bytes,
            row_bytes=row_bytes,
            splits=splits,
            min_rows=min_rows,
        )

    @property
    def windows(self) -> int:
        """Windows the dataset yields (all of the store's, less ``dropped``)."""
        return len(self.starts) - self.dropped

    def _row_bytes(self, starts: np.ndarray) -> int:
        return int((starts[-1] - starts[0] + self.spec.span + 1) * self.state_bytes)

    def estimate_inmemory_data_size(self) -> int:
        return sum(self._row_bytes(r) for r in self.rows)

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        parts = max(1, min(parallelism if parallelism > 0 else len(self.rows), len(self.rows)))
        tasks = []
        for group in np.array_split(np.arange(len(self.rows)), parts) if self.rows else []:
            rows = [self.rows[i] for i in group]
            meta = BlockMetadata(
                num_rows=len(rows),
                size_bytes=sum(self._row_bytes(r) for r in rows),
                input_files=None,
                exec_stats=None,
            )
            tasks.append(ReadTask(self._reader(rows), meta, per_task_row_limit=per_task_row_limit))
        return tasks

    def _reader(self, rows: list[np.ndarray]):  # noqa: ANN202 (returns a closure Ray pickles)
        path, spec, norm = self.path, self.spec, self.normalization

        def read_fn():  # noqa: ANN202 (generator of Arrow blocks, one row each)
            ds = open_climate(path, spec.channels)
            times = ds["time"].values.astype("datetime64[ns]").astype(np.int64)
            for starts in rows:
                states, offsets = read_block(ds, starts, spec, norm)
                row = {"first": np.array([starts[0]]), "states": states, "offsets": offsets, "time": times[starts]}
                yield BlockAccessor.batch_to_block({k: v if k == "first" else v[None] for k, v in row.items()})

        return read_fn


def read_climate_windows(
    path: str | os.PathLike,
    spec: WindowSpec,
    *,
    normalize: bool = True,
    normalization: Normalization | None = None,
    parallelism: int = -1,
    num_cpus: float = 1.0,
    splits: int = 1,
) -> ray.data.Dataset:
    """A Ray Dataset of rows of windows from a climate store (cut them with ``iter_window_batches``).

    ``splits``: how many training workers share the dataset (their window counts are then equal,
    see ``swarmcast.ops.data.window_rows``); ``parallelism``: read tasks (default two per CPU).

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
    if parallelism <= 0:
        parallelism = max(2, TASKS_PER_CPU * int(ray.cluster_resources().get("CPU", 1)))
    source = ClimateWindowDatasource(
        path, spec, normalization if normalize else None, splits=splits, min_rows=parallelism
    )
    if source.dropped:
        print(
            f"[climate windows] {source.dropped} of {len(source.starts)} windows left out so that "
            f"{splits} workers get {source.windows // splits} each",
            flush=True,
        )
    return ray.data.read_datasource(source, override_num_blocks=parallelism, num_cpus=num_cpus)


def iter_window_batches(
    data: ray.data.Dataset | ray.data.DataIterator,
    spec: WindowSpec,
    batch_size: int,
    *,
    shuffle_buffer: int = 0,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Torch batches ``{"x": (b, k + 1, channels, lat, lon), "time": (b,)}`` cut from the rows of
    ``read_climate_windows`` (a dataset, or a worker's shard of one).

    ``shuffle_buffer`` and ``seed`` work as Ray's local shuffle does on rows of windows
    (``swarmcast.ops.data.window_rows.window_batches``); rows arrive one block ahead of use.
    """

    def rows() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for block in data.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
            for i in range(len(block["first"])):
                yield np.asarray(block["states"][i]), np.asarray(block["offsets"][i]), np.asarray(block["time"][i])

    for batch in window_batches(rows(), spec, batch_size, shuffle_buffer=shuffle_buffer, seed=seed):
        tensors = {k: torch.from_numpy(v) for k, v in batch.items()}
        yield tensors if device is None else {k: v.to(device) for k, v in tensors.items()}
