import numpy as np
import pytest
import xarray as xr

from swarmcast.ops.data.climate_store import ClimateStoreWriter, climate_template
from swarmcast.ops.inspect.stores import describe_store, format_description


def _template(n_times: int = 10, chunk: int = 4) -> xr.Dataset:
    times = np.datetime64("2000-01-01", "ns") + np.arange(n_times) * np.timedelta64(6, "h")
    return climate_template(
        times,
        np.array([90.0, 0.0, -90.0]),
        np.array([0.0, 90, 180, 270]),
        ["z500", "t2m"],
        attrs={"title": "t"},
        time_chunk=chunk,
    )


def _data(n_times: int = 10) -> np.ndarray:
    return np.arange(n_times * 2 * 3 * 4, dtype=np.float32).reshape(n_times, 2, 3, 4)


def test_odd_sized_blocks_round_trip_and_metadata(tmp_path):
    path = tmp_path / "s.zarr"
    w = ClimateStoreWriter(path, _template())
    data = _data()
    for lo, hi in [(0, 3), (3, 4), (4, 9), (9, 10)]:
        w.write(data[lo:hi])
    w.finish({"extra": {"a": 1}})
    ds = xr.open_zarr(path)
    np.testing.assert_array_equal(ds["z500"].values, data[:, 0])
    np.testing.assert_array_equal(ds["t2m"].values, data[:, 1])
    assert ds["z500"].attrs["units"] == "m2 s-2" and ds["t2m"].attrs["standard_name"] == "air_temperature"
    assert ds["lat"].attrs["units"] == "degrees_north" and ds.attrs["extra"] == {"a": 1}
    assert not path.with_name(path.name + ".partial").exists()
    d = describe_store(path)
    assert d["dims"] == {"time": 10, "lat": 3, "lon": 4}
    assert d["variables"]["z500"]["chunks"] == [4, 3, 4]
    assert d["variables"]["z500"]["compressors"] == ["BloscCodec"]
    files = [p for p in path.rglob("*") if p.is_file()]
    assert d["objects"] == len(files) and d["bytes"] == sum(p.stat().st_size for p in files)
    assert "z500" in format_description(d) and "time=10" in format_description(d)


class _RecordingArray:
    """Wraps a zarr array and records every region written to it."""

    def __init__(self, array, log):
        self.array, self.log = array, log

    def __setitem__(self, key, value):
        self.log.append((self.array.path, key))
        self.array[key] = value


def test_each_chunk_is_written_once(tmp_path):
    path = tmp_path / "s.zarr"
    w = ClimateStoreWriter(path, _template())
    writes = []
    w._arrays = [_RecordingArray(a, writes) for a in w._arrays]
    data = _data()
    for i in range(10):  # one snapshot at a time: the writer must buffer to chunk boundaries
        w.write(data[i : i + 1])
    w.finish()
    expected = [(name, s) for s in (slice(0, 4), slice(4, 8), slice(8, 10)) for name in ("z500", "t2m")]
    assert writes == expected
    np.testing.assert_array_equal(xr.open_zarr(path)["t2m"].values, data[:, 1])


def test_existing_store_is_refused_and_never_touched(tmp_path):
    path = tmp_path / "s.zarr"
    w = ClimateStoreWriter(path, _template())
    w.write(_data())
    w.finish()
    before = xr.open_zarr(path)["z500"].values.copy()
    with pytest.raises(FileExistsError, match="--overwrite"):
        ClimateStoreWriter(path, _template())
    w2 = ClimateStoreWriter(path, _template(), overwrite=True)
    w2.write(_data()[:5] * 0)
    with pytest.raises(RuntimeError, match="incomplete: 5 of 10"):
        w2.finish()
    w2.abort()
    np.testing.assert_array_equal(xr.open_zarr(path)["z500"].values, before)
    assert not path.with_name(path.name + ".partial").exists()


def test_shape_and_overflow_errors(tmp_path):
    w = ClimateStoreWriter(tmp_path / "s.zarr", _template(n_times=2))
    with pytest.raises(ValueError, match="expected"):
        w.write(np.zeros((1, 3, 3, 4), np.float32))
    with pytest.raises(ValueError, match="more snapshots"):
        w.write(np.zeros((3, 2, 3, 4), np.float32))
