"""What a healthy run prints: our progress lines once each, none of Ray's narration or error
lines, unless --verbose (a real `swarmcast run` with its own private Ray, training through Ray
Train and Ray Data; a benchmark that consumes Ray Data in its own process)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from swarmcast.pipelines.cluster.session import QUIET_DRIVER, VERBOSE_ENV

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]
PIPELINE = {
    "name": "quiet",
    "stages": [
        {"kind": "swe-dataset", "name": "data", "grid": {"nlat": 16, "nlon": 32}, "trajectories": 2, "days": 2},
        {
            "kind": "train-sfno",
            "name": "train",
            "seeds": [1, 2],
            "model": {"embed_dim": 8, "num_layers": 1},
            "train": {"epochs": 2, "batch_size": 8},
            "validation": {"lead_hours": 12},
            "scaling": {"cpus_per_worker": 0.5},
        },
    ],
}
RAY_NARRATION = (
    "Starting execution of Dataset",
    "Execution plan of Dataset",
    "execution finished in",
    "Attempting to start training worker group",
    "Checkpoint successfully created",
    "Reporting training result",
    "core_worker",
    "Consolidated metadata is currently not part",
    "exclude_resources",
    "across cluster",  # Ray folding lines of several workers into one
    "worker processes have been started",
    "Token authentication is enabled",
)


def _users_environment() -> dict[str, str]:
    """What a user's shell has: Ray's defaults (token authentication on, lines of several
    workers folded), not the settings the tests' shared session needs, nor those that commands
    run in this process (``main(["bench", ...])`` in other tests) left in its environment."""
    drop = {"RAY_AUTH_MODE", "RAY_DEDUP_LOGS", VERBOSE_ENV, *QUIET_DRIVER}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _swarmcast(folder: Path, *args: str) -> list[str]:
    """The output lines of the ``swarmcast`` command run in ``folder`` in the user's environment."""
    out = subprocess.run(
        [str(Path(sys.executable).parent / "swarmcast"), *args],
        cwd=folder,
        env=_users_environment(),
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return (out.stdout + out.stderr).splitlines()


def _run(folder: Path, *flags: str) -> list[str]:
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(PIPELINE))
    return _swarmcast(folder, "run", "pipeline.yaml", *flags)


def test_a_healthy_run_prints_each_progress_line_once_and_none_of_rays_narration(tmp_path):
    lines = _run(tmp_path)
    for seed in (1, 2):  # two checkpoints train at once: Ray would fold their similar lines
        for epoch in (1, 2):
            assert sum(f"[seed {seed}] epoch {epoch}/2 loss" in line for line in lines) == 1, "\n".join(lines)
    assert not [line for line in lines if any(n in line for n in RAY_NARRATION)], "\n".join(lines)
    assert not [line for line in lines if "0.0 checkpoints/s" in line or " E " in line[:40]]
    done = [line for line in lines if line.startswith("[train: train] done:")]
    assert len(done) == 1 and done[0].endswith(" s per checkpoint)")


def test_verbose_keeps_rays_own_lines(tmp_path):
    lines = _run(tmp_path, "--verbose", "--overwrite=train")
    assert any("Attempting to start training worker group" in line for line in lines), "\n".join(lines)


def _bench_loader(folder: Path, *flags: str) -> list[str]:
    """``swarmcast bench loader`` on a tiny store: Ray Data runs in the command's own process."""
    return _swarmcast(folder, "bench", "loader", "nlat=16", "nlon=32", "times=40", "epochs=1", "batch_size=8", *flags)


def test_a_benchmark_prints_its_json_and_none_of_rays_narration_unless_verbose(tmp_path):
    lines = _bench_loader(tmp_path)
    assert any(line.startswith('{"bench": "loader"') for line in lines), "\n".join(lines)
    assert not [line for line in lines if any(n in line for n in (*RAY_NARRATION, "Progress bars"))], "\n".join(lines)
    verbose = _bench_loader(tmp_path, "--verbose")
    assert any("Starting execution of Dataset" in line for line in verbose), "\n".join(verbose)
