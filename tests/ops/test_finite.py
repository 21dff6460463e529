"""Non-finite and out-of-bounds values in initial states are found with their time, channel and count."""

import numpy as np
import xarray as xr

from swarmcast.ops.data.finite import bad_states


def dataset() -> xr.Dataset:
    times = np.arange("2001-01-01", "2001-01-06", dtype="datetime64[D]").astype("datetime64[ns]")
    h = np.ones((5, 4, 8))
    u = np.zeros((5, 4, 8))
    h[1, :2, :3] = np.nan  # 6 points
    h[3, 0, 0] = np.inf
    u[3, 1, :] = -np.inf  # 8 points
    return xr.Dataset({"h": (("time", "lat", "lon"), h), "u": (("time", "lat", "lon"), u)}, coords={"time": times})


def test_every_nonfinite_state_is_reported_with_its_count():
    ds = dataset()
    found = [(str(f.time)[:10], f.channel, f.count, f.size) for f in bad_states(ds, [4, 3, 1, 0, 3], batch=2)]
    assert found == [("2001-01-02", "h", 6, 32), ("2001-01-04", "h", 1, 32), ("2001-01-04", "u", 8, 32)]
    assert str(bad_states(ds, [1])[0]) == "h at 2001-01-02T00:00: 6 of 32 points NaN or infinite"


def test_finite_states_and_states_not_asked_for_are_not_reported():
    assert bad_states(dataset(), [0, 2, 4]) == []
    assert bad_states(dataset(), []) == []


def test_values_outside_the_bounds_are_counted_apart_from_nonfinite_ones():
    ds = dataset()
    ds["u"][2, 0, :5] = 1e20  # a fill value left in the field
    ds["u"][3, 2, 0] = -40.0
    found = bad_states(ds, range(5), bounds={"u": (-30.0, 30.0)})
    assert [(str(f.time)[:10], f.channel, f.count, f.what) for f in found] == [
        ("2001-01-02", "h", 6, "NaN or infinite"),
        ("2001-01-03", "u", 5, "outside [-30, 30]"),
        ("2001-01-04", "h", 1, "NaN or infinite"),
        ("2001-01-04", "u", 8, "NaN or infinite"),  # the -inf row is not also "outside"
        ("2001-01-04", "u", 1, "outside [-30, 30]"),
    ]
    assert bad_states(ds, range(5), bounds={"h": (0.0, 2.0)}) == bad_states(ds, range(5))  # h within bounds
