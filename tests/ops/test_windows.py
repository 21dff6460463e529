import numpy as np
import pytest
import xarray as xr

from support.datasets import canonical_dataset
from swarmcast.ops.data.normalization import compute_normalization
from swarmcast.ops.data.windows import WindowSpec, read_windows, window_starts


def _two_segments() -> xr.Dataset:
    a = canonical_dataset(("z500", "t2m"), n_times=8, start="2020-01-01T00", step_hours=6, seed=1)
    b = canonical_dataset(("z500", "t2m"), n_times=5, start="2020-03-01T00", step_hours=6, seed=2)
    return xr.concat([a, b], dim="time")


def _brute_force_starts(times, span_steps, step, start=None, end=None):
    out = []
    for i in range(len(times)):
        want = [times[i] + j * step for j in range(span_steps + 1)]
        complete = i + span_steps < len(times) and all(times[i + j] == want[j] for j in range(span_steps + 1))
        inside = (start is None or want[0] >= start) and (end is None or want[-1] <= end)
        if complete and inside:
            out.append(i)
    return out


@pytest.mark.parametrize(("steps", "stride"), [(1, 1), (2, 1), (1, 2), (3, 2)])
def test_window_starts_match_brute_force_and_never_cross_gaps(steps, stride):
    ds = _two_segments()
    t = ds["time"].values
    spec = WindowSpec(("z500",), steps=steps, stride=stride)
    expected = _brute_force_starts(t, steps * stride, np.timedelta64(6, "h"))
    assert window_starts(t, spec).tolist() == expected
    assert 7 not in window_starts(t, spec)  # last state of segment 1 starts no window


def test_time_range_keeps_windows_entirely_inside():
    ds = _two_segments()
    t = ds["time"].values
    start, end = np.datetime64("2020-01-01T06"), np.datetime64("2020-01-02T12")
    spec = WindowSpec(("z500",), steps=2, start=start, end=end)
    got = window_starts(t, spec)
    assert got.tolist() == _brute_force_starts(t, 2, np.timedelta64(6, "h"), start, end)
    assert t[got[-1] + 2] <= end and t[got[0]] >= start


def test_read_windows_equals_direct_indexing_and_normalises():
    ds = _two_segments()
    spec = WindowSpec(("t2m", "z500"), steps=2, stride=1)
    starts = window_starts(ds["time"].values, spec)
    raw = read_windows(ds, starts, spec)
    assert raw.shape == (len(starts), 3, 2, 9, 16) and raw.dtype == np.float32
    for n, i in enumerate(starts):
        for j in range(3):
            np.testing.assert_array_equal(raw[n, j, 0], ds["t2m"].values[i + j])
            np.testing.assert_array_equal(raw[n, j, 1], ds["z500"].values[i + j])
    norm = compute_normalization(ds, ["t2m", "z500"])
    z = read_windows(ds, starts, spec, norm)
    s = norm.channels["z500"]
    np.testing.assert_allclose(z[:, :, 1], (raw[:, :, 1] - s.mean) / s.std, rtol=1e-5, atol=1e-5)


def test_bad_specs():
    with pytest.raises(ValueError, match="steps"):
        WindowSpec(("z500",), steps=0)
    with pytest.raises(ValueError, match="channels"):
        WindowSpec(())
