"""The small hindcast the stage tests share: its pipeline stage, inputs and how to run it."""

from __future__ import annotations

from pathlib import Path

from support.checkpoints import write_untrained_checkpoint
from swarmcast.pipelines.config import parse_pipeline
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.runner import run_pipeline

STAGE = {
    "kind": "hindcast",
    "name": "hindcast",
    "data": "data.zarr",
    "checkpoints": "checkpoints",
    "output": "hindcast.zarr",
    "init_times": {"times": ["2001-01-01T18", "2001-01-02T00"]},
    "lead_hours": 12,
    "perturbation": {"kind": "bred-vector", "pairs": 2, "seed_channels": ["h"]},
    "actors": {"cpus": 0.5},
}


def hindcast_inputs(swe_store: Path, base: Path) -> tuple[Path, Path]:
    """(the SWE store, a folder of two untrained checkpoints ``seed-0`` and ``seed-1`` in ``base``)."""
    for s in (0, 1):
        write_untrained_checkpoint(base / "checkpoints" / f"seed-{s}", swe_store, s)
    return swe_store, base / "checkpoints"


def workdir(tmp_path: Path, inputs: tuple[Path, Path]) -> Path:
    """``tmp_path`` with ``data.zarr`` and ``checkpoints`` linked to the shared inputs."""
    store, ckpts = inputs
    (tmp_path / "data.zarr").symlink_to(store)
    (tmp_path / "checkpoints").symlink_to(ckpts)
    return tmp_path


def run(base: Path, stage: dict = STAGE, overwrite: bool = False, wait: bool = False) -> list[dict]:
    raw = {"name": "hc", "seed": 3, "stages": [stage]}
    ctx = StageContext(base=base, seed=3, overwrite=overwrite, pipeline_raw=raw, wait_for_store=wait)
    return run_pipeline(parse_pipeline(raw), ctx)


def files(store: Path) -> dict[str, bytes]:
    """Every file of ``store`` by its relative path, with its bytes."""
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}
