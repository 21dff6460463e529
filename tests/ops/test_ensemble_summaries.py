"""Online summaries: per-unit partials merged across units equal statistics of all members."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
import zarr

from swarmcast.ops.ensemble.receipts import forget_done, receipt_key
from swarmcast.ops.ensemble.store import EnsembleLayout, Unit, UnitWriter, create_ensemble_store
from swarmcast.ops.ensemble.summaries import (
    SummarySpec,
    UnitSummary,
    create_summary_arrays,
    merge_init,
    pooled_quantiles,
)
from swarmcast.ops.ensemble.verify import check_store, layout_of_store

N_LEAD, NLAT, NLON = 3, 5, 8


def build(tmp_path, spec: SummarySpec, n_units: int, block: int):
    lay = EnsembleLayout(
        init_times=np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[ns]"),
        lead_times=(np.arange(N_LEAD) * np.timedelta64(6, "h")).astype("timedelta64[ns]"),
        lat=np.linspace(90, -90, NLAT),
        lon=np.arange(NLON) * 45.0,
        channels=("h", "u"),
        checkpoints=tuple(f"c{i}" for i in range(n_units)),
        perturbation=np.arange(block),
        sign=np.zeros(block, dtype=int),
        member_block=block,
        leads_per_shard=N_LEAD,
    )
    shape = (2, n_units, N_LEAD, NLAT, NLON)
    seeds = np.zeros((2, lay.n_members), dtype=np.int64)
    return create_ensemble_store(
        tmp_path / "ens.zarr",
        lay,
        seeds,
        {"swarmcast_stage": {}},
        extra=lambda p: create_summary_arrays(p, spec, shape, {"h": "m", "u": "m s-1"}),
    )


def run_units(path, spec, members: np.ndarray, block: int) -> None:
    """members: (M, lead, channels, lat, lon) for init 0, split into units of ``block``."""
    for u in range(members.shape[0] // block):
        acc = UnitSummary(spec, ("h", "u"))
        for lead in range(N_LEAD):
            acc.add(members[u * block : (u + 1) * block, lead][:, None])
        acc.write(path, 0, u)


@pytest.mark.parametrize(("n_units", "block"), [(1, 12), (3, 4), (4, 5)])
def test_merged_moments_and_exceedance_equal_those_of_all_members(tmp_path, n_units, block):
    spec = SummarySpec(("h", "u"), (0.25, 0.5, 0.75), {"u": [-0.5, 0.0, 1.0]})
    path = build(tmp_path, spec, n_units, block)
    rng = np.random.default_rng(n_units)
    members = rng.normal(loc=3.0, scale=2.0, size=(n_units * block, N_LEAD, 2, NLAT, NLON))
    run_units(path, spec, members, block)
    merge_init(path, spec, 0, block)
    ds = xr.open_zarr(path)
    for c, v in enumerate(("h", "u")):
        x = members[:, :, c]
        np.testing.assert_allclose(ds[f"{v}_mean"].isel(init_time=0).values, x.mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(ds[f"{v}_variance"].isel(init_time=0).values, x.var(axis=0, ddof=1), rtol=1e-5)
        q = ds[f"{v}_quantile"].isel(init_time=0).values
        exact = np.quantile(x, spec.quantiles, axis=0)
        if n_units == 1:
            np.testing.assert_allclose(q, exact, rtol=1e-6, atol=1e-6)
        else:  # the pooled quantile lies between the units' own quantiles
            blocks = [x[u * block : (u + 1) * block] for u in range(n_units)]
            per_unit = np.stack([np.quantile(b, spec.quantiles, axis=0) for b in blocks])
            assert np.all(q >= per_unit.min(axis=0) - 1e-5) and np.all(q <= per_unit.max(axis=0) + 1e-5)
            assert np.abs(q - exact).mean() < 0.25 * x.std()
            # ...and is the quantile of the units' pooled piecewise-linear CDFs, found by brute force
            for point in [(0, 0, 0), (1, 2, 3), (2, 4, 7)]:  # (lead, lat, lon)
                want = brute_force_pooled_quantiles(blocks, spec.quantiles, point)
                np.testing.assert_allclose(q[(slice(None), *point)], want, atol=1e-3 * x.std())
    exceed = ds["u_exceedance"].isel(init_time=0).values
    want = np.stack([(members[:, :, 1] > t).mean(axis=0) for t in (-0.5, 0.0, 1.0)])
    np.testing.assert_allclose(exceed, want, rtol=1e-6)
    assert ds["summary_merged"].values.tolist() == [True, False]
    assert np.isnan(ds["h_mean"].isel(init_time=1).values).all()  # not merged: NaN, not zeros
    assert list(ds["threshold_u"].values) == [-0.5, 0.0, 1.0] and ds.sizes["threshold_h"] == 0
    assert ds["u_variance"].attrs["units"] == "m2 s-2"  # UDUNITS, as a CF checker parses it
    assert ds["u_mean"].attrs["long_name"] == "ensemble mean of eastward velocity (u)"


def test_partials_are_one_chunk_per_unit(tmp_path):
    spec = SummarySpec(("h",), (0.5,))
    path = build(tmp_path, spec, 3, 2)
    run_units(path, spec, np.zeros((6, N_LEAD, 2, NLAT, NLON)) + 1.0, 2)
    arr = zarr.open_group(path, mode="r")["summary_partials"]["h_mean"]
    assert arr.chunks == (1, 1, N_LEAD, NLAT, NLON)
    written = sorted(p.name for p in (path / "summary_partials" / "h_mean" / "c" / "0").iterdir())
    assert written == ["0", "1", "2"]  # init 0: units 0, 1, 2, each its own chunk


def brute_force_pooled_quantiles(blocks, levels, point) -> np.ndarray:
    """Quantiles of the equal-weight mixture of the units' piecewise-linear CDFs at one grid point,
    read off the mixture CDF evaluated on a fine grid (independent of the bisection in the code).

    Each unit's CDF has knots at its own quantiles of probability 0, the levels and 1
    (min, stored quantiles, max), which is what the units store as partial summaries.
    """
    probs = np.concatenate([[0.0], levels, [1.0]])
    knots = [np.quantile(b[(slice(None), *point)], probs) for b in blocks]
    grid = np.linspace(min(k[0] for k in knots), max(k[-1] for k in knots), 200_001)
    cdf = np.mean([np.interp(grid, k, probs) for k in knots], axis=0)
    return np.array([grid[np.searchsorted(cdf, p)] for p in levels])


def test_pooled_quantile_is_the_mixture_quantile_not_an_average_of_unit_quantiles():
    # unit A uniform on [0, 1], unit B on [10, 11], equal weight: the mixture's first quartile is
    # A's median (0.5), while averaging the units' quartiles would give 5.25
    knots = np.array([[0.0, 0.25, 0.5, 0.75, 1.0], [10.0, 10.25, 10.5, 10.75, 11.0]])[..., None]
    probs = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    got = pooled_quantiles(knots, probs, np.array([0.5, 0.5]), np.array([0.25, 0.75]))
    np.testing.assert_allclose(got[:, 0], [0.5, 10.5], atol=1e-12)


def test_pooled_quantiles_of_identical_units_equal_the_units_quantiles():
    knots = np.array([[0.0, 1.0, 2.0, 4.0]] * 3)[..., None]  # 3 units, CDF knots at p = 0, .25, .5, 1
    probs = np.array([0.0, 0.25, 0.5, 1.0])
    got = pooled_quantiles(knots, probs, np.full(3, 1 / 3), np.array([0.25, 0.5, 0.75]))
    np.testing.assert_allclose(got[:, 0], [1.0, 2.0, 3.0], atol=1e-12)
    # two units with disjoint supports: the pooled median is where the first unit's CDF ends
    two = np.array([[0.0, 0.5, 1.0], [2.0, 2.5, 3.0]])[..., None]
    med = pooled_quantiles(two, np.array([0.0, 0.5, 1.0]), np.array([0.5, 0.5]), np.array([0.5]))
    assert 1.0 - 1e-9 <= med[0, 0] <= 2.0 + 1e-9


def test_spec_validation():
    with pytest.raises(ValueError, match="increasing and inside"):
        SummarySpec(("h",), (0.5, 0.1))
    with pytest.raises(ValueError, match="not summarised"):
        SummarySpec(("h",), (0.5,), {"u": [1.0]})


def test_summary_partials_are_in_the_receipt_and_a_lost_one_is_found(tmp_path):
    """Before, receipts covered member shards only: a deleted partial chunk merged as NaN."""
    spec = SummarySpec(("h", "u"), (0.5,), {"u": [0.0]})
    path = build(tmp_path, spec, n_units=2, block=3)
    lay = layout_of_store(path)
    rng = np.random.default_rng(0)
    for unit in [u for u in lay.units() if u.init == 0]:
        members = rng.normal(size=(3, N_LEAD, 2, NLAT, NLON)).astype("f4")
        acc = UnitSummary(spec, ("h", "u"))
        for lead in range(N_LEAD):
            acc.add(members[:, lead][:, None])
        acc.write(path, 0, unit.checkpoint)  # one block per checkpoint: the unit's column
        writer = UnitWriter(path, lay, unit)
        writer.write(members)
        writer.finish()
    unit = Unit(0, 1, 0)
    on_disk = {  # brute force: every partial chunk file of the unit's column
        str(f.relative_to(path)): f.stat().st_size
        for f in (path / "summary_partials").rglob("*")
        if f.is_file() and f.relative_to(path).parts[2:4] == ("c", "0") and f.relative_to(path).parts[4] == "1"
    }
    # mean, m2, min, max and quantiles of both variables, exceedance counts of u (h has no thresholds)
    assert len(on_disk) == 11
    receipt = json.loads((path / receipt_key(unit)).read_text())["shards"]
    assert {k: v for k, v in receipt.items() if k.startswith("summary_partials/")} == on_disk
    victim = sorted(on_disk)[0]
    (path / victim).unlink()
    check = check_store(path)
    assert list(check.damage) == [unit] and check.damage[unit] == [f"{victim}: missing"]
    forget_done(zarr.open_group(path, mode="r+", use_consolidated=False), lay, [unit])
    assert not any((path / k).exists() for k in on_disk)  # rewritten whole when it is redone
    assert check_store(path).damage == {}
