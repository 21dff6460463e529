"""The ``swe-dataset`` stage writes the promised ERA5-shaped store (read back with xarray)."""

import json

import numpy as np
import pytest
import xarray as xr

from swarmcast.ops.data.normalization import Normalization, compute_normalization
from swarmcast.ops.data.swe import SWEConfig, simulate

pytestmark = pytest.mark.timeout(300)


def test_store_has_the_promised_dims_coords_and_attrs(swe_store):
    ds = xr.open_zarr(swe_store)
    assert dict(ds.sizes) == {"time": 27, "lat": 16, "lon": 32}
    assert ds["time"].dtype == "datetime64[ns]"
    assert ds["lat"].values[0] == 90 and ds["lat"].values[-1] == -90
    assert ds["lon"].values[0] == 0 and ds["lon"].values[-1] < 360
    assert ds["lat"].attrs["standard_name"] == "latitude" and ds["lon"].attrs["units"] == "degrees_east"
    assert ds.attrs["Conventions"].startswith("CF-")
    assert json.loads(ds.attrs["swe_config"])["seed"] == 7
    for name, units, std_name in [
        ("h", "m", None),  # a layer depth: no CF standard name fits
        ("u", "m s-1", "eastward_wind"),
        ("v", "m s-1", "northward_wind"),
        ("vo", "s-1", "atmosphere_relative_vorticity"),
    ]:
        assert ds[name].dtype == np.float32 and ds[name].dims == ("time", "lat", "lon")
        assert ds[name].attrs["units"] == units and ds[name].attrs.get("standard_name") == std_name
    # trajectories are consecutive years, 6-hourly inside each
    t = ds["time"].values
    assert t[0] == np.datetime64("2000-01-01T00") and t[9] == np.datetime64("2001-01-01T00")
    assert (np.diff(t[:9]) == np.timedelta64(6, "h")).all()
    assert ds["trajectory"].values.tolist() == [0] * 9 + [1] * 9 + [2] * 9


def test_ray_stage_equals_in_process_simulation(swe_store):
    ds = xr.open_zarr(swe_store)
    cfg = SWEConfig(nlat=16, nlon=32, trajectories=3, days=2, spinup_days=0.5, seed=7)
    expected = np.concatenate([f for _, f in simulate(cfg)])
    for i, c in enumerate(cfg.channels):
        np.testing.assert_array_equal(ds[c].values, expected[:, i])


def test_stored_normalisation_equals_a_fresh_computation(swe_store):
    ds = xr.open_zarr(swe_store)
    stored = Normalization.from_attr(ds.attrs["normalization"])
    fresh = compute_normalization(ds, ["h", "u", "v", "vo"], tendency_hours=6)
    for c in ("h", "u", "v", "vo"):
        for field in ("mean", "std", "tendency_std"):
            assert getattr(stored.channels[c], field) == pytest.approx(getattr(fresh.channels[c], field), rel=1e-9)
    # the tendency std excludes the jumps between trajectories: brute force on trajectory 0..2
    h = ds["h"].values.astype(np.float64)
    d = np.concatenate([np.diff(h[k * 9 : (k + 1) * 9], axis=0) for k in range(3)])
    assert stored.channels["h"].tendency_std == pytest.approx(d.std(), rel=1e-9)
