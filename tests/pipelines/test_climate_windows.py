"""Ray Data streaming of climate windows: exact counts, exact pairing, splits across workers."""

import numpy as np
import pytest
import ray
import xarray as xr

from support.datasets import canonical_dataset, write_weatherbench2_store
from swarmcast.ops.data.normalization import Normalization, compute_normalization
from swarmcast.ops.data.readers import open_climate
from swarmcast.ops.data.windows import WindowSpec
from swarmcast.pipelines.data.climate_windows import ClimateWindowDatasource, read_climate_windows

pytestmark = pytest.mark.timeout(300)
CHANNELS = ("h", "u", "v", "vo")


def _truth(store):
    ds = xr.open_zarr(store)
    states = np.stack([ds[c].values for c in CHANNELS], axis=1)
    norm = Normalization.from_attr(ds.attrs["normalization"])
    mean, std = norm.arrays(CHANNELS)
    z = (states - mean[None, :, None, None]) / std[None, :, None, None]
    return ds["time"].values.astype("datetime64[ns]").astype(np.int64), z


@pytest.mark.parametrize("steps", [1, 3])
def test_yields_every_window_once_with_correct_pairing(swe_store, steps):
    times, z = _truth(swe_store)
    spec = WindowSpec(CHANNELS, steps=steps)
    ds = read_climate_windows(swe_store, spec, parallelism=3)
    rows = ds.take_all()
    # 3 trajectories x 9 snapshots; a window of k + 1 states fits 9 - k times in each
    assert len(rows) == 3 * (9 - steps)
    seen = set()
    for row in rows:
        i = int(np.searchsorted(times, row["time"]))
        assert row["x"].shape == (steps + 1, 4, 16, 32)
        for j in range(steps + 1):
            np.testing.assert_allclose(row["x"][j], z[i + j], rtol=1e-5, atol=1e-5)
        # the window never crosses a trajectory (9 snapshots each)
        assert i // 9 == (i + steps) // 9
        seen.add(i)
    assert len(seen) == len(rows)


def test_read_tasks_cover_disjoint_chunk_ranges(swe_store):
    src = ClimateWindowDatasource(swe_store, WindowSpec(CHANNELS, steps=1), None)
    groups = src.task_groups(4)
    assert src.time_chunk == 4 and 1 < len(groups) <= 4
    assert np.array_equal(np.concatenate(groups), src.starts)
    chunk_sets = [set((g // src.time_chunk).tolist()) for g in groups]
    for a in range(len(chunk_sets)):
        for b in range(a + 1, len(chunk_sets)):
            assert not chunk_sets[a] & chunk_sets[b]
    assert src.estimate_inmemory_data_size() == len(src.starts) * 2 * 4 * 16 * 32 * 4


def test_torch_batches_with_local_shuffle_keep_every_sample(swe_store):
    spec = WindowSpec(CHANNELS, steps=1)
    ds = read_climate_windows(swe_store, spec)
    times, batches = [], 0
    for batch in ds.iter_torch_batches(batch_size=5, local_shuffle_buffer_size=10, local_shuffle_seed=0):
        assert batch["x"].dtype.is_floating_point and batch["x"].shape[1:] == (2, 4, 16, 32)
        times += batch["time"].tolist()
        batches += 1
    assert sorted(times) == sorted(np.unique(times).tolist()) and len(times) == 24
    assert times != sorted(times)  # shuffled
    assert batches == 5


def test_streaming_split_feeds_two_workers_disjointly(swe_store):
    ds = read_climate_windows(swe_store, WindowSpec(CHANNELS, steps=1))
    shards = ds.streaming_split(2, equal=True)

    @ray.remote(num_cpus=0.5)  # leave CPU for the read tasks (2-core machines hang otherwise)
    def consume(it):
        return [t for b in it.iter_batches(batch_size=4, batch_format="numpy") for t in b["time"].tolist()]

    a, b = ray.get([consume.remote(shards[0]), consume.remote(shards[1])], timeout=240)
    assert not set(a) & set(b)
    assert len(a) == len(b) == 12 and len(set(a) | set(b)) == 24


def test_foreign_layouts_stream_the_same_windows(ray_session, tmp_path):
    truth = canonical_dataset(("z500", "t2m"), n_times=10, nlat=5, nlon=8)
    store = write_weatherbench2_store(truth, tmp_path / "wb2.zarr")
    spec = WindowSpec(("z500", "t2m"), steps=1, stride=2)
    with pytest.raises(ValueError, match="no normalisation statistics"):
        read_climate_windows(store, spec)
    norm = compute_normalization(open_climate(store), ["z500", "t2m"])
    rows = sorted(read_climate_windows(store, spec, normalization=norm).take_all(), key=lambda r: r["time"])
    assert len(rows) == 8
    mean, std = norm.arrays(["z500", "t2m"])
    for i, row in enumerate(rows):
        expected = np.stack([truth["z500"].values[[i, i + 2]], truth["t2m"].values[[i, i + 2]]], axis=1)
        np.testing.assert_allclose(row["x"], (expected - mean[:, None, None]) / std[:, None, None], rtol=1e-5)
    raw = read_climate_windows(store, spec, normalize=False).take(1)[0]
    np.testing.assert_array_equal(raw["x"][0, 0], truth["z500"].values[0])
