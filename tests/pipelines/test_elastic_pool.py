"""The elastic unit scheduler on real Ray actors writing a real store.

The actors are ``swarmcast bench scale``'s emulated runners: a sleep for the model, real shard
and done-flag writes. The pool is sized by ``max_actors`` here, independently of the number of
checkpoints; the counts of loads below follow from the policy (keep the held checkpoint while
it has released units, else move to the one with the most queued units per actor).
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from swarmcast.ops.ensemble.campaign import DateWindow
from swarmcast.ops.ensemble.done_flags import done_units
from swarmcast.ops.ensemble.store import Unit, create_ensemble_store
from swarmcast.ops.errors import StorageFullError
from swarmcast.pipelines.bench.scale import DEFAULTS, EmulatedPlan, EmulatedUnitRunner, emulated_layout
from swarmcast.pipelines.cli import main
from swarmcast.pipelines.ensemble.scheduler import SchedulerReport, run_units
from swarmcast.pipelines.ensemble.settings import ActorSettings

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]
PARAMS = {
    **DEFAULTS,
    "checkpoints": 3,
    "blocks": 2,
    "leads": 3,
    "step_s": 0.01,
    "load_s": 0.02,
    "member_block": 2,
    "nlat": 4,
    "nlon": 8,
    "channels": 2,
}
N_DATES = 2
UNITS = N_DATES * PARAMS["checkpoints"] * PARAMS["blocks"]


def run_pool(folder: Path, max_actors: int, max_dates: int | None = None) -> tuple[Path, SchedulerReport]:
    layout = emulated_layout(PARAMS, N_DATES)
    plan = EmulatedPlan(
        ActorSettings(cpus=0.25, max_actors=max_actors), layout, PARAMS["step_s"], PARAMS["load_s"], [""] * 3
    )
    path = folder / f"pool-{max_actors}-{max_dates}.zarr"
    create_ensemble_store(path, layout, np.zeros((N_DATES, layout.n_members), dtype=np.int64), {"swarmcast_stage": "t"})
    pending = list(layout.units())
    window = DateWindow(pending, max_dates=max_dates)
    report = run_units(plan, path, pending, label="pool", runner=EmulatedUnitRunner, window=window)
    assert len(done_units(path, layout)) == UNITS
    return path, report


def files(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


def test_one_actor_walks_through_the_checkpoints_loading_each_once(ray_session, tmp_path):
    _, report = run_pool(tmp_path, max_actors=1)
    assert (report.computed, report.actors_started, report.most_actors) == (UNITS, 1, 1)
    assert report.model_loads == PARAMS["checkpoints"]  # all of a checkpoint's units, then the next
    assert report.redone == 0


def test_an_actor_keeps_its_checkpoint_from_one_date_to_the_next(ray_session, tmp_path):
    # one date at a time: date 0 loads 0, 1, 2; date 1 starts on the held 2, then loads 0 and 1
    _, report = run_pool(tmp_path, max_actors=1, max_dates=1)
    assert report.model_loads == 5


def test_more_actors_than_checkpoints_share_them_and_write_the_same_bytes(ray_session, tmp_path):
    one, _ = run_pool(tmp_path, max_actors=1)
    many, report = run_pool(tmp_path, max_actors=6)
    assert report.most_actors == report.actors_started == 6 > PARAMS["checkpoints"]
    assert report.model_loads >= 6 and report.computed == UNITS
    assert files(many) == files(one)


def test_with_write_behind_every_unit_computes_while_the_last_one_is_written(ray_session, tmp_path):
    """One actor, one checkpoint, 4 units of 0.4 s compute whose writes take 0.3 s more. Each
    unit, the last ones included, must start computing before the unit before it has finished
    writing: the actor says when its compute is free (``COMPUTED``) and the scheduler hands it
    the next unit then (holding the last units back until an actor was wholly free left it idle
    for a whole write)."""
    events = tmp_path / "events.txt"

    class SlowWriteRunner(EmulatedUnitRunner):  # defined here: Ray ships it to the actors by value
        def _hold(self, checkpoint: int) -> None:
            if self.checkpoint >= 0:  # the first step of a unit under the compute lock (not __init__)
                with open(events, "a") as f:
                    f.write(f"computing {time.time()}\n")
            super()._hold(checkpoint)

        def run(self, unit: Unit) -> Iterator[str]:
            events_of_unit = super().run(unit)
            yield next(events_of_unit)  # COMPUTED: the lock is free again
            time.sleep(0.3)  # a slow write, outside the lock
            last = list(events_of_unit)  # its shards and done flags: [WRITTEN]
            with open(events, "a") as f:
                f.write(f"written {time.time()}\n")
            yield from last

    params = {**PARAMS, "checkpoints": 1, "blocks": 1, "leads": 1}
    layout = emulated_layout(params, 4)
    plan = EmulatedPlan(ActorSettings(cpus=0.25, max_actors=1), layout, 0.4, 0.0, [""])
    path = tmp_path / "slow.zarr"
    create_ensemble_store(path, layout, np.zeros((4, layout.n_members), dtype=np.int64), {"swarmcast_stage": "t"})
    report = run_units(plan, path, list(layout.units()), label="slow", runner=SlowWriteRunner)
    assert report.computed == 4 and len(done_units(path, layout)) == 4
    # the computes (0.4 s sleeps) run one at a time: at least one before the first unit is out
    assert 0.4 <= report.first_unit_s < report.units_s and report.units_s >= 4 * 0.4
    lines = [line.split() for line in events.read_text().splitlines()]
    starts = [float(t) for kind, t in lines if kind == "computing"]
    ends = [float(t) for kind, t in lines if kind == "written"]
    assert len(starts) == len(ends) == 4
    for k in range(1, 4):
        assert starts[k] < ends[k - 1], f"unit {k} waited for unit {k - 1}'s writes"


def test_a_full_disk_stops_at_once_naming_the_store_and_a_rerun_resumes(ray_session, tmp_path):
    """The actors run under a 4 KiB file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored), so
    the kernel refuses their shard writes as a full disk would (EFBIG where a disk says
    ENOSPC; a small file system of our own would need root). The unit is not retried: the
    error names the store and nothing is marked done. Without the limit a rerun completes the
    store with the bytes of an undisturbed run."""

    class FullDiskRunner(EmulatedUnitRunner):  # defined here: Ray ships it to the actors by value
        def __init__(self, plan: EmulatedPlan, checkpoint: int, store: str) -> None:
            import ctypes
            import resource
            import signal

            ctypes.CDLL(None).signal(signal.SIGXFSZ, ctypes.c_void_p(1))  # SIG_IGN, for every thread
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
            super().__init__(plan, checkpoint, store)

    params = {**PARAMS, "nlat": 16, "nlon": 32}  # a shard of random values: ~12 KB, over the limit
    layout = emulated_layout(params, N_DATES)
    plan = EmulatedPlan(ActorSettings(cpus=0.25, max_actors=2), layout, 0.0, 0.0, [""] * 3)
    stores = {}
    for name in ("full", "reference"):
        stores[name] = tmp_path / f"{name}.zarr"
        create_ensemble_store(
            stores[name], layout, np.zeros((N_DATES, layout.n_members), dtype=np.int64), {"swarmcast_stage": "t"}
        )
    pending = list(layout.units())
    with pytest.raises(StorageFullError, match="File too large") as err:
        run_units(plan, stores["full"], pending, label="full", runner=FullDiskRunner)
    assert f"cannot write to {stores['full']}" in str(err.value) and "rerun to resume" in str(err.value)
    assert not done_units(stores["full"], layout)
    report = run_units(plan, stores["full"], pending, label="rerun", runner=EmulatedUnitRunner)
    run_units(plan, stores["reference"], pending, label="reference", runner=EmulatedUnitRunner)
    assert report.computed == UNITS and report.redone == 0
    assert files(stores["full"]) == files(stores["reference"])


def test_bench_scale_refuses_a_running_ray_session(ray_session, capsys):
    assert main(["bench", "scale", "accelerators=2"]) == 2
    assert "starts its own Ray instance" in capsys.readouterr().err


def test_bench_scale_reports_utilization_per_cluster_size(tmp_path):
    """In a fresh process: the bench starts Ray with the virtual accelerators itself."""
    args = ["accelerators=1,4", "checkpoints=3", "blocks=2", "units_per_accelerator=2", "leads=2"]
    args += ["step_s=0.05", "load_s=0.05", "member_block=2", "nlat=4", "nlon=8", "channels=2"]
    args += ["campaign_dates=5", "campaign_blocks=2"]
    exe = Path(sys.executable).parent / "swarmcast"
    out = subprocess.run(
        [str(exe), "bench", "scale", *args],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=tmp_path,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert [row["accelerators"] for row in result["sizes"]] == [1, 4]
    for row in result["sizes"]:
        n = row["accelerators"]
        # 2 units per accelerator, init-major over dates of 3 checkpoints x 2 blocks
        assert (row["units"], row["init_dates"]) == (2 * n, -(-2 * n // 6))
        assert row["model_s"] == pytest.approx(row["units"] * 2 * 0.05)
        assert row["most_actors"] == n and row["model_loads"] >= n
        # N accelerators cannot be busy more than N x wall: a pool larger than N would break this
        assert 0 < row["utilization_with_startup"] < row["utilization"] <= 1
        assert row["startup_s"] >= 0.05  # every actor loaded a checkpoint (load_s) before work
        assert row["driver_cpu_ms_per_unit"] > 0 and 0 < row["machine_cpu_busy"] <= 1
    assert result["ratio"] == result["sizes"][-1]["utilization"]
    # bookkeeping of 5 dates x 3 checkpoints x 2 blocks, dates 0, 2 and 4 marked done
    campaign = result["campaign"]
    assert (campaign["units"], campaign["units_found_done"]) == (30, 18)
    assert all(campaign[k] > 0 for k in ("create_store_s", "plain_mask_read_s", "date_window_us_per_unit"))
    assert not list(tmp_path.iterdir())  # its stores lived in a temporary folder
