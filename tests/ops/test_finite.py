"""Non-finite values in initial states are found with their time, channel and count."""

import numpy as np
import xarray as xr

from swarmcast.ops.data.finite import nonfinite_states


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
    found = [(str(f.time)[:10], f.channel, f.count, f.size) for f in nonfinite_states(ds, [4, 3, 1, 0, 3], batch=2)]
    assert found == [("2001-01-02", "h", 6, 32), ("2001-01-04", "h", 1, 32), ("2001-01-04", "u", 8, 32)]
    assert str(nonfinite_states(ds, [1])[0]) == "h at 2001-01-02T00:00: 6 of 32 points"


def test_finite_states_and_states_not_asked_for_are_not_reported():
    assert nonfinite_states(dataset(), [0, 2, 4]) == []
    assert nonfinite_states(dataset(), []) == []
