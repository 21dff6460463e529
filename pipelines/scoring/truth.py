"""The truth a forecast is scored against, checked once before any scoring task runs: the valid
times it must hold, units that match, verifying states that are finite, and the climatology
reference. Shared by the ``score`` stage and the hindcast's online scores; every problem is a
``ConfigError`` naming the key (``where``) it came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from swarmcast.ops.data.finite import bad_states
from swarmcast.pipelines.config import ConfigError


def check_valid_times(truth: xr.Dataset, valid: np.ndarray, where: str) -> None:
    """Refuse a truth that lacks any of the ``valid`` times, naming the first ones missing."""
    have = truth["time"].values.astype("datetime64[ns]")
    missing = np.setdiff1d(np.asarray(valid).ravel().astype("datetime64[ns]"), have)
    if missing.size:
        shown = [str(t.astype("datetime64[h]")) for t in missing[:3]]
        raise ConfigError(f"{where}: the truth has no data at {missing.size} valid times, first {shown}")


def check_units(forecast_units: Mapping[str, str | None], truth: xr.Dataset, where: str) -> None:
    """Refuse a variable whose forecast and truth units are both known and differ."""
    for v, fu in forecast_units.items():
        tu = truth[v].attrs.get("units")
        if fu is not None and tu is not None and str(fu) != str(tu):
            raise ConfigError(f"{where}: {v} is in {fu!r} in the forecast but {tu!r} in the truth; convert one of them")


def nonfinite_blocks(
    truth: xr.Dataset, valid: np.ndarray, variables: Sequence[str], policy: str, label: str
) -> dict[str, np.ndarray]:
    """Per variable, the bool (init_time, lead_time) blocks whose verifying state is not all
    finite; with ``policy`` "refuse" a ConfigError naming each such state instead. Each truth
    state a forecast is scored against is read once (``ops.data.finite``)."""
    times = truth["time"].values.astype("datetime64[ns]")
    valid = np.asarray(valid).astype("datetime64[ns]")  # (init, lead)
    where = {t: i for i, t in enumerate(times)}
    bad = bad_states(truth[list(variables)], [where[t] for t in np.unique(valid)])
    if bad and policy == "refuse":
        shown = [f"truth: a valid time scored against is not usable: {b}" for b in bad[:10]]
        more = [f"truth: ... and {len(bad) - 10} more states"] if len(bad) > 10 else []
        hint = "nonfinite_truth: set it to 'skip' to leave those init times out of the scores at those leads"
        raise ConfigError([*shown, *more, hint])
    skip = {str(v): np.zeros(valid.shape, bool) for v in variables}
    for b in bad:
        skip[b.channel] |= valid == b.time.astype("datetime64[ns]")
    for v, mask in skip.items():
        if mask.any():
            left = f"{int(mask.sum())} of {mask.size} blocks (init time, lead)"
            print(f"[{label}] {v}: {left} left out: the truth is not finite at their valid times")
    return skip


def climatology(truth: xr.Dataset, variables: Sequence[str]) -> dict[str, np.ndarray]:
    """The climatology reference: per variable the truth store's mean over all its times
    (finite values only), one (lat, lon) field."""
    return {v: truth[v].where(np.isfinite(truth[v])).mean("time").values for v in variables}


__all__ = ["check_units", "check_valid_times", "climatology", "nonfinite_blocks"]
