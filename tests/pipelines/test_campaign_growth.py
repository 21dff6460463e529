"""A daily campaign grows one store: `init_times: latest` on data that gains a time each day,
the store appended to (byte-identical to one made with both dates), no-op and refused reruns."""

import json

import numpy as np
import pytest
import xarray as xr

from support.hindcasts import STAGE, files, hindcast_inputs, run
from swarmcast.ops.ensemble.extend import BackfillError
from swarmcast.pipelines.config import ConfigError

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]
DAY1, DAY2 = "2001-01-01T18", "2001-01-02T00"
DAILY = {**STAGE, "init_times": "latest"}


def _data_until(swe_store, folder, last):
    """A copy of the SWE store up to ``last`` (the analysis of that day), as a daily feed has it."""
    ds = xr.open_zarr(swe_store).sel(time=slice(None, last)).load()
    for var in ds.variables.values():
        var.encoding = {}
    ds.to_zarr(folder / "data.zarr", mode="w", zarr_format=3, consolidated=True)


def _next_analysis(swe_store, folder, t):
    """The next day's analysis arrives: the data store gains the time ``t``."""
    ds = xr.open_zarr(swe_store).sel(time=[np.datetime64(t, "ns")]).load()
    for var in ds.variables.values():
        var.encoding = {}
    ds.to_zarr(folder / "data.zarr", append_dim="time", zarr_format=3, consolidated=True)


@pytest.fixture(scope="module")
def campaign(ray_session, swe_store, tmp_path_factory):
    """Day 1 and day 2 of a daily `latest` campaign into one store, and the same two dates in one go."""
    ckpts = hindcast_inputs(swe_store, tmp_path_factory.mktemp("growth-inputs"))[1]
    daily = tmp_path_factory.mktemp("daily")
    (daily / "checkpoints").symlink_to(ckpts)
    _data_until(swe_store, daily, DAY1)
    day1 = run(daily, DAILY)[0]
    day1_files = files(daily / "hindcast.zarr")
    _next_analysis(swe_store, daily, DAY2)
    day2 = run(daily, DAILY)[0]
    one_go = tmp_path_factory.mktemp("one-go")
    (one_go / "checkpoints").symlink_to(ckpts)
    (one_go / "data.zarr").symlink_to(swe_store)
    run(one_go, STAGE)  # init_times: both dates
    return daily, (day1, day1_files), day2, one_go / "hindcast.zarr"


def test_the_second_day_appends_its_date_and_the_store_is_the_one_made_in_one_go(campaign):
    daily, (day1, day1_files), day2, one_go = campaign
    grown = daily / "hindcast.zarr"
    assert (day1["units"], day1["computed"]) == (2, 2) and (day2["units"], day2["computed"]) == (4, 2)
    ref, got = files(one_go), files(grown)
    assert got.keys() == ref.keys()
    assert [k for k in ref if got[k] != ref[k]] == ["zarr.json"]  # root: the pipeline and history it ran with
    written = [k for k in day1_files if "/c/" in k and k.split("/")[0] in ("h", "u", "v", "vo", "member_done")]
    assert written and all(got[k] == day1_files[k] for k in written)  # day 1's bytes untouched
    ds, want = xr.open_zarr(grown), xr.open_zarr(one_go)
    xr.testing.assert_identical(ds.drop_attrs(), want.drop_attrs())
    assert [str(t)[:13] for t in ds["init_time"].values] == [DAY1, DAY2] and ds["member_done"].values.all()
    assert "init times appended by swarmcast" in ds.attrs["history"]
    assert json.loads(ds.attrs["pipeline"])["stages"][0]["init_times"] == "latest"


def test_a_tick_without_new_data_computes_nothing_and_says_so(campaign, capsys):
    daily, *_ = campaign
    before = files(daily / "hindcast.zarr")
    capsys.readouterr()
    assert run(daily, DAILY)[0] == {"stage": "hindcast", "skipped": True}
    out = capsys.readouterr().out
    assert f"[hindcast] up to date (hindcast.zarr already holds init time {DAY2}, all done; no new dates" in out
    assert files(daily / "hindcast.zarr") == before


def test_appending_to_a_store_of_other_settings_or_before_its_last_date_is_refused(campaign, tmp_path):
    daily, *_ = campaign
    before = files(daily / "hindcast.zarr")
    other = {**DAILY, "lead_hours": 18, "perturbation": {**STAGE["perturbation"], "pairs": 1}}
    with pytest.raises(ConfigError, match=r"config or checkpoints \(differing: lead_hours, perturbation.pairs\)"):
        run(daily, other)
    assert files(daily / "hindcast.zarr") == before
    (tmp_path / "checkpoints").symlink_to((daily / "checkpoints").resolve())
    (tmp_path / "data.zarr").symlink_to((daily / "data.zarr").resolve())
    run(tmp_path, {**STAGE, "init_times": {"times": [DAY2]}})
    later = files(tmp_path / "hindcast.zarr")
    with pytest.raises(
        BackfillError, match=rf"up to {DAY2}; 1 asked for .*\({DAY1}\)\. A campaign store grows forward"
    ):
        run(tmp_path, STAGE)
    assert files(tmp_path / "hindcast.zarr") == later
