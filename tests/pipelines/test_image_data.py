import numpy as np
import pytest

from support.datasets import make_image_folder
from swarmcast.ops.data.images import ImageSource
from swarmcast.pipelines.data.images import read_images

pytestmark = pytest.mark.timeout(300)


def test_digits_stream_through_ray_data(ray_session):
    ds, shape = read_images(ImageSource("digits"), parallelism=3)
    assert shape == (1, 8, 8)
    rows = ds.take_all()
    assert len(rows) == 1797
    imgs = np.stack([r["image"] for r in rows])
    assert imgs.min() == -1.0 and imgs.max() == 1.0
    assert np.bincount([r["label"] for r in rows]).min() > 150


def test_png_folder_streams_exact_pixels(ray_session, tmp_path):
    folder, pixels = make_image_folder(tmp_path / "png", n=5, size=(6, 4), mode="RGB")
    ds, shape = read_images(ImageSource("folder", str(folder), mode="RGB"), parallelism=2)
    assert shape == (3, 6, 4)
    got = np.stack([r["image"] for r in ds.take_all()])
    expected = np.moveaxis(pixels, -1, 1) / 127.5 - 1

    # Ray does not promise order across tasks: compare as sets of images
    def as_pixels(x):
        return sorted(map(bytes, np.round((x + 1) * 127.5).astype(np.uint8)))

    assert as_pixels(got) == as_pixels(expected)


def test_npz_dataset_via_torch_batches(ray_session, tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (40, 7, 7), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", images=arr)
    ds, shape = read_images(ImageSource("npz", str(tmp_path / "d.npz")))
    n = sum(len(b["image"]) for b in ds.iter_torch_batches(batch_size=16))
    assert shape == (1, 7, 7) and n == 40
