"""Finding unusable values in the states a forecast starts from (or is scored against), before
any work: NaN and infinite values, and values outside given physical bounds.

A missing value in an initial state spreads through every member: 50 NaN points in one channel
at one init time made a 67%-NaN ensemble and NaN scores without a word. A wildly wrong value
(a fill value of 1e20 left in a field, a unit slip) does the same a few steps later, as the
model amplifies it. ``bad_states`` reads the given states one channel and a few times at a time
(memory: ``batch`` x lat x lon values) and reports each state holding such values, so a stage
refuses it with its time, channel and count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

NONFINITE = "NaN or infinite"


@dataclass(frozen=True)
class BadState:
    """One state of one channel holding unusable values."""

    time: np.datetime64
    channel: str
    count: int
    """Grid points that are unusable."""
    size: int
    """Grid points of the state (lat x lon)."""
    what: str = NONFINITE
    """What is wrong with them: ``NONFINITE``, or "outside [lo, hi]" of the given bounds."""

    def __str__(self) -> str:
        when = np.datetime_as_string(self.time, unit="m")
        return f"{self.channel} at {when}: {self.count} of {self.size} points {self.what}"


def bad_states(
    ds: xr.Dataset,
    time_index: Sequence[int],
    *,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    batch: int = 16,
) -> list[BadState]:
    """Every (time, channel) among ``ds``'s states at ``time_index`` holding NaN or infinite
    values, or (for channels in ``bounds``) finite values outside ``bounds[channel]``.

    ``ds``: canonical climate dataset (``ops.data.readers.open_climate``), dims (time, lat, lon).
    Indices are read in increasing order, ``batch`` times per read; the result is ordered by
    time, then channel, non-finite before out-of-bounds.
    """
    found = []
    index = sorted(set(int(i) for i in time_index))
    times = ds["time"].values
    bounds = bounds or {}
    for start in range(0, len(index), batch):
        rows = index[start : start + batch]
        for channel in ds.data_vars:
            values = np.asarray(ds[channel].isel(time=rows).values).reshape(len(rows), -1)
            finite = np.isfinite(values)
            size = values.shape[1]
            counts = [((~finite).sum(axis=1), NONFINITE)]
            if str(channel) in bounds:
                lo, hi = bounds[str(channel)]
                with np.errstate(invalid="ignore"):
                    outside = finite & ((values < lo) | (values > hi))
                counts.append((outside.sum(axis=1), f"outside [{lo:.4g}, {hi:.4g}]"))
            for per_row, what in counts:
                found += [
                    BadState(times[i], str(channel), int(n), size, what)
                    for i, n in zip(rows, per_row, strict=True)
                    if n
                ]
    order = {NONFINITE: 0}
    return sorted(found, key=lambda f: (f.time, f.channel, order.get(f.what, 1)))


__all__ = ["NONFINITE", "BadState", "bad_states"]
