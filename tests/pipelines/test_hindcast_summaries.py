"""Hindcast online summaries on real Ray actors: merged statistics equal those of the stored members."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from support.cf_check import cf_failures, to_netcdf
from support.checkpoints import write_untrained_checkpoint
from swarmcast.pipelines.config import ConfigError, parse_pipeline
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.runner import run_pipeline

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

SUMMARIES = {"variables": ["h", "u"], "quantiles": [0.1, 0.5, 0.9], "thresholds": {"u": [0.0, 5.0]}}
STAGE = {
    "kind": "hindcast",
    "init_times": {"times": ["2001-01-01T18", "2001-01-02T00"]},
    "lead_hours": 12,
    "perturbation": {"kind": "bred-vector", "pairs": 3, "seed_channels": ["h"]},
    "member_block": 7,
    "actors": {"cpus": 0.5},
    "summaries": SUMMARIES,
}


def run(base: Path, stage: dict) -> list[dict]:
    raw = {"name": "summ", "seed": 5, "stages": [stage]}
    return run_pipeline(parse_pipeline(raw), StageContext(base=base, seed=5, pipeline_raw=raw))


@pytest.fixture(scope="module")
def base(ray_session, swe_store, tmp_path_factory):
    base = tmp_path_factory.mktemp("summaries")
    (base / "data.zarr").symlink_to(swe_store)
    for s in (0, 1):
        write_untrained_checkpoint(base / "checkpoints" / f"seed-{s}", swe_store, s)
    return base


def test_merged_summaries_equal_statistics_of_the_stored_members(base, tmp_path):
    (result,) = run(base, {**STAGE, "output": "full.zarr"})
    assert result["summaries_merged"] == 2
    ds = xr.open_zarr(base / "full.zarr")
    assert ds.sizes["member"] == 14 and ds["summary_merged"].values.all()
    for v in ("h", "u"):
        x = ds[v].values.astype(np.float64)  # (init, member, lead, lat, lon)
        np.testing.assert_allclose(ds[f"{v}_mean"].values, x.mean(axis=1), rtol=1e-6)
        var = x.var(axis=1, ddof=1)
        np.testing.assert_allclose(ds[f"{v}_variance"].values, var, rtol=1e-4, atol=1e-6 * var.max())
    above = np.stack([(ds["u"].values > t).mean(axis=1) for t in (0.0, 5.0)], axis=1)
    np.testing.assert_allclose(ds["u_exceedance"].values, above)
    # quantiles pooled from 2 units of 7 members lie inside the members' range
    q = ds["h_quantile"].values
    h = ds["h"].values
    assert np.all(q >= h.min(axis=1)[:, None] - 1e-3) and np.all(q <= h.max(axis=1)[:, None] + 1e-3)
    # the summaries pass a CF checker too (dimension order as in test_score_report: init_time first)
    export = ds.drop_vars(["h", "u", "v", "vo"]).isel(init_time=[0])
    assert not cf_failures(to_netcdf(export, tmp_path / "summaries.nc"), ("§2.4 Dimensions",))
    assert ds["u_variance"].attrs["long_name"] == "ensemble variance of eastward velocity (u) (unbiased)"


def test_summaries_only_store_keeps_no_members_but_the_same_statistics(base):
    run(base, {**STAGE, "output": "full.zarr"})  # up to date: computes nothing
    run(base, {**STAGE, "output": "small.zarr", "variables": []})
    small, full = xr.open_zarr(base / "small.zarr"), xr.open_zarr(base / "full.zarr")
    assert "h" not in small and "u_mean" in small and small["member_done"].values.all()
    for name in ("h_mean", "h_variance", "h_quantile", "u_mean", "u_exceedance"):
        np.testing.assert_array_equal(small[name].values, full[name].values)
    size = lambda p: sum(f.stat().st_size for f in p.rglob("*") if f.is_file())  # noqa: E731
    assert size(base / "small.zarr") < 0.5 * size(base / "full.zarr")
    # a rerun recognises the finished store that keeps no members and leaves it as it is
    before = {f: f.stat().st_mtime_ns for f in (base / "small.zarr").rglob("*") if f.is_file()}
    assert run(base, {**STAGE, "output": "small.zarr", "variables": []})[0] == {"stage": "hindcast", "skipped": True}
    assert before == {f: f.stat().st_mtime_ns for f in (base / "small.zarr").rglob("*") if f.is_file()}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"summaries": {**SUMMARIES, "variables": ["t2m"]}}, r"summaries.variables: \['t2m'\]"),
        ({"summaries": {**SUMMARIES, "quantiles": [0.9, 0.1]}}, "quantiles must be increasing"),
        ({"summaries": {**SUMMARIES, "thresholds": {"v": [1.0]}}}, "not summarised"),
        ({"summaries": None, "variables": []}, "nothing to store"),
    ],
)
def test_bad_summary_configs_fail_before_work(base, change, message):
    with pytest.raises(ConfigError, match=message):
        run(base, {**STAGE, "output": "bad.zarr", **change})
    assert not (base / "bad.zarr").exists()
