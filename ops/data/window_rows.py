"""Training windows moved as rows of contiguous states and cut into windows where they are used.

A window of k + 1 states shares k of them with its neighbour, so a stream whose rows are windows
moves every state k + 1 times (through serialisation, the object store and the consumer's copy).
Here a *row* is a contiguous run of states plus the offsets of the windows that begin in it; the
consumer cuts windows out of it with one gather (``window_batches``). A row of q windows holds
q + span states (more only where it crosses a gap between trajectories), so each state moves
about once.

Rows are planned on the driver (``plan_rows``). For one training worker they hold the windows in
order, sizes differing by at most one. For ``splits`` workers every row holds the same number of
windows and the row count is a multiple of ``splits``: an equal split of rows is then an equal
split of windows, so every worker takes the same number of optimiser steps (data-parallel
training needs that: a rank with an extra batch would wait forever in the gradient all-reduce).
The price is dropping the last ``len(starts) mod rows`` windows (fewer than one per row), which
``plan_rows`` reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from swarmcast.ops.data.windows import WindowSpec, cut_windows
from swarmcast.ops.errors import InputError


def plan_rows(
    starts: np.ndarray,
    *,
    span: int,
    state_bytes: int,
    row_bytes: int,
    splits: int = 1,
    min_rows: int = 1,
) -> tuple[list[np.ndarray], int]:
    """Window start indices per row, and how many windows were dropped to equalise them.

    ``starts``: ascending start indices of all windows; ``span``: index distance from a window's
    first to its last state; ``state_bytes``: bytes of one state; ``row_bytes``: the target size of
    a row's states (rows hold at least one window, so a huge state makes a larger row);
    ``min_rows``: at least this many rows when there are that many windows (so several read tasks
    have work); ``splits``: the number of consumers that must see equal window counts.
    """
    if splits < 1:
        raise ValueError(f"splits must be >= 1, got {splits}")
    total = len(starts)
    if total == 0:
        return [], 0
    per_row = max(1, row_bytes // max(1, state_bytes) - span)
    rows = max(-(-total // per_row), min(min_rows, total))
    if splits == 1:
        return [r for r in np.array_split(np.asarray(starts), rows)], 0
    if total < splits:
        raise InputError(f"{total} training windows cannot be shared by {splits} workers: use fewer workers")
    rows = min(-(-rows // splits) * splits, total // splits * splits)
    size = total // rows
    return [np.asarray(starts[r * size : (r + 1) * size]) for r in range(rows)], total - rows * size


def window_batches(
    rows: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
    spec: WindowSpec,
    batch_size: int,
    *,
    shuffle_buffer: int = 0,
    seed: int = 0,
) -> Iterator[dict[str, np.ndarray]]:
    """Batches of windows cut from a stream of rows.

    ``rows`` yields ``(states, offsets, times)``: states (n, channels, lat, lon), the offsets of
    the row's windows in ``states`` and their first states' times (int64 ns). Batches are
    ``{"x": (b, k + 1, channels, lat, lon), "time": (b,)}`` with ``b = batch_size`` except a
    smaller last one; every window of every row appears exactly once.

    Without shuffling, windows come in stream order. With ``shuffle_buffer`` > 0, as in Ray's
    local shuffle, a batch is drawn uniformly without replacement from a buffer holding at least
    ``shuffle_buffer`` windows (until the stream ends), seeded by ``seed``. A row's states are
    released once its last window is drawn, so memory stays near
    ``shuffle_buffer / windows per row + 2`` rows.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rng = np.random.default_rng(seed)
    held: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    left: dict[int, int] = {}  # windows of each held row not yet drawn
    pool_row = np.zeros(0, dtype=np.int64)  # pending windows: row id and index in that row
    pool_win = np.zeros(0, dtype=np.int64)

    def draw(n: int) -> dict[str, np.ndarray]:
        nonlocal pool_row, pool_win
        if shuffle_buffer > 0:
            pick = rng.choice(len(pool_row), size=n, replace=False)
            keep = np.ones(len(pool_row), dtype=bool)
            keep[pick] = False
            take_row, take_win = pool_row[pick], pool_win[pick]
            pool_row, pool_win = pool_row[keep], pool_win[keep]
        else:
            take_row, take_win = pool_row[:n], pool_win[:n]
            pool_row, pool_win = pool_row[n:], pool_win[n:]
        x: np.ndarray | None = None
        t = np.zeros(n, dtype=np.int64)
        for r in np.unique(take_row):
            at = np.flatnonzero(take_row == r)
            states, offsets, times = held[int(r)]
            part = cut_windows(states, offsets[take_win[at]], spec)
            if len(at) == n:  # the whole batch from one row: the gather is the batch
                x = part
            else:
                if x is None:
                    x = np.empty((n, *part.shape[1:]), dtype=part.dtype)
                x[at] = part
            t[at] = times[take_win[at]]
            left[int(r)] -= len(at)
            if left[int(r)] == 0:
                del held[int(r)], left[int(r)]
        assert x is not None
        return {"x": x, "time": t}

    need = batch_size + shuffle_buffer
    for rid, (states, offsets, times) in enumerate(rows):
        offsets, times = np.asarray(offsets), np.asarray(times)
        if len(offsets) != len(times):
            raise ValueError(f"row {rid} has {len(offsets)} window offsets but {len(times)} times")
        if len(offsets) == 0:
            continue
        held[rid], left[rid] = (states, offsets, times), len(offsets)
        pool_row = np.concatenate([pool_row, np.full(len(offsets), rid, dtype=np.int64)])
        pool_win = np.concatenate([pool_win, np.arange(len(offsets), dtype=np.int64)])
        while len(pool_row) >= need:
            yield draw(batch_size)
    while len(pool_row):
        yield draw(min(batch_size, len(pool_row)))


__all__ = ["plan_rows", "window_batches"]
