"""Open climate stores of several layouts as one canonical, lazy dataset.

Canonical form: dims ``(time, lat, lon)``, one 2-D-per-time variable per *channel* (``z500``,
``t2m``, ``h``), latitude descending 90 -> -90 (north first, as in ERA5 and the SFNO's
equiangular grid), longitude ascending in [0, 360). Accepted layouts:

* swarmcast's own (what the ``swe-dataset`` stage writes);
* WeatherBench2 / ARCO-ERA5: dims ``time``, ``latitude``, ``longitude`` and optional ``level``
  (hPa), long variable names (``2m_temperature``, ``geopotential`` at ``level=500``), latitude
  in either order, longitude in [0, 360) or [-180, 180).

Stores are opened with ``chunks=None``: no dask graph, values are read lazily on indexing, which
is what per-task readers in Ray want (weatherbenchX#159).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from swarmcast.ops.data.channels import channel_from_reanalysis, channel_info, reanalysis_name
from swarmcast.ops.data.normalization import ATTR, Normalization
from swarmcast.ops.errors import InputError, InputNotFoundError, UnknownNameError
from swarmcast.ops.storage import Location, as_zarr, is_url, open_zarr_dataset

_DIM_ALIASES = {"latitude": "lat", "longitude": "lon"}


class StoreLayoutError(InputError):
    """The store exists but is not a climate dataset we can read; the message says why."""


def _canonical_dims(ds: xr.Dataset, path: str) -> xr.Dataset:
    renames = {k: v for k, v in _DIM_ALIASES.items() if k in ds.dims or k in ds.coords}
    ds = ds.rename(renames)
    for dim in ("time", "lat", "lon"):
        if dim not in ds.dims:
            raise StoreLayoutError(f"{path}: no '{dim}' dimension (found dims {sorted(ds.dims)})")
    return ds


def available_channels(ds: xr.Dataset) -> list[str]:
    """Channel names a canonical-dims dataset provides (levels expanded: z500, z850, ...), sorted:
    a store's variables are listed in the order its filesystem returns them, which differs
    between copies of one store, and this order is a model's default channel order."""
    out = []
    for name, var in ds.data_vars.items():
        dims = set(var.dims)
        if dims == {"time", "lat", "lon"}:
            known = channel_from_reanalysis(str(name), None)
            out.append(known or str(name))
        elif dims == {"time", "level", "lat", "lon"}:
            for level in ds["level"].values:
                c = channel_from_reanalysis(str(name), int(level))
                if c is not None:
                    out.append(c)
    return sorted(out)


def _select_channel(ds: xr.Dataset, channel: str) -> xr.DataArray:
    if channel in ds.data_vars and set(ds[channel].dims) == {"time", "lat", "lon"}:
        return ds[channel]
    try:
        name, level = reanalysis_name(channel)
    except KeyError:
        name, level = None, None
    if name is not None and name in ds.data_vars:
        var = ds[name]
        if level is None and set(var.dims) == {"time", "lat", "lon"}:
            return var
        if level is not None and "level" in var.dims:
            levels = ds["level"].values
            if int(level) in levels.astype(int):
                return var.sel(level=level).drop_vars("level")
    raise KeyError(channel)


def _orient(ds: xr.Dataset) -> xr.Dataset:
    lat = ds["lat"].values
    if lat.size > 1 and lat[0] < lat[-1]:
        ds = ds.isel(lat=slice(None, None, -1))
    lon = ds["lon"].values
    wrapped = np.mod(lon, 360.0)
    if not np.array_equal(wrapped, lon) or np.any(np.diff(wrapped) <= 0):
        order = np.argsort(wrapped, kind="stable")
        ds = ds.assign_coords(lon=("lon", wrapped, ds["lon"].attrs)).isel(lon=order)
    return ds


def _open_zarr(path: str) -> xr.Dataset:
    """Open with consolidated metadata when the store has it (remote WB2 stores do), else without."""
    try:
        return xr.open_zarr(path, chunks=None, decode_timedelta=True, consolidated=True)
    except (KeyError, ValueError, FileNotFoundError):
        return open_zarr_dataset(path, chunks=None, decode_timedelta=True, consolidated=False)


def open_climate(path: str | os.PathLike | Location, channels: Sequence[str] | None = None) -> xr.Dataset:
    """Open a climate store as the canonical dataset described in the module docstring.

    ``channels=None`` takes every channel the store has. Raises ``FileNotFoundError`` for a
    missing path, ``StoreLayoutError`` for a store without time/lat/lon, and ``KeyError``
    naming the missing channels and the available ones. Attributes (including the
    ``normalization`` statistics of stores we wrote) are kept.
    """
    spath = as_zarr(path)
    if not is_url(spath) and not Path(spath).exists():
        raise InputNotFoundError(f"climate store not found: {spath}")
    raw = _open_zarr(spath)
    ds = _canonical_dims(raw, spath)
    names = list(channels) if channels is not None else available_channels(ds)
    if not names:
        raise StoreLayoutError(f"{spath}: no (time, lat, lon) variables found")
    arrays, missing = {}, []
    for c in names:
        try:
            arrays[c] = _select_channel(ds, c)
        except KeyError:
            missing.append(c)
    if missing:
        raise UnknownNameError(f"{spath}: channels {missing} not in the store; available: {available_channels(ds)}")
    out = xr.Dataset(arrays, attrs=raw.attrs)
    drop = [v for v in out.coords if v not in ("time", "lat", "lon") and "time" not in out[v].dims]
    out = out.drop_vars(drop)
    for c in names:
        info = channel_info(c)
        if info is not None and "units" not in out[c].attrs:
            out[c].attrs.update(units=info.units, long_name=info.long_name)
    out["time"] = out["time"].astype("datetime64[ns]")
    return _orient(out)


def stored_normalization(ds: xr.Dataset) -> Normalization | None:
    """The normalisation statistics a swarmcast store carries, or None for foreign stores."""
    attr = ds.attrs.get(ATTR)
    return Normalization.from_attr(attr) if attr else None


def infer_time_step(times: np.ndarray) -> np.timedelta64:
    """The data's time step: the smallest positive difference between consecutive times."""
    t = np.asarray(times).astype("datetime64[ns]")
    if t.size < 2:
        raise ValueError("need at least two times to infer a time step")
    d = np.diff(t)
    if np.any(d <= np.timedelta64(0, "ns")):
        raise StoreLayoutError("time coordinate is not strictly increasing")
    return d.min()
