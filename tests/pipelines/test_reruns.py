"""Reruns that know what changed: a stage is redone when an input it reads changed, stages after
it follow, nothing else reruns; --only, --from and --overwrite=STAGE select and replace."""

import json
import subprocess
import sys

import pytest
import xarray as xr
import yaml

from support.hindcasts import STAGE, files, hindcast_inputs
from swarmcast.pipelines.config import ConfigError, parse_pipeline
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.runner import plan_pipeline, run_pipeline
from swarmcast.pipelines.selection import StageSelection

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]
DAY1, DAY2 = "2001-01-01T18", "2001-01-02T00"
SCORE = {"kind": "score", "name": "score", "regions": ["global"], "bootstrap": 2, "spectra": False, "task_cpus": 0.5}


def _pipeline(day: str, lead_hours: int = 12) -> dict:
    hindcast = {**STAGE, "init_times": {"times": [day]}, "lead_hours": lead_hours}
    return {"name": "reruns", "seed": 3, "stages": [hindcast, SCORE]}


def _run(base, raw, select=None, overwrite=False):
    ctx = StageContext(base=base, seed=3, overwrite=overwrite, pipeline_raw=raw)
    return {r["stage"]: r for r in run_pipeline(parse_pipeline(raw), ctx, select=select)}


def _actions(base, raw, select=None):
    ctx = StageContext(base=base, seed=3, pipeline_raw=raw)
    return [p.action for p in plan_pipeline(parse_pipeline(raw), ctx, select)]


@pytest.fixture(scope="module")
def base(ray_session, swe_store, tmp_path_factory):
    base = tmp_path_factory.mktemp("reruns")
    hindcast_inputs(swe_store, base)
    (base / "data.zarr").symlink_to(swe_store)
    first = _run(base, _pipeline(DAY1))
    assert first["hindcast"]["computed"] == 2 and not first["score"].get("skipped")
    return base


def test_a_rerun_with_nothing_changed_skips_both_stages_and_starts_no_ray(base, capsys):
    assert _actions(base, _pipeline(DAY1)) == ["skip", "skip"]
    # with a stage that may still change its input (an unfinished store) the score waits for it
    flag = next(p for p in (base / "hindcast.zarr" / "member_done" / "c").rglob("*") if p.is_file())
    saved = flag.read_bytes()
    flag.unlink()
    try:
        assert _actions(base, _pipeline(DAY1)) == ["resume", "check"]
    finally:
        flag.write_bytes(saved)
    before = files(base / "scores.zarr")
    capsys.readouterr()
    results = _run(base, _pipeline(DAY1))
    assert results == {"hindcast": {"stage": "hindcast", "skipped": True}, "score": {"stage": "score", "skipped": True}}
    out = capsys.readouterr().out
    assert "[hindcast] up to date (hindcast.zarr already holds init time 2001-01-01T18, all done" in out
    assert "[score] up to date (outputs exist from the same config and inputs): skipped" in out
    assert files(base / "scores.zarr") == before


def test_only_and_from_select_stages_and_a_run_with_nothing_to_do_imports_no_ray(base):
    assert _actions(base, _pipeline(DAY1), StageSelection(only="score")) == ["not selected", "skip"]
    assert _actions(base, _pipeline(DAY1), StageSelection(start="score")) == ["not selected", "skip"]
    assert _actions(base, _pipeline(DAY1), StageSelection(only="score", overwrite=frozenset({"score"}))) == [
        "not selected",
        "overwrite",
    ]
    with pytest.raises(ConfigError, match=r"--only scores: no such stage \(the stages are hindcast, score\)"):
        _actions(base, _pipeline(DAY1), StageSelection(only="scores"))
    # the command line, in a fresh process: a run with nothing to do never imports Ray
    (base / "reruns.yaml").write_text(yaml.safe_dump(_pipeline(DAY1)))
    for flags in (["--only", "score"], []):
        code = (
            "import sys; from swarmcast.pipelines.cli import main; "
            f"rc = main(['run', {str(base / 'reruns.yaml')!r}, *{flags!r}]); "
            "print('ray imported:', 'ray' in sys.modules); sys.exit(rc)"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "[score] up to date" in out.stdout and "ray imported: False" in out.stdout
        shown = "[hindcast] not selected (--only/--from)" if flags else "[hindcast] up to date"
        assert shown in out.stdout


def test_a_grown_hindcast_makes_its_scores_stale_and_they_are_redone(base, capsys):
    capsys.readouterr()
    results = _run(base, _pipeline(DAY2))  # the next day: the store grows, the scores follow
    assert results["hindcast"]["computed"] == 2 and not results["score"].get("skipped")
    assert "[score] its inputs changed since its output was made (hindcast.zarr): redoing it" in capsys.readouterr().out
    scores = xr.open_zarr(base / "scores.zarr")
    assert scores.sizes["init_time"] == 2
    assert json.loads(scores.attrs["swarmcast_stage"])["inputs"]["data.zarr"] is not None  # data made by swarmcast
    assert _run(base, _pipeline(DAY2))["score"].get("skipped")


def test_overwrite_of_one_stage_replaces_it_and_its_followers_without_refusing_them(base):
    longer = _pipeline(DAY1, lead_hours=18)
    with pytest.raises(ConfigError, match=r"differing: init_times.times, lead_hours\)"):
        _run(base, longer)  # a different hindcast config is never mixed into the store
    results = _run(base, longer, StageSelection(overwrite=frozenset({"hindcast"})))
    assert results["hindcast"]["computed"] == 2 and not results["score"].get("skipped")
    assert xr.open_zarr(base / "scores.zarr").sizes["lead_time"] == 4  # 0, 6, 12, 18 h: rescored


def test_a_dry_run_refuses_what_the_stage_would_refuse_and_starts_nothing(base, capsys):
    """Before, a dry run passed these and the run failed after Ray had started."""
    from swarmcast.pipelines.cli import main

    bad = _pipeline(DAY1)
    bad["stages"][0] = {
        **bad["stages"][0],
        "variables": ["t2m"],
        "perturbation": {**STAGE["perturbation"], "seed_channels": ["q"]},
    }
    (base / "bad.yaml").write_text(yaml.safe_dump(bad))
    before = files(base / "hindcast.zarr")
    capsys.readouterr()
    assert main(["run", str(base / "bad.yaml"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "stages.0 (hindcast): variables: ['t2m'] are not model channels ['h', 'u', 'v', 'vo']" in err
    assert files(base / "hindcast.zarr") == before
