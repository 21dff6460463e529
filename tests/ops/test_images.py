import numpy as np
import pytest

from support.datasets import make_image_folder
from swarmcast.ops.data.images import ImageSource, check_image_files, item_count, list_items, load_items, to_nchw
from swarmcast.ops.errors import InputError


def test_digits_are_bundled_and_scaled():
    src = ImageSource("digits")
    items = list_items(src)
    assert item_count(items) == 1797
    imgs, labels = load_items(src, items)
    assert imgs.shape == (1797, 1, 8, 8) and imgs.dtype == np.float32
    assert imgs.min() == -1.0 and imgs.max() == 1.0
    assert set(labels.tolist()) == set(range(10))


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_png_folder_round_trips_pixels(tmp_path, mode):
    folder, pixels = make_image_folder(tmp_path / mode, n=4, size=(5, 7), mode=mode)
    src = ImageSource("folder", str(folder), mode=mode)
    imgs, labels = load_items(src, list_items(src))
    expected = to_nchw(pixels).astype(np.float32) / 127.5 - 1.0
    assert imgs.shape == ((4, 1, 5, 7) if mode == "L" else (4, 3, 5, 7))
    np.testing.assert_allclose(imgs, expected, atol=1e-6)
    assert (labels == -1).all()


def test_npz_layouts_and_value_ranges(tmp_path):
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, size=(6, 4, 5, 3), dtype=np.uint8)  # NHWC uint8
    np.savez(tmp_path / "a.npz", images=u8)
    src = ImageSource("npz", str(tmp_path / "a.npz"))
    imgs, _ = load_items(src, list_items(src, items_per_slice=4))
    np.testing.assert_allclose(imgs, np.moveaxis(u8, -1, 1) / 127.5 - 1, atol=1e-6)

    unit = rng.random((3, 1, 4, 4)).astype(np.float32)  # NCHW in [0, 1]
    np.savez(tmp_path / "b.npz", data=unit)
    src = ImageSource("npz", str(tmp_path / "b.npz"))
    imgs, _ = load_items(src, list_items(src))
    np.testing.assert_allclose(imgs, unit * 2 - 1, atol=1e-6)


def test_layout_heuristic_and_explicit_layout():
    assert to_nchw(np.zeros((2, 32, 32, 3))).shape == (2, 3, 32, 32)
    assert to_nchw(np.zeros((2, 3, 32, 32))).shape == (2, 3, 32, 32)
    assert to_nchw(np.zeros((2, 1, 4, 4))).shape == (2, 1, 4, 4)  # 1 channel, not 4
    assert to_nchw(np.zeros((2, 3, 4, 4)), "NHWC").shape == (2, 4, 3, 4)
    with pytest.raises(ValueError, match="cannot interpret"):
        to_nchw(np.zeros((2, 5, 6, 7)))


def test_bad_image_inputs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        list_items(ImageSource("folder", str(tmp_path / "missing")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no PNG or JPEG"):
        list_items(ImageSource("folder", str(tmp_path / "empty")))
    np.savez(tmp_path / "wide.npz", images=np.full((2, 4, 4), 7.0))
    src = ImageSource("npz", str(tmp_path / "wide.npz"))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\] or \[-1, 1\]"):
        load_items(src, list_items(src))
    np.savez(tmp_path / "k.npz", images=np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="no array 'pixels'"):
        list_items(ImageSource("npz", str(tmp_path / "k.npz"), key="pixels"))


def test_mixed_shapes_in_a_folder_are_refused(tmp_path):
    make_image_folder(tmp_path, n=2, size=(4, 4))
    from PIL import Image

    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "zz.png")
    src = ImageSource("folder", str(tmp_path))
    with pytest.raises(ValueError, match="differ in shape"):
        load_items(src, list_items(src))


def test_damaged_image_files_are_named_before_any_decoding(tmp_path):
    """Before, a corrupt PNG or .npz surfaced as a traceback from inside a Ray Data read task."""
    folder, _ = make_image_folder(tmp_path / "f", n=4, size=(6, 6))
    src = ImageSource("folder", str(folder))
    check_image_files(src, list_items(src))  # all readable: silent
    good = (folder / "img_000.png").read_bytes()
    (folder / "img_001.png").write_bytes(good[: len(good) // 2])  # cut short
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF  # one byte inside the pixel data: a chunk checksum mismatch
    (folder / "img_002.png").write_bytes(bytes(flipped))
    (folder / "notes.png").write_text("not an image")
    with pytest.raises(InputError) as err:
        check_image_files(src, list_items(src))
    lines = str(err.value).splitlines()
    assert lines[0] == "3 of 5 image files cannot be read:"
    assert [line.split(":")[0] for line in lines[1:]] == [
        str(folder / n) for n in ("img_001.png", "img_002.png", "notes.png")
    ]
    assert all(": not a readable image (" in line for line in lines[1:])
    with pytest.raises(InputError, match=rf"^{folder / 'img_001.png'}: not a readable image"):
        load_items(src, [it for it in list_items(src) if it.path.endswith("img_001.png")])
    (tmp_path / "a.npz").write_bytes(b"PK\x03\x04 half a zip")
    with pytest.raises(InputError, match=rf"^{tmp_path / 'a.npz'}: not a readable .npz file \(BadZipFile"):
        list_items(ImageSource("npz", str(tmp_path / "a.npz")))
    np.savez_compressed(tmp_path / "b.npz", images=np.zeros((50, 8, 8), np.uint8))
    raw = (tmp_path / "b.npz").read_bytes()
    (tmp_path / "b.npz").write_bytes(raw[:-40])  # the zip directory cut off
    with pytest.raises(InputError, match=rf"^{tmp_path / 'b.npz'}: not a readable .npz file"):
        list_items(ImageSource("npz", str(tmp_path / "b.npz")))


def test_images_of_differing_sizes_are_named_by_the_check(tmp_path):
    make_image_folder(tmp_path, n=2, size=(4, 4))
    from PIL import Image

    Image.fromarray(np.zeros((5, 6), np.uint8)).save(tmp_path / "zz.png")
    src = ImageSource("folder", str(tmp_path))
    want = rf"2 sizes\): {tmp_path / 'img_000.png'} is 4x4, {tmp_path / 'zz.png'} is 6x5 pixels; resize"
    with pytest.raises(InputError, match=want):
        check_image_files(src, list_items(src))


def test_split_items_holds_out_the_last_images_exactly():
    from swarmcast.ops.data.images import ImageItem, ImageSource, item_count, list_items, load_items, split_items

    items = list_items(ImageSource("digits"))
    train, held = split_items(items, 180)
    assert item_count(train) == 1797 - 180 and item_count(held) == 180
    all_images, _ = load_items(ImageSource("digits"), items)
    held_images, _ = load_items(ImageSource("digits"), held)
    np.testing.assert_array_equal(held_images, all_images[-180:])
    assert split_items([ImageItem(None, 0, 10)], 0) == ([ImageItem(None, 0, 10)], [])
