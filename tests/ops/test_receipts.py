"""Stores that verify themselves: each finished unit's receipt against the files on disk (the
brute force: ``os.stat`` of every shard file), and the damage the check must name."""

import json
import os
import warnings
from pathlib import Path

import fsspec
import numpy as np
import pytest
import xarray as xr
import zarr
from zarr.errors import ZarrUserWarning

from support.ensembles import create, finished, layout, unit_data
from swarmcast.ops.ensemble.done_flags import done_units
from swarmcast.ops.ensemble.receipts import damaged_units, forget_done, receipt_key
from swarmcast.ops.ensemble.store import EnsembleLayout, Unit, UnitWriter
from swarmcast.ops.ensemble.verify import check_store, layout_of_store
from swarmcast.ops.errors import InputError, InputNotFoundError
from swarmcast.ops.storage import as_zarr


def shard_files(path: Path, lay: EnsembleLayout, unit: Unit) -> dict[str, int]:
    """Brute force: every data file of ``unit`` on disk with its size, found by walking the folders."""
    col = lay.member_slice(unit.checkpoint, unit.block).start // lay.member_block
    found = {}
    for c in lay.channels:
        for p in (path / c / "c" / str(unit.init) / str(col)).rglob("*"):
            if p.is_file():
                found[str(p.relative_to(path))] = p.stat().st_size
    return found


def test_a_receipt_holds_every_shard_the_unit_wrote_with_its_size(tmp_path):
    path, lay = finished(tmp_path)
    group = zarr.open_group(path, mode="r")
    for unit in lay.units():
        receipt = json.loads((path / receipt_key(unit)).read_text())
        assert receipt["unit"] == [unit.init, unit.checkpoint, unit.block]
        # 2 channels x 3 lead shards (5 leads in shards of 2)
        assert receipt["shards"] == shard_files(path, lay, unit) and len(receipt["shards"]) == 6
    assert check_store(path).damage == {} and check_store(path).done == 8 == check_store(path).units
    # the receipts are invisible to zarr and xarray: no member, no warning, the same variables
    with warnings.catch_warnings():
        warnings.simplefilter("error", ZarrUserWarning)
        members = dict(zarr.open_group(path, mode="r", use_consolidated=False).members(max_depth=None))
    assert set(members) == set(dict(group.members(max_depth=None)))
    assert set(xr.open_zarr(path).data_vars) == {"h", "u", "member_done"}


def test_a_deleted_and_a_truncated_shard_are_named_and_nothing_else(tmp_path):
    path, _ = finished(tmp_path)
    os.remove(path / "h/c/0/1/0/0/0")  # unit (0, 0, 1): members 4-7 of seed-0, init 0
    shard = path / "u/c/1/2/2/0/0"  # unit (1, 1, 0): members 8-11 of seed-1, init 1
    size = shard.stat().st_size
    shard.write_bytes(shard.read_bytes()[: size // 2])
    check = check_store(path)
    assert check.done == 8 and set(check.damage) == {Unit(0, 0, 1), Unit(1, 1, 0)}
    assert check.lines() == [
        "init 2023-06-01T00, checkpoint seed-0, members 4-7: h/c/0/1/0/0/0: missing",
        f"init 2023-06-02T00, checkpoint seed-1, members 8-11: u/c/1/2/2/0/0: {size // 2} bytes, {size} when written",
    ]


def test_without_a_receipt_the_shards_the_layout_owns_must_exist(tmp_path):
    """A unit finished before receipts existed (or whose receipt was deleted) is checked for
    presence: intact is clean, a missing shard is named."""
    path, lay = finished(tmp_path)
    for unit in (Unit(0, 1, 1), Unit(1, 0, 0)):
        os.remove(path / receipt_key(unit))
    os.remove(path / "u/c/1/0/1/0/0")
    group = zarr.open_group(path, mode="r")
    assert damaged_units(group, lay, lay.units()) == {Unit(1, 0, 0): ["u/c/1/0/1/0/0: missing"]}
    (path / receipt_key(Unit(0, 0, 0))).write_text("{not json")  # unreadable: treated as none
    assert damaged_units(group, lay, [Unit(0, 0, 0)]) == {}


def test_only_units_marked_done_are_checked_and_unmarking_clears_flag_then_receipt(tmp_path):
    path, lay = finished(tmp_path)
    os.remove(path / "h/c/1/3/2/0/0")  # unit (1, 1, 1)
    group = zarr.open_group(path, mode="r+", use_consolidated=False)
    forget_done(group, lay, [Unit(1, 1, 1)])
    assert not (path / receipt_key(Unit(1, 1, 1))).exists()
    assert done_units(path, lay) == set(lay.units()) - {Unit(1, 1, 1)}
    mask = xr.open_zarr(path)["member_done"].values
    assert not mask[1, 12:].any() and mask.sum() == 16 * 2 - 4
    assert check_store(path).damage == {}  # not done, so nothing vouches for it


def test_a_shard_damaged_at_its_written_size_is_found_only_by_reading_it(tmp_path):
    path, _ = finished(tmp_path)
    shard = path / "h/c/0/0/1/0/0"
    raw = shard.read_bytes()
    shard.write_bytes(raw[:20] + bytes(10) + raw[30:])  # inside the first chunk's compressed bytes
    index = path / "u/c/1/1/0/0/0"
    raw = index.read_bytes()
    index.write_bytes(raw[:-8] + bytes(8))  # the shard index and its crc32c
    assert check_store(path).damage == {}
    deep = check_store(path, deep=True)
    assert set(deep.damage) == {Unit(0, 0, 0), Unit(1, 0, 1)}
    assert deep.damage[Unit(0, 0, 0)][0].startswith("h/c/0/0/1/0/0: unreadable (")
    assert deep.damage[Unit(1, 0, 1)][0].startswith("u/c/1/1/0/0/0: unreadable (")


def test_the_layout_is_read_back_from_the_store_alone(tmp_path):
    lay = layout(member_block=2, leads_per_shard=3)
    path, _ = create(tmp_path, lay)
    got = layout_of_store(path)
    for field in ("channels", "checkpoints", "member_block", "leads_per_shard"):
        assert getattr(got, field) == getattr(lay, field), field
    for field in ("init_times", "lead_times", "lat", "lon", "perturbation", "sign"):
        np.testing.assert_array_equal(getattr(got, field), getattr(lay, field), err_msg=field)


def test_checking_what_is_not_an_ensemble_store_names_the_path(tmp_path):
    with pytest.raises(InputNotFoundError, match="no such store"):
        check_store(tmp_path / "absent.zarr")
    (tmp_path / "folder").mkdir()
    with pytest.raises(InputError, match="not a Zarr store"):
        check_store(tmp_path / "folder")
    xr.Dataset({"t": (("x",), np.zeros(3))}).to_zarr(tmp_path / "plain.zarr", zarr_format=3)
    with pytest.raises(InputError, match="not an ensemble store"):
        check_store(tmp_path / "plain.zarr")


def test_receipts_on_an_object_store_record_and_find_the_same(s3_bucket, tmp_path):
    """The remote path (sizes through the store's getsize, one request per shard) on a real S3
    API: receipts equal those of the same units written locally, and a deleted object is named."""
    local, lay = finished(tmp_path)
    url = f"{s3_bucket}/ens.zarr"
    fs = fsspec.filesystem("s3")
    fs.put(str(local) + "/", url.removeprefix("s3://"), recursive=True)
    fs.rm(url.removeprefix("s3://") + "/member_done/receipts", recursive=True)
    group = zarr.open_group(as_zarr(url), mode="r+", use_consolidated=False)
    assert group.store.supports_listing and not isinstance(group.store, zarr.storage.LocalStore)
    unit = Unit(1, 0, 1)
    w = UnitWriter(url, lay, unit)
    w.write(unit_data(lay, unit, len(lay.lead_times)))
    w.finish()
    assert fs.cat(url.removeprefix("s3://") + "/" + receipt_key(unit)) == (local / receipt_key(unit)).read_bytes()
    fs.rm(url.removeprefix("s3://") + "/h/c/1/1/2/0/0")
    assert damaged_units(group, lay, [unit]) == {unit: ["h/c/1/1/2/0/0: missing"]}
    forget_done(group, lay, [unit])  # deleting the absent object too
    assert unit not in done_units(url, lay) and not fs.exists(url.removeprefix("s3://") + "/h/c/1/1/0/0/0")
