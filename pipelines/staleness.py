"""What a stage's output was made from, so a rerun redoes a stage whose input changed and nothing else.

A stage that is redone whole when anything about it changes (``score``, ``report``,
``swe-dataset``: not ``RESUMABLE``) records, beside its config, a digest of every input
swarmcast made (``StageContext.fingerprint``, key ``inputs``). The runner skips such a stage
only when both match what is on disk now, and redoes it (replacing its output) when only the
inputs differ; stages after one that runs are decided when it has finished
(ARCHITECTURE.md, "Pipelines and stages").

What identifies an input is what made it, never its bytes (reading a store's data to hash it
would cost as much as scoring it):

- a Zarr store swarmcast wrote: the fingerprint of the stage that wrote it
  (``swarmcast_stage``), and for an ensemble store its init times and which of its members are
  done, which change when a campaign grows or a resumed run finishes it;
- a folder of checkpoints: each ``checkpoint.json`` (it holds the weights' sha256);
- a report folder: its ``swarmcast_stage.json``.

Data swarmcast did not make (a reanalysis another system appends to every day) gets no digest:
what it holds is the data provider's business, and a daily campaign must not redo its
verification every time its input store gains a day.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from swarmcast.ops.storage import Location, as_zarr, is_remote, output_exists

STAGE_FILE = "swarmcast_stage.json"


def input_digest(p: Location) -> str | None:
    """A digest of what made the swarmcast output at ``p`` (None: absent, or not swarmcast's)."""
    if not output_exists(p):
        return None
    if (p / STAGE_FILE).is_file():
        return _sha((p / STAGE_FILE).read_bytes())
    if (p / "zarr.json").is_file():
        return _store_digest(p)
    if not is_remote(p) and p.is_dir():
        metas = sorted(p.glob("checkpoint.json")) + sorted(p.glob("*/checkpoint.json"))
        if metas:
            return _sha(b"".join(m.relative_to(p).as_posix().encode() + m.read_bytes() for m in metas))
    return None


def input_digests(paths: list[Location], base: Path) -> dict[str, str | None]:
    """``{input as the config names it relative to base: input_digest}``: what ``inputs`` records."""
    return {_portable(p, base): input_digest(p) for p in paths}


def changed_inputs(recorded: dict | None, now: dict) -> list[str]:
    """The inputs whose digest differs between an output's record and now (every input when the
    output recorded none: it was made before inputs were recorded, so nothing vouches for it)."""
    if not isinstance(recorded, dict):
        return sorted(now)
    return sorted(k for k in set(recorded) | set(now) if recorded.get(k) != now.get(k))


def _store_digest(p: Location) -> str | None:
    import numpy as np
    import zarr
    from zarr.core.sync import sync

    group = zarr.open_group(as_zarr(p), mode="r")
    made_by = group.attrs.get("swarmcast_stage")
    if made_by is None:
        return None
    parts = [json.dumps(made_by, sort_keys=True).encode()]
    if "init_time" in group and "member_done" in group:  # an ensemble store: its dates and progress
        parts.append(np.asarray(group["init_time"][...]).tobytes())
        # which done-flag objects exist (zarr stores none for a block of units not yet done):
        # a listing, not a read of 42,688 objects at HENS size
        parts.append("\n".join(sorted(sync(_listing(group.store, "member_done/c/")))).encode())
    return _sha(b"\0".join(parts))


async def _listing(store: object, prefix: str) -> list[str]:
    return [k async for k in store.list_prefix(prefix)]  # type: ignore[attr-defined]


def _portable(p: Location, base: Path) -> str:
    if is_remote(p):
        return str(p)
    return Path(os.path.relpath(p, base)).as_posix()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


__all__ = ["STAGE_FILE", "changed_inputs", "input_digest", "input_digests"]
