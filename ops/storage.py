"""Where outputs live: local paths or fsspec URLs (``s3://``, ``gs://``, ``abfs://``, ...).

A *location* is a ``pathlib.Path`` for local storage and a ``upath.UPath`` for a URL; both
support ``/``, ``exists``, ``read_text``/``write_text`` and ``read_bytes``/``write_bytes``.
Zarr and xarray take ``as_zarr(location)`` (a URL string for remote stores). Credentials and
endpoints never come from pipeline files: fsspec reads them from the environment (for S3,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``; or any
``FSSPEC_<PROTOCOL>_<OPTION>`` variable).

Write-once outputs (climate and score stores, checkpoints, reports, the ensemble store's
metadata) are built in a local *staging* folder and then *published*:

- local: the staging folder is the sibling ``<name>.partial`` and publishing renames it into
  place, so a finished output appears atomically;
- remote: object stores cannot rename a folder, so the staging folder is a local temporary
  one and publishing uploads every file, the output's *marker* file last (a Zarr store's root
  ``zarr.json``, a checkpoint's ``checkpoint.json``). Readers find an output only through its
  marker, so an upload cut short is never mistaken for a finished output.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from upath import UPath

from swarmcast.ops.errors import InputError, InputNotFoundError

if TYPE_CHECKING:  # xarray and zarr take most of a second to import; a plan needs neither
    import xarray as xr
    import zarr

Location: TypeAlias = Path | UPath
"""A local ``Path`` or a remote ``UPath``."""

# Process-private filesystems: Ray workers run in other processes and would not see them.
PRIVATE_PROTOCOLS = ("memory",)


def is_url(value: str | os.PathLike) -> bool:
    """True for ``scheme://...`` (a single-letter scheme would be a Windows drive)."""
    text = os.fspath(value) if not isinstance(value, UPath) else str(value)
    scheme, sep, _ = text.partition("://")
    return bool(sep) and len(scheme) > 1 and scheme.replace("+", "").replace("-", "").isalnum()


def location(value: str | os.PathLike | UPath) -> Location:
    """A ``Path`` for local paths and ``file://`` URLs, a ``UPath`` for other URLs.

    Raises ValueError for process-private filesystems (``memory://``), which other Ray
    processes cannot see, and for URLs whose filesystem package is not installed.
    """
    if isinstance(value, Path):
        return value
    if not is_url(value):
        return Path(os.fspath(value))
    text = str(value)
    protocol = text.split("://", 1)[0]
    if protocol in PRIVATE_PROTOCOLS:
        raise ValueError(f"{text}: {protocol}:// is private to one process; Ray workers cannot see it")
    if protocol in ("file", "local"):
        return Path(text.split("://", 1)[1])
    try:
        return value if isinstance(value, UPath) else UPath(text)
    except (ImportError, ValueError) as err:
        raise ValueError(f"{text}: cannot open {protocol}:// URLs ({err}); install its fsspec package") from None


def is_remote(p: Location) -> bool:
    """True for a URL location (anything that is not a local ``Path``)."""
    return not isinstance(p, Path)


def as_zarr(p: str | os.PathLike | UPath) -> str:
    """What Zarr and xarray take for a location: the path, or the URL of a remote store."""
    return str(location(p))


def remove(p: Location) -> None:
    """Delete a file or folder (and everything under it) if present."""
    if is_remote(p):
        if p.exists():
            p.fs.rm(p.path, recursive=True)
    elif p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def staging(final: Location, suffix: str = ".partial") -> Path:
    """A fresh, empty local folder to build ``final`` in before ``publish``.

    Local: the sibling ``<name><suffix>`` (same filesystem, so publishing is a rename).
    Remote: a new temporary folder on this machine.
    """
    if is_remote(final):
        return Path(tempfile.mkdtemp(prefix=f"swarmcast-{final.name}-"))
    tmp = final.with_name(final.name + suffix)
    remove(tmp)
    tmp.mkdir(parents=True)
    return tmp


def publish(staged: Path, final: Location, *, marker: str, replace: bool = True) -> Location:
    """Move a completely written staging folder to ``final``, replacing what is there.

    ``marker`` (a path relative to the folder) is the file whose presence means the output
    is complete; remote uploads write it last. Local publishing renames, so the old output
    stays whole until the new one is in place. With ``replace=False`` a complete output that
    another process published first is kept and the staging folder dropped: two coordinators
    creating the same store at once end with one store, never one replacing the other while
    its workers write into it (atomic locally; at a URL, checked just before uploading).
    """
    if not (staged / marker).is_file():
        raise FileNotFoundError(f"{staged / marker}: the output's marker was never written")
    if not replace:
        if is_published(final, marker):
            discard(staged)
            return final
        if not is_remote(final):
            try:
                staged.rename(final)  # fails if another process's complete output is there now
            except OSError:
                if not is_published(final, marker):
                    raise
                discard(staged)
            return final
    if not is_remote(final):
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        remove(old)
        if final.exists():
            final.rename(old)
        staged.rename(final)
        remove(old)
        return final
    remove(final)
    files = sorted(f for f in staged.rglob("*") if f.is_file() and f.relative_to(staged).as_posix() != marker)
    if files:
        # one batched call: fsspec backends upload a list of files concurrently
        final.fs.put([str(f) for f in files], [f"{final.path}/{f.relative_to(staged).as_posix()}" for f in files])
    final.fs.put_file(str(staged / marker), f"{final.path}/{marker}")
    shutil.rmtree(staged, ignore_errors=True)
    return final


def discard(staged: Path) -> None:
    """Drop a staging folder that will not be published."""
    shutil.rmtree(staged, ignore_errors=True)


def is_published(final: Location, marker: str) -> bool:
    """Whether ``final`` holds a complete output (its marker file exists)."""
    return (final / marker).is_file()


# The marker files of swarmcast's outputs: a Zarr store's root metadata, a checkpoint's
# checkpoint.json, a report's (or any folder output's) swarmcast_stage.json.
OUTPUT_MARKERS = ("zarr.json", "checkpoint.json", "swarmcast_stage.json")


@contextmanager
def named_store_errors(path: str | os.PathLike | UPath) -> Iterator[None]:
    """Around opening the Zarr store at ``path``: zarr's errors become an ``InputError`` naming
    it (zarr itself says "No group found", raises a bare ``FileNotFoundError`` or a
    ``JSONDecodeError`` naming no file). Every reader of a user's store opens it through here."""
    import zarr

    try:
        yield
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(damaged_metadata(path, err)) from None
    except (FileNotFoundError, zarr.errors.NodeNotFoundError):
        if not location(path).exists():
            raise InputNotFoundError(f"{as_zarr(path)}: no such store") from None
        raise InputError(f"{as_zarr(path)} is not a Zarr store (no zarr.json at its root)") from None


def open_zarr_group(path: str | os.PathLike | UPath, **kwargs: object) -> zarr.Group:
    """``zarr.open_group(path, mode="r", **kwargs)`` with ``named_store_errors``."""
    import zarr

    with named_store_errors(path):
        return zarr.open_group(as_zarr(path), mode="r", **kwargs)  # type: ignore[arg-type]


def open_zarr_dataset(path: str | os.PathLike | UPath, **kwargs: object) -> xr.Dataset:
    """``xr.open_zarr(path, **kwargs)`` with ``named_store_errors``."""
    import xarray as xr

    with named_store_errors(path):
        return xr.open_zarr(as_zarr(path), **kwargs)  # type: ignore[arg-type]


def damaged_metadata(path: str | os.PathLike | UPath, err: Exception) -> str:
    """A message naming the metadata file of the store at ``path`` that is not valid JSON (found
    by reading each ``zarr.json``; the store itself when none can be singled out)."""
    p = location(path)
    candidates = [p / "zarr.json"] + ([] if is_remote(p) else sorted(Path(p).rglob("*/zarr.json")))
    for meta in candidates:
        try:
            json.loads(meta.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError) as bad:
            return f"{meta} is damaged: not valid JSON ({bad}); the store cannot be opened"
        except OSError:
            continue
    return f"{p}: its Zarr metadata is damaged ({err}); the store cannot be opened"


def output_exists(p: Location) -> bool:
    """Whether an output is at ``p``: anything at a local path; a published output (one of
    ``OUTPUT_MARKERS``) at a URL, where an upload cut short leaves objects but no marker."""
    if not is_remote(p):
        return p.exists()
    return any(is_published(p, m) for m in OUTPUT_MARKERS)


__all__ = [
    "Location",
    "as_zarr",
    "damaged_metadata",
    "discard",
    "is_published",
    "is_remote",
    "is_url",
    "location",
    "named_store_errors",
    "open_zarr_dataset",
    "open_zarr_group",
    "output_exists",
    "publish",
    "remove",
    "staging",
]
