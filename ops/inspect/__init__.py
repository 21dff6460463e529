"""``swarmcast inspect PATH``: what any output of swarmcast holds, in words a person reads.

One module per kind of output: ``stores`` (Zarr stores: climate, ensemble, scores),
``checkpoints`` (a checkpoint folder, or a folder of them), ``reports`` (a report folder).
``describe`` picks by what the path holds; each kind has a JSON-able ``describe_*`` and a
``format_*`` that turns it into text.
"""

from __future__ import annotations

import os

from swarmcast.ops.errors import InputError
from swarmcast.ops.inspect.checkpoints import checkpoint_folders, describe_checkpoints, format_checkpoints
from swarmcast.ops.inspect.reports import describe_report, format_report
from swarmcast.ops.inspect.stores import describe_store, format_description
from swarmcast.ops.storage import is_remote, location


def describe(path: str | os.PathLike) -> tuple[dict, str]:
    """(facts as a JSON-able dict, the same as text) for whatever ``path`` is: a Zarr store, a
    checkpoint folder or a folder of them, or a report folder. Raises ``InputError`` naming
    what was looked for when it is none of them."""
    p = location(path)
    if not is_remote(p) and p.is_dir() and not (p / "zarr.json").exists() and not (p / ".zgroup").exists():
        if (p / "index.html").exists():
            d = describe_report(p)
            return d, format_report(d)
        if checkpoint_folders(p):
            d = describe_checkpoints(p)
            return d, format_checkpoints(d)
        raise InputError(
            f"{p}: not a Zarr store, a checkpoint folder (checkpoint.json) or a report folder (index.html)"
        )
    d = describe_store(p)
    return d, format_description(d)


__all__ = ["describe", "describe_store", "format_description"]
