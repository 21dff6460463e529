"""Describe any store swarmcast writes: its axes in human units (dates, leads in hours,
members by checkpoint), variables with units, the layout of an ensemble store in words, and
(in ``--json``) the raw chunks, shards and codecs."""

from __future__ import annotations

import contextlib
import os

import numpy as np

from swarmcast.ops.ensemble.verify import check_store
from swarmcast.ops.errors import InputError
from swarmcast.ops.storage import Location, is_remote, location, open_zarr_dataset, open_zarr_group


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


_AXES = ("time", "init_time", "lead_time", "member", "checkpoint", "lat", "lon", "region", "variable")


def _hours(td: np.ndarray) -> np.ndarray:
    return td.astype("timedelta64[s]").astype(np.int64) / 3600


def _axis(name: str, values: np.ndarray) -> str:
    """One line for a decoded coordinate: its range and step, or its labels."""
    if values.size == 0:
        return ""
    if values.dtype.kind == "M":  # time, init_time
        t = values.astype("datetime64[m]")
        if t.size == 1:
            return f"1: {t[0]}"
        steps, counts = np.unique(_hours(np.diff(t)), return_counts=True)
        step = steps[counts.argmax()]
        other = int(counts.sum() - counts.max())
        gaps = f" ({other} gaps)" if other else ""
        return f"{t.size}: {t[0]} to {t[-1]} every {step:g} h{gaps}"
    if values.dtype.kind == "m":  # lead_time
        h = _hours(values)
        step = f" every {h[1] - h[0]:g} h" if h.size > 1 and np.allclose(np.diff(h), h[1] - h[0]) else ""
        return f"{h.size}: {h[0]:g} h to {h[-1]:g} h{step}"
    if values.dtype.kind in "OUST":
        labels = list(dict.fromkeys(str(x) for x in values))
        shown = ", ".join(labels[:6]) + (", ..." if len(labels) > 6 else "")
        per = f", {values.size // len(labels)} members each" if name == "checkpoint" else ""
        return f"{len(labels)}: {shown}{per}"
    return f"{values.size}: {values.min():g} to {values.max():g}"


def _axes(p: Location) -> dict[str, str]:
    """Decoded coordinates in words (none where xarray cannot open the store)."""
    try:
        ds = open_zarr_dataset(p, chunks=None)
    except (InputError, ValueError, KeyError, TypeError):
        return {}
    return {n: _axis(n, ds[n].values) for n in _AXES if n in ds.variables and ds[n].ndim == 1}


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
    axes = _axes(p)
    out = {
        "path": str(p),
        "zarr_format": group.metadata.zarr_format,
        "dims": dims,
        "variables": variables,
        "attrs": sorted(group.attrs.keys()),
        "bytes": size,
        "objects": objects,
        "axes": {k: v for k, v in axes.items() if v},
    }
    if "member_done" in variables:
        done = np.asarray(group["member_done"][...], dtype=bool)
        out["members_done"] = {"done": done.sum(axis=-1).tolist(), "total": int(done.shape[-1])}
        with contextlib.suppress(InputError):  # a member_done mask but not our layout: nothing to check
            out["damaged_units"] = check_store(p).lines()
    return out


def _layout(v: dict) -> str:
    """How a variable is stored, in words: shards of whole units with tiled inner chunks
    (ensemble variables), otherwise its chunk shape."""
    chunks, shards = tuple(v["chunks"]), v["shards"]
    if shards and len(shards) == 5:  # (init, member block, leads, lat, lon): an ensemble variable
        tiles = (shards[3] // chunks[3], shards[4] // chunks[4])
        point = f", a point reads 1/{tiles[0] * tiles[1]}" if tiles != (1, 1) else ", untiled"
        return (
            f"shards of {shards[1]} members x {shards[2]} leads, tiles {tiles[0]} x {tiles[1]} "
            f"over {chunks[2]} lead(s){point}"
        )
    return f"chunks {chunks}" + (f", shards {tuple(shards)}" if shards else "")


def format_description(d: dict) -> str:
    """Human-readable text of ``describe_store``'s result."""
    lines = [
        f"{d['path']}  (Zarr v{d['zarr_format']}, {_human(d['bytes'])} on disk in {d['objects']} objects)",
        "dims: " + ", ".join(f"{k}={v}" for k, v in d["dims"].items()),
        "variables:",
    ]
    lines[1:1] = [f"  {name:<10} {text}" for name, text in d.get("axes", {}).items()]
    sums = [n for n in d["variables"] if n.startswith(("sum_", "block_"))]
    for name, v in d["variables"].items():
        if name in d.get("axes", {}) or name in ("valid_time", "perturbation", "sign", "seed") or name in sums:
            continue
        units = v["attrs"].get("units", "")
        described = v["attrs"].get("long_name", "")
        comp = "+".join(v["compressors"]) or "uncompressed"
        lines.append(
            f"  {name:<14} ({', '.join(v['dims'])}) {v['dtype']}"
            + (f" [{units}]" if units else "")
            + (f" {described}" if described else "")
            + f"; {_layout(v)}, {comp}"
        )
    if sums:  # a scores store's partial sums: one line, not one per array
        lines.append(
            f"  partial sums: {len(sums)} arrays per latitude row, init time and lead ({', '.join(sums[:3])}, ...); "
            "other regions and dates are finished from them (score from_sums, report --regions)"
        )
    lines.append("attributes: " + ", ".join(d["attrs"]))
    if "members_done" in d:
        md = d["members_done"]
        lines.append(f"members done per init time: {md['done']} of {md['total']}")
    if d.get("damaged_units"):
        lines.append(f"{len(d['damaged_units'])} finished units lost shards (a rerun computes them again):")
        lines += [f"  {line}" for line in d["damaged_units"]]
    return "\n".join(lines)
