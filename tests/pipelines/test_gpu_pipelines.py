"""The stages on a CUDA GPU: hindcast and diffusion actors, samplers and training (skipped without one).

Each GPU result is compared with the same work on the CPU. Float32 kernels differ between the
devices in the last bits, so stores agree to a tolerance relative to the field, not bit for bit.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from support.checkpoints import write_untrained_checkpoint
from swarmcast.kernels.diffusion import sampling_sigmas
from swarmcast.ops.diffusion.mixture import GaussianMixture, two_d_mixture
from swarmcast.ops.samplers import SOLVERS, sample, solver_schedule, steps_for_nfe
from swarmcast.pipelines.config import parse_pipeline
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.runner import run_pipeline

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)"),
    pytest.mark.timeout(900),
]

HINDCAST = {
    "kind": "hindcast",
    "init_times": {"times": ["2001-01-01T18", "2001-01-02T00"]},
    "lead_hours": 12,
    "perturbation": {"kind": "bred-vector", "pairs": 2, "seed_channels": ["h"]},
    "actors": {"cpus": 0.5},
}
FORECASTER = {
    "kind": "train-diffusion",
    "output": "swe-model",
    "data": {"kind": "climate", "path": "data.zarr"},
    "model": {"width": 16, "num_layers": 2},
    "train": {"epochs": 2, "batch_size": 8},
    "scaling": {"use_gpu": True, "cpus_per_worker": 0.5},
}
SAMPLE = {
    "kind": "sample-diffusion",
    "checkpoint": "swe-model",
    "init_times": {"times": ["2001-01-01T00"]},
    "lead_hours": 12,
    "members": 4,
    "nfe": 4,
    "actors": {"cpus": 0.5},
}


def run(base: Path, stages: list[dict]) -> list[dict]:
    raw = {"name": "gpu", "seed": 4, "stages": stages}
    return run_pipeline(parse_pipeline(raw), StageContext(base=base, seed=4, pipeline_raw=raw))


def assert_close_to_cpu(gpu: xr.Dataset, cpu: xr.Dataset, variables: list[str], rel: float) -> None:
    for v in variables:
        a, b = gpu[v].values, cpu[v].values
        assert np.isfinite(a).all(), v
        scale = float(np.std(b))
        assert np.abs(a - b).max() <= rel * scale, (v, float(np.abs(a - b).max()), scale)


def test_hindcast_actors_on_the_gpu_match_the_cpu(ray_session, swe_store, tmp_path):
    (tmp_path / "data.zarr").symlink_to(swe_store)
    for s in (0, 1):
        write_untrained_checkpoint(tmp_path / "checkpoints" / f"seed-{s}", swe_store, s)
    gpu_stage = {**HINDCAST, "output": "gpu.zarr", "actors": {"cpus": 0.5, "use_gpu": True, "per_gpu": 2}}
    results = run(tmp_path, [{**HINDCAST, "output": "cpu.zarr"}, gpu_stage])
    assert results[1]["computed"] == 4 and results[1]["redone"] == 0
    gpu, cpu = xr.open_zarr(tmp_path / "gpu.zarr"), xr.open_zarr(tmp_path / "cpu.zarr")
    assert gpu["member_done"].values.all()
    assert_close_to_cpu(gpu, cpu, ["h", "u", "v", "vo"], rel=1e-3)


def test_diffusion_training_and_sampling_on_the_gpu(ray_session, swe_store, tmp_path):
    (tmp_path / "data.zarr").symlink_to(swe_store)
    gpu_sample = {**SAMPLE, "output": "gpu.zarr", "actors": {"cpus": 0.5, "use_gpu": True}}
    results = run(tmp_path, [FORECASTER, gpu_sample, {**SAMPLE, "output": "cpu.zarr"}])
    assert results[0]["trained"] and np.isfinite(results[0]["val_loss"])
    gpu, cpu = xr.open_zarr(tmp_path / "gpu.zarr"), xr.open_zarr(tmp_path / "cpu.zarr")
    assert gpu["member_done"].values.all() and np.isfinite(gpu["hallucination"].values[:, :, 1:]).all()
    # the same seeds draw the same noise on either device: members agree up to float32 rounding
    assert_close_to_cpu(gpu, cpu, ["h", "u", "v", "vo"], rel=1e-2)


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_samplers_on_the_gpu_follow_the_cpu(name):
    cpu_mix = two_d_mixture()
    gpu_mix = GaussianMixture(cpu_mix.means.cuda(), cpu_mix.stds.cuda(), cpu_mix.weights.cuda())
    steps = steps_for_nfe(name, 10)
    sigmas = sampling_sigmas("log-snr", steps, 0.02, 80.0)
    eps = 0.5 if name == "sde" else 0.0
    args = dict(eps=eps, dtype=torch.float64)
    on_cpu = sample(cpu_mix.denoise, (2,), range(256), sigmas, solver_schedule(name, steps), **args)
    on_gpu = sample(gpu_mix.denoise, (2,), range(256), sigmas, solver_schedule(name, steps), device="cuda", **args)
    assert on_gpu.samples.device.type == "cuda"
    torch.testing.assert_close(on_gpu.samples.cpu(), on_cpu.samples, rtol=1e-6, atol=1e-6)


def test_sfno_training_on_the_gpu(ray_session, swe_store, tmp_path):
    (tmp_path / "data.zarr").symlink_to(swe_store)
    stage = {
        "kind": "train-sfno",
        "seeds": [0],
        "model": {"embed_dim": 8, "num_layers": 1},
        "train": {"epochs": 2, "batch_size": 4},
        "validation": {"lead_hours": 12},
        "scaling": {"use_gpu": True, "cpus_per_worker": 0.5},
    }
    (result,) = run(tmp_path, [stage])
    assert result["trained"] == [0]
    rmse = result["val_rmse"]["0"]
    assert set(rmse) == {"h", "u", "v", "vo"} and all(np.isfinite(v) for v in rmse.values())
