"""Bounded plans: what a stage will hold, estimated from its config before anything is allocated.

A few characters of config can ask for more than any machine holds: ``pairs: 1e9`` is two
billion members, and the coordinator's bookkeeping (member seeds, done flags, unit lists) grows
with them until the kernel kills the driver. Each stage that scales with a count reports a
``Footprint``; ``check_footprints`` refuses a plan whose coordinator bookkeeping exceeds half the
memory this machine has available, naming both numbers, and notes the uncompressed store size
beside the free disk space where the inputs already tell it (a note, not a refusal: compression
decides what lands on disk). Runs in ``plan_pipeline``, so ``--dry-run`` refuses too.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from swarmcast.ops.storage import Location, is_remote
from swarmcast.pipelines.config import Pipeline
from swarmcast.pipelines.context import StageContext

BYTES_PER_MEMBER_RECORD = 64
"""Coordinator bytes per (init time, checkpoint, member): a seed as a Python int while the seed
table is built, its list slot, the int64 array entry and a done flag (sizes of CPython 3.11
objects, rounded up)."""

MEMORY_SHARE = 0.5
"""Share of the available memory the coordinator's bookkeeping may plan to take."""


@dataclass(frozen=True)
class Footprint:
    """What one stage will hold. Sizes in bytes."""

    records: int
    """Member records the coordinator keeps: init times x checkpoints x members."""
    what: str
    """The counts behind ``records``, in words ("2,000,000,001 members x 1 init time")."""
    store_bytes: int | None = None
    """Uncompressed size of the output store, when the inputs that fix it exist already."""

    @property
    def driver_bytes(self) -> int:
        return self.records * BYTES_PER_MEMBER_RECORD


def available_memory() -> int:
    """Bytes of memory available to new allocations on this machine (Linux ``MemAvailable``;
    elsewhere the physical memory)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def free_disk(path: Location) -> int | None:
    """Free bytes on the filesystem that would hold ``path`` (None for a URL)."""
    if is_remote(path):
        return None
    folder = Path(os.path.abspath(path))
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def human(n: float) -> str:
    """Bytes in the largest unit that keeps the number at least 1 (binary units)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_footprints(pipeline: Pipeline, ctx: StageContext) -> tuple[list[str], dict[int, str]]:
    """(problems, a note per stage index): bookkeeping beyond ``MEMORY_SHARE`` of the available
    memory is a problem; the store size against free disk space is a note."""
    problems, notes = [], {}
    memory = available_memory()
    for i, stage in enumerate(pipeline.stages):
        fp = stage.footprint(ctx.base)
        if fp is None:
            continue
        if fp.driver_bytes > MEMORY_SHARE * memory:
            problems.append(
                f"stages.{i} ({stage.label}): {fp.what} needs about {human(fp.driver_bytes)} of coordinator "
                f"bookkeeping alone, more than {MEMORY_SHARE:.0%} of the {human(memory)} available here; "
                "refused before allocating anything (fewer members or init times per run)"
            )
            continue
        if fp.store_bytes is not None:
            outputs = stage.outputs(ctx.base)
            free = free_disk(outputs[0]) if outputs else None
            note = f"output ~{human(fp.store_bytes)} uncompressed"
            if free is not None:
                warn = " (WARNING: more than the free space; compression must save the difference)"
                note += f", {human(free)} free there" + (warn if fp.store_bytes > free else "")
            notes[i] = note
    return problems, notes
