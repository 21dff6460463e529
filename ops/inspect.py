"""Describe any store swarmcast writes: dims, variables, chunking/sharding, size, objects."""

from __future__ import annotations

import contextlib
import os

import numpy as np

from swarmcast.ops.ensemble.verify import check_store
from swarmcast.ops.errors import InputError
from swarmcast.ops.storage import Location, is_remote, location, open_zarr_group


def _disk_usage(path: Location) -> tuple[int, int]:
    """(bytes, number of files or objects) under ``path``."""
    if is_remote(path):
        sizes = path.fs.du(path.path, total=False)
        return int(sum(sizes.values())), len(sizes)
    size = count = 0
    for root, _, files in os.walk(path):
        for f in files:
            size += os.path.getsize(os.path.join(root, f))
            count += 1
    return size, count


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} PiB"


def describe_store(path: str | os.PathLike | Location) -> dict:
    """Facts about a Zarr store as a JSON-able dict.

    Keys: ``path``, ``zarr_format``, ``dims`` (name -> size), ``variables`` (name -> dims,
    shape, dtype, chunks, shards, compressors, attrs), ``attrs`` (root attribute names),
    ``bytes`` and ``objects`` on disk, and, when the store has a ``member_done`` mask,
    ``members_done`` (done/total per init time) and ``damaged_units`` (one line per finished
    unit whose shards no longer match what it wrote: ``swarmcast.ops.ensemble.verify``).
    """
    p = location(path)
    group = open_zarr_group(p)
    dims: dict[str, int] = {}
    variables: dict[str, dict] = {}
    for name, arr in sorted(group.arrays()):
        dim_names = (
            list(arr.metadata.dimension_names or [])
            if arr.metadata.zarr_format == 3
            else list(arr.attrs.get("_ARRAY_DIMENSIONS", []))
        )
        for d, n in zip(dim_names, arr.shape, strict=False):
            dims[str(d)] = int(n)
        variables[name] = {
            "dims": [str(d) for d in dim_names],
            "shape": list(arr.shape),
            "dtype": str(arr.dtype),
            "chunks": list(arr.chunks),
            "shards": list(arr.shards) if arr.shards else None,
            "compressors": [type(c).__name__ for c in (arr.compressors or ())],
            "attrs": {k: v for k, v in arr.attrs.items() if not k.startswith("_")},
        }
    size, objects = _disk_usage(p)
    out = {
        "path": str(p),
        "zarr_format": group.metadata.zarr_format,
        "dims": dims,
        "variables": variables,
        "attrs": sorted(group.attrs.keys()),
        "bytes": size,
        "objects": objects,
    }
    if "member_done" in variables:
        done = np.asarray(group["member_done"][...], dtype=bool)
        out["members_done"] = {"done": done.sum(axis=-1).tolist(), "total": int(done.shape[-1])}
        with contextlib.suppress(InputError):  # a member_done mask but not our layout: nothing to check
            out["damaged_units"] = check_store(p).lines()
    return out


def format_description(d: dict) -> str:
    """Human-readable text of ``describe_store``'s result."""
    lines = [
        f"{d['path']}  (Zarr v{d['zarr_format']}, {_human(d['bytes'])} on disk in {d['objects']} objects)",
        "dims: " + ", ".join(f"{k}={v}" for k, v in d["dims"].items()),
        "variables:",
    ]
    for name, v in d["variables"].items():
        layout = f"chunks {tuple(v['chunks'])}"
        if v["shards"]:
            layout += f", shards {tuple(v['shards'])}"
        units = v["attrs"].get("units", "")
        comp = "+".join(v["compressors"]) or "uncompressed"
        lines.append(
            f"  {name:<14} ({', '.join(v['dims'])}) {v['dtype']:<8} {layout}, {comp}" + (f" [{units}]" if units else "")
        )
    lines.append("attributes: " + ", ".join(d["attrs"]))
    if "members_done" in d:
        md = d["members_done"]
        lines.append(f"members done per init time: {md['done']} of {md['total']}")
    if d.get("damaged_units"):
        lines.append(f"{len(d['damaged_units'])} finished units lost shards (a rerun computes them again):")
        lines += [f"  {line}" for line in d["damaged_units"]]
    return "\n".join(lines)
