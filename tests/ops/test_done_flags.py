"""Done units read from the stored ``member_done`` objects, checked against a plain read of the
whole mask (the brute force the fast path replaces)."""

import numpy as np
import zarr

from support.ensembles import create, layout, unit_data
from swarmcast.ops.ensemble.done_flags import _all_true_bytes, done_units
from swarmcast.ops.ensemble.store import Unit, UnitWriter
from swarmcast.ops.storage import as_zarr


def brute_force(path, lay) -> set[Unit]:
    mask = np.asarray(zarr.open_group(as_zarr(path), mode="r")["member_done"][...], dtype=bool)
    return {u for u in lay.units() if mask[u.init, lay.member_slice(u.checkpoint, u.block)].all()}


def mark(path, lay, unit, values) -> None:
    zarr.open_group(as_zarr(path), mode="r+")["member_done"][
        unit.init, lay.member_slice(unit.checkpoint, unit.block)
    ] = values


def test_a_fresh_store_has_no_done_units_and_stores_no_flag_objects(tmp_path):
    path, lay = create(tmp_path)
    assert done_units(path, lay) == set() == brute_force(path, lay)
    assert not (path / "member_done" / "c").exists()  # why listing is cheap: False chunks are not stored


def test_random_done_units_partial_chunks_and_cleared_flags_match_a_full_read(tmp_path):
    lay = layout(
        init_times=np.arange("2023-06-01", "2023-06-07", dtype="datetime64[D]").astype("datetime64[ns]"),
        member_block=2,
    )
    path, _ = create(tmp_path, lay)
    units = list(lay.units())
    rng = np.random.default_rng(3)
    chosen = [units[i] for i in rng.choice(len(units), size=len(units) // 3, replace=False)]
    for u in chosen:
        mark(path, lay, u, True)
    partial, cleared = chosen[0], chosen[1]
    mark(path, lay, partial, [True, False])  # a chunk that exists but is not all True
    mark(path, lay, cleared, False)  # zarr deletes a chunk rewritten to the fill value
    expected = set(chosen) - {partial, cleared}
    assert done_units(path, lay) == expected == brute_force(path, lay)
    rows = [0, 4]
    assert done_units(path, lay, inits=rows) == {u for u in expected if u.init in rows}


def test_a_flag_stored_with_other_codec_bytes_is_decoded_not_guessed(tmp_path):
    """A chunk written by another encoder (here zstd with a checksum: other bytes, the same
    decoder) counts as done when it is all True and not when one member is False."""
    from zarr.codecs import ZstdCodec

    path, lay = create(tmp_path)
    arr = zarr.open_group(as_zarr(path), mode="r")["member_done"]
    assert arr.metadata.codecs[-1] == ZstdCodec(level=0, checksum=False)  # what the store writes
    done, not_done = Unit(0, 1, 0), Unit(1, 0, 1)
    for unit, values in ((done, True), (not_done, [True, True, False, True])):
        other = zarr.create_array(
            tmp_path / f"other-{unit.init}", shape=(1, 4), dtype=bool, compressors=ZstdCodec(level=5, checksum=True)
        )
        other[...] = np.broadcast_to(values, (1, 4))
        raw = (tmp_path / f"other-{unit.init}" / "c" / "0" / "0").read_bytes()
        assert raw != _all_true_bytes(arr)  # so the decoding path, not the byte match, decides
        key = arr.metadata.encode_chunk_key((unit.init, lay.member_slice(unit.checkpoint, unit.block).start // 4))
        (path / "member_done" / key).parent.mkdir(parents=True, exist_ok=True)
        (path / "member_done" / key).write_bytes(raw)
    mark(path, lay, Unit(1, 1, 0), True)  # and one written the usual way
    assert done_units(path, lay) == {done, Unit(1, 1, 0)} == brute_force(path, lay)


def test_done_units_on_an_object_store_match_a_full_read(s3_bucket, tmp_path):
    path, lay = create_remote(s3_bucket)
    for unit in (Unit(0, 0, 1), Unit(1, 1, 0)):
        w = UnitWriter(path, lay, unit)
        w.write(unit_data(lay, unit, 5))
        w.finish()
    assert done_units(path, lay) == {Unit(0, 0, 1), Unit(1, 1, 0)} == brute_force(path, lay)


def create_remote(bucket: str):
    from swarmcast.ops.ensemble.store import create_ensemble_store
    from swarmcast.ops.storage import location

    lay = layout()
    seeds = np.zeros((len(lay.init_times), lay.n_members), dtype=np.int64)
    return create_ensemble_store(location(f"{bucket}/ens.zarr"), lay, seeds, {"swarmcast_stage": {"k": 1}}), lay
