import numpy as np
import pytest
import xarray as xr

from support.datasets import canonical_dataset
from swarmcast.ops.data.normalization import Normalization, compute_normalization


def test_matches_brute_force_and_skips_pairs_across_gaps():
    a = canonical_dataset(("z500", "t2m"), n_times=7, start="2020-01-01T00", seed=1)
    b = canonical_dataset(("z500", "t2m"), n_times=5, start="2021-06-01T00", seed=2)
    ds = xr.concat([a, b], dim="time")
    norm = compute_normalization(ds, ["z500", "t2m"], tendency_hours=12, block=3)
    for c in ("z500", "t2m"):
        x = ds[c].values.astype(np.float64)
        # brute force: 12 h = 2 steps, pairs only inside each segment
        d = np.concatenate([x[2:7] - x[0:5], x[9:12] - x[7:10]])
        s = norm.channels[c]
        assert s.mean == pytest.approx(x.mean(), rel=1e-12)
        assert s.std == pytest.approx(x.std(), rel=1e-10)
        assert s.tendency_std == pytest.approx(d.std(), rel=1e-10)


def test_round_trips_through_attributes():
    ds = canonical_dataset(("z500",), n_times=4)
    norm = compute_normalization(ds, ["z500"])
    again = Normalization.from_attr(norm.to_attr())
    assert again == norm
    mean, std = again.arrays(["z500"])
    assert mean.dtype == np.float32 and std.shape == (1,)
    with pytest.raises(KeyError, match="t2m"):
        again.arrays(["t2m"])


def test_needs_pairs_at_the_tendency_interval():
    ds = canonical_dataset(("z500",), n_times=3, step_hours=24)
    with pytest.raises(ValueError, match="no pairs"):
        compute_normalization(ds, ["z500"], tendency_hours=6)
