"""Growing a campaign store's init times: byte-identical to a store made in one go, restartable."""

from dataclasses import replace

import numpy as np
import pytest
import xarray as xr
import zarr

from support.ensembles import layout, unit_data
from swarmcast.ops.ensemble import extend
from swarmcast.ops.ensemble.done_flags import done_units
from swarmcast.ops.ensemble.extend import (
    BackfillError,
    extend_init_times,
    extension_in_progress,
    grown_init_times,
    stored_init_times,
)
from swarmcast.ops.ensemble.store import Unit, UnitWriter, create_ensemble_store
from swarmcast.ops.ensemble.summaries import SummarySpec, create_summary_arrays

DAYS = np.array(["2023-06-01T00", "2023-06-02T00", "2023-06-03T00"], dtype="datetime64[ns]")
SPEC = SummarySpec(("h",), (0.5,), {})
ATTRS = {"swarmcast_stage": {"k": 1}, "title": "t"}


def _seeds(lay):
    """Seeds that depend on the date, not its index (as the stages' do)."""
    days = (lay.init_times - DAYS[0]) // np.timedelta64(1, "D")
    return (days[:, None] * 1000 + np.arange(lay.n_members)[None, :]).astype("int64")


def _summaries(lay):
    n_units = len(lay.checkpoints) * lay.blocks_per_checkpoint
    shape = (len(lay.init_times), n_units, len(lay.lead_times), len(lay.lat), len(lay.lon))
    return lambda folder: create_summary_arrays(folder, SPEC, shape, {"h": "m"})


def _store(path, days):
    lay = layout(init_times=days)
    create_ensemble_store(path, lay, _seeds(lay), ATTRS, extra=_summaries(lay))
    return lay


def _write(path, lay, units):
    for unit in units:
        writer = UnitWriter(path, lay, unit)
        writer.write(unit_data(lay, unit, len(lay.lead_times)))
        writer.finish()


def _files(path):
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _merged(path, i):
    zarr.open_group(path, mode="r+", use_consolidated=False)["summary_merged"][i] = True


@pytest.fixture
def one_go(tmp_path):
    """All three days made at once, day 0's units written and its summaries marked merged."""
    path = tmp_path / "one-go.zarr"
    lay = _store(path, DAYS)
    _write(path, lay, [u for u in lay.units() if u.init == 0])
    _merged(path, 0)
    return _files(path)


def _day_one(tmp_path):
    path = tmp_path / "grown.zarr"
    lay = _store(path, DAYS[:1])
    _write(path, lay, list(lay.units()))
    _merged(path, 0)
    return path, lay


def test_appending_dates_gives_the_bytes_of_a_store_made_with_them(tmp_path, one_go):
    path, lay = _day_one(tmp_path)
    before = _files(path)
    union = grown_init_times(stored_init_times(path), DAYS[1:], "grown.zarr")
    np.testing.assert_array_equal(union, DAYS)
    grown = replace(lay, init_times=union)
    assert extend_init_times(path, grown, _seeds(grown), ATTRS, extra=_summaries(grown)) == 2
    after = _files(path)
    assert after == one_go  # every object, the root metadata included (same attributes here)
    written = [k for k in before if k.startswith(("h/c/", "u/c/", "member_done/c/", "member_done/receipts/"))]
    assert len(written) > 8 and all(after[k] == before[k] for k in written)  # untouched
    ds = xr.open_zarr(path)
    np.testing.assert_array_equal(ds["init_time"].values, DAYS)
    assert ds["member_done"].values[0].all() and not ds["member_done"].values[1:].any()
    assert ds["summary_merged"].values.tolist() == [True, False, False]
    assert np.isnan(ds["h"].values[1:]).all() and ds["h"].values[0, 5, 2, 0, 0] == 0 * 1e4 + 5 * 100 + 2 * 10
    assert done_units(path, grown) == {u for u in grown.units() if u.init == 0}


@pytest.mark.parametrize("fail_at", [1, 4, 9, -1])
def test_an_extension_killed_part_way_is_finished_by_the_next_run(tmp_path, one_go, monkeypatch, fail_at):
    """Each object write is a point a run can die at: the store's readers still see the old
    store, and the next extension (to the same or more dates) ends with the one-go bytes."""
    path, lay = _day_one(tmp_path)
    old_ds = xr.open_zarr(path)
    grown = replace(lay, init_times=DAYS[:2])
    writes, real_put = [], extend._put

    def dying_put(store, key, data):
        if (key == "zarr.json") if fail_at < 0 else len(writes) == fail_at:
            raise KeyboardInterrupt  # the run is killed here
        writes.append(key)
        real_put(store, key, data)

    monkeypatch.setattr(extend, "_put", dying_put)
    with pytest.raises(KeyboardInterrupt):
        extend_init_times(path, grown, _seeds(grown), ATTRS, extra=_summaries(grown))
    assert fail_at < 0 or len(writes) == fail_at  # the marker (write 0) and fail_at - 1 objects landed
    monkeypatch.setattr(extend, "_put", real_put)
    assert extension_in_progress(path)
    xr.testing.assert_identical(xr.open_zarr(path), old_ds)  # readers go by the root: the old store
    np.testing.assert_array_equal(stored_init_times(path), DAYS[:2])  # where it was going
    full = replace(lay, init_times=DAYS)
    assert extend_init_times(path, full, _seeds(full), ATTRS, extra=_summaries(full)) == 2
    assert not extension_in_progress(path)
    assert _files(path) == one_go


def test_dates_before_the_last_are_refused_and_known_dates_add_nothing(tmp_path):
    path, _ = _day_one(tmp_path)
    np.testing.assert_array_equal(grown_init_times(stored_init_times(path), DAYS[:1], "s"), DAYS[:1])
    np.testing.assert_array_equal(grown_init_times(DAYS[:2], DAYS[[2, 1]], "s"), DAYS)  # overlap: only the new
    with pytest.raises(BackfillError, match=r"s holds init times up to 2023-06-02T00; 1 asked for .*2023-06-01T00"):
        grown_init_times(DAYS[1:2], DAYS, "s")


def test_a_unit_of_an_appended_date_lands_where_a_one_go_store_has_it(tmp_path, one_go):
    path, lay = _day_one(tmp_path)
    grown = replace(lay, init_times=DAYS)
    extend_init_times(path, grown, _seeds(grown), ATTRS, extra=_summaries(grown))
    _write(path, grown, [Unit(2, 1, 1)])
    ref = tmp_path / "ref.zarr"
    lay3 = _store(ref, DAYS)
    _write(ref, lay3, [u for u in lay3.units() if u.init == 0] + [Unit(2, 1, 1)])
    _merged(ref, 0)
    assert _files(path) == _files(ref)
