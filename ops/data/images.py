"""Image datasets as float32 tensors scaled to [-1, 1], shape (n, channels, height, width).

Sources: a folder of PNG/JPEG files (searched recursively, sorted by path), ``.npz`` files of
arrays, and scikit-learn's bundled handwritten digits (1,797 images of 8 x 8, offline).
Listing (``list_items``) is cheap and separate from decoding (``load_items``), so a reader can
split the items across tasks and decode each share where it runs. ``check_image_files`` reads
every file once before any training starts: a corrupt or non-image file, or files of differing
sizes, are named then rather than from inside a Ray Data read task. It costs one read of each
file (PIL's ``verify``: headers and PNG chunk checksums, no decoding); damage it cannot see (a
JPEG whose data is cut short) still fails decoding with an ``InputError`` naming the file.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from swarmcast.ops.errors import InputError, InputNotFoundError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ImageKind = Literal["digits", "folder", "npz"]


@dataclass(frozen=True)
class ImageSource:
    """Where images come from and how to decode them."""

    kind: ImageKind = "digits"
    """"digits" (bundled), "folder" (PNG/JPEG files) or "npz" (file or folder of .npz)."""
    path: str | None = None
    """Folder or file; unused for digits."""
    mode: Literal["L", "RGB"] = "L"
    """Colour mode for folders: "L" (1 channel) or "RGB" (3 channels)."""
    key: str | None = None
    """Array name inside .npz files; None takes "images" if present, else the first array."""
    layout: Literal["auto", "NCHW", "NHWC"] = "auto"
    """Axis order of 4-D .npz arrays; "auto" guesses from which axis has 1, 3 or 4 entries."""


@dataclass(frozen=True)
class ImageItem:
    """One unit of decoding: a file, or a slice [lo, hi) of an array."""

    path: str | None
    lo: int = 0
    hi: int = 1


def _npz_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(path.rglob("*.npz"))


UNREADABLE = (OSError, EOFError, SyntaxError, ValueError, zipfile.BadZipFile, zlib.error)
"""What numpy and PIL raise on a damaged file (PIL raises SyntaxError for some bad headers)."""


def _npz_array(file: Path, key: str | None) -> np.ndarray:
    try:
        with np.load(file, allow_pickle=False) as z:
            names = list(z.keys())
            if not names:
                raise InputError(f"{file}: no arrays in the .npz file")
            name = key or ("images" if "images" in names else names[0])
            if name not in names:
                raise InputError(f"{file}: no array {name!r}; arrays: {names}")
            return z[name]
    except InputError:
        raise
    except UNREADABLE as err:  # a cut-short or overwritten file; a CRC mismatch is a BadZipFile
        raise InputError(f"{file}: not a readable .npz file ({type(err).__name__}: {err})") from None


def _decode_image(path: str, mode: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert(mode))
    except UNREADABLE as err:
        raise InputError(f"{path}: not a readable image ({type(err).__name__}: {err})") from None


def check_image_files(source: ImageSource, items: list[ImageItem], *, shown: int = 10) -> None:
    """Raise an ``InputError`` naming every unreadable image file of ``items`` (the first
    ``shown`` of them) and, when the readable ones differ in size, two that differ. Folders
    only: ``.npz`` arrays are read whole by ``list_items`` already, which names a bad file."""
    if source.kind != "folder":
        return
    from PIL import Image

    bad, sizes = [], {}
    for item in items:
        try:
            with Image.open(str(item.path)) as im:
                sizes.setdefault(im.size, item.path)
                im.verify()
        except UNREADABLE as err:
            bad.append(f"{item.path}: not a readable image ({type(err).__name__}: {err})")
    if bad:
        more = [f"... and {len(bad) - shown} more"] if len(bad) > shown else []
        raise InputError("\n".join([f"{len(bad)} of {len(items)} image files cannot be read:", *bad[:shown], *more]))
    if len(sizes) > 1:
        (a, pa), (b, pb) = list(sizes.items())[:2]
        raise InputError(
            f"images differ in size ({len(sizes)} sizes): {pa} is {a[0]}x{a[1]}, {pb} is {b[0]}x{b[1]} pixels; "
            "resize them to one size"
        )


def list_items(source: ImageSource, *, items_per_slice: int = 512) -> list[ImageItem]:
    """The decodable items of ``source``; raises FileNotFoundError/ValueError on bad input."""
    if source.kind == "digits":
        n = 1797
        return [ImageItem(None, lo, min(lo + items_per_slice, n)) for lo in range(0, n, items_per_slice)]
    if source.path is None:
        raise ValueError(f"image source kind {source.kind!r} needs a path")
    path = Path(source.path)
    if not path.exists():
        raise InputNotFoundError(f"image path not found: {path}")
    if source.kind == "folder":
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"{path}: no PNG or JPEG files found")
        return [ImageItem(str(f)) for f in files]
    if source.kind == "npz":
        items = []
        for f in _npz_files(path):
            n = len(_npz_array(f, source.key))
            items += [ImageItem(str(f), lo, min(lo + items_per_slice, n)) for lo in range(0, n, items_per_slice)]
        if not items:
            raise ValueError(f"{path}: no images in .npz files")
        return items
    raise ValueError(f"unknown image source kind {source.kind!r}; expected digits, folder or npz")


def split_items(items: list[ImageItem], holdout: int) -> tuple[list[ImageItem], list[ImageItem]]:
    """(training items, the last ``holdout`` images as items): a deterministic held-out split."""
    total = item_count(items)
    if not 0 <= holdout < total:
        raise ValueError(f"cannot hold out {holdout} of {total} images")
    keep, train, held = total - holdout, [], []
    for it in items:
        n = it.hi - it.lo
        if keep >= n:
            train.append(it)
        elif keep <= 0:
            held.append(it)
        else:
            train.append(ImageItem(it.path, it.lo, it.lo + keep))
            held.append(ImageItem(it.path, it.lo + keep, it.hi))
        keep -= n
    return train, held


def to_nchw(images: np.ndarray, layout: str = "auto") -> np.ndarray:
    """(n, h, w), (n, h, w, c) or (n, c, h, w) -> (n, c, h, w) with c in (1, 3, 4).

    ``layout="auto"`` takes the axis (1 or last) whose size is a channel count; when both
    could be, the smaller is the channel axis (ties: channels last, numpy's convention).
    """
    if images.ndim == 3:
        return images[:, None]
    if images.ndim == 4:
        first, last = images.shape[1], images.shape[-1]
        if layout == "auto":
            if last in (1, 3, 4) and (first not in (1, 3, 4) or last <= first):
                layout = "NHWC"
            elif first in (1, 3, 4):
                layout = "NCHW"
        if layout == "NHWC" and last in (1, 3, 4):
            return np.moveaxis(images, -1, 1)
        if layout == "NCHW" and first in (1, 3, 4):
            return images
    raise ValueError(f"cannot interpret image array of shape {images.shape} as (n, c, h, w) with layout {layout!r}")


def scale_to_symmetric(images: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map values in [low, high] linearly to [-1, 1], float32."""
    x = images.astype(np.float32)
    return (x - low) * (2.0 / (high - low)) - 1.0


def _value_range(a: np.ndarray) -> tuple[float, float]:
    if a.dtype == np.uint8:
        return 0.0, 255.0
    lo, hi = float(np.min(a)), float(np.max(a))
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    if lo >= -1.0 and hi <= 1.0:
        return -1.0, 1.0
    raise ValueError(f"float images must lie in [0, 1] or [-1, 1]; found [{lo:g}, {hi:g}]")


def load_items(source: ImageSource, items: list[ImageItem]) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``items``: (images float32 (n, c, h, w) in [-1, 1], labels int64 (n,), -1 if none)."""
    if source.kind == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        imgs = np.concatenate([digits.images[i.lo : i.hi] for i in items])
        labels = np.concatenate([digits.target[i.lo : i.hi] for i in items]).astype(np.int64)
        return scale_to_symmetric(imgs[:, None], 0.0, 16.0), labels
    if source.kind == "folder":
        arrays = [to_nchw(_decode_image(str(item.path), source.mode)[None]) for item in items]
        shapes = {a.shape[1:] for a in arrays}
        if len(shapes) > 1:
            raise ValueError(f"images differ in shape {sorted(shapes)}; resize them to one shape")
        imgs = np.concatenate(arrays)
        return scale_to_symmetric(imgs, 0.0, 255.0), np.full(len(imgs), -1, dtype=np.int64)
    if source.kind == "npz":
        parts = []
        for item in items:
            a = _npz_array(Path(str(item.path)), source.key)[item.lo : item.hi]
            parts.append(scale_to_symmetric(to_nchw(a, source.layout), *_value_range(a)))
        imgs = np.concatenate(parts)
        return imgs, np.full(len(imgs), -1, dtype=np.int64)
    raise ValueError(f"unknown image source kind {source.kind!r}")


def item_count(items: list[ImageItem]) -> int:
    return sum(i.hi - i.lo for i in items)
