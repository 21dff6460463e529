"""Tiled inner chunks of the ensemble store: the sizes chosen, the values written and read
back unchanged, and the bytes a point read fetches, counted at the store."""

import numpy as np
import pytest
import zarr

from support.ensembles import finished, layout, unit_data
from swarmcast.ops.ensemble.chunking import MIN_CHUNK_BYTES, ByteCountingStore, auto_tiles, leads_per_chunk
from swarmcast.ops.ensemble.verify import check_store, layout_of_store


def test_auto_tiles_are_4_by_4_unless_a_tile_would_have_under_4_rows_or_columns():
    assert auto_tiles(32, 64) == (4, 4)
    assert auto_tiles(721, 1440) == (4, 4)
    assert auto_tiles(8, 12) == (2, 3)
    assert auto_tiles(3, 64) == (1, 4)


def test_a_tile_spans_the_fewest_leads_that_fill_a_chunk():
    assert leads_per_chunk(16, 60, 181 * 360, (1, 1)) == 1  # untiled: one map per chunk
    assert leads_per_chunk(16, 60, 181 * 360, (4, 4)) == 1  # 0.25 degrees: 4.2 MB per lead already
    assert leads_per_chunk(5, 9, 8 * 16, (4, 4)) == 9  # the demo: 2.5 kB per lead, all leads
    per_lead = 4 * 64 * 4  # member_block 4, 64 points, float32
    need = -(-MIN_CHUNK_BYTES // per_lead)  # 1024 leads: the smallest divisor of 2048 at least that
    assert leads_per_chunk(4, 2048, 64, (2, 2)) == need
    assert leads_per_chunk(4, 2047, 64, (2, 2)) == 2047  # 2047 = 23 x 89: no divisor in between


def test_tiles_of_a_grid_they_do_not_divide_store_every_value_unchanged(tmp_path):
    lay = layout(lat=np.linspace(90, -90, 5), lon=np.arange(9) * 40.0, tiles=(2, 4))
    path, lay = finished(tmp_path, lay)
    arr = zarr.open_group(str(path), mode="r")["h"]
    assert arr.shards == (1, 4, 2, 6, 12) and arr.chunks == (1, 4, 2, 3, 3)  # padded to whole tiles
    assert arr.shape[-2:] == (5, 9)
    for unit in lay.units():
        want = unit_data(lay, unit, len(lay.lead_times))[:, :, 0]  # channel h
        got = arr[unit.init, lay.member_slice(unit.checkpoint, unit.block)]
        np.testing.assert_array_equal(got, want)
    back = layout_of_store(path)
    assert back.tiles == (2, 4) and back.inner_shape() == lay.inner_shape()
    assert not check_store(path, deep=True).damage  # receipts agree with the padded shards


def test_a_point_read_fetches_a_sixteenth_of_a_tiled_variable_and_all_of_an_untiled_one(tmp_path):
    fractions = {}
    for tiles in ((1, 1), (4, 4)):
        lay = layout(lat=np.linspace(90, -90, 32), lon=np.arange(64) * 5.625, tiles=tiles)
        path, lay = finished(tmp_path / f"t{tiles[0]}", lay)
        # smooth, distinct fields so every tile compresses to a similar size
        g = zarr.open_group(str(path), mode="r+")
        rng = np.random.default_rng(0)
        g["h"][:] = np.cumsum(np.cumsum(rng.standard_normal(g["h"].shape), -1), -2).astype("f4")
        stored = sum(f.stat().st_size for f in (path / "h").rglob("*") if f.is_file())
        counting = ByteCountingStore(path)
        point = zarr.open_array(counting, path="h", mode="r")[:, :, :, 10, 40]
        np.testing.assert_array_equal(point, g["h"][:, :, :, 10, 40])
        fractions[tiles] = counting.fetched / stored
    assert fractions[(1, 1)] > 0.99
    # 1/16 of the data plus each shard's index (16 entries of 16 bytes)
    assert fractions[(4, 4)] == pytest.approx(1 / 16, rel=0.15)


def test_tiles_that_do_not_fit_the_grid_are_refused_with_the_axis():
    with pytest.raises(ValueError, match="5 lat tiles do not fit a grid of 4 lat points"):
        layout(tiles=(5, 1))
    with pytest.raises(ValueError, match="0 lon tiles"):
        layout(tiles=(1, 0))
