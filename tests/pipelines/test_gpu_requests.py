"""Actor resources no node can serve (``use_gpu`` without GPUs, custom resources the cluster lacks):
refused before work, or reported once when an actor cannot start."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from support.checkpoints import write_untrained_checkpoint
from swarmcast.pipelines.config import ConfigError, parse_pipeline
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.runner import run_pipeline

pytestmark = [pytest.mark.timeout(600)]

HINDCAST = {
    "kind": "hindcast",
    "data": "data.zarr",
    "checkpoints": "checkpoints",
    "output": "hindcast.zarr",
    "init_times": {"times": ["2001-01-02T00"]},
    "lead_hours": 6,
    "perturbation": {"kind": "gaussian", "pairs": 1},
    "actors": {"cpus": 0.5, "use_gpu": True},
}


def workdir(base: Path, swe_store: Path) -> Path:
    (base / "data.zarr").symlink_to(swe_store)
    write_untrained_checkpoint(base / "checkpoints" / "seed-0", swe_store, 0)
    return base


def run(base: Path, stages: list[dict]) -> list[dict]:
    raw = {"name": "gpu", "stages": stages}
    return run_pipeline(parse_pipeline(raw), StageContext(base=base, pipeline_raw=raw))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
@pytest.mark.parametrize(
    ("stage", "key"),
    [
        (HINDCAST, "actors.use_gpu"),
        (
            {"kind": "train-sfno", "data": "data.zarr", "output": "trained", "scaling": {"use_gpu": True}},
            "scaling.use_gpu",
        ),
    ],
)
def test_use_gpu_on_a_cluster_without_gpus_is_refused_before_any_work(ray_session, swe_store, tmp_path, stage, key):
    base = workdir(tmp_path, swe_store)
    with pytest.raises(ConfigError, match=rf"{key}: true, but the Ray cluster has no GPUs"):
        run(base, [stage])
    assert not (base / stage["output"]).exists()


def test_custom_resources_the_cluster_lacks_are_refused_before_any_work(ray_session, swe_store, tmp_path):
    """Before: Ray would queue the actors forever, waiting for a node with a TPU."""
    base = workdir(tmp_path, swe_store)
    stage = {**HINDCAST, "actors": {"cpus": 0.5, "resources": {"TPU": 1, "CPU_SPARE": 0.5}}}
    with pytest.raises(ConfigError) as err:
        run(base, [stage])
    assert "actors.resources.TPU: 1 per actor, but the Ray cluster has 0" in str(err.value)
    assert "actors.resources.CPU_SPARE: 0.5 per actor, but the Ray cluster has 0" in str(err.value)
    assert not (base / "hindcast.zarr").exists()


SCRIPT = """
import json, sys
from pathlib import Path
import ray
from swarmcast.pipelines.config import ConfigError, parse_pipeline
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.runner import run_pipeline

base, raw = Path(sys.argv[1]), json.loads(sys.argv[2])
# a Ray node that advertises a GPU this machine does not have (a mislabelled node)
ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, object_store_memory=256 * 2**20)
try:
    run_pipeline(parse_pipeline(raw), StageContext(base=base, pipeline_raw=raw))
    print(json.dumps({"error": None}))
except ConfigError as err:
    print(json.dumps({"error": str(err)}))
"""


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_an_actor_that_cannot_reach_its_gpu_fails_once_with_the_reason(swe_store, tmp_path):
    """Ray schedules the actor on the advertised GPU; torch sees none. Before: a silent CPU run."""
    base = workdir(tmp_path, swe_store)
    raw = {"name": "gpu", "stages": [HINDCAST]}
    (base / "pipeline.yaml").write_text(yaml.safe_dump(raw))
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(base), json.dumps(raw)],
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    error = json.loads(out.stdout.strip().splitlines()[-1])["error"]
    assert error is not None, "the hindcast ran although no GPU was usable"
    # the first to touch the GPU is the growth check of the checkpoint, before any actor
    assert "the growth check for checkpoint seed-0 could not start" in error
    assert "use_gpu is set but this process sees no CUDA GPU" in error
    assert error.count("\n") == 0  # one message, not four retries' worth
