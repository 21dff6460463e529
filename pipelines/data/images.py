"""Ray Data over image datasets: digits, PNG/JPEG folders and ``.npz`` files.

Items are listed on the driver (file names, array slices) and decoded in read tasks. Rows have
``image`` float32 (channels, height, width) in [-1, 1] and ``label`` int64 (-1 if unlabelled).
``image_shape`` gives the recorded shape without reading everything.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import ray
from ray.data import Datasource, ReadTask
from ray.data.block import BlockAccessor, BlockMetadata

from swarmcast.ops.data.images import ImageItem, ImageSource, item_count, list_items, load_items


class ImageDatasource(Datasource):
    """Images of an ``ImageSource`` as Ray Data rows (see the module docstring)."""

    def __init__(self, source: ImageSource, items: list[ImageItem] | None = None) -> None:
        super().__init__()
        self.source = source
        self.items = list_items(source) if items is None else items
        first, _ = load_items(source, [_first_item(self.items[0])])
        self.image_shape: tuple[int, ...] = tuple(first.shape[1:])

    def estimate_inmemory_data_size(self) -> int:
        return int(item_count(self.items) * 4 * np.prod(self.image_shape))

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        parts = max(1, min(parallelism if parallelism > 0 else len(self.items), len(self.items)))
        tasks = []
        for group in np.array_split(np.arange(len(self.items)), parts):
            items = [self.items[i] for i in group]
            n = item_count(items)
            meta = BlockMetadata(
                num_rows=n, size_bytes=int(n * 4 * np.prod(self.image_shape)), input_files=None, exec_stats=None
            )
            tasks.append(
                ReadTask(_reader(self.source, items, self.image_shape), meta, per_task_row_limit=per_task_row_limit)
            )
        return tasks


def _first_item(item: ImageItem) -> ImageItem:
    return ImageItem(item.path, item.lo, item.lo + 1)


def _reader(source: ImageSource, items: list[ImageItem], shape: tuple[int, ...]):  # noqa: ANN202
    def read_fn():  # noqa: ANN202 (generator of Arrow blocks)
        images, labels = load_items(source, items)
        if images.shape[1:] != shape:
            raise ValueError(
                f"images of shape {images.shape[1:]} in a dataset of shape {shape}; all images must share one shape"
            )
        yield BlockAccessor.batch_to_block({"image": images, "label": labels})

    return read_fn


def read_images(
    source: ImageSource, *, parallelism: int = -1, items: list[ImageItem] | None = None
) -> tuple[ray.data.Dataset, tuple[int, ...]]:
    """(dataset, image shape (channels, height, width)) for ``source`` (or only ``items`` of it)."""
    datasource = ImageDatasource(source, items)
    ds = ray.data.read_datasource(datasource, override_num_blocks=parallelism if parallelism > 0 else None)
    return ds, datasource.image_shape
