"""Finding Ray worker processes for fault-injection tests (killing an actor or a trainer)."""

from __future__ import annotations

from pathlib import Path


def pids_running(fragment: str) -> list[int]:
    """Process ids whose command line contains ``fragment`` (Ray names worker processes after
    their actor class, e.g. "RayTrainWorker" or "UnitRunner"): for fault-injection tests."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if fragment in (entry / "cmdline").read_bytes().decode(errors="ignore"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids
