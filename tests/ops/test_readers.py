import numpy as np
import pytest
import xarray as xr

from support.datasets import (
    canonical_dataset,
    write_arco_era5_store,
    write_canonical_store,
    write_weatherbench2_store,
)
from swarmcast.ops.data.readers import StoreLayoutError, available_channels, open_climate

CHANNELS = ("z500", "t850", "z850", "t2m", "u10m")


@pytest.fixture(scope="module")
def truth():
    return canonical_dataset(CHANNELS, n_times=6, nlat=7, nlon=12)


@pytest.fixture(scope="module")
def stores(truth, tmp_path_factory):
    d = tmp_path_factory.mktemp("layouts")
    return {
        "swarmcast": write_canonical_store(truth, d / "own.zarr"),
        "wb2": write_weatherbench2_store(truth, d / "wb2.zarr"),
        "wb2-lon180": write_weatherbench2_store(truth, d / "wb2_180.zarr", lon_180=True),
        "arco-era5": write_arco_era5_store(truth, d / "arco.zarr"),
    }


@pytest.mark.parametrize("layout", ["swarmcast", "wb2", "wb2-lon180", "arco-era5"])
def test_every_layout_reads_back_identical_tensors(truth, stores, layout):
    ds = open_climate(stores[layout], ["t2m", "z500", "u10m", "t850"])
    assert list(ds.data_vars) == ["t2m", "z500", "u10m", "t850"]
    assert ds["lat"].values[0] == 90 and ds["lat"].values[-1] == -90
    np.testing.assert_array_equal(ds["lon"].values, truth["lon"].values)
    np.testing.assert_array_equal(ds["time"].values, truth["time"].values)
    for c in ds.data_vars:
        assert ds[c].dims == ("time", "lat", "lon")
        np.testing.assert_array_equal(ds[c].values, truth[c].values)


def test_wb2_store_really_has_the_wb2_schema(stores):
    raw = xr.open_zarr(stores["wb2"])
    assert {"geopotential", "temperature", "2m_temperature", "10m_u_component_of_wind"} <= set(raw.data_vars)
    assert raw["geopotential"].dims == ("time", "level", "latitude", "longitude")
    assert raw["latitude"].values[0] < raw["latitude"].values[-1]
    arco = xr.open_zarr(stores["arco-era5"], decode_times=False)
    assert arco["time"].attrs["units"].startswith("hours since 1900")


def test_all_channels_by_default_with_levels_expanded(stores):
    # WB2 stores keep every level for every levelled variable: t500 exists (NaN-padded here)
    expected = {*CHANNELS, "t500"}
    assert set(open_climate(stores["wb2"]).data_vars) == expected
    raw = xr.open_zarr(stores["wb2"]).rename(latitude="lat", longitude="lon")
    assert set(available_channels(raw)) == expected


def test_missing_channel_names_it_and_lists_what_exists(stores):
    with pytest.raises(KeyError, match=r"\['z300'\] not in the store; available: .*z500"):
        open_climate(stores["wb2"], ["z500", "z300"])


def test_missing_path_and_wrong_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        open_climate(tmp_path / "nope.zarr")
    bad = xr.Dataset({"x": (("time", "y"), np.zeros((2, 3)))}, coords={"time": [0, 1]})
    bad.to_zarr(tmp_path / "bad.zarr", zarr_format=3)
    with pytest.raises(StoreLayoutError, match="no 'lat' dimension"):
        open_climate(tmp_path / "bad.zarr")
