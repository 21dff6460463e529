"""Partial sums per latitude row: a split block, a region or a set of init dates chosen after the
fact, and another weighting all give what scoring from scratch (or brute force) gives."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from support.datasets import canonical_dataset, write_canonical_store, write_synthetic_ensemble
from swarmcast.ops import verification as ver
from swarmcast.ops.data.readers import open_climate
from swarmcast.ops.verification.blocks import MemoryBudgetError, plan_tasks, task_bytes
from swarmcast.ops.verification.finish import finish_scores
from swarmcast.ops.verification.partial_sums import MemberGroups, block_row_sums
from swarmcast.ops.verification.scoring import score_ensemble
from swarmcast.ops.verification.sums_store import MismatchedSumsError, check_same_sums, sums_of

INITS = ["2020-01-01T00", "2020-01-02T00", "2020-01-03T00"]
SCORES = ["crps", "rmse", "spread", "ssr", "outlier_rate", "best_member_rmse", "rank_histogram", "rmse_by_size"]
SCORES += ["empirical_crps_by_size", "crps_per_init", "crps_per_checkpoint", "persistence_rmse", "climatology_crps"]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    base = tmp_path_factory.mktemp("sums")
    truth_ds = canonical_dataset(("z500", "t2m"), n_times=24, nlat=17, nlon=32, seed=3)
    truth = open_climate(write_canonical_store(truth_ds, base / "truth.zarr"))
    path = write_synthetic_ensemble(base / "ens.zarr", truth, init_times=INITS, n_leads=4, members=8, seed=1)
    ens = ver.open_ensemble(path)
    return ens, ver.align_truth(ens, truth)


def test_a_block_split_into_row_bands_sums_to_the_whole_block():
    rng = np.random.default_rng(0)
    x = np.round(rng.normal(size=(6, 9, 12)), 1)  # rounded: ties between members and truth happen
    y, y0, clim = (np.round(rng.normal(size=(9, 12)), 1) for _ in range(3))
    groups = MemberGroups.build(["a"] * 3 + ["b"] * 3, [2, 6], bootstrap=3, seed=4)
    whole = block_row_sums(x, y, y0, clim, groups, np.arange(9), (1, 2, 3))
    parts = [
        block_row_sums(x[:, r], y[r], y0[r], clim[r], groups, np.arange(9)[r], (1, 2, 3))
        for r in (slice(0, 4), slice(4, 5), slice(5, 9))
    ]
    for name, value in whole.items():
        np.testing.assert_array_equal(np.concatenate([p[name] for p in parts]), value, err_msg=name)
    ties = (x == y).any(axis=0)
    assert ties.any(), "the test needs ties to show the tie-breaking does not depend on the band"
    # brute force: the fair CRPS of row 3, and a rank count
    pairs = np.abs(x[:, 3, None] - x[None, :, 3]).sum(axis=(0, 1))
    crps = np.abs(x[:, 3] - y[3]).mean(axis=0) - pairs / (2 * 6 * 5)
    np.testing.assert_allclose(whole["crps"][3], crps.sum())
    assert whole["rank_counts"].sum() == 9 * 12


def test_a_memory_budget_that_forces_latitude_bands_gives_the_same_scores(stores):
    ens, obs = stores
    kw = dict(regions=["global", "tropics"], bootstrap=3, seed=2)
    whole = score_ensemble(ens, obs, ["z500", "t2m"], **kw)
    budget = task_bytes(8, 32, rows=3, leads=1)  # 3 of the 17 rows per task
    tasks, batch = plan_tasks(["z500"], 3, [1] * 4, 8, 17, 32, budget, spectra=True)
    assert {t.row_hi - t.row_lo for t in tasks} == {3, 2} and len(tasks) == 3 * 4 * 6
    assert batch < 8  # spectra read whole fields in member batches
    split = score_ensemble(ens, obs, ["z500", "t2m"], memory_budget_bytes=budget, **kw)
    for name in [*SCORES, "spectrum_members", "spectrum_ensemble_mean", "spectrum_truth"]:
        np.testing.assert_allclose(split[name], whole[name], rtol=1e-12, atol=1e-12, err_msg=name)
    np.testing.assert_array_equal(split["sum_rank_counts"], whole["sum_rank_counts"])


def test_a_budget_too_small_for_one_latitude_row_is_refused_with_the_numbers():
    want = r"64.0 MiB cannot hold one latitude row .*\(7424 members x 1440 longitudes.*needs 530.2 MiB per row"
    with pytest.raises(MemoryBudgetError, match=want):
        plan_tasks(["t2m"], 1, [1], 7424, 721, 1440, 64 * 2**20, spectra=False)


def test_a_region_and_init_dates_chosen_after_the_fact_equal_scoring_them_from_scratch(stores):
    ens, obs = stores
    # one climatology for both (by default it is the mean of the truth at the init times scored)
    clim = {v: obs[v].isel(lead_time=0).mean("init_time").values for v in ("z500", "t2m")}
    kw = dict(bootstrap=3, seed=2, climatology=clim)
    scored = score_ensemble(ens, obs, ["z500", "t2m"], regions=["global"], **kw)
    sums = sums_of(scored)
    later = finish_scores(sums, ["southern-extratropics", "tropics"])
    fresh = score_ensemble(ens, obs, ["z500", "t2m"], regions=["southern-extratropics", "tropics"], **kw)
    for name in SCORES:
        np.testing.assert_allclose(later[name], fresh[name], rtol=1e-12, err_msg=name)
    # a subset of init dates: the sums of those dates alone
    keep = [0, 2]
    later = finish_scores(sums.isel(init_time=keep), ["global"])
    fresh = score_ensemble(
        ens.isel(init_time=keep), obs.isel(init_time=keep), ["z500", "t2m"], regions=["global"], **kw
    )
    for name in [n for n in SCORES if n != "crps_per_init"]:
        np.testing.assert_allclose(later[name], fresh[name], rtol=1e-12, err_msg=name)


def test_cos_latitude_weighting_matches_brute_force(stores):
    ens, obs = stores
    scores = score_ensemble(ens, obs, ["t2m"], regions=["global"], bootstrap=1, spectra=False, weighting="cos-lat")
    x = ens["t2m"].values.astype(np.float64)  # (init, member, lead, lat, lon)
    y = obs["t2m"].values.astype(np.float64)  # (init, lead, lat, lon)
    w = np.cos(np.deg2rad(ens["lat"].values))[:, None] * np.ones(y.shape[-2:])
    mse = ((x.mean(axis=1) - y) ** 2 * w).sum(axis=(0, 2, 3)) / (w.sum() * y.shape[0])
    np.testing.assert_allclose(scores["rmse"].sel(variable="t2m", region="global"), np.sqrt(mse), rtol=1e-10)
    assert scores.attrs["latitude_weighting"] == "cos-lat"


def test_sums_made_another_way_are_refused(stores):
    ens, obs = stores
    a = score_ensemble(ens, obs, ["t2m"], bootstrap=2, seed=1, spectra=False)
    b = score_ensemble(ens, obs, ["t2m"], bootstrap=2, seed=9, spectra=False)  # other draws and ties
    check_same_sums(a, a.attrs["sums_identity"], "a")
    with pytest.raises(MismatchedSumsError, match="made another way"):
        check_same_sums(a, b.attrs["sums_identity"], "scores.zarr")
    with pytest.raises(MismatchedSumsError, match="holds no partial sums"):
        sums_of(xr.Dataset({"crps": ("lead_time", [1.0])}))
