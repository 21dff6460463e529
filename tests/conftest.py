"""Shared fixtures: one real local Ray instance per session, and small real stores on disk."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Same auth mode for every Ray process the tests start (Ray 2.60 turns token auth on by default).
os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

OBJECT_STORE_BYTES = 512 * 2**20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A real S3 API (moto's server) for the tests of fsspec URLs. Its address goes into the
# environment now, before any Ray process starts, because fsspec in Ray workers (and in the
# extra nodes of the multi-node tests) reads credentials and the endpoint from there, as it
# would on a real cluster.
S3_PORT = _free_port()
os.environ.update(
    AWS_ENDPOINT_URL=f"http://127.0.0.1:{S3_PORT}",
    AWS_ACCESS_KEY_ID="swarmcast-test",
    AWS_SECRET_ACCESS_KEY="swarmcast-test",
    AWS_DEFAULT_REGION="us-east-1",
)


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


@pytest.fixture(scope="session")
def s3_server():
    """An S3 server on loopback (moto) for the whole session; yields its endpoint URL."""
    server = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(S3_PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", S3_PORT)) == 0:
                break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the moto S3 server did not start")
    yield os.environ["AWS_ENDPOINT_URL"]
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture
def s3_bucket(s3_server, request) -> str:
    """A fresh bucket for one test; yields ``s3://<bucket>``."""
    import fsspec

    name = "t-" + "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:50].strip("-")
    fs = fsspec.filesystem("s3")
    fs.mkdir(name)
    fs.invalidate_cache()
    return f"s3://{name}"


@pytest.fixture
def one_torch_thread():
    """Torch on one CPU thread, as hindcast actors with ``actors.cpus < 2`` run.

    With several threads torch's CPU kernels may split a batched reduction differently for a
    batch of one member than for a block of four, which changes float32 results in the last
    bit; bit-for-bit regeneration of a member is promised for the thread count that made it.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
