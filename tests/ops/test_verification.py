"""xarray verification API and ``score_ensemble`` on real Zarr stores, against brute force."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr

from support.datasets import canonical_dataset, write_canonical_store, write_synthetic_ensemble
from swarmcast.kernels.sphere import lat_cell_area_weights
from swarmcast.ops import verification as ver
from swarmcast.ops.data.readers import open_climate
from swarmcast.ops.verification.scoring import default_ensemble_sizes, score_ensemble

INITS = ["2020-01-01T00", "2020-01-02T00", "2020-01-03T00"]


@pytest.fixture(scope="module")
def truth_path(tmp_path_factory):
    ds = canonical_dataset(("z500", "t2m"), n_times=24, nlat=17, nlon=32, seed=3)
    return write_canonical_store(ds, tmp_path_factory.mktemp("truth") / "truth.zarr")


def make(tmp_path, truth_path, **kw):
    truth = open_climate(truth_path)
    args = dict(init_times=INITS, n_leads=4, members=8, member_block=4, seed=1) | kw
    return write_synthetic_ensemble(tmp_path / "ens.zarr", truth, **args), truth


def brute_scores(ens: np.ndarray, obs: np.ndarray, w_lat: np.ndarray) -> dict[str, np.ndarray]:
    """Per-lead scores of ens (init, member, lead, lat, lon) vs obs (init, lead, lat, lon), row weights w_lat."""
    m = ens.shape[1]
    w = w_lat[None, None, :, None] * np.ones_like(obs)
    mean = lambda f: (f * w).sum(axis=(0, 2, 3)) / w.sum(axis=(0, 2, 3))  # noqa: E731
    pairs = np.abs(ens[:, :, None] - ens[:, None, :]).sum(axis=(1, 2))
    crps = np.abs(ens - obs[:, None]).mean(axis=1) - pairs / (2 * m * (m - 1))
    mse = mean((ens.mean(axis=1) - obs) ** 2)
    var = mean(ens.var(axis=1, ddof=1))
    ranks = (ens < obs[:, None]).sum(axis=1)  # a member equal to the truth counts as above it here
    hist = np.stack([[(w[:, j] * (ranks[:, j] == r)).sum() for r in range(m + 1)] for j in range(obs.shape[1])])
    tied = (ens == obs[:, None]).any(axis=1)  # float32 values near 5,000 do meet: a random rank there
    return {
        "crps": mean(crps),
        "rmse": np.sqrt(mse),
        "spread": np.sqrt(var),
        "ssr": np.sqrt((m + 1) / m * var / mse),
        "outlier_rate": mean(((obs < ens.min(axis=1)) | (obs > ens.max(axis=1))).astype(float)),
        "best_member_rmse": np.sqrt(mean(((ens - obs[:, None]) ** 2).min(axis=1))),
        "rank_histogram": hist / hist.sum(axis=1, keepdims=True),
        "tied_area": mean(tied.astype(float)),
    }


def test_open_ensemble_is_lazy_with_members_in_one_chunk(tmp_path, truth_path):
    path, _ = make(tmp_path, truth_path)
    ds = ver.open_ensemble(path)
    assert ds["z500"].chunks is not None
    assert ds["z500"].chunksizes["member"] == (8,)
    crps = ver.crps(ds["z500"], ds["z500"].isel(member=0))
    assert crps.chunks is not None and crps.dims == ("init_time", "lead_time", "lat", "lon")


def test_open_ensemble_honours_member_done(tmp_path, truth_path):
    path, _ = make(tmp_path, truth_path)
    done = zarr.open_group(path, mode="r+", use_consolidated=False)["member_done"]
    done[1, 4:] = False  # init 1's second member block "not written yet"
    ds = ver.open_ensemble(path)
    assert ds.sizes["init_time"] == 2
    assert list(ds["init_time"].values) == list(np.array([INITS[0], INITS[2]], dtype="datetime64[ns]"))
    partial = ver.open_ensemble(path, require_complete=False)
    assert np.isnan(partial["z500"].isel(init_time=1, member=5).values).all()
    assert not np.isnan(partial["z500"].isel(init_time=1, member=3).values).any()


def test_open_ensemble_refuses_a_store_with_nothing_done(tmp_path, truth_path):
    path, _ = make(tmp_path, truth_path, write_units=False)
    with pytest.raises(ver.IncompleteEnsembleError, match="no init time"):
        ver.open_ensemble(path)


def test_align_truth_picks_valid_times_and_names_gaps(tmp_path, truth_path):
    path, truth = make(tmp_path, truth_path)
    ens = ver.open_ensemble(path)
    aligned = ver.align_truth(ens, truth)
    assert aligned["z500"].dims == ("init_time", "lead_time", "lat", "lon")
    t = np.datetime64(INITS[1], "ns") + ens["lead_time"].values[3]
    np.testing.assert_array_equal(
        aligned["z500"].isel(init_time=1, lead_time=3).values, truth["z500"].sel(time=t).values
    )
    # the truth ends 2020-01-03T06: the last init's 12 h and 18 h leads have no truth
    with pytest.raises(ValueError, match="no data at 2 valid times"):
        ver.align_truth(ens, truth.isel(time=slice(0, 10)))


def test_score_ensemble_matches_brute_force(tmp_path, truth_path):
    path, truth = make(tmp_path, truth_path)
    ens = ver.open_ensemble(path)
    obs = ver.align_truth(ens, truth)
    scores = score_ensemble(ens, obs, ["z500", "t2m"], regions=["global", "tropics"], bootstrap=3)
    lat = ens["lat"].values
    w_lat = lat_cell_area_weights(lat)
    for v in ("z500", "t2m"):
        e = ens[v].values.astype(np.float64)
        y = obs[v].values.astype(np.float64)
        want = brute_scores(e, y, w_lat)
        got = scores.sel(variable=v, region="global")
        tied = want.pop("tied_area")  # (lead,): where ties break at random, a rank may move by one
        hist = want.pop("rank_histogram")
        assert np.all(np.abs(got["rank_histogram"].values - hist) <= tied[:, None] + 1e-12), v
        for name, value in want.items():
            np.testing.assert_allclose(got[name].values, value, rtol=1e-5, atol=1e-7, err_msg=f"{v} {name}")
        # tropics: only |lat| <= 20 rows count, with their whole-grid cell areas
        band = np.abs(lat) <= 20
        trop = brute_scores(e[..., band, :], y[..., band, :], w_lat[band])
        np.testing.assert_allclose(scores["crps"].sel(variable=v, region="tropics").values, trop["crps"], rtol=1e-5)
        # the full-size entry of the size curve is the full ensemble's RMSE
        np.testing.assert_allclose(got["rmse_by_size"].sel(ensemble_size=8).values, want["rmse"], rtol=1e-5)
    assert scores["outlier_rate_expected"].item() == pytest.approx(2 / 9)
    assert list(scores["units"].values) == [str(ens["z500"].attrs["units"]), str(ens["t2m"].attrs["units"])]


def test_skipped_blocks_score_as_if_those_init_times_were_absent_at_those_leads(tmp_path, truth_path):
    """``nonfinite_truth: skip``: a block left out counts nowhere, so each lead's scores are
    those of the ensemble without that lead's skipped init times."""
    path, truth = make(tmp_path, truth_path)
    ens = ver.open_ensemble(path)
    obs = ver.align_truth(ens, truth)
    skip = np.zeros((3, 4), bool)
    skip[1, 2] = skip[0, 3] = skip[2, 3] = True
    kw = dict(regions=["global", "tropics"], bootstrap=2, ensemble_sizes=[2, 8])
    got = score_ensemble(ens, obs, ["z500", "t2m"], skip={"z500": skip}, **kw)
    full = score_ensemble(ens, obs, ["z500", "t2m"], **kw)
    np.testing.assert_array_equal(got["truth_blocks_skipped"].sel(variable="z500"), [0, 0, 1, 2])
    np.testing.assert_array_equal(got["truth_blocks_skipped"].sel(variable="t2m"), [0, 0, 0, 0])
    names = ["crps", "rmse", "spread", "rank_histogram", "rmse_by_size", "spectrum_members", "spectrum_truth"]
    for name in names:
        np.testing.assert_allclose(got[name].sel(variable="t2m"), full[name].sel(variable="t2m"), rtol=1e-12)
    for j, keep in enumerate(([0, 1, 2], [0, 1, 2], [0, 2], [1])):
        alone = score_ensemble(ens.isel(init_time=keep), obs.isel(init_time=keep), ["z500"], **kw)
        for name in names:
            want, have = alone[name].isel(lead_time=j), got[name].sel(variable="z500").isel(lead_time=j)
            np.testing.assert_allclose(have, want.squeeze("variable"), rtol=1e-10, err_msg=f"{name} lead {j}")


def test_calibrated_ensemble_scores_like_theory_and_underdispersed_does_not(tmp_path, truth_path):
    truth = open_climate(truth_path)
    kw = dict(init_times=INITS, n_leads=4, members=8, seed=5)
    good = ver.open_ensemble(write_synthetic_ensemble(tmp_path / "good.zarr", truth, **kw))
    bad = ver.open_ensemble(write_synthetic_ensemble(tmp_path / "bad.zarr", truth, dispersion=0.3, **kw))
    s_good = score_ensemble(good, ver.align_truth(good, truth), ["z500"], spectra=False, bootstrap=4)
    s_bad = score_ensemble(bad, ver.align_truth(bad, truth), ["z500"], spectra=False, bootstrap=4)
    g, b = s_good.sel(variable="z500", region="global"), s_bad.sel(variable="z500", region="global")
    assert np.all(np.abs(g["ssr"].values - 1) < 0.1)
    assert np.all(b["ssr"].values < 0.5)
    assert np.all(np.abs(g["outlier_rate"].values - 2 / 9) < 0.05)
    assert np.all(b["outlier_rate"].values > 0.5)
    hist = g["rank_histogram"].mean("lead_time").values
    assert np.abs(hist - 1 / 9).max() < 0.03  # ~6,500 points per histogram
    u = b["rank_histogram"].mean("lead_time").values
    assert u[0] > 2.5 / 9 and u[-1] > 2.5 / 9
    # adding members helps: the empirical CRPS and ensemble-mean RMSE fall with ensemble size
    assert list(g["ensemble_size"].values) == default_ensemble_sizes(8) == [2, 4, 8]
    assert np.all(np.diff(g["empirical_crps_by_size"].values, axis=-1) < 0)
    assert np.all(np.diff(g["rmse_by_size"].values, axis=-1) < 0)


def test_score_spectra_of_members_and_mean(tmp_path, truth_path):
    path, truth = make(tmp_path, truth_path)
    ens = ver.open_ensemble(path)
    scores = score_ensemble(ens, ver.align_truth(ens, truth), ["z500"], bootstrap=1)
    s = scores.sel(variable="z500")
    # averaging independent members removes noise power: the mean's spectrum sits below the members'
    small = slice(4, None)
    assert (s["spectrum_ensemble_mean"].isel(degree=small) < s["spectrum_members"].isel(degree=small)).all()
    assert s["spectrum_truth"].sizes["degree"] == (17 + 1) // 2


def test_score_ensemble_rejects_bad_requests(tmp_path, truth_path):
    path, truth = make(tmp_path, truth_path)
    ens = ver.open_ensemble(path)
    obs = ver.align_truth(ens, truth)
    with pytest.raises(KeyError, match="unknown regions"):
        score_ensemble(ens, obs, ["z500"], regions=["arctic"])
    with pytest.raises(ValueError, match=r"ensemble_sizes must lie in 1\.\.8"):
        score_ensemble(ens, obs, ["z500"], ensemble_sizes=[4, 16])
    with pytest.raises(ValueError, match="lat grids differ"):
        ver.align_truth(ens, truth.isel(lat=slice(0, 9)))


def test_efi_on_dataarrays():
    clim = xr.DataArray(np.array([[0.0, 1.0, 2.0]]), dims=("x", "quantile"))
    fc = xr.DataArray(np.array([[1.2, 1.5, 1.9, 1.99]]), dims=("x", "member"))
    np.testing.assert_allclose(ver.extreme_forecast_index(clim, fc).values, [1 - 2 / np.pi])


def test_lazy_rank_histogram_equals_the_scores(tmp_path, truth_path):
    path, truth = make(tmp_path, truth_path)
    ens = ver.open_ensemble(path)
    obs = ver.align_truth(ens, truth)
    ranks = ver.truth_rank(ens["t2m"], obs["t2m"]).isel(lead_time=2)  # (init, lat, lon), lazy
    assert ranks.chunks is not None
    hist = ver.weighted_rank_histogram(ranks.values, ens["lat"].values, 8, "global")
    scores = score_ensemble(ens, obs, ["t2m"], spectra=False, bootstrap=1)
    np.testing.assert_allclose(hist, scores["rank_histogram"].sel(variable="t2m", region="global").isel(lead_time=2))
