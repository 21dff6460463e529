"""Stages reading and writing fsspec URLs: a whole pipeline on a real S3 API (moto's server).

Every output lives at an ``s3://`` URL: the climate store, checkpoints (with Ray Train's run
state), the ensemble store that hindcast actors fill in separate processes, scores and the
report. The results must equal the same work done on local paths, reruns must find them
finished, and an upload cut short must never pass for a finished output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import fsspec
import numpy as np
import pytest
import xarray as xr

from swarmcast.ops.checkpoint import load_model, read_meta
from swarmcast.ops.storage import is_remote, location, output_exists, publish, staging
from swarmcast.pipelines.config import ConfigError, parse_pipeline, resolve_path
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.runner import plan_pipeline, run_pipeline

pytestmark = [pytest.mark.timeout(900)]

DATA = {"kind": "swe-dataset", "name": "data", "grid": {"nlat": 16, "nlon": 32}, "trajectories": 3, "days": 3}
TRAIN = {
    "kind": "train-sfno",
    "name": "train",
    "seeds": [5],
    "model": {"embed_dim": 8, "num_layers": 1},
    "train": {"epochs": 2, "batch_size": 8, "rollout_steps": 1},
    "validation": {"lead_hours": 12, "max_windows": 4},
    "scaling": {"cpus_per_worker": 0.5},
}
HINDCAST = {
    "kind": "hindcast",
    "name": "hindcast",
    "init_times": {"times": ["2002-01-02T00", "2002-01-02T12"]},
    "lead_hours": 12,
    # the two-epoch model is not meant to carry perturbations: storage is what is tested here
    "perturbation": {"kind": "bred-vector", "pairs": 2, "seed_channels": ["h"], "cycles": 2, "growth_check": False},
    "actors": {"cpus": 0.5},
}


def stages(root: str) -> list[dict]:
    """The pipeline with every path under ``root`` (a URL or a relative folder)."""
    at = f"{root}/" if root else ""
    return [
        {**DATA, "output": f"{at}data.zarr"},
        {**TRAIN, "data": f"{at}data.zarr", "output": f"{at}checkpoints"},
        {**HINDCAST, "data": f"{at}data.zarr", "checkpoints": f"{at}checkpoints", "output": f"{at}hindcast.zarr"},
        {"kind": "score", "forecast": f"{at}hindcast.zarr", "truth": f"{at}data.zarr", "output": f"{at}scores.zarr"},
        {
            "kind": "report",
            "scores": f"{at}scores.zarr",
            "forecast": f"{at}hindcast.zarr",
            "truth": f"{at}data.zarr",
            "output": f"{at}report",
        },
    ]


def run(base: Path, stage_list: list[dict], overwrite: bool = False) -> list[dict]:
    raw = {"name": "remote", "seed": 3, "stages": stage_list}
    return run_pipeline(parse_pipeline(raw), StageContext(base=base, seed=3, overwrite=overwrite, pipeline_raw=raw))


@pytest.fixture(scope="module")
def s3_run(ray_session, s3_server, tmp_path_factory):
    """The whole pipeline with every output in a bucket; (bucket URL, results, base folder)."""
    fs = fsspec.filesystem("s3")
    fs.mkdir("remote-pipeline")
    base = tmp_path_factory.mktemp("remote")
    return "s3://remote-pipeline", run(base, stages("s3://remote-pipeline")), base


@pytest.fixture(scope="module")
def local_run(s3_run, tmp_path_factory):
    """The same pipeline on local paths, from the bucket's trained checkpoint (training itself
    is not bit-reproducible across runs: Ray Data may hand blocks over in another order)."""
    bucket = s3_run[0]
    base = tmp_path_factory.mktemp("local")
    fsspec.filesystem("s3").get(f"{bucket}/checkpoints/seed-5/", str(base / "checkpoints" / "seed-5"), recursive=True)
    local = stages("")
    run(base, [local[0], *local[2:]])
    return base


def test_locations_are_paths_or_urls(tmp_path):
    assert location("s3://b/x.zarr").protocol == "s3" and is_remote(location("s3://b/x.zarr"))
    assert location(f"file://{tmp_path}/x") == tmp_path / "x"  # file URLs are local paths
    assert not is_remote(resolve_path(tmp_path, "rel/x.zarr")) and resolve_path(tmp_path, "rel/x.zarr") == (
        tmp_path / "rel" / "x.zarr"
    )
    assert str(resolve_path(tmp_path, "s3://b/out/x.zarr")) == "s3://b/out/x.zarr"  # URLs ignore the base
    with pytest.raises(ConfigError, match="memory:// is private to one process"):
        resolve_path(tmp_path, "memory://x.zarr")
    with pytest.raises(ConfigError, match="install its fsspec package"):
        resolve_path(tmp_path, "nosuchproto://b/x.zarr")


def test_a_pipeline_on_s3_equals_the_same_pipeline_on_local_paths(s3_run, local_run):
    s3_bucket, results, base = s3_run
    assert not any(r.get("skipped") is True for r in results) and results[1]["trained"] == [5]
    assert not any(base.iterdir())  # nothing was written locally
    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    opened = {}
    for name in ("data.zarr", "hindcast.zarr", "scores.zarr"):
        remote = xr.open_zarr(f"{s3_bucket}/{name}").load()
        local = xr.open_zarr(local_run / name).load()
        for v in local.data_vars:
            np.testing.assert_array_equal(remote[v].values, local[v].values, err_msg=f"{name}:{v}")
        opened[name] = remote
    # the hindcast was written by actors in other processes, every member finished
    assert bool(opened["hindcast.zarr"]["member_done"].all())
    assert float(np.abs(opened["hindcast.zarr"]["h"]).max()) > 0
    # the checkpoint (weights, metrics, provenance) and Ray Train's run state are in the bucket
    ckpt = f"{s3_bucket}/checkpoints/seed-5"
    meta = read_meta(ckpt)
    assert meta["training"]["epochs"] == 2 and meta["data"]["store"] == f"{s3_bucket}/data.zarr"
    model, _ = load_model(ckpt)  # weights checked against their recorded sha256
    assert model.config.channels == ("h", "u", "v", "vo")
    assert fs.find(f"{s3_bucket}/checkpoints/.ray/seed-5")  # resumable run state lives there too
    index = fs.cat_file(f"{s3_bucket}/report/index.html").decode()
    assert "<html" in index.lower() and fs.exists(f"{s3_bucket}/report/swarmcast_stage.json")
    assert len(fs.glob(f"{s3_bucket}/report/*.png")) >= 4
    # `swarmcast inspect` describes a store in the bucket (objects counted through fsspec)
    cli = subprocess.run(
        [str(Path(sys.executable).parent / "swarmcast"), "inspect", f"{s3_bucket}/hindcast.zarr", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    described = json.loads(cli.stdout)
    assert described["members_done"]["done"] == [5, 5] and described["objects"] == len(
        fs.find(f"{s3_bucket}/hindcast.zarr")
    )
    # a rerun finds every output finished (read back from the bucket) and computes nothing
    again = run(base, stages(s3_bucket))
    assert again[0]["skipped"] and again[3]["skipped"] and again[4]["skipped"]
    assert again[1]["skipped"] is True and again[2]["skipped"] is True  # the probes read the bucket


def test_an_upload_cut_short_is_not_an_output_and_is_replaced(local_run, s3_bucket, tmp_path):
    fs = fsspec.filesystem("s3")
    out = f"{s3_bucket}/scores.zarr"
    # what a publish killed mid-upload leaves: data objects, but not the root zarr.json marker
    fs.put(str(local_run / "scores.zarr" / "crps"), f"{out}/crps", recursive=True)
    fs.pipe_file(f"{out}/stale-object", b"left by the interrupted upload")
    fs.invalidate_cache()
    assert not output_exists(location(out))
    stage = {"kind": "score", "forecast": str(local_run / "hindcast.zarr"), "truth": str(local_run / "data.zarr")}
    raw = {"name": "remote", "seed": 3, "stages": [{**stage, "output": out}]}
    plans = plan_pipeline(parse_pipeline(raw), StageContext(base=tmp_path, seed=3, pipeline_raw=raw))
    assert plans[0].action == "run"  # neither skipped as done nor refused as foreign
    run(tmp_path, raw["stages"])
    fs.invalidate_cache()
    assert not fs.exists(f"{out}/stale-object")
    got = xr.open_zarr(out).load()
    want = xr.open_zarr(local_run / "scores.zarr").load()
    np.testing.assert_array_equal(got["crps"].values, want["crps"].values)
    # a finished output made by another config is refused, and nothing in it is touched
    before = fs.cat_file(f"{out}/zarr.json")
    other = [{**stage, "output": out, "regions": ["global"]}]
    with pytest.raises(ConfigError, match="was not made by this stage config"):
        run(tmp_path, other)
    assert fs.cat_file(f"{out}/zarr.json") == before


def test_publish_uploads_the_staged_folder_and_needs_its_marker(s3_bucket, tmp_path):
    final = location(f"{s3_bucket}/folder")
    staged = staging(final)
    assert not is_remote(staged) and staged.is_dir() and not any(staged.iterdir())
    (staged / "sub").mkdir()
    (staged / "sub" / "a.bin").write_bytes(b"a" * 1000)
    (staged / "marker.json").write_text(json.dumps({"done": True}))
    with pytest.raises(FileNotFoundError, match="marker was never written"):
        publish(staged, final, marker="missing.json")
    publish(staged, final, marker="marker.json")
    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    assert sorted(fs.find(final.path)) == [f"{final.path}/marker.json", f"{final.path}/sub/a.bin"]
    assert fs.cat_file(f"{final.path}/sub/a.bin") == b"a" * 1000
    assert not staged.exists()  # the local staging folder is gone once published


def test_diffusion_training_and_sampling_on_urls(s3_run, s3_bucket, tmp_path):
    data = f"{s3_run[0]}/data.zarr"
    model = f"{s3_bucket}/swe-model"
    train = {
        "kind": "train-diffusion",
        "output": model,
        "data": {"kind": "climate", "path": data},
        "model": {"width": 16, "num_layers": 2},
        "train": {"epochs": 1, "batch_size": 8},
        "scaling": {"cpus_per_worker": 0.5},
    }
    sample = {
        "kind": "sample-diffusion",
        "checkpoint": model,
        "data": data,
        "output": f"{s3_bucket}/generative.zarr",
        "init_times": {"times": ["2002-01-02T00"]},
        "lead_hours": 12,
        "members": 4,
        "member_block": 2,
        "nfe": 4,
        "actors": {"cpus": 0.5},
    }
    results = run(tmp_path, [train, sample])
    assert results[0]["trained"] and results[1]["computed"] == 2
    ds = xr.open_zarr(sample["output"])
    assert dict(ds.sizes) == {"init_time": 1, "member": 4, "lead_time": 3, "lat": 16, "lon": 32}
    assert ds["member_done"].values.all() and np.isfinite(ds["hallucination"].values[:, :, 1:]).all()
    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    assert fs.find(f"{s3_bucket}/.swe-model.train")  # Ray Train's run state went to the bucket
    assert not any(tmp_path.iterdir())
    again = run(tmp_path, [train, sample])
    assert again[0]["skipped"] is True and again[1]["skipped"] is True  # the probes read the bucket
