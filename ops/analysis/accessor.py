"""The ``.swarmcast`` accessor on datasets and data arrays opened from an ensemble store.

An ensemble store is indexed by ``(init_time, lead_time)``; ``valid_time(init_time,
lead_time)`` is their sum. xarray cannot select on a 2-D coordinate, so "every forecast of
2003-01-12T00, whatever its init time" gets a name here: ``ens.swarmcast.at_valid_time(t)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr


def at_valid_time(obj: xr.Dataset | xr.DataArray, time: Any) -> xr.Dataset | xr.DataArray:
    """Every forecast in ``obj`` valid at ``time`` (anything ``pandas.Timestamp`` reads).

    Returns ``obj`` without its ``lead_time`` dimension: along ``init_time`` it keeps the init
    times with a lead that reaches ``time``, oldest first, and ``lead_time`` becomes a coordinate
    on ``init_time`` (the lead each of them needed). Raises ``KeyError`` naming the valid times
    the store covers when no init time reaches ``time``.
    """
    t = np.datetime64(pd.Timestamp(time).to_datetime64(), "ns")
    inits = obj["init_time"].values.astype("datetime64[ns]")
    leads = obj["lead_time"].values.astype("timedelta64[ns]")
    needed = t - inits
    reach = np.isin(needed, leads)
    if not reach.any():
        first, last = inits.min() + leads.min(), inits.max() + leads.max()
        raise KeyError(
            f"no forecast in this store is valid at {t}: its valid times run from {first} to {last}"
            f" in steps of its lead times {pd.to_timedelta(leads).tolist()}"
        )
    picked = obj.isel(init_time=np.flatnonzero(reach))
    return picked.sel(lead_time=xr.DataArray(needed[reach], dims="init_time"))


class SwarmcastAccessor:
    """``ds.swarmcast`` / ``da.swarmcast``: selections on an ensemble store's axes."""

    def __init__(self, obj: xr.Dataset | xr.DataArray) -> None:
        self._obj = obj

    def at_valid_time(self, time: Any) -> xr.Dataset | xr.DataArray:
        """See ``swarmcast.ops.analysis.at_valid_time``."""
        return at_valid_time(self._obj, time)


xr.register_dataset_accessor("swarmcast")(SwarmcastAccessor)
xr.register_dataarray_accessor("swarmcast")(SwarmcastAccessor)

__all__ = ["SwarmcastAccessor", "at_valid_time"]
