"""Small inputs cannot ask for unbounded memory: member counts and YAML aliases are bounded.

On an unbounded main, ``perturbation.pairs: 1000000000`` grew the driver to 23.7 GB before
the kernel killed it, ``members: 2000000000`` took 3 GB in 38 s, and a 485-byte YAML alias
bomb passed 3 GB inside validation. Each is now refused while planning (no Ray session here),
with memory measured by tracemalloc.
"""

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import yaml

from swarmcast.pipelines.config import MAX_YAML_NODES, ConfigError, load_pipeline_file, parse_pipeline
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.plan_bounds import BYTES_PER_MEMBER_RECORD, Footprint, human
from swarmcast.pipelines.runner import plan_pipeline
from swarmcast.pipelines.stages.hindcast import HindcastConfig

HINDCAST = {"kind": "hindcast", "data": "data.zarr", "init_times": {"times": ["2001-01-02"]}}


def peak_mib(fn) -> float:
    """Peak Python allocation (MiB) while ``fn`` runs, which must raise ConfigError."""
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as err:
            fn()
        return tracemalloc.get_traced_memory()[1] / 2**20, str(err.value)
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("stage", "count"),
    [
        (dict(HINDCAST, perturbation={"pairs": 1_000_000_000}), "2,000,000,001 members"),
        (
            {"kind": "sample-diffusion", "members": 2_000_000_000, "init_times": {"times": ["2001-01-02"]}},
            "2,000,000,000",
        ),
    ],
)
def test_a_billion_members_is_refused_before_anything_is_built(tmp_path, stage, count):
    pipeline = parse_pipeline({"name": "t", "stages": [stage]})
    peak, message = peak_mib(lambda: plan_pipeline(pipeline, StageContext(base=tmp_path)))
    assert count in message and "coordinator bookkeeping" in message and "available here" in message
    assert "input not found" not in message  # refused first: nothing else was looked at
    assert peak < 20, f"{peak:.1f} MiB allocated while refusing"


def test_an_alias_bomb_is_refused_with_bounded_memory(tmp_path):
    # 9 levels of 9 aliases each: 9**9 = 387 million strings from about 400 bytes
    lines = [" a: &a [x,x,x,x,x,x,x,x,x]"]
    lines += [f" {b}: &{b} [{','.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi", strict=True)]
    text = "name: t\nvariables:\n" + "\n".join(lines) + "\nstages: [{kind: swe-dataset}]\n"
    assert len(text) < 400
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    peak, message = peak_mib(lambda: load_pipeline_file(path))
    assert f"more than {MAX_YAML_NODES:,} values through YAML aliases" in message and "bomb.yaml" in message
    assert peak < 20, f"{peak:.1f} MiB allocated while refusing"


def test_aliases_within_the_bound_still_load(tmp_path):
    text = "name: t\nstages:\n  - &d {kind: swe-dataset, name: a, days: 1}\n  - {<<: *d, name: b}\n"
    path = tmp_path / "ok.yaml"
    path.write_text(text)
    pipeline, _ = load_pipeline_file(path)
    assert [s.label for s in pipeline.stages] == ["a", "b"]


def test_a_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("name: t\nstages: &s [*s]\n")
    with pytest.raises(ConfigError, match="refers to itself"):
        load_pipeline_file(path)


def test_the_store_estimate_is_the_product_of_its_dimensions(tmp_path):
    for name in ("seed-0", "seed-1"):
        (tmp_path / "checkpoints" / name).mkdir(parents=True)
        meta = {
            "format": "swarmcast-sfno/1",
            "channels": ["h", "u", "v", "vo"],
            "time_step_hours": 6.0,
            "model": {"nlat": 8, "nlon": 16},
        }
        (tmp_path / "checkpoints" / name / "checkpoint.json").write_text(json.dumps(meta))
    config = HindcastConfig.model_validate(
        dict(HINDCAST, init_times={"times": ["2001-01-02", "2001-01-03"]}, lead_hours=12, variables=["h", "u"])
    )
    fp = config.footprint(tmp_path)
    # 2 init times x 2 checkpoints x 5 members; leads 0, 6, 12 h; 2 variables; 8 x 16 float32
    assert fp.records == 2 * 2 * 5 and fp.driver_bytes == 20 * BYTES_PER_MEMBER_RECORD
    assert fp.store_bytes == 2 * 2 * 5 * 3 * 2 * 8 * 16 * 4


def test_footprint_units():
    assert Footprint(3, "three").driver_bytes == 3 * BYTES_PER_MEMBER_RECORD
    assert human(512) == "512 B" and human(1536) == "1.5 KiB" and human(3 * 2**40) == "3.0 TiB"


def test_the_dry_run_notes_the_store_size(tmp_path, capsys):
    from swarmcast.pipelines.cli import main

    test_the_store_estimate_is_the_product_of_its_dimensions(tmp_path)  # the checkpoints
    (tmp_path / "data.zarr").mkdir()
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"name": "t", "stages": [dict(HINDCAST, lead_hours=12)]}))
    # the stub checkpoints and empty data.zarr pass the plan's path checks; the dry run then
    # checks the stage's own plan as its coordinator would, and refuses them
    assert main(["run", str(Path(tmp_path / "p.yaml")), "--dry-run"]) == 2
    out, err = capsys.readouterr()
    # 1 init x 2 checkpoints x 5 members x 3 leads x 4 channels x 8 x 16 x 4 bytes = 61,440 B
    assert "output ~60.0 KiB uncompressed" in out
    assert "stages.0 (hindcast): checkpoints: " in err and "checkpoint.json: lacks" in err


REFUSE_WITHOUT_HEAVY_IMPORTS = """
import sys
from swarmcast.pipelines.cli import main
code = main(["run", sys.argv[1], "--dry-run"])
heavy = sorted(m for m in ("torch", "ray", "xarray", "zarr", "torch_harmonics") if m in sys.modules)
print(code, heavy)
"""


@pytest.mark.parametrize("case", ["pairs", "bomb"])
def test_a_cli_refusal_imports_neither_torch_nor_ray(tmp_path, case):
    """A refusal took 14 s, nearly all of it importing torch and Ray for a plan that needs
    neither; stage settings are now checked without them. (The time itself is a benchmark
    figure, not asserted here: what this pins is that nothing heavy is imported.)"""
    if case == "pairs":
        raw = {"name": "x", "stages": [dict(HINDCAST, perturbation={"pairs": 1_000_000_000})]}
        (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    else:
        levels = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
        levels += [f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]" for a, b in zip("abcde", "bcdef", strict=True)]
        (tmp_path / "p.yaml").write_text("name: x\n" + "\n".join(levels) + "\nstages: []\n")
    out = subprocess.run(
        [sys.executable, "-c", REFUSE_WITHOUT_HEAVY_IMPORTS, str(tmp_path / "p.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "2 []", out.stdout + out.stderr
    want = "2,000,000,001 members" if case == "pairs" else "expands to more than 100,000 values"
    assert want in out.stderr


def test_settings_spelled_out_for_speed_match_the_modules_they_mirror():
    """Three Literal types repeat constants of modules that import torch (see their comments)."""
    from typing import get_args

    from swarmcast.kernels.diffusion import PATHS, PREDICTIONS
    from swarmcast.ops.sfno.model import INTERNAL_GRIDS
    from swarmcast.pipelines.stages.train_diffusion.config import ModelSettings as DiffusionModel
    from swarmcast.pipelines.stages.train_sfno.config import ModelSettings as SFNOModel

    assert get_args(DiffusionModel.model_fields["path"].annotation) == PATHS
    assert get_args(DiffusionModel.model_fields["prediction"].annotation) == PREDICTIONS
    assert get_args(SFNOModel.model_fields["grid_internal"].annotation) == INTERNAL_GRIDS
