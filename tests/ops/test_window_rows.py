"""Rows of contiguous states and the windows cut from them, against brute-force indexing."""

import itertools

import numpy as np
import pytest

from swarmcast.ops.data.window_rows import plan_rows, window_batches
from swarmcast.ops.data.windows import WindowSpec, cut_windows
from swarmcast.ops.errors import InputError

SPEC = WindowSpec(("a", "b"), steps=2, stride=2)  # span 4: a window is states i, i + 2, i + 4


def _starts_with_gaps() -> np.ndarray:
    """Start indices of 2 + 3 trajectories of 20 and 11 states (a window never crosses one):
    16 + 16 + 7 + 7 + 7 = 53 windows in 73 states."""
    starts, first = [], 0
    for length in (20, 20, 11, 11, 11):
        starts += list(range(first, first + length - SPEC.span))
        first += length
    return np.array(starts)


def _rows_of(states: np.ndarray, plan: list[np.ndarray]):
    """The rows a read task would make: (states lo..hi, offsets, times), as ``read_block`` does."""
    for starts in plan:
        lo, hi = starts[0], starts[-1] + SPEC.span + 1
        yield states[lo:hi], starts - lo, 1000 * starts


def test_single_worker_rows_keep_every_window_in_order_and_respect_the_size():
    starts = _starts_with_gaps()
    rows, dropped = plan_rows(starts, span=SPEC.span, state_bytes=100, row_bytes=1500, min_rows=2)
    assert dropped == 0
    np.testing.assert_array_equal(np.concatenate(rows), starts)
    sizes = [len(r) for r in rows]
    assert max(sizes) - min(sizes) <= 1
    # 1500 bytes hold 15 states: at most 11 windows of span 4, so 53 windows need 5 rows
    assert len(rows) == 5 and max(sizes) <= 11


def test_split_rows_hold_equal_windows_in_a_multiple_of_the_workers():
    starts = _starts_with_gaps()  # 53 windows
    rows, dropped = plan_rows(starts, span=SPEC.span, state_bytes=100, row_bytes=1500, splits=4)
    assert len(rows) == 8 and {len(r) for r in rows} == {6}  # 5 rows rounded up to 8 of 53 // 8
    assert dropped == 53 - 48 and dropped < len(rows)
    np.testing.assert_array_equal(np.concatenate(rows), starts[:48])  # the last windows are left out
    # fewer windows than rows would want: one window per row, still a multiple of the workers
    rows, dropped = plan_rows(starts[:7], span=SPEC.span, state_bytes=10**6, row_bytes=1, splits=3)
    assert len(rows) == 6 and dropped == 1


def test_more_workers_than_windows_is_refused_naming_both():
    with pytest.raises(InputError, match="3 training windows cannot be shared by 4 workers"):
        plan_rows(np.arange(3), span=1, state_bytes=1, row_bytes=10, splits=4)
    assert plan_rows(np.zeros(0, dtype=np.int64), span=1, state_bytes=1, row_bytes=10, splits=4) == ([], 0)


@pytest.mark.parametrize("batch_size", [1, 5, 7, 64])
def test_unshuffled_batches_are_the_windows_in_order_across_row_boundaries(batch_size):
    rng = np.random.default_rng(0)
    states = rng.standard_normal((73, 2, 3, 4)).astype(np.float32)
    starts = _starts_with_gaps()
    plan, _ = plan_rows(starts, span=SPEC.span, state_bytes=100, row_bytes=1500)
    batches = list(window_batches(_rows_of(states, plan), SPEC, batch_size))
    assert [len(b["x"]) for b in batches[:-1]] == [batch_size] * (len(batches) - 1)
    assert 0 < len(batches[-1]["x"]) <= batch_size
    x = np.concatenate([b["x"] for b in batches])
    assert x.shape == (53, 3, 2, 3, 4)
    for n, i in enumerate(starts):  # brute force: states i, i + 2, i + 4
        np.testing.assert_array_equal(x[n], states[[i, i + 2, i + 4]])
    np.testing.assert_array_equal(np.concatenate([b["time"] for b in batches]), 1000 * starts)


def test_shuffled_batches_draw_every_window_once_reproducibly_by_seed():
    rng = np.random.default_rng(1)
    states = rng.standard_normal((73, 2, 3, 4)).astype(np.float32)
    starts = _starts_with_gaps()
    plan, _ = plan_rows(starts, span=SPEC.span, state_bytes=100, row_bytes=1500)

    def drawn(seed):
        batches = list(window_batches(_rows_of(states, plan), SPEC, 8, shuffle_buffer=20, seed=seed))
        for b in batches:  # each window still pairs its own states with its own time
            for x, t in zip(b["x"], b["time"], strict=True):
                np.testing.assert_array_equal(x, states[[t // 1000 + k * 2 for k in range(3)]])
        return np.concatenate([b["time"] for b in batches]) // 1000

    order = drawn(0)
    assert sorted(order.tolist()) == starts.tolist()
    assert order.tolist() != starts.tolist()
    np.testing.assert_array_equal(drawn(0), order)
    assert drawn(1).tolist() != order.tolist()


def test_batches_are_cut_as_rows_arrive_holding_only_the_buffer():
    """A batch is drawn as soon as the buffer plus one batch is in, not after the stream ends."""
    states = np.arange(200, dtype=np.float32).reshape(200, 1, 1, 1)
    spec = WindowSpec(("a",), steps=1)
    pulled = []

    def rows():
        for r in range(10):  # 10 rows of 10 windows each
            pulled.append(r)
            yield states[20 * r : 20 * r + 11], np.arange(10), np.arange(10) + 100 * r

    seen = []
    for batch in window_batches(rows(), spec, 4, shuffle_buffer=15):
        seen.append(len(pulled))
        np.testing.assert_array_equal(batch["x"][:, 1], batch["x"][:, 0] + 1)
    # the first batch needs 19 windows (2 rows); later ones never wait for more than one more row
    assert seen[0] == 2 and seen[-1] == 10 and len(seen) == 25
    assert all(b - a <= 1 for a, b in itertools.pairwise(seen))


def test_bad_rows_and_batch_sizes_are_refused():
    states = np.zeros((5, 1, 1, 1), dtype=np.float32)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        next(window_batches(iter([]), WindowSpec(("a",)), 0))
    with pytest.raises(ValueError, match="row 0 has 2 window offsets but 1 times"):
        next(window_batches(iter([(states, np.arange(2), np.arange(1))]), WindowSpec(("a",)), 1))


def test_cut_windows_is_brute_force_indexing():
    states = np.random.default_rng(2).standard_normal((12, 2, 2, 2)).astype(np.float32)
    got = cut_windows(states, np.array([0, 3, 7]), SPEC)
    for n, i in enumerate([0, 3, 7]):
        np.testing.assert_array_equal(got[n], np.stack([states[i], states[i + 2], states[i + 4]]))
