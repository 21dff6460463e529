"""``train-diffusion`` on Ray Train (digits and shallow water) and ``sample-diffusion`` into a scored store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml

from support.datasets import make_image_folder
from support.processes import pids_running
from swarmcast.kernels.sample_quality import sliced_wasserstein
from swarmcast.ops.data.images import ImageSource, list_items, load_items, split_items
from swarmcast.ops.diffusion.model import DiffusionModel
from swarmcast.ops.diffusion.training import generate, load_diffusion
from swarmcast.pipelines.config import ConfigError, parse_pipeline
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.runner import plan_pipeline, run_pipeline

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]

DIGITS = {
    "kind": "train-diffusion",
    "output": "digits-model",
    "data": {"kind": "digits"},
    "model": {"width": 32},
    "train": {"epochs": 15, "batch_size": 64, "lr": 0.003, "ema_halflife_steps": 40},
}
FORECASTER = {
    "kind": "train-diffusion",
    "output": "swe-model",
    "data": {"kind": "climate", "path": "data.zarr"},
    "model": {"width": 16, "num_layers": 2},
    "train": {"epochs": 2, "batch_size": 8},
}


def run(base: Path, stages: list[dict], overwrite: bool = False) -> list[dict]:
    raw = {"name": "diff", "seed": 2, "stages": stages}
    return run_pipeline(parse_pipeline(raw), StageContext(base=base, seed=2, overwrite=overwrite, pipeline_raw=raw))


@pytest.fixture(scope="module")
def digits(ray_session, tmp_path_factory):
    base = tmp_path_factory.mktemp("digits")
    results = run(base, [DIGITS])
    return base, results


def held_out_digits() -> torch.Tensor:
    source = ImageSource("digits")
    _, held = split_items(list_items(source), 180)
    images, _ = load_items(source, held)
    return torch.as_tensor(images).flatten(1)


def test_trained_samples_are_closer_to_held_out_digits_than_noise_or_an_untrained_model(digits):
    base, results = digits
    assert results[0]["trained"] and results[0]["epochs"] == 15
    model, meta = load_diffusion(base / "digits-model")
    held = held_out_digits()
    samples = generate(model, (1, 8, 8), range(180), nfe=20).samples.flatten(1).clamp(-1, 1)
    untrained = DiffusionModel(model.spec).eval()
    untrained_samples = generate(untrained, (1, 8, 8), range(180), nfe=20).samples.flatten(1).clamp(-1, 1)
    noise = torch.rand(180, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    d_model = sliced_wasserstein(samples, held)
    d_noise = sliced_wasserstein(noise, held)
    d_untrained = sliced_wasserstein(untrained_samples, held)
    assert d_model < 0.5 * d_noise and d_model < 0.5 * d_untrained, (d_model, d_noise, d_untrained)
    history = [json.loads(line) for line in (base / "digits-model" / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 15 and history[-1]["val_loss"] < history[0]["val_loss"]
    assert meta["training"]["epochs"] == 15 and meta["stage"]["kind"] == "train-diffusion"


def test_second_run_trains_nothing_and_another_config_is_refused(digits):
    base, _ = digits
    # the finished checkpoint is recognised from its checkpoint.json: skipped before any Ray work
    assert run(base, [DIGITS])[0] == {"stage": "train-diffusion", "skipped": True}
    with pytest.raises(ConfigError, match="different config"):
        run(base, [{**DIGITS, "train": {**DIGITS["train"], "lr": 0.001}}])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"data": {"kind": "folder", "path": "nowhere"}}, "input not found"),
        ({"data": {"kind": "digits", "validation_items": 5000}}, "cannot hold out 5000"),
        ({"data": {"kind": "climate"}}, "data.path"),
        ({"model": {"sigma_min": 5.0, "sigma_max": 1.0}}, "sigma_min must be below"),
        ({"model": {"prediction": "score"}}, "prediction"),
    ],
)
def test_bad_inputs_fail_before_training(ray_session, tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        run(tmp_path, [{**DIGITS, **change}])
    assert not (tmp_path / "digits-model").exists()


def test_a_damaged_image_is_named_before_any_worker_reads_it(ray_session, tmp_path):
    """Before, a corrupt PNG ended the run with a Ray Data traceback from a read task."""
    folder, _ = make_image_folder(tmp_path / "imgs", n=8, size=(8, 8))
    good = (folder / "img_003.png").read_bytes()
    (folder / "img_003.png").write_bytes(good[:-30])
    stage = {**DIGITS, "data": {"kind": "folder", "path": "imgs", "validation_items": 2}}
    want = rf"data: 1 of 8 image files cannot be read:\n{folder / 'img_003.png'}: not a readable image"
    with pytest.raises(ConfigError, match=want):
        run(tmp_path, [stage])
    assert not (tmp_path / "digits-model").exists()


def test_curriculum_starts_from_the_noisiest_levels_and_advances_on_a_plateau(ray_session, tmp_path):
    # A learning rate of 1e-30 freezes the weights (each update rounds away in float32), so the
    # validation loss is the same every epoch: a plateau, on which the curriculum must advance
    # every `patience` (1) validations -- stage 1 twice, then stage 2 twice, ending in stage 3.
    curriculum = {"clusters": 4, "patience": 1}
    stage = {**DIGITS, "train": {"epochs": 4, "batch_size": 128, "lr": 1e-30, "curriculum": curriculum}}
    run(tmp_path, [stage])
    history = [json.loads(line) for line in (tmp_path / "digits-model" / "metrics.jsonl").read_text().splitlines()]
    assert history[0]["curriculum_stage"] == 1
    assert [h["curriculum_stage"] for h in history] == sorted(h["curriculum_stage"] for h in history)
    assert [h["curriculum_stage"] for h in history] == [1, 1, 2, 2]
    assert [h["curriculum_advanced"] for h in history] == [False, True, False, True]
    assert len({h["val_loss"] for h in history}) == 1  # the plateau really was flat
    _, meta = load_diffusion(tmp_path / "digits-model")
    assert meta["training"]["curriculum"]["stage"] == 3


def test_generative_ensemble_lands_in_a_store_that_scores(ray_session, swe_store, tmp_path):
    (tmp_path / "data.zarr").symlink_to(swe_store)
    sample = {
        "kind": "sample-diffusion",
        "checkpoint": "swe-model",
        "output": "generative.zarr",
        "init_times": {"times": ["2001-01-01T00", "2001-01-01T12"]},
        "lead_hours": 12,
        "members": 6,
        "member_block": 3,
        "nfe": 4,
        "actors": {"cpus": 0.5},
    }
    score = {"kind": "score", "forecast": "generative.zarr", "regions": ["global"], "bootstrap": 2}
    results = run(tmp_path, [FORECASTER, sample, score])
    assert results[1]["units"] == 4 and results[1]["computed"] == 4
    ds = xr.open_zarr(tmp_path / "generative.zarr")
    assert dict(ds.sizes) == {"init_time": 2, "member": 6, "lead_time": 3, "lat": 16, "lon": 32}
    assert ds["member_done"].values.all()
    hal = ds["hallucination"].values
    assert np.isfinite(hal[:, :, 1:]).all() and (hal[:, :, 1:] >= 0).all()
    # members start from the same analysis and then differ only through their sampler noise
    h = ds["h"].values
    np.testing.assert_array_equal(h[:, 0, 0], h[:, 5, 0])
    assert np.abs(h[:, 0, 2] - h[:, 1, 2]).max() > 0
    scores = xr.open_zarr(tmp_path / "scores.zarr")
    assert np.isfinite(scores["crps"].sel(variable="h", region="global").values).all()
    # a rerun computes nothing, and says so without Ray: every stage is skipped by its probe (a
    # fresh process imports no Ray); the same pipeline with one more member is not skipped
    (tmp_path / "generative.yaml").write_text(
        yaml.safe_dump({"name": "diff", "seed": 2, "stages": [FORECASTER, sample, score]})
    )
    code = (
        "import sys; from swarmcast.pipelines.cli import main; "
        f"rc = main(['run', {str(tmp_path / 'generative.yaml')!r}]); "
        "print('ray imported:', 'ray' in sys.modules); sys.exit(rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ray imported: False" in out.stdout, out.stdout + out.stderr
    assert "[sample-diffusion] up to date (generative.zarr holds its 2 init times x 6 members, all done)" in out.stdout
    ctx = StageContext(base=tmp_path, seed=2)
    assert [
        p.action
        for p in plan_pipeline(
            parse_pipeline({"name": "diff", "seed": 2, "stages": [FORECASTER, {**sample, "members": 9}]}), ctx
        )
    ] == ["skip", "resume"]
    # members do not depend on how they are blocked into units
    run(tmp_path, [FORECASTER, {**sample, "member_block": 6, "output": "one-block.zarr"}])
    np.testing.assert_array_equal(xr.open_zarr(tmp_path / "one-block.zarr")["h"].values, h)
    # nor on micro-batches: blocks of 6 through the sampler 4 members and then 2 at a time
    sliced = {**sample, "member_block": 6, "output": "sliced.zarr", "actors": {"cpus": 0.5, "batch_members": 4}}
    run(tmp_path, [FORECASTER, sliced])
    for name in ("h", "hallucination"):
        np.testing.assert_array_equal(xr.open_zarr(tmp_path / "sliced.zarr")[name].values, ds[name].values)


@pytest.mark.distributed
def test_two_ddp_workers_train_and_a_killed_worker_resumes(ray_session, tmp_path):
    """DDP over 2 workers; one worker SIGKILLed after 2 epochs; the run resumes from its state."""
    stage = {
        **DIGITS,
        "train": {"epochs": 8, "batch_size": 64},
        "scaling": {"workers": 2, "cpus_per_worker": 0.5},
        "max_failures": 1,
    }
    killed: list[int] = []

    def killer():
        storage = tmp_path / ".digits-model.train" / ".ray" / "run"
        deadline = time.time() + 300
        while time.time() < deadline and len(list(storage.glob("checkpoint_*"))) < 2:
            time.sleep(0.2)
        time.sleep(2)  # let Ray register the checkpoint before the crash
        pids = pids_running("RayTrainWorker")
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    run(tmp_path, [stage])
    thread.join(timeout=5)
    assert killed, "no training worker was found to kill"
    model, meta = load_diffusion(tmp_path / "digits-model")
    assert meta["training"]["epochs"] == 8
    assert meta["training"]["resumed_at_epochs"] and meta["training"]["resumed_at_epochs"][0] >= 1
    # 1617 training digits over 2 ranks in batches of 64: 13 steps per epoch on each rank
    assert meta["training"]["steps"] == 8 * 13
    lines = (tmp_path / "digits-model" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == list(range(1, 9))
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())
