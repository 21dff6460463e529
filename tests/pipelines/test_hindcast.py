"""The ``hindcast`` stage on real Ray actors writing a real store: schema, faults, resume."""

import json
import os
import re
import shutil
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
import zarr

from support.hindcasts import STAGE, files, hindcast_inputs, run, workdir
from support.processes import Killer
from swarmcast.ops.checkpoint import load_model
from swarmcast.ops.data.readers import open_climate
from swarmcast.ops.ensemble.lease import LEASE_KEY, StoreBusyError
from swarmcast.ops.ensemble.rollout import run_unit
from swarmcast.pipelines.cli import main
from swarmcast.pipelines.config import ConfigError
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.stages.hindcast import HindcastConfig, HindcastPlan
from swarmcast.pipelines.stages.hindcast.actor import make_perturbation

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]
CH = ("h", "u", "v", "vo")


@pytest.fixture(scope="module")
def inputs(swe_store, tmp_path_factory):
    return hindcast_inputs(swe_store, tmp_path_factory.mktemp("hc-inputs"))


@pytest.fixture(scope="module")
def reference(ray_session, inputs, tmp_path_factory):
    base = workdir(tmp_path_factory.mktemp("hc-ref"), inputs)
    results = run(base)
    return base / "hindcast.zarr", results


def test_store_has_every_coord_and_attr_of_the_design(reference):
    path, results = reference
    assert results[0]["units"] == 4 and results[0]["computed"] == 4 and results[0]["redone"] == 0
    # the pool follows the cluster (2 CPUs / 0.5 per actor), not the 2 checkpoints: 4 actors
    assert results[0]["most_actors"] == results[0]["model_loads"] == 4
    ds = xr.open_zarr(path)
    assert dict(ds.sizes) == {"init_time": 2, "member": 10, "lead_time": 3, "lat": 16, "lon": 32}
    for name in ("init_time", "lead_time", "valid_time", "lat", "lon", "checkpoint", "perturbation", "sign", "seed"):
        assert name in ds.coords, name
    assert set(ds.data_vars) == {"h", "u", "v", "vo", "member_done"}
    assert ds["member_done"].values.all()
    assert ds["lead_time"].values.tolist() == [0, 6 * 3600 * 10**9, 12 * 3600 * 10**9]
    assert {"Conventions", "title", "source", "pipeline", "checkpoints", "swarmcast_stage"} <= set(ds.attrs)
    assert set(json.loads(ds.attrs["checkpoints"])) == {"seed-0", "seed-1"}
    assert ds["sign"].values.tolist() == [0, 1, -1, 1, -1] * 2 and np.isfinite(ds["h"].values).all()
    # +/- pairs centred on the analysis (the control member) at lead 0
    h0 = ds["h"].isel(lead_time=0).values
    np.testing.assert_allclose((h0[:, 1] + h0[:, 2]) / 2, h0[:, 0], rtol=1e-6)


def test_one_member_regenerated_alone_matches_the_store(reference, inputs, one_torch_thread):
    path, _ = reference
    ds = xr.open_zarr(path)
    prep = HindcastPlan(HindcastConfig.model_validate(STAGE), StageContext(base=path.parent, seed=3))
    model, meta = load_model(prep.checkpoint_paths[1])
    member = prep.members(prep.layout.init_times[1], "seed-1")[3]  # pair 2, sign -1
    data = open_climate(prep.store, CH)
    history = torch.as_tensor(np.stack([data[c].isel(time=prep.history_index[1]).values for c in CH], axis=1))
    alone = np.concatenate(list(run_unit(model, make_perturbation(prep, meta), history, [member], 2)), axis=1)[0]
    np.testing.assert_array_equal(alone[:, 0], ds["h"].values[1, 5 + 3])
    assert int(ds["seed"].values[1, 8]) == member.seed


def test_second_run_computes_nothing_and_other_configs_are_refused(reference):
    path, _ = reference
    before = files(path)
    # every unit done: the runner's probe skips the stage without starting it
    assert run(path.parent)[0] == {"stage": "hindcast", "skipped": True}
    assert files(path) == before
    changed = {**STAGE, "perturbation": {"kind": "bred-vector", "pairs": 1, "seed_channels": ["h"]}}
    with pytest.raises(ConfigError, match="made by a different hindcast config"):
        run(path.parent, changed)
    assert files(path) == before


@pytest.mark.distributed
def test_killed_actor_mid_run_gives_a_bit_identical_store(reference, inputs, tmp_path):
    ref_path, _ = reference
    base = workdir(tmp_path, inputs)
    # Ray titles an actor's process "ray::<Class>.<method>" while a method runs: killing one
    # titled ".run" lands mid-unit (not on a constructor, nor on an idle actor about to be
    # released), so that unit must be redone.
    with Killer("UnitRunner.run") as killer:
        (result,) = run(base)
    assert killer.killed, "no actor was killed"
    assert result["redone"] >= 1, result  # the killed actor's unit really was computed again
    assert result["actors_started"] >= 3  # one per checkpoint, and the replacement
    assert files(base / "hindcast.zarr") == files(ref_path)


def _done_flags(store: Path) -> np.ndarray:
    """The store's member_done flags, read with zarr alone (a poll must be quicker than a unit)."""
    return zarr.open_array(store / "member_done", mode="r")[...]


def _run_killed_after_the_first_unit(base: Path) -> np.ndarray:
    """Start ``swarmcast run`` in ``base``, SIGKILL its process group once a unit is marked done,
    and return the flags the store was left with."""
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "swarmcast"), "run", "pipeline.yaml"],
        cwd=base,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store = base / "hindcast.zarr"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if (store / "member_done" / "zarr.json").exists() and _done_flags(store).any():
            break
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return _done_flags(store)


@pytest.mark.distributed
def test_killed_driver_then_rerun_gives_a_bit_identical_store(reference, inputs, tmp_path):
    ref_path, _ = reference
    stage = {**STAGE, "actors": {"cpus": 1.0, "max_actors": 1}}
    # units take well under a second here: a kill can land after the last one, so up to three tries
    for attempt in range(3):
        (tmp_path / f"try-{attempt}").mkdir()
        base = workdir(tmp_path / f"try-{attempt}", inputs)
        (base / "pipeline.yaml").write_text(yaml.safe_dump({"name": "hc", "seed": 3, "stages": [stage]}))
        done = _run_killed_after_the_first_unit(base)
        if done.any() and not done.all():
            break
    assert done.any() and not done.all(), "the kill did not land mid-run in 3 tries"
    result = run(base, stage)
    assert 0 < result[0]["computed"] < 4
    ref = files(ref_path)
    got = files(base / "hindcast.zarr")
    assert got.keys() == ref.keys() - {"zarr.json"} | {"zarr.json"}
    for key in ref:
        if key != "zarr.json":  # root metadata holds the pipeline text, which differs (actors)
            assert got[key] == ref[key], key


@pytest.mark.distributed
def test_dead_node_units_move_elsewhere_and_the_store_is_identical(reference, inputs, tmp_path):
    """A real 2-node Ray cluster (in a subprocess: one Ray per process) loses its worker node."""
    ref_path, _ = reference
    base = workdir(tmp_path, inputs)
    raw = {"name": "hc", "seed": 3, "stages": [{**STAGE, "actors": {"cpus": 1.0}}]}
    script = Path(__file__).with_name("multinode_hindcast.py")
    out = subprocess.run(
        [sys.executable, str(script), str(base), json.dumps(raw)],
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["removed"] and report["nodes_alive"] == 1 and report["all_done"] and report["computed"] == 4, report
    assert report["done_when_removed"] < 1  # the node died with units still to do
    assert report["redone"] >= 1  # and the unit it was computing was computed again elsewhere
    ref, got = files(ref_path), files(base / "hindcast.zarr")
    assert got.keys() == ref.keys()
    assert all(got[k] == ref[k] for k in ref if k != "zarr.json")  # root metadata holds the pipeline text


def test_saved_variables_and_lead_subsampling_match_the_full_store(reference, inputs, tmp_path):
    ref_path, _ = reference
    base = workdir(tmp_path, inputs)
    run(base, {**STAGE, "variables": ["vo", "h"], "output_every": 2})
    small, full = xr.open_zarr(base / "hindcast.zarr"), xr.open_zarr(ref_path)
    assert set(small.data_vars) == {"vo", "h", "member_done"}
    assert small["lead_time"].values.tolist() == [0, 12 * 3600 * 10**9]
    # the same members, seeds and dynamics: equal to every other lead of the full store
    np.testing.assert_array_equal(small["h"].values, full["h"].values[:, :, ::2])
    np.testing.assert_array_equal(small["vo"].values, full["vo"].values[:, :, ::2])


def test_campaign_runs_dates_in_priority_order_one_at_a_time(reference, inputs, tmp_path):
    ref_path, _ = reference
    base = workdir(tmp_path, inputs)
    stage = {**STAGE, "campaign": {"max_concurrent_dates": 1, "order": "newest-first"}}
    (result,) = run(base, stage)
    assert result["dates_in_order"] == ["2001-01-02T00", "2001-01-01T18"] and result["most_dates_at_once"] == 1
    ref, got = files(ref_path), files(base / "hindcast.zarr")
    assert got.keys() == ref.keys() and all(got[k] == ref[k] for k in ref if k != "zarr.json")


def test_a_failed_write_fails_its_units_unmarked_and_a_rerun_completes_them(reference, inputs, tmp_path):
    """A real write failure: a file where init 0's shard folder of ``h`` must go (writes raise
    even as root). Each unit is retried, never marked done, and the stage stops with the
    reason; once the obstacle is gone a rerun writes exactly the reference store."""
    ref_path, _ = reference
    base = workdir(tmp_path, inputs)
    store = base / "hindcast.zarr"
    shutil.copytree(ref_path, store)
    zarr.open_group(store, mode="r+", use_consolidated=False)["member_done"][0, :] = False
    for c in CH:
        shutil.rmtree(store / c / "c" / "0")
    (store / "h" / "c" / "0").write_text("in the way")
    with pytest.raises(RuntimeError, match=r"failed 4 times; its members are not marked done") as err:
        run(base)
    assert "Not a directory" in str(err.value) or "File exists" in str(err.value), err.value
    done = xr.open_zarr(store)["member_done"].values
    assert not done[0].any() and done[1].all()  # nothing of the failed date is marked done
    (store / "h" / "c" / "0").unlink()
    (result,) = run(base)
    assert result["computed"] == 2
    assert files(store) == files(ref_path)


@pytest.mark.parametrize(
    "actors",
    [
        {"cpus": 0.5, "max_actors": 3},
        {"cpus": 0.5, "batch_members": 2},  # the block of 5 in calls of 2, 2 and 1 members
        {"cpus": 0.5, "batch_members": 1, "write_behind": False},
    ],
)
def test_the_store_does_not_depend_on_actor_count_micro_batches_or_write_behind(reference, inputs, tmp_path, actors):
    ref_path, results = reference
    base = workdir(tmp_path, inputs)
    (result,) = run(base, {**STAGE, "actors": actors})
    assert results[0]["most_actors"] == 4 and result["most_actors"] == actors.get("max_actors", 4)
    ref, got = files(ref_path), files(base / "hindcast.zarr")
    assert got.keys() == ref.keys()
    assert all(got[k] == ref[k] for k in ref if k != "zarr.json")  # root metadata holds the pipeline text


def test_other_actor_and_campaign_settings_resume_the_same_store(reference):
    """How a hindcast runs is not what it computes: run settings stay out of the fingerprint."""
    path, _ = reference
    before = files(path)
    # how it runs is not what it computes: other actor and campaign settings resume the store
    run_only = {
        **STAGE,
        "actors": {"cpus": 1.0, "max_actors": 1, "write_behind": False},
        "campaign": {"order": "newest-first"},
    }
    assert run(path.parent, run_only)[0] == {"stage": "hindcast", "skipped": True}
    assert files(path) == before


def test_a_shard_lost_after_its_unit_finished_is_named_and_only_its_unit_is_redone(reference, inputs, tmp_path, capsys):
    """Before receipts, a rerun wrote 0 units, ``inspect`` showed every member done and the
    lost members read as NaN."""
    ref_path, _ = reference
    base = workdir(tmp_path, inputs)
    store = base / "hindcast.zarr"
    shutil.copytree(ref_path, store)
    victim = min(p for p in (store / "u" / "c" / "1" / "1").rglob("*") if p.is_file())  # init 1, seed-1
    key = str(victim.relative_to(store))
    victim.unlink()
    unit = "init 2001-01-02T00, checkpoint seed-1, members 5-9"
    assert main(["verify", str(store)]) == 1
    assert f"{unit}: {key}: missing" in capsys.readouterr().out
    assert main(["inspect", str(store)]) == 0
    assert "1 finished units lost shards" in capsys.readouterr().out
    (result,) = run(base)
    assert f"{unit}: {key}: missing" in capsys.readouterr().out
    assert result["computed"] == 1
    assert files(store) == files(ref_path)
    assert main(["verify", str(store)]) == 0


def test_score_names_a_truncated_or_damaged_shard_and_verify_unmarks_it(reference, inputs, tmp_path, capsys):
    """Before, a truncated shard surfaced in ``score`` as a checksum traceback naming no file."""
    ref_path, _ = reference
    base = workdir(tmp_path, inputs)
    store = base / "hindcast.zarr"
    shutil.copytree(ref_path, store)
    score = {"kind": "score", "name": "score", "forecast": "hindcast.zarr", "truth": "data.zarr", "spectra": False}
    shard = min(p for p in (store / "h" / "c" / "0" / "0").rglob("*") if p.is_file())  # init 0, seed-0
    key, raw = str(shard.relative_to(store)), shard.read_bytes()
    shard.write_bytes(raw[: len(raw) - 100])
    with pytest.raises(ConfigError, match=rf"members 0-4: {key}: {len(raw) - 100:,} bytes, {len(raw):,} when written"):
        run(base, score)
    shard.write_bytes(raw[:-8] + bytes(8))  # the same size: only reading it finds the damage
    with pytest.raises(ConfigError, match=rf"{key}: unreadable \(.*\n.*verify --deep --unmark"):
        run(base, score)
    assert not (base / "scores.zarr").exists()
    assert main(["verify", "--deep", "--unmark", str(store)]) == 1
    assert "done flags are cleared" in capsys.readouterr().out
    assert run(base)[0]["computed"] == 1
    assert files(store) == files(ref_path)
    assert run(base, score)[0]["members"] == 10


HOLD_LEASE = """
import sys, time
from swarmcast.ops.ensemble.lease import StoreLease
StoreLease(sys.argv[1], "other run").take()
print("held", flush=True)
time.sleep(600)
"""


def test_a_second_run_into_a_store_being_written_is_refused_naming_the_owner(reference, inputs, tmp_path):
    """Before the lease, two runs into one store both computed every unit, without a word."""
    ref_path, _ = reference
    base = workdir(tmp_path, inputs)
    store = base / "hindcast.zarr"
    shutil.copytree(ref_path, store)
    zarr.open_group(store, mode="r+", use_consolidated=False)["member_done"][1, :] = False  # init 1 still to do
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LEASE, str(store)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = files(store)
        with pytest.raises(StoreBusyError, match=rf"being written by other run \(pid {holder.pid} on .*Wait for it"):
            run(base)
        after = files(store)
        assert after.pop(LEASE_KEY) and before.pop(LEASE_KEY)  # the holder's heartbeat may rewrite its lease
        assert after == before  # nothing computed, nothing unmarked
    finally:
        holder.kill()  # as a killed driver: its lease stays behind, its process is gone
        holder.wait()
    (result,) = run(base)  # taken over at once on the host it ran on
    assert result["computed"] == 2
    assert files(store) == files(ref_path)  # the lease is gone with the run that took it


def test_overwrite_never_replaces_a_store_under_the_run_writing_it(reference, inputs, tmp_path, capsys):
    """Before, ``--overwrite`` ignored the lease: it deleted the store, and the units, that
    another live run was writing. Now the plan refuses it; a job that waits for the store
    replaces it only once that run has gone."""
    ref_path, _ = reference
    base = workdir(tmp_path, inputs)
    store = base / "hindcast.zarr"
    shutil.copytree(ref_path, store)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LEASE, str(store)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = files(store)
        with pytest.raises(ConfigError, match=rf"being written by other run \(pid {holder.pid} .*--overwrite would"):
            run(base, overwrite=True)
        after = files(store)
        assert after.pop(LEASE_KEY) and before.pop(LEASE_KEY)
        assert after == before  # nothing deleted, nothing written
        threading.Timer(3.0, lambda: (holder.kill(), holder.wait())).start()  # it ends while this run waits
        (result,) = run(base, overwrite=True, wait=True)
    finally:
        holder.kill()
        holder.wait()
    assert f"{store}: waiting for other run (pid {holder.pid}" in capsys.readouterr().out
    assert result["computed"] == 4  # replaced only after the other run was gone
    ref, got = files(ref_path), files(store)
    assert got.keys() == ref.keys()  # no lease left behind in the new store
    assert all(got[k] == ref[k] for k in ref if k != "zarr.json")


def test_ctrl_c_says_what_is_kept_and_a_rerun_resumes_it(reference, inputs, tmp_path):
    """A real SIGINT to ``swarmcast run`` mid-hindcast: before, a KeyboardInterrupt traceback."""
    ref_path, _ = reference
    base = workdir(tmp_path, inputs)
    stage = {**STAGE, "actors": {"cpus": 1.0, "max_actors": 1}}  # one unit at a time
    (base / "pipeline.yaml").write_text(yaml.safe_dump({"name": "hc", "seed": 3, "stages": [stage]}))
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "swarmcast"), "run", "pipeline.yaml"],
        cwd=base,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = base / "hindcast.zarr"
    try:
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None:
            if store.exists() and xr.open_zarr(store)["member_done"].values.any():
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "swarmcast: interrupted in stage 'hindcast'" in err, err[-3000:]
    kept = re.search(rf"swarmcast: {re.escape(str(store))}: (\d) of 4 work units done and kept", err)
    assert kept and 0 < int(kept.group(1)) < 4, err[-3000:]
    assert "run the same command again to resume" in err
    (result,) = run(base, stage)
    assert result["computed"] == 4 - int(kept.group(1))
    ref, got = files(ref_path), files(store)
    assert got.keys() == ref.keys()
    assert all(got[k] == ref[k] for k in ref if k != "zarr.json")  # root metadata holds the pipeline text
