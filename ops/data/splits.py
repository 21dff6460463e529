"""Small decisions every trainer and forecast stage makes the same way: which times are held out
for validation, which items are picked when only a few may be used, and how many model steps
make a lead time.
"""

from __future__ import annotations

import numpy as np


def held_out_start(times: np.ndarray) -> np.datetime64:
    """First time of the validation period: the start of the last contiguous segment.

    ``times``: sorted datetime64 (n,). Segments are separated by gaps wider than the data step
    (the shallow-water store lays its trajectories end to end as years, so the last trajectory
    is held out). Data without a gap holds out its last 20 %.
    """
    t = np.asarray(times).astype("datetime64[ns]")
    step = np.diff(t)
    gaps = np.flatnonzero(step > step.min())
    return t[gaps[-1] + 1] if len(gaps) else t[int(len(t) * 0.8)]


def evenly_spaced(n: int, k: int) -> np.ndarray:
    """At most ``k`` distinct indices into ``range(n)``, evenly spread from the first to the last."""
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, min(n, k)).round()).astype(np.int64)


def whole_steps(span: float, step: float) -> int | None:
    """How many ``step``s make ``span`` (any one unit), or None unless it is a whole number >= 1."""
    n = span / step
    if n < 1 - 1e-9 or abs(n - round(n)) > 1e-9:
        return None
    return round(n)


__all__ = ["evenly_spaced", "held_out_start", "whole_steps"]
