"""Ensemble verification on xarray: open an ensemble store, align its truth, score lazily.

Every function takes ``DataArray``s with a ``member`` dim (forecasts) and the same other dims
(truth), and works on dask-backed data without loading it: pointwise scores are
``xr.apply_ufunc(..., dask="parallelized")`` over the kernels in
``swarmcast.kernels.ensemble_scores``, which need the member axis in one dask chunk per block.
``open_ensemble`` opens our store that way (all members of one init time and the leads of one
stored inner chunk per dask chunk) and honours ``member_done``.

Units: scores carry the units of the variable (CRPS, RMSE, spread), its square (variance,
MSE), or none (ratios, frequencies).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import numpy as np
import xarray as xr

from swarmcast.kernels import ensemble_scores as ks
from swarmcast.kernels.sphere import lat_cell_area_weights
from swarmcast.ops.errors import InputError, UnknownNameError
from swarmcast.ops.storage import open_zarr_dataset

log = logging.getLogger(__name__)

MEMBER = "member"

REGIONS: Mapping[str, tuple[float, float]] = {
    "global": (-90.0, 90.0),
    "northern-extratropics": (20.0, 90.0),
    "tropics": (-20.0, 20.0),
    "southern-extratropics": (-90.0, -20.0),
}
"""Latitude bands (south, north) in degrees north, bounds inclusive (WeatherBench2's split at 20°)."""


class IncompleteEnsembleError(InputError):
    """The ensemble store has no init time whose members are all written."""


def open_ensemble(path: str | os.PathLike, *, require_complete: bool = True) -> xr.Dataset:
    """Open an ensemble store lazily with the member axis in one dask chunk per (init, lead).

    ``member_done`` is honoured: with ``require_complete`` (the default) init times with any
    unfinished member are dropped (and logged); otherwise unfinished members are set to NaN.
    """
    # dask chunks: one stored inner chunk's leads (one lead on large grids, several on small
    # tiled ones: ``swarmcast.ops.ensemble.chunking``) of one member block, the whole grid, so
    # one task reads each tile once; then the member blocks are joined
    ds = open_zarr_dataset(path, chunks={"lat": -1, "lon": -1})
    ds = ds.assign_coords({c: ds[c].compute() for c in ds.coords})  # small: keep them in memory
    joined = {
        v: (a.dims, a.data.rechunk({a.dims.index(MEMBER): -1}), a.attrs)
        for v, a in ds.data_vars.items()
        if MEMBER in a.dims and a.chunks is not None
    }
    ds = ds.assign(joined)
    if "member_done" not in ds:
        raise InputError(f"{path}: not an ensemble store (no member_done mask)")
    done = np.asarray(ds["member_done"].values, dtype=bool)
    if require_complete:
        full = done.all(axis=1)
        if not full.any():
            raise IncompleteEnsembleError(f"{path}: no init time has all its members written yet")
        if not full.all():
            log.warning("%s: dropping %d init times with unfinished members", path, int((~full).sum()))
            ds = ds.isel(init_time=np.flatnonzero(full))
        return ds
    mask = xr.DataArray(done, dims=("init_time", MEMBER))
    data_vars = [v for v in ds.data_vars if MEMBER in ds[v].dims and v != "member_done"]
    return ds.assign({v: ds[v].where(mask) for v in data_vars})


def align_truth(forecast: xr.Dataset | xr.DataArray, truth: xr.Dataset) -> xr.Dataset:
    """Truth at each forecast's valid time, dims (init_time, lead_time, lat, lon).

    ``truth``: a canonical climate dataset (``swarmcast.ops.data.readers.open_climate``). Raises
    ``ValueError`` naming the valid times the truth lacks or a grid mismatch.
    """
    valid = forecast["valid_time"]
    have = truth["time"].values.astype("datetime64[ns]")
    missing = np.setdiff1d(valid.values.ravel().astype("datetime64[ns]"), have)
    if missing.size:
        raise ValueError(f"the truth has no data at {missing.size} valid times, e.g. {[str(t) for t in missing[:3]]}")
    for dim in ("lat", "lon"):
        if forecast.sizes[dim] != truth.sizes[dim] or not np.allclose(forecast[dim].values, truth[dim].values):
            raise ValueError(
                f"forecast and truth {dim} grids differ ({forecast.sizes[dim]} vs {truth.sizes[dim]} points)"
            )
    aligned = truth.sel(time=valid).drop_vars("time")
    return aligned.assign_coords(lat=forecast["lat"], lon=forecast["lon"])


def _pointwise(func: object, fc: xr.DataArray, obs: xr.DataArray, dtype: object, **kwargs: object) -> xr.DataArray:
    return xr.apply_ufunc(
        func,
        fc,
        obs,
        input_core_dims=[[MEMBER], []],
        kwargs={"axis": -1, **kwargs},
        dask="parallelized",
        output_dtypes=[dtype],
    )


def crps(fc: xr.DataArray, obs: xr.DataArray, *, fair: bool = True) -> xr.DataArray:
    """Pointwise (fair) CRPS; same units as the data."""
    return _pointwise(ks.fair_crps, fc, obs, fc.dtype, fair=fair)


def truth_rank(fc: xr.DataArray, obs: xr.DataArray, seed: int = 0) -> xr.DataArray:
    """Rank 0..M of the truth among the members (ties broken with a seeded generator)."""

    def rank(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
        return ks.truth_rank(x, y, axis, rng=np.random.default_rng(seed)).astype(np.int32)

    return _pointwise(rank, fc, obs, np.int32)


def outside_range(fc: xr.DataArray, obs: xr.DataArray) -> xr.DataArray:
    """True where the truth is strictly outside the members' range."""
    return _pointwise(ks.outside_range, fc, obs, bool)


def best_member_squared_error(fc: xr.DataArray, obs: xr.DataArray) -> xr.DataArray:
    """Squared error of the closest member at each point; units squared."""
    return _pointwise(ks.best_member_squared_error, fc, obs, fc.dtype)


def extreme_forecast_index(clim_quantiles: xr.DataArray, fc: xr.DataArray) -> xr.DataArray:
    """EFI against model-climate quantiles with a ``quantile`` dim at p = linspace(0, 1, K)."""
    return xr.apply_ufunc(
        lambda q, x: ks.extreme_forecast_index(np.moveaxis(q, -1, 0), x, axis=-1),
        clim_quantiles,
        fc,
        input_core_dims=[["quantile"], [MEMBER]],
        dask="parallelized",
        output_dtypes=[np.float64],
    )


WEIGHTINGS = ("area", "cos-lat")
"""Latitude weightings: whole-grid cell areas (WeatherBench2's) or cos(latitude)."""


def region_row_weights(lat: np.ndarray, region: str, weighting: str = "area") -> np.ndarray:
    """Weights (nlat,) of the latitude rows inside ``region`` (bounds inclusive), 0 outside:
    whole-grid cell areas (``area``) or ``cos-lat``."""
    if region not in REGIONS:
        raise UnknownNameError(f"unknown region {region!r}; known: {sorted(REGIONS)}")
    if weighting not in WEIGHTINGS:
        raise UnknownNameError(f"unknown latitude weighting {weighting!r}; known: {list(WEIGHTINGS)}")
    south, north = REGIONS[region]
    lat = np.asarray(lat, dtype=np.float64)
    w = lat_cell_area_weights(lat) if weighting == "area" else np.clip(np.cos(np.deg2rad(lat)), 0.0, None)
    return np.where((lat >= south) & (lat <= north), w, 0.0)


def region_mean(field: xr.DataArray, region: str, dims: tuple[str, ...] = ("lat", "lon")) -> xr.DataArray:
    """Area-weighted mean over ``dims`` (lat, lon, and e.g. init_time) inside ``region``."""
    w = xr.DataArray(region_row_weights(field["lat"].values, region), coords={"lat": field["lat"]}, dims="lat")
    return field.where(w > 0).weighted(w).mean(dims)


def weighted_rank_histogram(ranks: np.ndarray, lat: np.ndarray, members: int, region: str) -> np.ndarray:
    """Area-weighted rank frequencies (sum 1) of ranks (..., lat, lon) in ``region``, shape (M + 1,)."""
    w = region_row_weights(lat, region)
    weights = np.broadcast_to(w[:, None], ranks.shape[-2:])
    hist = ks.rank_histogram(ranks, members, np.broadcast_to(weights, ranks.shape))
    return hist / hist.sum()


__all__ = [
    "REGIONS",
    "WEIGHTINGS",
    "IncompleteEnsembleError",
    "align_truth",
    "best_member_squared_error",
    "crps",
    "extreme_forecast_index",
    "open_ensemble",
    "outside_range",
    "region_mean",
    "region_row_weights",
    "truth_rank",
    "weighted_rank_histogram",
]
