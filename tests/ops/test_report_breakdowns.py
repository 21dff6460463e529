"""The report's intervals, run comparisons and findings against cases with known answers."""

import numpy as np
import pytest
import xarray as xr

from swarmcast.ops.verification import report_breakdowns as rb

LEADS = (np.arange(3) * np.timedelta64(6, "h")).astype("timedelta64[ns]")


def scores(crps_per_init, inits, per_checkpoint=None, spread=None) -> xr.Dataset:
    """A scores store's breakdown arrays for one variable ``h`` and the global region:
    ``crps_per_init`` (lead, init), ``per_checkpoint`` CRPS and ``spread`` (lead, checkpoint;
    RMSE 1 everywhere), 8 members per checkpoint."""
    per_checkpoint = np.ones((3, 2)) if per_checkpoint is None else per_checkpoint
    dims = ("variable", "region", "lead_time")
    spread = np.ones_like(per_checkpoint) if spread is None else spread
    return xr.Dataset(
        {
            "crps_per_init": ((*dims, "init_time"), crps_per_init[None, None]),
            "crps_per_checkpoint": ((*dims, "checkpoint"), per_checkpoint[None, None]),
            "rmse_per_checkpoint": ((*dims, "checkpoint"), np.ones_like(per_checkpoint)[None, None]),
            "spread_per_checkpoint": ((*dims, "checkpoint"), spread[None, None]),
        },
        coords={
            "variable": ["h"],
            "region": ["global"],
            "lead_time": LEADS,
            "init_time": inits,
            "checkpoint": [f"seed-{c}" for c in range(per_checkpoint.shape[1])],
        },
        attrs={"members": 8 * per_checkpoint.shape[1]},
    )


def test_intervals_of_dates_that_all_agree_are_that_value():
    lo, hi = rb.interval(np.full((3, 7), 2.5))
    np.testing.assert_allclose([lo, hi], 2.5)
    lo, hi = rb.interval(np.full((3, 7), 4.0), root=True)  # RMSE from MSE
    np.testing.assert_allclose([lo, hi], 2.0)


def test_an_interval_lies_within_the_dates_and_narrows_with_more_of_them():
    rng = np.random.default_rng(1)
    few, many = rng.normal(size=5), rng.normal(size=500)
    lo, hi = rb.interval(few)
    assert few.min() <= lo < few.mean() < hi <= few.max()
    lo_m, hi_m = rb.interval(many)
    assert hi_m - lo_m < (hi - lo) and lo_m < many.mean() < hi_m
    # the standard error of a mean of 500 N(0, 1) draws is 0.045: a 90% interval spans ~0.15
    assert 0.1 < hi_m - lo_m < 0.2


def test_a_run_better_on_every_date_is_significantly_better_and_an_equal_one_is_not():
    inits = np.array(["2003-01-04", "2003-01-08", "2003-01-12", "2003-01-16"], dtype="datetime64[ns]")
    a = scores(np.random.default_rng(0).uniform(1, 2, size=(3, 4)), inits)
    better = scores(a["crps_per_init"].values[0, 0] - 0.5, inits)
    cmp = rb.compare(a, better)
    np.testing.assert_allclose(cmp["difference"].values, -0.5)
    np.testing.assert_allclose([cmp["low"].values, cmp["high"].values], -0.5)
    assert cmp["significant"].values.all()
    assert rb.comparison_findings(cmp, ("a", "b")) == [
        "h: b is better at 0, 6, 12 h than a (CRPS, 90% interval over init dates)."
    ]
    same = rb.compare(a, a)
    assert not same["significant"].values.any()
    assert rb.comparison_findings(same, ("a", "b"))[0].startswith("h: b is not significantly different")


def test_runs_are_compared_on_their_common_dates_only_and_refused_without_any():
    inits = np.array(["2003-01-04", "2003-01-08", "2003-01-12"], dtype="datetime64[ns]")
    a = scores(np.array([[1.0, 2.0, 3.0]] * 3), inits)
    b = scores(np.array([[5.0, 2.5, 3.5]] * 3), np.array(["2003-01-01", "2003-01-08", "2003-01-12"], "datetime64[ns]"))
    cmp = rb.compare(a, b)
    assert cmp.attrs["init_dates"] == 2
    np.testing.assert_allclose(cmp["difference"].values, 0.5)  # 01-08 and 01-12 only
    later = scores(np.ones((3, 3)), inits + np.timedelta64(365, "D"))
    with pytest.raises(ValueError, match="share 0 init dates"):
        rb.compare(a, later)


def test_a_checkpoint_far_worse_than_the_others_or_far_off_in_spread_is_named_with_its_numbers():
    inits = np.array(["2003-01-04", "2003-01-08"], dtype="datetime64[ns]")
    per_checkpoint = np.array([[1.0, 1.0, 3.0]] * 3)
    found = rb.breakdown_findings(scores(np.ones((3, 2)), inits, per_checkpoint))
    assert found == [
        "h: checkpoint seed-2's members alone score a CRPS of 3 at 12 h, 3.0 times the median of the other"
        " checkpoints' (1)."
    ]
    # two checkpoints: each is held against the other
    found = rb.breakdown_findings(scores(np.ones((3, 2)), inits, np.array([[1.0, 2.0]] * 3)))
    assert found == [
        "h: checkpoint seed-1's members alone score a CRPS of 2 at 12 h, 2.0 times the median of the other"
        " checkpoints' (1)."
    ]
    # spread 5 x RMSE with 8 members: SSR = sqrt(9/8) x 5 = 5.3
    spread = np.array([[1.0, 5.0]] * 3)
    found = rb.breakdown_findings(scores(np.ones((3, 2)), inits, np.ones((3, 2)), spread))
    assert found == [
        "h: checkpoint seed-1's spread-skill ratio at 12 h is 5.3 (over-dispersed: its spread outgrows its error)."
    ]
    assert rb.breakdown_findings(scores(np.ones((3, 2)), inits, np.ones((3, 3)))) == []
