"""Finding NaN and infinite values in the states a forecast starts from, before any work.

A missing value in an initial state spreads through every member: 50 NaN points in one channel
at one init time made a 67%-NaN ensemble and NaN scores without a word. ``nonfinite_states``
reads the given states one channel and a few times at a time (memory: ``batch`` x lat x lon
values) and reports each state that is not finite, so a hindcast refuses it with its time,
channel and count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr


@dataclass(frozen=True)
class NonFinite:
    """One state of one channel holding NaN or infinite values."""

    time: np.datetime64
    channel: str
    count: int
    """Grid points that are NaN or infinite."""
    size: int
    """Grid points of the state (lat x lon)."""

    def __str__(self) -> str:
        return f"{self.channel} at {np.datetime_as_string(self.time, unit='m')}: {self.count} of {self.size} points"


def nonfinite_states(ds: xr.Dataset, time_index: Sequence[int], batch: int = 16) -> list[NonFinite]:
    """Every (time, channel) among ``ds``'s states at ``time_index`` that is not all finite.

    ``ds``: canonical climate dataset (``ops.data.readers.open_climate``), dims (time, lat, lon).
    Indices are read in increasing order, ``batch`` times per read; the result is ordered by
    time, then channel.
    """
    found = []
    index = sorted(set(int(i) for i in time_index))
    times = ds["time"].values
    for start in range(0, len(index), batch):
        rows = index[start : start + batch]
        for channel in ds.data_vars:
            values = np.asarray(ds[channel].isel(time=rows).values)
            bad = (~np.isfinite(values)).reshape(len(rows), -1).sum(axis=1)
            size = values[0].size
            found += [NonFinite(times[i], str(channel), int(n), size) for i, n in zip(rows, bad, strict=True) if n]
    return sorted(found, key=lambda f: (f.time, f.channel))
