"""Outputs never endanger inputs, the pipeline's folder or folders swarmcast did not make.

Each case is one a user hit on an unguarded main (issue 16): ``output: .`` with ``--overwrite``
deleted the pipeline's folder; a hindcast writing into its own data store replaced the
reanalysis; a training stage wrote checkpoints inside a Zarr store. Every refusal happens
before any work (no Ray session here), in dry runs too, and leaves every byte in place.
"""

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from upath import UPath

from swarmcast.pipelines.cli import main
from swarmcast.pipelines.config import load_pipeline_file
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.output_guard import guard_outputs, made_by_swarmcast, overlap

SWE = {"kind": "swe-dataset", "name": "data", "grid": {"nlat": 16, "nlon": 32}, "trajectories": 2, "days": 1}
HINDCAST = {"kind": "hindcast", "data": "data.zarr", "init_times": {"times": ["2001-01-02"]}}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write(folder: Path, stages: list[dict]) -> Path:
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "stages": stages}))
    return path


def refused(capsys, args: list, *fragments: str) -> str:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert code == 2, err
    for f in fragments:
        assert f in err, err
    assert "Traceback" not in err
    return err


def data_store(path: Path) -> None:
    """A small climate-like Zarr store standing in for a reanalysis the user owns."""
    xr.Dataset({"h": (("time", "lat", "lon"), np.arange(24.0).reshape(2, 3, 4))}).to_zarr(path)


@pytest.mark.parametrize("flags", [[], ["--overwrite"], ["--overwrite", "--dry-run"]])
def test_an_output_at_the_pipeline_folder_is_refused_and_nothing_is_deleted(tmp_path, capsys, flags):
    path = write(tmp_path, [dict(SWE, output=".")])
    (tmp_path / "notes.txt").write_text("keep me")
    before = snapshot(tmp_path)
    refused(capsys, ["run", path, *flags], "output", "is the base folder", "contains the pipeline file")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("flags", [[], ["--overwrite"], ["--dry-run"]])
def test_a_hindcast_into_its_own_data_store_is_refused(tmp_path, capsys, flags):
    data_store(tmp_path / "data.zarr")
    (tmp_path / "checkpoints").mkdir()
    path = write(tmp_path, [dict(HINDCAST, output="data.zarr")])
    before = snapshot(tmp_path)
    refused(capsys, ["run", path, *flags], "stages.0 (hindcast): output", "is its own input", "data.zarr")
    assert snapshot(tmp_path) == before


def test_checkpoints_inside_another_stages_store_are_refused(tmp_path, capsys):
    stages = [dict(SWE, output="data.zarr"), {"kind": "train-sfno", "data": "data.zarr", "output": "data.zarr/ckpt"}]
    refused(capsys, ["run", write(tmp_path, stages), "--dry-run"], "is inside the output of stages.0 (data)")
    same = [dict(SWE, output="data.zarr"), {"kind": "train-sfno", "data": "data.zarr", "output": "data.zarr"}]
    err = refused(capsys, ["run", write(tmp_path, same), "--dry-run"], "stages.1 (train-sfno)", "is its own input")
    assert "is the output of stages.1" in err  # the two stages' outputs collide as well


def test_a_stage_may_not_overwrite_what_an_earlier_stage_read(tmp_path, capsys):
    data_store(tmp_path / "data.zarr")
    (tmp_path / "checkpoints").mkdir()
    stages = [dict(HINDCAST, output="h.zarr"), dict(SWE, output="data.zarr")]
    refused(capsys, ["run", write(tmp_path, stages), "--dry-run"], "is an input of stages.0 (hindcast)")


@pytest.mark.parametrize("flags", [[], ["--overwrite"]])
def test_a_folder_swarmcast_did_not_make_is_never_written_into(tmp_path, capsys, flags):
    data_store(tmp_path / "data.zarr")
    (tmp_path / "checkpoints").mkdir()
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    path = write(tmp_path, [dict(HINDCAST, output="results")])  # resumable: used to plan "resume"
    before = snapshot(tmp_path)
    refused(capsys, ["run", path, *flags], "results exists and was not made by swarmcast")
    assert snapshot(tmp_path) == before
    file_output = write(tmp_path, [dict(SWE, output="notes.txt")])
    (tmp_path / "notes.txt").write_text("a file, not an output")
    refused(capsys, ["run", file_output, "--overwrite"], "notes.txt exists and was not made by swarmcast")
    assert (tmp_path / "notes.txt").read_text() == "a file, not an output"


def test_what_counts_as_ours(tmp_path):
    data_store(tmp_path / "store.zarr")
    (tmp_path / "empty").mkdir()
    (tmp_path / "ckpts" / "seed-0").mkdir(parents=True)
    (tmp_path / "ckpts" / "seed-0" / "checkpoint.json").write_text("{}")
    (tmp_path / "training" / ".ray").mkdir(parents=True)
    (tmp_path / "mixed" / "seed-0").mkdir(parents=True)
    (tmp_path / "mixed" / "seed-0" / "checkpoint.json").write_text("{}")
    (tmp_path / "mixed" / "photo.jpg").write_bytes(b"\xff")
    (tmp_path / "file").write_text("x")
    ours = {p.name: made_by_swarmcast(p) for p in tmp_path.iterdir()}
    assert ours == {
        "store.zarr": True,
        "empty": True,
        "ckpts": True,
        "training": True,
        "mixed": False,
        "file": False,
    }


def test_overlap_relations(tmp_path):
    a = tmp_path / "a"
    assert overlap(a, a) == "is"
    assert overlap(a / "b", a) == "is inside"
    assert overlap(a, a / "b") == "contains"
    assert overlap(a, tmp_path / "ab") is None  # a shared prefix of characters is not nesting
    assert overlap(a / ".." / "a" / "x", a) == "is inside"  # compared after resolving
    assert overlap(UPath("s3://bucket/runs/h.zarr"), UPath("s3://bucket/runs")) == "is inside"
    assert overlap(UPath("s3://bucket/a"), UPath("gs://bucket/a")) is None


def test_the_demo_pipeline_passes_the_guard(tmp_path):
    from importlib import resources

    path = tmp_path / "pipeline.yaml"
    path.write_text(resources.files("swarmcast.pipelines").joinpath("demo.yaml").read_text())
    pipeline, _ = load_pipeline_file(path)
    assert guard_outputs(pipeline, StageContext(base=tmp_path, pipeline_file=path)) == []
