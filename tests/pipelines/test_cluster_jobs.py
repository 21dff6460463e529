"""Jobs on a real two-node Ray cluster (two ``ray start`` processes with token auth on).

Submit the demo-sized hindcast with ``swarmcast submit --wait``; kill the worker node in the
middle of another and let the job finish on what is left; run a schedule; and fail fast without
the token, at a wrong address, and with paths the cluster must not use.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import xarray as xr
import yaml

from support.checkpoints import write_untrained_checkpoint
from swarmcast.pipelines.cluster.schedule import Schedule, run_schedule
from swarmcast.pipelines.config import parse_pipeline
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.runner import run_pipeline

pytestmark = [pytest.mark.distributed, pytest.mark.slow, pytest.mark.timeout(900)]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    jobs: str
    gcs: str
    env: dict
    head: subprocess.Popen
    worker: subprocess.Popen
    temp: Path

    def swarmcast(self, *args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "swarmcast"), *args], capture_output=True, text=True, env=env or self.env, timeout=timeout
        )

    def add_worker(self) -> subprocess.Popen:
        # Each node gets its own temp dir, as on a real cluster where nodes have their own disks. Sharing
        # the head's would let two nodes' runtime-env agents unpack a job's working_dir into one folder,
        # and an agent re-unpacks by deleting the folder first: a process already running in it on the
        # other node then has no current directory (torch's import calls os.getcwd()).
        temp = Path(tempfile.mkdtemp(prefix="rw", dir="/tmp"))
        args = ["--address", self.gcs, "--num-cpus=2", "--object-store-memory=200000000", f"--temp-dir={temp}"]
        return _start([*args, *_agent_ports()], self.env, temp)


def _agent_ports() -> list[str]:
    """Free ports for a node's agents: several nodes (and the tests' own Ray) share this machine,
    and Ray's fixed defaults (e.g. the dashboard agent's 52365) would collide."""
    return [
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={free_port()}",
    ]


def _start(args: list[str], env: dict, temp: Path) -> subprocess.Popen:
    log = open(temp / f"ray-start-{time.time_ns()}.log", "w")  # noqa: SIM115 (lives as long as the node)
    return subprocess.Popen(
        [str(BIN / "ray"), "start", "--block", *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: teardown kills the node and its workers
    )


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _alive_nodes(c: Cluster) -> int:
    code = f"import ray; ray.init(address={c.gcs!r}); print(sum(n['Alive'] for n in ray.nodes()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=c.env, timeout=120)
    return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else -1


@pytest.fixture(scope="module")
def cluster():
    temp = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))  # short: Ray's socket paths have a length limit
    token = secrets.token_hex(16)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # jobs run `python` from the nodes' PATH
    env.pop("RAY_ADDRESS", None)
    port, dash = free_port(), free_port()
    head = _start(
        [
            "--head",
            f"--port={port}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash}",
            "--num-cpus=1",
            "--object-store-memory=200000000",
            f"--temp-dir={temp}",
            "--disable-usage-stats",
            *_agent_ports(),
        ],
        env,
        temp,
    )
    c = Cluster(f"http://127.0.0.1:{dash}", f"127.0.0.1:{port}", env, head, head, temp)
    deadline = time.time() + 120
    while time.time() < deadline and c.swarmcast("jobs", "list", "--address", c.jobs, timeout=60).returncode:
        time.sleep(1)
    c.worker = c.add_worker()
    while time.time() < deadline and _alive_nodes(c) < 2:
        time.sleep(1)
    assert _alive_nodes(c) == 2, "the two-node cluster did not come up"
    yield c
    for p in (c.worker, c.head):
        _kill(p)


HINDCAST = {
    "kind": "hindcast",
    "data": "data.zarr",
    "checkpoints": "checkpoints",
    "output": "hindcast.zarr",
    "init_times": {"times": ["2001-01-01T18", "2001-01-02T00", "2001-01-02T06", "2001-01-02T12"]},
    "lead_hours": 24,
    "perturbation": {"kind": "bred-vector", "pairs": 2, "seed_channels": ["h"]},
    "actors": {"cpus": 1.0},
}


def workdir(base: Path, swe_store: Path, stages: list[dict], shared: bool = True) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    (base / "data.zarr").symlink_to(swe_store)
    for s in (0, 1):
        write_untrained_checkpoint(base / "checkpoints" / f"seed-{s}", swe_store, s)
    raw = {"name": "cluster-test", "seed": 4, "stages": stages}
    if shared:
        raw["shared_storage"] = ["."]
    (base / "pipeline.yaml").write_text(yaml.safe_dump(raw))
    return base / "pipeline.yaml"


def files(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(ray_session, swe_store, tmp_path_factory):
    """The same hindcast run locally, undisturbed."""
    base = tmp_path_factory.mktemp("local")
    path = workdir(base, swe_store, [HINDCAST])
    raw = yaml.safe_load(path.read_text())
    run_pipeline(parse_pipeline(raw), StageContext(base=base, seed=4, pipeline_raw=raw))
    return files(base / "hindcast.zarr")


def same_store(got: dict, ref: dict) -> bool:
    return got.keys() == ref.keys() and all(got[k] == ref[k] for k in ref if k != "zarr.json")


def test_submit_wait_runs_the_hindcast_on_the_cluster_once(cluster, swe_store, reference, tmp_path):
    path = workdir(tmp_path / "w", swe_store, [HINDCAST])
    out = cluster.swarmcast("submit", str(path), "--address", cluster.jobs, "--wait")
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == "SUCCEEDED" and result["submission_id"].startswith(
        "swarmcast-cluster-test-2001-01-01T18"
    )
    assert same_store(files(path.parent / "hindcast.zarr"), reference)
    again = cluster.swarmcast("submit", str(path), "--address", cluster.jobs)
    assert json.loads(again.stdout.strip().splitlines()[-1])["action"] == "already ran; not resubmitted"
    listed = cluster.swarmcast("jobs", "list", "--address", cluster.jobs).stdout
    assert listed.count(result["submission_id"]) == 1
    logs = cluster.swarmcast("jobs", "logs", result["submission_id"], "--address", cluster.jobs).stdout
    assert "units written" in logs


def test_a_hindcast_on_two_nodes_writes_one_store_at_an_s3_url(cluster, swe_store, reference, s3_bucket, tmp_path):
    import fsspec

    fs = fsspec.filesystem("s3")
    fs.put(f"{swe_store}/", f"{s3_bucket}/data.zarr", recursive=True)
    for s in (0, 1):
        write_untrained_checkpoint(tmp_path / "ckpt" / f"seed-{s}", swe_store, s)
        fs.put(f"{tmp_path / 'ckpt' / f'seed-{s}'}/", f"{s3_bucket}/checkpoints/seed-{s}", recursive=True)
    urls = {k: f"{s3_bucket}/{HINDCAST[k]}" for k in ("data", "checkpoints", "output")}
    # no shared_storage: every path is a URL that both nodes reach
    path = tmp_path / "w" / "pipeline.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({"name": "cluster-test", "seed": 4, "stages": [{**HINDCAST, **urls}]}))
    out = cluster.swarmcast("submit", str(path), "--address", cluster.jobs, "--wait")
    assert out.returncode == 0, out.stderr[-3000:]
    fs.invalidate_cache()
    prefix = urls["output"].removeprefix("s3://")
    got = {k.removeprefix(prefix + "/"): fs.cat_file(k) for k in fs.find(prefix)}
    assert same_store(got, reference)  # the cluster's actors wrote every shard into the one store
    assert not (path.parent / "hindcast.zarr").exists()


def test_a_worker_node_killed_mid_hindcast_still_completes_the_same_store(cluster, swe_store, reference, tmp_path):
    path = workdir(tmp_path / "w", swe_store, [HINDCAST])
    out = cluster.swarmcast("submit", str(path), "--address", cluster.jobs)
    sid = json.loads(out.stdout.strip().splitlines()[-1])["submission_id"]
    store = path.parent / "hindcast.zarr"
    deadline = time.time() + 300
    while time.time() < deadline and not store.exists():
        time.sleep(0.05)
    time.sleep(1.0)  # actors have started on both nodes
    done_before = float(xr.open_zarr(store)["member_done"].values.mean())
    _kill(cluster.worker)
    try:
        follow = cluster.swarmcast("submit", str(path), "--address", cluster.jobs, "--wait")
        assert follow.returncode == 0, follow.stderr[-3000:]
        assert json.loads(follow.stdout.strip().splitlines()[-1])["submission_id"] == sid
    finally:
        cluster.worker = cluster.add_worker()  # back to two nodes for the other tests
    assert done_before < 1.0  # the node died with units still to do
    assert same_store(files(store), reference)


def test_schedule_submits_one_job_per_tick_and_a_restart_resubmits_nothing(cluster, swe_store, tmp_path):
    stage = {**HINDCAST, "init_times": "latest", "lead_hours": 6, "perturbation": {"kind": "control", "pairs": 0}}
    path = workdir(tmp_path / "w", swe_store, [stage])
    state = tmp_path / "ticks.jsonl"
    args = ["schedule", str(path), "--every", "20", "--address", cluster.jobs, "--state", str(state)]
    first = cluster.swarmcast(*args, "--max-ticks", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    ticks = [json.loads(line) for line in state.read_text().splitlines()]
    assert [t["action"] for t in ticks] == ["submitted", "submitted"]
    assert len({t["tick"] for t in ticks}) == 2 and len({t["submission_id"] for t in ticks}) == 2
    # "latest" was resolved against the data: the newest analysis time names the job
    assert "2002-01-03T00" in ticks[0]["submission_id"]
    listed = cluster.swarmcast("jobs", "list", "--address", cluster.jobs).stdout
    assert sum(t["submission_id"] in listed for t in ticks) == 2

    def wait_for(sid: str) -> str:
        deadline, status = time.time() + 300, ""
        while time.time() < deadline and status not in ("SUCCEEDED", "FAILED", "STOPPED"):
            status = cluster.swarmcast("jobs", "status", sid, "--address", cluster.jobs).stdout.strip()
            time.sleep(1)
        return status

    for t in ticks:  # both jobs run to completion
        status = wait_for(t["submission_id"])
        logs = cluster.swarmcast("jobs", "logs", t["submission_id"], "--address", cluster.jobs).stdout
        assert status == "SUCCEEDED", logs[-3000:]
    # a restart within the tick it last handled skips it (a clock that reads that tick, so the
    # check does not depend on how fast this machine restarts a process)
    last_tick = datetime.strptime(ticks[-1]["tick"], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    handled = run_schedule(
        path, [], Schedule.every_seconds(20), address=cluster.jobs, state=state, max_ticks=1, now=lambda: last_tick
    )
    last = json.loads(state.read_text().splitlines()[-1])
    assert handled == 1 and last["tick"] == ticks[-1]["tick"] and last["action"].startswith("skipped")
    # a restarted scheduler process handles the current tick: skipped if it was handled, else new work
    restart = cluster.swarmcast(*args, "--max-ticks", "1")
    assert restart.returncode == 0, restart.stderr[-3000:]
    last = json.loads(state.read_text().splitlines()[-1])
    if last["tick"] == ticks[-1]["tick"]:
        assert last["action"].startswith("skipped")
    else:
        assert last["tick"] > ticks[-1]["tick"] and last["action"] == "submitted", last
        assert wait_for(last["submission_id"]) == "SUCCEEDED"  # the store is complete: nothing to do
        ticks.append(last)
    entries = [json.loads(line) for line in state.read_text().splitlines()]
    submitted = [e["tick"] for e in entries if e["action"] == "submitted"]
    assert len(submitted) == len(set(submitted)) == len(ticks)  # no tick was ever submitted twice


def test_submission_fails_fast_without_token_at_a_wrong_address_and_with_unshared_paths(cluster, swe_store, tmp_path):
    path = workdir(tmp_path / "w", swe_store, [HINDCAST])
    no_token = {k: v for k, v in cluster.env.items() if k != "RAY_AUTH_TOKEN"} | {"HOME": str(tmp_path)}
    t0 = time.time()
    out = cluster.swarmcast("submit", str(path), "--address", cluster.jobs, env=no_token)
    assert out.returncode == 2 and "token" in out.stderr, out.stderr[-2000:]
    out = cluster.swarmcast("submit", str(path), "--address", f"http://127.0.0.1:{free_port()}")
    assert out.returncode == 2 and "cannot reach the Ray Jobs API" in out.stderr, out.stderr[-2000:]
    assert time.time() - t0 < 60
    unshared = workdir(tmp_path / "u", swe_store, [HINDCAST], shared=False)
    out = cluster.swarmcast("submit", str(unshared), "--address", cluster.jobs, "--wait", "--timeout", "300")
    assert out.returncode == 1 and "is a local path but the cluster has" in out.stderr, out.stderr[-3000:]
    assert not (unshared.parent / "hindcast.zarr").exists()
