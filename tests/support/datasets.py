"""Synthetic-data factories for the tests.

They build small datasets with known content and write them in the layouts real users have:
swarmcast's own, WeatherBench2 (long names, ``level`` dim, ascending latitude) and ARCO-ERA5
(descending latitude, hours-since-1900 time encoding), plus image folders and ``.npz`` files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from swarmcast.kernels.sphere import equiangular_latitudes, longitudes
from swarmcast.ops.data.channels import reanalysis_name


def canonical_dataset(
    channels: Sequence[str] = ("z500", "t850", "t2m", "u10m"),
    *,
    n_times: int = 12,
    nlat: int = 9,
    nlon: int = 16,
    start: str = "2020-01-01T00",
    step_hours: int = 6,
    seed: int = 0,
) -> xr.Dataset:
    """Random smooth-ish fields in canonical form: dims (time, lat, lon), lat 90 -> -90.

    Every value is distinct (a channel offset plus noise) so any mix-up of time, channel,
    latitude or longitude shows up in a comparison.
    """
    rng = np.random.default_rng(seed)
    times = np.datetime64(start, "ns") + np.arange(n_times) * np.timedelta64(step_hours, "h")
    lat, lon = equiangular_latitudes(nlat), longitudes(nlon)
    data = {}
    for i, c in enumerate(channels):
        base = 100.0 * (i + 1) + np.cos(np.deg2rad(lat))[:, None] * np.sin(np.deg2rad(lon))[None]
        values = base[None] + rng.standard_normal((n_times, nlat, nlon))
        data[c] = (("time", "lat", "lon"), values.astype(np.float32))
    return xr.Dataset(data, coords={"time": times, "lat": lat, "lon": lon})


def write_canonical_store(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` as-is (swarmcast layout) to a Zarr v3 store."""
    ds.to_zarr(path, mode="w", zarr_format=3, consolidated=False)
    return Path(path)


def to_weatherbench2(ds: xr.Dataset, *, ascending_lat: bool = True, lon_180: bool = False) -> xr.Dataset:
    """Re-express a canonical dataset in the WeatherBench2 schema.

    Pressure-level channels (``z500``) become long-name variables on a ``level`` dim
    (``geopotential(time, level, latitude, longitude)``); single-level ones take their long
    names (``2m_temperature``). Latitude is ascending unless ``ascending_lat=False`` (as in
    ARCO-ERA5); ``lon_180`` stores longitudes in [-180, 180).
    """
    surface, levelled = {}, {}
    for c in ds.data_vars:
        name, level = reanalysis_name(str(c))
        if level is None:
            surface[name] = ds[c]
        else:
            levelled.setdefault(name, {})[level] = ds[c]
    out = xr.Dataset(surface)
    all_levels = sorted({lv for d in levelled.values() for lv in d})
    for name, by_level in levelled.items():
        # pad missing levels with NaN so every levelled variable shares one level axis
        stack = [by_level.get(lv, xr.full_like(next(iter(by_level.values())), np.nan)) for lv in all_levels]
        out[name] = xr.concat(stack, dim=xr.DataArray(all_levels, dims="level", name="level"))
        out[name] = out[name].transpose("time", "level", "lat", "lon")
    out = out.rename({"lat": "latitude", "lon": "longitude"})
    if ascending_lat:
        out = out.isel(latitude=slice(None, None, -1))
    if lon_180:
        lon = out["longitude"].values
        shifted = np.where(lon >= 180, lon - 360, lon)
        out = out.assign_coords(longitude=shifted).sortby("longitude")
    return out


def write_weatherbench2_store(ds: xr.Dataset, path: str | Path, **kwargs: bool) -> Path:
    """Write the WeatherBench2 form of canonical ``ds`` (see ``to_weatherbench2``)."""
    to_weatherbench2(ds, **kwargs).to_zarr(path, mode="w", zarr_format=3, consolidated=False)
    return Path(path)


def write_arco_era5_store(ds: xr.Dataset, path: str | Path) -> Path:
    """ARCO-ERA5 schema: WB2 names, descending latitude, time as hours since 1900-01-01."""
    out = to_weatherbench2(ds, ascending_lat=False)
    encoding = {"time": {"units": "hours since 1900-01-01", "dtype": "int64"}}
    out.to_zarr(path, mode="w", zarr_format=3, consolidated=False, encoding=encoding)
    return Path(path)


def make_image_folder(
    path: str | Path, n: int = 6, size: tuple[int, int] = (8, 10), mode: str = "L", seed: int = 0
) -> tuple[Path, np.ndarray]:
    """PNG files ``img_000.png``... of random uint8 pixels; returns (folder, pixels (n, h, w[, 3]))."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    shape = (n, *size) + ((3,) if mode == "RGB" else ())
    pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(pixels[i], mode=mode).save(folder / f"img_{i:03d}.png")
    return folder, pixels


def write_synthetic_ensemble(
    path: str | Path,
    truth: xr.Dataset,
    *,
    init_times: Sequence[str],
    n_leads: int,
    members: int,
    dispersion: float = 1.0,
    noise: float = 1.0,
    member_block: int | None = None,
    seed: int = 0,
    write_units: bool = True,
) -> Path:
    """An ensemble store (the hindcast's layout) whose members scatter around ``truth``.

    Per point, a centre ``c = y + noise * N(0, 1)`` is drawn around the truth ``y`` at the valid
    time and members are ``c + dispersion * noise * N(0, 1)``. With ``dispersion = 1`` truth
    and members are exchangeable given ``c`` (a calibrated ensemble: flat rank histogram,
    spread-skill ratio 1); below 1 it is under-dispersed. One checkpoint; ``member_block``
    members per unit (default all). ``write_units=False`` leaves every unit unwritten.
    """
    from swarmcast.ops.ensemble.store import EnsembleLayout, UnitWriter, create_ensemble_store

    step = (truth["time"].values[1] - truth["time"].values[0]).astype("timedelta64[ns]")
    inits = np.array(init_times, dtype="datetime64[ns]")
    channels = tuple(str(v) for v in truth.data_vars)
    layout = EnsembleLayout(
        init_times=inits,
        lead_times=np.arange(n_leads) * step,
        lat=truth["lat"].values,
        lon=truth["lon"].values,
        channels=channels,
        checkpoints=("synthetic",),
        perturbation=np.arange(members),
        sign=np.zeros(members, dtype=int),
        member_block=member_block or members,
        leads_per_shard=n_leads,
    )
    seeds = np.arange(len(inits) * members).reshape(len(inits), members)
    out = create_ensemble_store(path, layout, seeds, {"swarmcast_stage": {"synthetic": seed}})
    if not write_units:
        return out
    rng = np.random.default_rng(seed)
    centres: dict[int, np.ndarray] = {}
    for unit in layout.units():
        if unit.init not in centres:  # one centre per init time, shared by all its member blocks
            valid = inits[unit.init] + layout.lead_times
            y = np.stack([truth[c].sel(time=valid).values for c in channels], axis=1)  # (lead, C, lat, lon)
            centres = {unit.init: y + noise * rng.standard_normal(y.shape)}
        centre = centres[unit.init]
        x = centre[None] + dispersion * noise * rng.standard_normal((layout.member_block, *centre.shape))
        writer = UnitWriter(out, layout, unit)
        writer.write(x.astype(np.float32))
        writer.finish()
    return out
