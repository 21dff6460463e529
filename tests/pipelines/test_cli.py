"""The CLI: user errors exit 2 with one readable line; dry runs start nothing; outputs are safe."""

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from swarmcast.pipelines.cli import main

SMALL = {
    "name": "t",
    "seed": 1,
    "stages": [
        {
            "kind": "swe-dataset",
            "name": "data",
            "output": "data.zarr",
            "grid": {"nlat": 16, "nlon": 32},
            "trajectories": 2,
            "days": 1,
            "spinup_days": 0.25,
        }
    ],
}


def write_pipeline(folder: Path, raw: dict = SMALL) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_user_errors_exit_2_with_one_line_and_no_traceback(tmp_path, capsys):
    bad = dict(SMALL, stages=[dict(SMALL["stages"][0], grid={"nlat": 16, "nlom": 32})])
    code, _, err = run_cli(["run", write_pipeline(tmp_path / "a", bad)], capsys)
    assert code == 2
    assert err.strip() == "swarmcast: error: stages.0.grid.nlom: unknown key (did you mean 'nlon'?)"
    code, _, err = run_cli(["run", tmp_path / "nothing.yaml"], capsys)
    assert code == 2 and "pipeline file not found" in err and "Traceback" not in err
    code, _, err = run_cli(["inspect", tmp_path / "nope.zarr"], capsys)
    assert code == 2 and f"{tmp_path / 'nope.zarr'}: no such store" in err


def test_missing_input_fails_before_any_work(tmp_path, capsys):
    train_only = {"name": "t", "stages": [{"kind": "train-sfno", "data": "missing.zarr", "checkpoints": 1}]}
    code, _, err = run_cli(["run", write_pipeline(tmp_path, train_only)], capsys)
    assert code == 2 and "stages.0 (train-sfno): input not found:" in err and "missing.zarr" in err
    assert not (tmp_path / "checkpoints").exists()


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    path = write_pipeline(tmp_path)
    code, out, _ = run_cli(["run", path, "--dry-run", "data.days=2"], capsys)
    assert code == 0
    assert "data [swe-dataset] -> run" in out and "18 times x 4 channels" in out
    assert not (tmp_path / "data.zarr").exists()


def test_demo_dry_run_plans_the_built_in_pipeline_and_writes_nothing(tmp_path, capsys):
    code, out, _ = run_cli(["demo", "--out", tmp_path / "demo", "--dry-run"], capsys)
    assert code == 0 and not (tmp_path / "demo").exists()
    assert "484 times x 4 channels" in out and f"base {tmp_path / 'demo'}" in out
    assert "dry run: every check passed; nothing was started or written" in out


@pytest.mark.timeout(300)
def test_rerun_skips_same_config_and_refuses_a_different_one(ray_session, tmp_path, capsys):
    path = write_pipeline(tmp_path)
    code, out, _ = run_cli(["run", path], capsys)
    assert code == 0 and "done: 10 snapshots" in out
    store = tmp_path / "data.zarr"
    before = xr.open_zarr(store)["h"].values.copy()

    code, out, _ = run_cli(["run", path], capsys)
    assert code == 0 and "-> skip" in out

    code, _, err = run_cli(["run", path, "seed=2"], capsys)
    assert code == 2 and "already exists and was not made by this stage config" in err
    np.testing.assert_array_equal(xr.open_zarr(store)["h"].values, before)

    code, out, _ = run_cli(["run", path, "seed=2", "--overwrite"], capsys)
    assert code == 0 and "-> overwrite" in out
    assert not np.array_equal(xr.open_zarr(store)["h"].values, before)

    code, out, _ = run_cli(["inspect", store], capsys)
    assert code == 0 and "h " in out and "time=10" in out and "BloscCodec" in out


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "swarmcast"
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "demo" in result.stdout and "inspect" in result.stdout


def test_run_refuses_a_swarmcast_version_other_than_the_submitters(tmp_path, capsys):
    (tmp_path / "p.yaml").write_text("stages:\n  - kind: swe-dataset\n")
    code = main(["run", str(tmp_path / "p.yaml"), "--expect-version", "9.9.9"])
    assert code == 2 and "the submitted job needs 9.9.9" in capsys.readouterr().err
    assert not (tmp_path / "data.zarr").exists()


def test_submission_ids_name_the_work_and_change_with_it(tmp_path):
    from swarmcast.pipelines.cluster.jobs import submission_id
    from swarmcast.pipelines.config import load_pipeline_file

    text = "name: hc\nstages:\n  - kind: hindcast\n    init_times: {times: ['2003-01-10T00', '2003-01-12T00']}\n"
    (tmp_path / "p.yaml").write_text(text)
    a = submission_id(*load_pipeline_file(tmp_path / "p.yaml", []))
    assert a == submission_id(*load_pipeline_file(tmp_path / "p.yaml", []))
    assert a.startswith("swarmcast-hc-2003-01-10T00..2003-01-12T00-")
    assert a != submission_id(*load_pipeline_file(tmp_path / "p.yaml", ["stages.0.lead_hours=24"]))


def test_submit_to_an_unreachable_address_fails_fast(tmp_path, capsys):
    (tmp_path / "p.yaml").write_text("stages:\n  - kind: swe-dataset\n")
    code = main(["submit", str(tmp_path / "p.yaml"), "--address", "http://127.0.0.1:9"])
    assert code == 2 and "cannot reach the Ray Jobs API at http://127.0.0.1:9" in capsys.readouterr().err


def test_cron_schedules():
    from datetime import UTC, datetime

    from swarmcast.pipelines.cluster.schedule import Schedule
    from swarmcast.pipelines.config import ConfigError

    daily = Schedule.from_cron("0 6 * * *")
    t = datetime(2026, 11, 27, 7, 30, tzinfo=UTC)
    assert daily.previous(t) == datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
    assert daily.next(daily.previous(t)) == datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
    weekdays = Schedule.from_cron("*/15 12 * * 1-5")  # Friday 2026-11-27 -> Monday
    assert weekdays.next(datetime(2026, 11, 27, 12, 50, tzinfo=UTC)) == datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    every = Schedule.every_seconds(20)
    assert every.previous(datetime(2026, 1, 1, 0, 0, 47, tzinfo=UTC)).second == 40
    with pytest.raises(ConfigError, match="5 fields"):
        Schedule.from_cron("0 6 * *")
    with pytest.raises(ConfigError, match=r"outside 0\.\.23"):
        Schedule.from_cron("0 25 * * *")


def test_run_honours_the_expected_version_from_the_environment(tmp_path, capsys, monkeypatch):
    """The variable that `submit` and the cluster/ manifests set; --expect-version is its flag twin."""
    from swarmcast.ops import __version__

    (tmp_path / "p.yaml").write_text("stages:\n  - kind: swe-dataset\n")
    monkeypatch.setenv("SWARMCAST_EXPECTED_VERSION", "9.9.9")
    code = main(["run", str(tmp_path / "p.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and f"this node has swarmcast {__version__}, the submitted job needs 9.9.9" in err
    assert not (tmp_path / "data.zarr").exists()
    monkeypatch.setenv("SWARMCAST_EXPECTED_VERSION", __version__)  # the same version passes
    assert main(["run", str(tmp_path / "p.yaml"), "--dry-run"]) == 0


def test_an_unreadable_output_is_an_error_about_reading_not_a_foreign_config(tmp_path, capsys):
    path = write_pipeline(tmp_path)
    store = tmp_path / "data.zarr"
    store.mkdir()
    (store / "zarr.json").symlink_to("zarr.json")  # reading it fails with an OSError (ELOOP)
    code, _, err = run_cli(["run", path, "--dry-run"], capsys)
    assert code == 2 and "cannot read what made this output" in err and "data.zarr" in err
    assert "was not made by this stage config" not in err
    assert (store / "zarr.json").is_symlink()  # untouched


def test_every_missing_input_is_reported_before_any_work(tmp_path, capsys):
    stages = [
        {"kind": "train-sfno", "data": "missing.zarr", "checkpoints": 1},
        {"kind": "score", "forecast": "nowhere.zarr", "truth": "missing.zarr"},
    ]
    code, _, err = run_cli(["run", write_pipeline(tmp_path, {"name": "t", "stages": stages})], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 3, lines
    assert "stages.0 (train-sfno): input not found:" in lines[0] and "stages.1 (score)" in lines[2]


def test_a_bug_is_a_traceback_not_a_one_line_user_error(ray_session, tmp_path, monkeypatch):
    """Only input errors are one-liners: a KeyError from a bug in a stage must surface."""
    from swarmcast.pipelines import stages

    def broken(config, ctx):
        return {}["no such key"]

    monkeypatch.setattr(importlib.import_module(stages.STAGES["swe-dataset"].module), "run", broken)
    path = write_pipeline(tmp_path)
    with pytest.raises(KeyError, match="no such key"):
        main(["run", str(path)])


def test_debug_shows_the_traceback_before_or_after_the_command(tmp_path, capsys):
    from swarmcast.pipelines.config import ConfigError

    bad = dict(SMALL, stages=[dict(SMALL["stages"][0], grid={"nlat": 16, "nlom": 32})])
    path = write_pipeline(tmp_path, bad)
    for args in (["--debug", "run", str(path)], ["run", str(path), "--debug"]):
        with pytest.raises(ConfigError, match="nlom"):
            main(args)
    assert run_cli(["run", path], capsys)[0] == 2  # and without it, the one-line message


def test_a_damaged_zarr_json_is_named_not_a_json_traceback(tmp_path, capsys):
    from swarmcast.ops.errors import InputError
    from swarmcast.ops.storage import open_zarr_dataset

    store = tmp_path / "data.zarr"
    xr.Dataset({"h": (("time", "lat", "lon"), np.zeros((2, 3, 4)))}).to_zarr(store, zarr_format=3)
    (store / "h" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "arr')  # cut short
    with pytest.raises(InputError, match=r"h/zarr.json is damaged: not valid JSON"):
        open_zarr_dataset(store, consolidated=False)  # reads every array's own metadata
    (store / "zarr.json").write_bytes(b"\xff\xfe not json")
    code, _, err = run_cli(["inspect", store], capsys)
    assert code == 2 and f"{store / 'zarr.json'} is damaged: not valid JSON" in err and "Traceback" not in err


def test_an_output_below_a_file_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("keep me")
    raw = dict(SMALL, stages=[dict(SMALL["stages"][0], output="notes.txt/data.zarr")])
    code, _, err = run_cli(["run", write_pipeline(tmp_path, raw), "--dry-run"], capsys)
    assert code == 2
    assert f"output {tmp_path / 'notes.txt' / 'data.zarr'} cannot be written: {tmp_path / 'notes.txt'} is a file" in err
    assert (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("raised", "code", "message"),
    [
        (PermissionError(13, "Permission denied", "/data/run/data.zarr"), 1, "cannot use /data/run/data.zarr"),
        (NotADirectoryError(20, "Not a directory", "/data/run/x"), 1, "cannot use /data/run/x (stage 'data')"),
        (KeyboardInterrupt(), 130, "interrupted in stage 'data'"),
    ],
)
def test_the_machine_refusing_or_ctrl_c_is_a_message_naming_the_stage(
    ray_session, tmp_path, capsys, monkeypatch, raised, code, message
):
    """What the machine refuses mid-run is not a bug: one line with the path and the stage
    (exit 1), or for Ctrl-C what is kept and how to resume (exit 130); --debug re-raises."""
    from swarmcast.pipelines import stages

    def refused(config, ctx):
        raise raised

    monkeypatch.setattr(importlib.import_module(stages.STAGES["swe-dataset"].module), "run", refused)
    path = write_pipeline(tmp_path)
    got, _, err = run_cli(["run", path], capsys)
    assert got == code and message in err and "Traceback" not in err, err
    if code == 130:
        assert f"{tmp_path / 'data.zarr'}: not written (outputs appear only when complete)" in err
        assert "run the same command again to resume" in err
    with pytest.raises(type(raised)):
        main(["--debug", "run", str(path)])


def test_version_names_the_installed_package(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"swarmcast {version('swarmcast')}"
