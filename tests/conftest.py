"""Shared fixtures: one real local Ray instance per session, and small real stores on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Same auth mode for every Ray process the tests start (Ray 2.60 turns token auth on by default).
os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

OBJECT_STORE_BYTES = 512 * 2**20


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray instance with 2 CPUs, shared by every test that needs Ray."""
    import ray
    from ray.data import DataContext

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=OBJECT_STORE_BYTES,
        log_to_driver=False,
    )
    DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def swe_store(ray_session, tmp_path_factory) -> Path:
    """A small shallow-water store written by the real ``swe-dataset`` stage.

    3 trajectories x 2 days at 16 x 32, 6-hourly, time chunks of 4 snapshots (so read tasks and
    the writer's chunk buffering are exercised across several chunks).
    """
    from swarmcast.pipelines.context import StageContext
    from swarmcast.pipelines.stages.swe_dataset import SWEDatasetConfig, run

    base = tmp_path_factory.mktemp("swe")
    cfg = SWEDatasetConfig(
        grid={"nlat": 16, "nlon": 32}, trajectories=3, days=2, spinup_days=0.5, time_chunk=4, output="data.zarr"
    )
    run(cfg, StageContext(base=base, seed=7))
    return base / "data.zarr"
