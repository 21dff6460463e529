"""The ensemble store: ARCHITECTURE.md schema read back with xarray, unit ownership, done flags."""

import itertools

import numpy as np
import pytest
import xarray as xr

from support.ensembles import create, layout, unit_data
from swarmcast.ops.ensemble.done_flags import done_units
from swarmcast.ops.ensemble.store import (
    ShardBuffers,
    Unit,
    UnitWriter,
    store_fingerprint,
    unit_chunk_keys,
)


def test_store_opens_with_the_design_schema(tmp_path):
    path, _ = create(tmp_path)
    ds = xr.open_zarr(path)
    assert dict(ds.sizes) == {"init_time": 2, "member": 16, "lead_time": 5, "lat": 4, "lon": 8}
    assert ds["h"].dims == ("init_time", "member", "lead_time", "lat", "lon") and ds["h"].dtype == np.float32
    assert ds["h"].attrs["units"] == "m" and ds["u"].attrs["standard_name"] == "eastward_wind"
    assert ds["init_time"].dtype == "datetime64[ns]" and ds["lead_time"].dtype == "timedelta64[ns]"
    np.testing.assert_array_equal(
        ds["valid_time"].values, ds["init_time"].values[:, None] + ds["lead_time"].values[None]
    )
    assert ds["checkpoint"].values.tolist() == ["seed-0"] * 8 + ["seed-1"] * 8
    assert ds["sign"].values.tolist()[:8] == [0, 1, -1, 1, -1, 1, -1, 0]
    assert ds["seed"].dims == ("init_time", "member") and int(ds["seed"][1, 0]) == 1016
    assert not ds["member_done"].values.any()
    assert ds.attrs["swarmcast_stage"] == {"k": 1} and store_fingerprint(path) == {"k": 1}
    assert ds["h"].encoding["shards"] == (1, 4, 2, 4, 8) and ds["h"].encoding["chunks"] == (1, 4, 1, 4, 8)
    assert np.isnan(ds["h"].values).all()  # nothing written yet


def test_units_own_disjoint_shards_covering_the_store(tmp_path):
    lay = layout()
    keys = {u: unit_chunk_keys(lay, u) for u in lay.units()}
    for a, b in itertools.combinations(keys, 2):
        assert not keys[a] & keys[b], (a, b)
    n_member_shards, n_lead_shards = lay.n_members // lay.member_block, 3
    all_keys = {(i, m, s, 0, 0) for i in range(2) for m in range(n_member_shards) for s in range(n_lead_shards)}
    assert set().union(*keys.values()) == all_keys


def test_a_unit_writes_only_its_own_shard_files_then_its_done_flags(tmp_path):
    path, lay = create(tmp_path)
    unit = Unit(1, 1, 0)
    w = UnitWriter(path, lay, unit)
    for lead in range(5):  # one lead at a time: the writer buffers to whole shards
        w.write(unit_data(lay, unit, 1, lead))
        if lead == 2:  # 2 leads flushed (one shard), lead 2 still buffered
            assert not xr.open_zarr(path)["member_done"].values.any()
    w.finish()
    files = {
        tuple(int(x) for x in p.relative_to(path / "h" / "c").parts)
        for p in (path / "h" / "c").rglob("*")
        if p.is_file()
    }
    assert files == unit_chunk_keys(lay, unit)
    ds = xr.open_zarr(path)
    sl = lay.member_slice(1, 0)
    np.testing.assert_array_equal(ds["h"].values[1, sl], unit_data(lay, unit, 5)[:, :, 0])
    np.testing.assert_array_equal(ds["u"].values[1, sl], unit_data(lay, unit, 5)[:, :, 1])
    assert ds["member_done"].values.sum() == 4 and ds["member_done"].values[1, sl].all()
    assert done_units(path, lay) == {unit}
    assert np.isnan(ds["h"].values[0]).all()  # other units untouched


def test_unit_errors(tmp_path):
    path, lay = create(tmp_path)
    w = UnitWriter(path, lay, Unit(0, 0, 1))
    with pytest.raises(ValueError, match="expected"):
        w.write(np.zeros((3, 1, 2, 4, 8), "f4"))
    w.write(unit_data(lay, Unit(0, 0, 1), 3))
    with pytest.raises(RuntimeError, match="3 of 5 leads written"):
        w.finish()
    assert not done_units(path, lay)
    with pytest.raises(ValueError, match="more leads"):
        w.write(unit_data(lay, Unit(0, 0, 1), 3))


def test_existing_store_and_bad_layouts_are_refused(tmp_path):
    create(tmp_path)
    with pytest.raises(FileExistsError, match="--overwrite"):
        create(tmp_path)
    with pytest.raises(ValueError, match="member_block 3 must divide the 8 members"):
        layout(member_block=3)
    with pytest.raises(ValueError, match="leads_per_shard"):
        layout(leads_per_shard=6)


def test_a_store_published_meanwhile_by_another_coordinator_is_kept_not_replaced(tmp_path):
    """Two runs of one hindcast may create its store at the same moment: the first published
    stays (its workers may be writing into it) and the second run's staging is dropped."""
    from swarmcast.ops.storage import publish, staging

    final = tmp_path / "e.zarr"
    first, second = staging(final, suffix=".partial-a"), staging(final, suffix=".partial-b")
    for folder, who in ((first, "first"), (second, "second")):
        (folder / "zarr.json").write_text(who)
        (folder / "data").write_text(who)
    publish(first, final, marker="zarr.json", replace=False)
    (final / "written-by-a-worker").write_text("shard")
    assert publish(second, final, marker="zarr.json", replace=False) == final
    assert (final / "zarr.json").read_text() == "first" and (final / "written-by-a-worker").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.zarr"]  # no staging folder left behind
    # replace=True (what --overwrite asks for) still replaces
    third = staging(final)
    (third / "zarr.json").write_text("third")
    publish(third, final, marker="zarr.json")
    assert (final / "zarr.json").read_text() == "third" and not (final / "written-by-a-worker").exists()


def test_uneven_pieces_and_reused_shard_buffers_store_the_same_bytes(tmp_path):
    """Pieces of 3 and 2 leads straddle the 2-lead shards; the caller overwrites its array after
    each write (the writer copied it); the next units reuse the first one's shard buffers."""
    path, lay = create(tmp_path)
    units = [Unit(0, 0, 0), Unit(0, 1, 1), Unit(1, 0, 1)]
    for unit in units:
        w = UnitWriter(path, lay, unit)
        for lead0, n in ((0, 3), (3, 2)):
            piece = unit_data(lay, unit, n, lead0).copy()
            w.write(piece)
            piece[...] = -1.0  # a rollout reusing its output array
        w.finish()
    ds = xr.open_zarr(path)
    for unit in units:
        sl = lay.member_slice(unit.checkpoint, unit.block)
        np.testing.assert_array_equal(ds["h"].values[unit.init, sl], unit_data(lay, unit, 5)[:, :, 0])
        np.testing.assert_array_equal(ds["u"].values[unit.init, sl], unit_data(lay, unit, 5)[:, :, 1])
    assert done_units(path, lay) == set(units)


def test_shard_buffers_are_reused_by_shape_and_bounded():
    buffers = ShardBuffers(keep=2)
    a, b, c = (buffers.take((2, 3)) for _ in range(3))
    assert len({id(a), id(b), id(c)}) == 3 and a.dtype == np.float32
    for buf in (a, b, c):
        buffers.give(buf)
    assert buffers.take((2, 3)) is a and buffers.take((2, 3)) is b  # c was not kept: at most 2 idle
    assert buffers.take((2, 3)) is not c
    buffers.give(a)
    assert buffers.take((3, 2)) is not a and buffers.take((2, 3)) is a


def test_deferred_shards_wait_for_finish_and_store_the_same_bytes(tmp_path):
    """Write-behind: with ``defer`` nothing reaches the store until ``finish()``, which the
    actor runs outside its compute lock; the bytes equal an immediate writer's."""
    stores = {}
    for defer in (False, True):
        path, lay = create(tmp_path / str(defer))
        unit = Unit(1, 0, 1)
        w = UnitWriter(path, lay, unit, defer=defer)
        w.write(unit_data(lay, unit, 5))
        shard_files = [p for p in (path / "h" / "c").rglob("*") if p.is_file()] if (path / "h" / "c").exists() else []
        assert len(shard_files) == (0 if defer else 3)  # 5 leads in shards of 2, 2 and 1
        w.finish()
        assert done_units(path, lay) == {unit}
        stores[defer] = {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    assert stores[True] == stores[False]
