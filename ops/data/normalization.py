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

from collections.abc import Sequence
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


def compute_normalization(
    ds: xr.Dataset,
    channels: Sequence[str],
    *,
    tendency_hours: float = 6.0,
    block: int = 64,
) -> Normalization:
    """Stream over ``ds`` (dims time, lat, lon) in blocks of ``block`` snapshots.

    The tendency interval must be a whole number of the data's time step; pairs are matched by
    time stamp, so irregular gaps are handled exactly.
    """
    times = ds["time"].values.astype("datetime64[ns]")
    if len(times) < 2:
        raise ValueError("normalisation statistics need at least two time steps")
    lag = np.timedelta64(round(tendency_hours * 3600), "s").astype("timedelta64[ns]")
    # index of the snapshot lag later, or -1 where there is none
    pos = np.searchsorted(times, times + lag)
    partner = np.where((pos < len(times)) & (times[np.minimum(pos, len(times) - 1)] == times + lag), pos, -1)
    if (partner < 0).all():
        raise ValueError(f"no pairs of snapshots {tendency_hours} h apart to compute tendencies from")
    shift = int(np.max(partner - np.arange(len(times)), initial=0))
    values = Moments.empty((len(channels),))
    tendencies = Moments.empty((len(channels),))
    for lo in range(0, len(times), block):
        hi = min(lo + block, len(times))
        read_hi = min(len(times), hi + shift)
        x = np.stack([ds[c].isel(time=slice(lo, read_hi)).values for c in channels], axis=1)
        values = values.merge(Moments.of(x[: hi - lo], axis=(0, 2, 3)))
        src = np.arange(lo, hi)
        ok = partner[src] >= 0
        if ok.any():
            d = x[partner[src][ok] - lo].astype(np.float64) - x[src[ok] - lo]
            tendencies = tendencies.merge(Moments.of(d, axis=(0, 2, 3)))
    mean, std, tstd = values.mean, values.std(), tendencies.std()
    stats = {c: ChannelStats(float(mean[i]), float(std[i]), float(tstd[i])) for i, c in enumerate(channels)}
    return Normalization(stats, float(tendency_hours))


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
