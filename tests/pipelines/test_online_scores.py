"""Scores computed inside a real hindcast, date by date, equal the ``score`` stage's afterwards;
a campaign that stores no members still gets them, and its scratch store is gone at the end."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from support.checkpoints import write_untrained_checkpoint
from support.stages import SMALL_HINDCAST
from swarmcast.pipelines.config import ConfigError, parse_pipeline
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.runner import run_pipeline

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

ONLINE = {"regions": ["global", "tropics"], "bootstrap": 3, "task_cpus": 0.25}
HINDCAST = {
    **SMALL_HINDCAST,
    "campaign": {"max_concurrent_dates": 1},
    "score": {**ONLINE, "output": "online.zarr"},
}
OFFLINE = {"kind": "score", "output": "offline.zarr", "regions": ["global", "tropics"], "bootstrap": 3}
EVERY = ["crps", "rmse", "spread", "ssr", "outlier_rate", "best_member_rmse", "rmse_by_size", "empirical_crps_by_size"]
EVERY += ["crps_per_init", "mse_per_init", "crps_per_checkpoint", "rmse_per_checkpoint", "persistence_rmse"]
EVERY += ["climatology_crps", "spectrum_members", "spectrum_ensemble_mean", "spectrum_truth", "truth_blocks_skipped"]


def run(base: Path, stages: list[dict]) -> list[dict]:
    raw = {"name": "online", "seed": 1, "stages": stages}
    return run_pipeline(parse_pipeline(raw), StageContext(base=base, seed=1, pipeline_raw=raw))


def workdir(tmp_path_factory, swe_store: Path, name: str) -> Path:
    base = tmp_path_factory.mktemp(name)
    (base / "data.zarr").symlink_to(swe_store)
    for s in (0, 1):
        write_untrained_checkpoint(base / "checkpoints" / f"seed-{s}", swe_store, s)
    return base


@pytest.fixture(scope="module")
def online(ray_session, swe_store, tmp_path_factory):
    base = workdir(tmp_path_factory, swe_store, "online")
    results = run(base, [HINDCAST, OFFLINE])
    return base, results


def test_online_scores_equal_the_score_stage_on_the_same_ensemble(online):
    base, results = online
    assert results[0]["scoring_tasks"] == 3 * 4  # one task per date and variable: a whole grid fits
    a, b = xr.open_zarr(base / "online.zarr"), xr.open_zarr(base / "offline.zarr")
    for name in EVERY:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-12, atol=1e-300, err_msg=name)
    np.testing.assert_allclose(a["rank_histogram"], b["rank_histogram"], rtol=1e-12)  # the order of sums only
    np.testing.assert_array_equal(a["sum_rank_counts"], b["sum_rank_counts"])
    assert not (base / "online.zarr.partial").exists()  # the dates' sums are in the store now


def test_a_campaign_that_stores_no_members_still_gets_every_score(online, swe_store, tmp_path_factory):
    base, _ = online
    bare = workdir(tmp_path_factory, swe_store, "bare")
    (result,) = run(bare, [{**HINDCAST, "variables": []}])
    assert result["scored_variables"] == ["h", "u", "v", "vo"]
    assert not list(xr.open_zarr(bare / "hindcast.zarr").data_vars.keys() & {"h", "u", "v", "vo"})
    assert not (bare / "hindcast.zarr.scoring-scratch.zarr").exists()  # members lived until scored
    a, b = xr.open_zarr(bare / "online.zarr"), xr.open_zarr(base / "online.zarr")
    for name in EVERY:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-12, atol=1e-300, err_msg=name)
    # a rerun finds the scores made by this config and scores nothing again
    (again,) = run(bare, [{**HINDCAST, "variables": []}])
    assert again["skipped"] is True  # every unit done and the scores published: nothing to run


def test_saved_sums_made_another_way_are_refused(online, swe_store, tmp_path_factory):
    base, _ = online
    other = workdir(tmp_path_factory, swe_store, "other")
    partial = other / "online.zarr.partial"
    partial.mkdir()
    sums = xr.open_zarr(base / "online.zarr").isel(init_time=[0])
    sums = sums[[v for v in sums.data_vars if str(v).startswith(("sum_", "block_"))]].load()
    sums.attrs["sums_identity"] = "made-elsewhere"
    sums.to_zarr(partial / "2001-01-01T1800.zarr", zarr_format=3)
    with pytest.raises(ConfigError, match="made another way"):
        run(other, [HINDCAST])


def test_the_report_draws_a_region_and_a_date_finished_from_the_sums(online, monkeypatch):
    from swarmcast.ops import verification as ver
    from swarmcast.ops.data.readers import open_climate
    from swarmcast.ops.verification.scoring import score_ensemble
    from swarmcast.pipelines.cli import main

    base, _ = online
    monkeypatch.chdir(base)
    args = ["report", "online.zarr", "--regions", "southern-extratropics", "--init-times", "2001-01-02T00"]
    assert main([*args, "--output", "south"]) == 0
    page = (base / "south" / "index.html").read_text()
    found = re.search(r"<script type='application/json' id='swarmcast-scores'>(.*?)</script>", page, re.S)
    assert found, "the page embeds its scores"
    data = json.loads(found.group(1).replace("<\\/", "</"))
    assert list(data["series"]["h"]) == ["global", "southern-extratropics"]
    # brute force: that one init date, that region, scored from the members themselves
    ens = ver.open_ensemble(base / "hindcast.zarr").isel(init_time=[1])
    want = score_ensemble(
        ens, ver.align_truth(ens, open_climate(base / "data.zarr")), ["h"], regions=["southern-extratropics"]
    )
    crps = want["crps"].sel(variable="h", region="southern-extratropics").values
    np.testing.assert_allclose(data["series"]["h"]["southern-extratropics"]["crps"]["values"], crps, rtol=1e-5)
    assert main([*args[:3], "arctic", "--output", "north"]) == 2  # an unknown region: a clear error


def test_a_scores_store_another_config_made_is_kept_and_refused(online, swe_store, tmp_path_factory):
    base, _ = online
    other = workdir(tmp_path_factory, swe_store, "foreign")
    shutil.copytree(base / "online.zarr", other / "online.zarr")  # made by HINDCAST, not by the config below
    before = sorted(p.name for p in (other / "online.zarr").iterdir())
    refused = r"score\.output: .*online\.zarr exists and was not made by this hindcast config"
    with pytest.raises(ConfigError, match=refused):
        run(other, [{**HINDCAST, "score": {**HINDCAST["score"], "bootstrap": 4}}])
    assert sorted(p.name for p in (other / "online.zarr").iterdir()) == before
    assert not (other / "hindcast.zarr").exists()  # refused before the store was created
