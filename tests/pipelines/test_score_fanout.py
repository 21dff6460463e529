"""The ``score`` stage as Ray tasks: a forced latitude split, a killed task, scores finished from
stored sums for a new region, and the inputs it refuses."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from support.datasets import canonical_dataset, write_canonical_store, write_synthetic_ensemble
from support.processes import Killer
from swarmcast.ops.data.readers import open_climate
from swarmcast.ops.verification.blocks import task_bytes
from swarmcast.pipelines.config import ConfigError, parse_pipeline
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.runner import run_pipeline
from swarmcast.pipelines.scoring.fanout import TASK_NAME

pytestmark = [pytest.mark.timeout(600)]

INITS = ["2020-01-01T00", "2020-01-01T12", "2020-01-02T00"]
SCORE = {"kind": "score", "forecast": "ens.zarr", "truth": "truth.zarr", "regions": ["global"], "bootstrap": 2}
COMPARED = ["crps", "rmse", "spread", "rank_histogram", "rmse_by_size", "crps_per_init", "spectrum_members"]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("fanout")
    truth = canonical_dataset(("z500", "t2m"), n_times=20, nlat=17, nlon=32, seed=3)
    truth_store = open_climate(write_canonical_store(truth, base / "truth.zarr"))
    write_synthetic_ensemble(base / "ens.zarr", truth_store, init_times=INITS, n_leads=4, members=16, seed=2)
    return base


def run(base: Path, stage: dict, overwrite: bool = False) -> dict:
    raw = {"name": "score", "seed": 1, "stages": [stage]}
    ctx = StageContext(base=base, seed=1, overwrite=overwrite, pipeline_raw=raw)
    return run_pipeline(parse_pipeline(raw), ctx)[0]


def test_a_latitude_split_on_ray_gives_the_scores_of_whole_blocks(ray_session, base):
    whole = run(base, {**SCORE, "output": "whole.zarr"})
    budget_mb = task_bytes(16, 32, rows=4, leads=1) / 2**20  # 4 of the 17 latitude rows per task
    split = run(base, {**SCORE, "output": "split.zarr", "memory_budget_mb": budget_mb})
    a, b = xr.open_zarr(base / "whole.zarr"), xr.open_zarr(base / "split.zarr")
    assert whole["tasks"] == 2 * 3 * 4  # one per variable, init and lead: the whole grid fits
    assert split["tasks"] == 2 * 3 * 4 * 5  # 17 rows in bands of 4 (or 3, after rounding the MiB)
    for name in COMPARED:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-12, err_msg=name)


def test_a_killed_scoring_task_is_retried_and_the_scores_are_unchanged(ray_session, base):
    run(base, {**SCORE, "output": "reference.zarr", "bootstrap": 40})
    # Ray titles a task's worker "ray::score_block" while the task runs
    with Killer(f"ray::{TASK_NAME}", poll_s=0.005) as killer:
        run(base, {**SCORE, "output": "killed.zarr", "bootstrap": 40})
    assert killer.killed, "no scoring task was killed"
    a, b = xr.open_zarr(base / "reference.zarr"), xr.open_zarr(base / "killed.zarr")
    for name in COMPARED:
        np.testing.assert_array_equal(b[name], a[name], err_msg=name)


def test_scores_for_a_new_region_come_from_the_stored_sums(ray_session, base):
    run(base, {**SCORE, "output": "first.zarr"})
    regions = ["tropics", "southern-extratropics"]
    result = run(base, {**SCORE, "output": "later.zarr", "from_sums": "first.zarr", "regions": regions})
    assert result["tasks"] == 0  # nothing read from the ensemble
    run(base, {**SCORE, "output": "fresh.zarr", "regions": regions})
    later, fresh = xr.open_zarr(base / "later.zarr"), xr.open_zarr(base / "fresh.zarr")
    assert list(later["region"].values) == regions
    for name in COMPARED:
        np.testing.assert_allclose(later[name], fresh[name], rtol=1e-12, err_msg=name)


def test_bad_scoring_inputs_are_refused_before_work(ray_session, base, tmp_path):
    with pytest.raises(ConfigError, match=r"memory_budget_mb: 0.5 MiB cannot hold one latitude row"):
        wide = tmp_path / "wide"
        wide.mkdir()
        truth = canonical_dataset(("t2m",), n_times=8, nlat=9, nlon=4096, seed=1)
        store = open_climate(write_canonical_store(truth, wide / "truth.zarr"))
        write_synthetic_ensemble(wide / "ens.zarr", store, init_times=INITS[:1], n_leads=2, members=16, seed=2)
        run(wide, {**SCORE, "memory_budget_mb": 0.5})
    kelvin = tmp_path / "kelvin"
    kelvin.mkdir()
    truth = xr.open_zarr(base / "truth.zarr").load()
    truth["t2m"].attrs["units"] = "degC"
    write_canonical_store(truth, kelvin / "truth.zarr")
    (kelvin / "ens.zarr").symlink_to(base / "ens.zarr")
    with pytest.raises(ConfigError, match=r"t2m is in 'K' in the forecast but 'degC' in the truth"):
        run(kelvin, SCORE)
    with pytest.raises(ConfigError, match=r"from_sums: .*holds no partial sums"):
        xr.Dataset({"crps": ("lead_time", [1.0])}).to_zarr(tmp_path / "old.zarr", zarr_format=3)
        run(tmp_path, {**SCORE, "from_sums": "old.zarr"})
    with pytest.raises(ConfigError, match=r"truth: the truth has no data at .* valid times, first \['2020-01-02T"):
        short = tmp_path / "short"
        short.mkdir()
        write_canonical_store(xr.open_zarr(base / "truth.zarr").isel(time=slice(0, 6)), short / "truth.zarr")
        (short / "ens.zarr").symlink_to(base / "ens.zarr")
        run(short, SCORE)


def test_unfinished_dates_are_left_out_and_other_grids_refused(ray_session, base, tmp_path, capsys):
    part = tmp_path / "part"
    part.mkdir()
    shutil.copytree(base / "ens.zarr", part / "ens.zarr")
    (part / "truth.zarr").symlink_to(base / "truth.zarr")
    done = zarr.open_group(part / "ens.zarr", mode="r+", use_consolidated=False)["member_done"]
    done[2, :4] = False  # the last date is still being written
    result = run(part, SCORE)
    assert result["init_times"] == 2
    assert "scoring the 2 finished init times; 1 unfinished left out" in capsys.readouterr().out
    coarse = tmp_path / "coarse"
    coarse.mkdir()
    write_canonical_store(xr.open_zarr(base / "truth.zarr").isel(lat=slice(0, 9)), coarse / "truth.zarr")
    (coarse / "ens.zarr").symlink_to(base / "ens.zarr")
    with pytest.raises(ConfigError, match="truth: forecast and truth lat grids differ"):
        run(coarse, SCORE)
