"""The summary line's pace: a rate for fast work, seconds per item for slow work (never 0.0/s)."""

import time

from swarmcast.ops.progress import Progress


def _after(done: int, seconds: float, unit: str) -> str:
    bar = Progress("t", done, unit)
    bar._t0 = time.perf_counter() - seconds  # as if it had started that long ago
    bar.done = done
    return bar.pace()


def test_slow_work_is_paced_in_seconds_per_item_and_fast_work_as_a_rate():
    assert _after(2, 270.8, "checkpoints").startswith(" (135.")  # was "(0.0 checkpoints/s)"
    assert _after(2, 270.8, "checkpoints").endswith(" s per checkpoint)")
    assert _after(484, 50.0, "snapshots").startswith(" (9.7") and _after(484, 50.0, "snapshots").endswith(
        "snapshots/s)"
    )
    assert _after(0, 5.0, "units") == ""
