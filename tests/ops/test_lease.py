"""One writer per store: the lease object, taken, refused, kept alive, taken over when stale."""

import json
import socket
import subprocess
import sys
import threading
import time

import fsspec
import pytest

from support.ensembles import create
from swarmcast.ops.ensemble.lease import LEASE_KEY, StoreBusyError, StoreLease, live_holder
from swarmcast.ops.storage import location


def plant(path, **fields) -> None:
    """A lease left by someone else."""
    now = time.time()
    owner = {"run": "other", "host": "node-7", "pid": 1, "what": "hindcast stage 'hc'"}
    owner |= {"started": now, "heartbeat": now}
    (path / LEASE_KEY).write_text(json.dumps(owner | fields))


def test_a_held_lease_names_its_owner_and_is_gone_after_release(tmp_path):
    path, _ = create(tmp_path)
    with StoreLease(path, "hindcast stage 'a'") as first:
        assert first.take() is None
        held = json.loads((path / LEASE_KEY).read_text())
        assert held["host"] == socket.gethostname() and held["what"] == "hindcast stage 'a'"
        with pytest.raises(StoreBusyError, match=r"being written by hindcast stage 'a' \(pid \d+ on .*started"):
            StoreLease(path, "hindcast stage 'b'").take()
    assert not (path / LEASE_KEY).exists()
    with StoreLease(path, "hindcast stage 'b'") as second:  # free again
        assert second.take() is None


def test_a_live_owner_on_another_host_is_refused_until_its_heartbeat_is_stale(tmp_path):
    path, _ = create(tmp_path)
    plant(path, heartbeat=time.time() - 100)
    with pytest.raises(StoreBusyError, match=r"pid 1 on node-7.*last heartbeat 100 s ago.*180 s without"):
        StoreLease(path, "b").take()
    plant(path, heartbeat=time.time() - 200)
    with StoreLease(path, "b") as lease:
        assert "took over the stale lease of hindcast stage 'hc' (pid 1 on node-7" in lease.take()
        assert json.loads((path / LEASE_KEY).read_text())["run"] == lease.run


def test_live_holder_names_only_a_live_owner(tmp_path):
    """What ``--overwrite`` asks before it plans to replace a store."""
    path, _ = create(tmp_path)
    assert live_holder(path) is None and live_holder(tmp_path / "absent.zarr") is None
    plant(path, heartbeat=time.time() - 100)
    holder = live_holder(path)
    assert holder is not None and (holder.host, holder.pid, holder.run) == ("node-7", 1, "other")
    plant(path, heartbeat=time.time() - 200)  # stale: the next run takes it over
    assert live_holder(path) is None
    (path / LEASE_KEY).write_text("{half a lease")
    assert live_holder(path) is None
    with StoreLease(path, "b") as lease:
        lease.take()
        assert live_holder(path).run == lease.run
    assert live_holder(path) is None


def test_a_dead_owner_on_this_host_is_taken_over_at_once(tmp_path):
    """A killed driver: its heartbeat is fresh but its process is gone."""
    path, _ = create(tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    plant(path, host=socket.gethostname(), pid=gone.pid)
    with StoreLease(path, "b") as lease:
        assert f"pid {gone.pid} on {socket.gethostname()}" in lease.take()
    (path / LEASE_KEY).write_text("{half a lease")  # unreadable: taken over too
    with StoreLease(path, "b") as lease:
        assert lease.take() == f"{path}: took over an unreadable lease"


def test_the_heartbeat_keeps_the_lease_fresh_and_stops_when_taken_over(tmp_path):
    path, _ = create(tmp_path)
    with StoreLease(path, "a", heartbeat_s=0.05, stale_s=0.5) as lease:
        lease.take()
        started = json.loads((path / LEASE_KEY).read_text())["started"]
        time.sleep(0.6)  # past stale_s: only the heartbeat keeps it
        beat = json.loads((path / LEASE_KEY).read_text())["heartbeat"]
        assert beat > started + 0.4
        with pytest.raises(StoreBusyError):
            StoreLease(path, "b", heartbeat_s=0.05, stale_s=0.5).take()
        plant(path)  # someone else's lease (as after a takeover): never overwritten, never deleted
        time.sleep(0.3)
        assert lease.lost
    assert json.loads((path / LEASE_KEY).read_text())["run"] == "other"


@pytest.mark.parametrize("where", ["local", "s3"])
def test_of_runs_starting_together_exactly_one_takes_the_lease(tmp_path, where, request):
    """On S3 (moto's server) too, where zarr has no exclusive create."""
    path, _ = create(tmp_path)
    if where == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        fsspec.filesystem("s3").put(str(path) + "/", f"{bucket}/ens.zarr".removeprefix("s3://"), recursive=True)
        path = location(f"{bucket}/ens.zarr")
    gate, results = threading.Barrier(8), []
    leases = [StoreLease(path, f"run {i}") for i in range(8)]

    def attempt(lease: StoreLease) -> None:
        gate.wait()
        try:
            lease.take()
            results.append(lease.run)
        except StoreBusyError:
            results.append(None)

    threads = [threading.Thread(target=attempt, args=(lease,)) for lease in leases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r is not None]
    assert len(results) == 8 and len(winners) == 1
    assert json.loads((path / LEASE_KEY).read_text())["run"] == winners[0]
    for lease in leases:
        lease.release()
    assert not (path / LEASE_KEY).exists()


def test_a_heartbeat_longer_than_the_stale_time_is_refused():
    with pytest.raises(ValueError, match="shorter than stale_s"):
        StoreLease("x.zarr", "a", heartbeat_s=60, stale_s=30)


def test_a_waiting_run_takes_the_lease_once_the_owner_releases_it(tmp_path):
    """What jobs sent by ``submit`` and ``schedule`` do: a tick arriving while the last one still
    writes waits, says whom for, and goes on when it ends."""
    path, _ = create(tmp_path)
    first = StoreLease(path, "hindcast stage 'tick 1'")
    first.take()
    said: list[str] = []
    timer = threading.Timer(0.5, first.release)
    timer.start()
    t0 = time.time()
    with StoreLease(path, "hindcast stage 'tick 2'", heartbeat_s=0.1, stale_s=60) as second:
        assert second.take(wait=True, on_wait=said.append) is None  # released, not taken over
        assert json.loads((path / LEASE_KEY).read_text())["what"] == "hindcast stage 'tick 2'"
    timer.join()
    assert time.time() - t0 >= 0.5
    assert len(said) == 1 and "waiting for hindcast stage 'tick 1' (pid" in said[0]


def test_on_an_object_store_a_rival_write_that_raced_the_check_wins_and_this_run_backs_off(s3_bucket, tmp_path):
    """Without exclusive create, two runs can both find no lease and both write one. A run
    now reads its lease back after ``settle_s``; before, it held the lease at once, and so did
    the rival whose write landed a moment later: two writers."""
    local, _ = create(tmp_path)
    fs = fsspec.filesystem("s3")
    url = f"{s3_bucket}/ens.zarr"
    fs.put(str(local) + "/", url.removeprefix("s3://"), recursive=True)
    now = time.time()
    rival = {"run": "rival", "host": "node-7", "pid": 1, "what": "hindcast stage 'b'", "started": now, "heartbeat": now}
    key = f"{url.removeprefix('s3://')}/{LEASE_KEY}"

    def racing_write() -> None:  # lands just after this run's own write, as a rival's would
        while not fs.exists(key):
            time.sleep(0.01)
        fs.pipe(key, json.dumps(rival).encode())

    lands = threading.Thread(target=racing_write)
    lands.start()
    with pytest.raises(StoreBusyError, match=r"being written by hindcast stage 'b' \(pid 1 on node-7"):
        StoreLease(url, "hindcast stage 'a'", settle_s=1.5).take()
    lands.join()
    assert json.loads(fs.cat(key))["run"] == "rival"  # the rival's lease stands, untouched
