"""Training samples from a climate dataset: windows ``(x_t, x_{t+dt}, ..., x_{t+k dt})``.

A window starting at time index ``i`` exists when all ``k + 1`` states are in the data at exactly
``dt`` spacing; windows never straddle a gap in ``time`` (such as the jump between shallow-water
trajectories). ``dt`` is ``stride`` times the data's own step. A time range keeps the windows
that lie entirely inside it, so train and validation ranges never share a state.

Windows are read in blocks of consecutive start indices: one contiguous slice of the store per
block (``read_block``), then cut in memory (``cut_windows``), so a block costs one pass over its
chunks. Ray Data moves such blocks, not windows (``swarmcast.ops.data.window_rows``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from swarmcast.ops.data.normalization import Normalization
from swarmcast.ops.data.readers import infer_time_step


@dataclass(frozen=True)
class WindowSpec:
    """Which windows to cut from a dataset."""

    channels: tuple[str, ...]
    """Channels stacked along axis 1 of each state, in this order."""
    steps: int = 1
    """k: each window holds k + 1 states (1 = input/target pairs)."""
    stride: int = 1
    """dt in units of the data's time step (e.g. 6 for 6-hourly samples of hourly data)."""
    start: np.datetime64 | None = None
    """First allowed time of any state in a window (inclusive), or None."""
    end: np.datetime64 | None = None
    """Last allowed time of any state in a window (inclusive), or None."""

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if not self.channels:
            raise ValueError("channels must not be empty")

    @property
    def span(self) -> int:
        """Index distance from a window's first to its last state."""
        return self.steps * self.stride


def window_starts(times: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """Start indices (int64, ascending) of every complete window in ``times``.

    Because the data step is the smallest difference between times, a window whose last state
    is exactly ``span`` steps after its first has every intermediate state at the right time.
    """
    t = np.asarray(times).astype("datetime64[ns]")
    if t.size <= spec.span:
        return np.zeros(0, dtype=np.int64)
    step = infer_time_step(t)
    first = t[: t.size - spec.span]
    last = t[spec.span :]
    ok = (last - first) == step * spec.span
    if spec.start is not None:
        ok &= first >= np.datetime64(spec.start, "ns")
    if spec.end is not None:
        ok &= last <= np.datetime64(spec.end, "ns")
    return np.flatnonzero(ok).astype(np.int64)


def read_states(ds: xr.Dataset, channels: Sequence[str], lo: int, hi: int) -> np.ndarray:
    """States ``lo <= i < hi`` as float32 (hi - lo, channels, lat, lon), one slice per channel."""
    return np.stack(
        [np.asarray(ds[c].isel(time=slice(lo, hi)).values, dtype=np.float32) for c in channels],
        axis=1,
    )


def read_block(
    ds: xr.Dataset,
    starts: np.ndarray,
    spec: WindowSpec,
    normalization: Normalization | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The states a run of windows needs, read as one contiguous slice.

    Returns ``(states, offsets)``: float32 states ``starts[0] .. starts[-1] + span`` as
    (n, channels, lat, lon), standardised per channel (``(x - mean) / std``) when
    ``normalization`` is given, and int64 ``offsets = starts - starts[0]`` (where each window
    begins in ``states``). ``starts`` must be ascending and non-empty.
    """
    lo, hi = int(starts[0]), int(starts[-1]) + spec.span + 1
    states = read_states(ds, spec.channels, lo, hi)
    if normalization is not None:
        mean, std = normalization.arrays(spec.channels)
        states -= mean[None, :, None, None]
        states /= std[None, :, None, None]
    return states, (np.asarray(starts) - lo).astype(np.int64)


def cut_windows(states: np.ndarray, offsets: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """Windows beginning at ``offsets`` of ``states``: (len(offsets), k + 1, channels, lat, lon), a copy."""
    return states[np.asarray(offsets)[:, None] + np.arange(spec.steps + 1) * spec.stride]


def read_windows(
    ds: xr.Dataset,
    starts: np.ndarray,
    spec: WindowSpec,
    normalization: Normalization | None = None,
) -> np.ndarray:
    """Windows at ``starts`` as float32 (n, k + 1, channels, lat, lon).

    With ``normalization`` each channel is standardised: ``(x - mean) / std``.
    """
    if len(starts) == 0:
        shape = (0, spec.steps + 1, len(spec.channels), ds.sizes["lat"], ds.sizes["lon"])
        return np.zeros(shape, dtype=np.float32)
    return cut_windows(*read_block(ds, starts, spec, normalization), spec)


def state_bytes(ds: xr.Dataset, spec: WindowSpec) -> int:
    """Bytes of one float32 state (all of ``spec``'s channels at one time)."""
    return 4 * len(spec.channels) * ds.sizes["lat"] * ds.sizes["lon"]


def window_bytes(ds: xr.Dataset, spec: WindowSpec) -> int:
    """Bytes of one float32 window."""
    return (spec.steps + 1) * state_bytes(ds, spec)
