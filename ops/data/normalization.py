"""Per-channel normalisation statistics of a climate dataset.

For each channel: ``mean`` and ``std`` over all times and grid points (unweighted, as makani
and FourCastNet do), and ``tendency_std``, the std of ``x(t + Δ) − x(t)`` for the tendency
interval Δ (6 h by default) over pairs that are both in the data (pairs across a gap in time,
such as the jump between shallow-water trajectories, are skipped). Stored as the root attribute
``normalization`` of a climate store swarmcast writes; for any other store (a WeatherBench2 or
ARCO-ERA5 copy, often read-only) ``swarmcast stats`` computes them into a JSON file
(``statistics_document``) that ``train-sfno``'s ``normalization:`` names, leaving the data as
it is. Computed by streaming blocks of time, never loading the whole dataset.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from swarmcast.kernels.moments import Moments
from swarmcast.ops.errors import InputError, UnknownNameError

ATTR = "normalization"


class InvalidStatisticsError(InputError):
    """A statistics file that is not one ``swarmcast stats`` wrote, or is damaged."""


@dataclass(frozen=True)
class ChannelStats:
    """Statistics of one channel in its physical units."""

    mean: float
    std: float
    tendency_std: float


@dataclass(frozen=True)
class Normalization:
    """Statistics per channel, plus the tendency interval they were computed for (hours)."""

    channels: dict[str, ChannelStats]
    tendency_hours: float

    def to_attr(self) -> dict:
        return {
            "tendency_hours": self.tendency_hours,
            "channels": {c: vars(s) for c, s in self.channels.items()},
        }

    @staticmethod
    def from_attr(attr: dict) -> Normalization:
        return Normalization(
            {c: ChannelStats(**s) for c, s in attr["channels"].items()},
            float(attr["tendency_hours"]),
        )

    def arrays(self, channels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) float32 arrays of shape (len(channels),) in the given order."""
        missing = [c for c in channels if c not in self.channels]
        if missing:
            raise UnknownNameError(f"no normalisation statistics for channels {missing}")
        mean = np.array([self.channels[c].mean for c in channels], dtype=np.float32)
        std = np.array([self.channels[c].std for c in channels], dtype=np.float32)
        return mean, std


@dataclass(frozen=True)
class TendencyPairs:
    """Which snapshot pairs the tendency statistics use, and how the time axis is cut in blocks.

    ``partner[i]``: the index of the snapshot ``tendency_hours`` after snapshot ``i``, or -1
    where the data has none (pairs are matched by time stamp, so irregular gaps are exact);
    ``shift``: how many snapshots past a block its pairs reach."""

    partner: np.ndarray
    shift: int
    tendency_hours: float

    @staticmethod
    def of(times: np.ndarray, tendency_hours: float) -> TendencyPairs:
        times = times.astype("datetime64[ns]")
        if len(times) < 2:
            raise ValueError("normalisation statistics need at least two time steps")
        lag = np.timedelta64(round(tendency_hours * 3600), "s").astype("timedelta64[ns]")
        pos = np.searchsorted(times, times + lag)
        found = (pos < len(times)) & (times[np.minimum(pos, len(times) - 1)] == times + lag)
        partner = np.where(found, pos, -1)
        if (partner < 0).all():
            raise ValueError(f"no pairs of snapshots {tendency_hours} h apart to compute tendencies from")
        shift = int(np.max(partner - np.arange(len(times)), initial=0))
        return TendencyPairs(partner, shift, float(tendency_hours))

    def blocks(self, block: int) -> list[tuple[int, int]]:
        """``[lo, hi)`` ranges of at most ``block`` snapshots covering the time axis, in order."""
        n = len(self.partner)
        return [(lo, min(lo + block, n)) for lo in range(0, n, block)]


def block_moments(
    ds: xr.Dataset, channels: Sequence[str], lo: int, hi: int, pairs: TendencyPairs
) -> tuple[Moments, Moments]:
    """Moments of the values of snapshots ``[lo, hi)`` and of the tendencies that start there
    (each over time and grid points, shape ``(len(channels),)``); reads ``hi - lo`` snapshots
    plus the ``pairs.shift`` after them."""
    read_hi = min(len(pairs.partner), hi + pairs.shift)
    x = np.stack([ds[c].isel(time=slice(lo, read_hi)).values for c in channels], axis=1)
    values = Moments.of(x[: hi - lo], axis=(0, 2, 3))
    src = np.arange(lo, hi)
    ok = pairs.partner[src] >= 0
    if not ok.any():
        return values, Moments.empty((len(channels),))
    d = x[pairs.partner[src][ok] - lo].astype(np.float64) - x[src[ok] - lo]
    return values, Moments.of(d, axis=(0, 2, 3))


def merge_block_moments(
    channels: Sequence[str], parts: Iterable[tuple[Moments, Moments]], tendency_hours: float
) -> Normalization:
    """The statistics of blocks' ``block_moments``, merged in the order given (the same order
    gives the same bits however the blocks were computed)."""
    values = Moments.empty((len(channels),))
    tendencies = Moments.empty((len(channels),))
    for v, t in parts:
        values, tendencies = values.merge(v), tendencies.merge(t)
    mean, std, tstd = values.mean, values.std(), tendencies.std()
    stats = {c: ChannelStats(float(mean[i]), float(std[i]), float(tstd[i])) for i, c in enumerate(channels)}
    return Normalization(stats, float(tendency_hours))


def compute_normalization(
    ds: xr.Dataset,
    channels: Sequence[str],
    *,
    tendency_hours: float = 6.0,
    block: int = 64,
) -> Normalization:
    """Stream over ``ds`` (dims time, lat, lon) in blocks of ``block`` snapshots, on this machine
    (``swarmcast.pipelines.data.statistics`` spreads the same blocks over Ray tasks).

    The tendency interval must be a whole number of the data's time step; pairs are matched by
    time stamp, so irregular gaps are handled exactly.
    """
    pairs = TendencyPairs.of(ds["time"].values, tendency_hours)
    parts = (block_moments(ds, channels, lo, hi, pairs) for lo, hi in pairs.blocks(block))
    return merge_block_moments(channels, parts, tendency_hours)


FILE_FORMAT = "swarmcast normalization statistics 1"
"""The ``format`` of a statistics file (``swarmcast stats``): ``{"format", "store", "channels",
"first_time", "last_time", "times", "normalization": Normalization.to_attr()}``."""


def statistics_document(norm: Normalization, store: str, times: np.ndarray) -> dict:
    """The JSON document ``swarmcast stats`` writes: the statistics and what they were computed
    from (``store`` as given, the time span and count of ``times``, datetime64)."""
    return {
        "format": FILE_FORMAT,
        "store": store,
        "channels": list(norm.channels),
        "first_time": str(times.min().astype("datetime64[s]")),
        "last_time": str(times.max().astype("datetime64[s]")),
        "times": len(times),
        "normalization": norm.to_attr(),
    }


def read_statistics_document(doc: object, where: str) -> Normalization:
    """The statistics of a document ``statistics_document`` made; ``where`` names it in errors."""
    if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT or not isinstance(doc.get("normalization"), dict):
        raise InvalidStatisticsError(f"{where}: not a statistics file written by `swarmcast stats` ({FILE_FORMAT!r})")
    try:
        return Normalization.from_attr(doc["normalization"])
    except (KeyError, TypeError, ValueError) as err:
        raise InvalidStatisticsError(f"{where}: damaged statistics ({type(err).__name__}: {err})") from None
