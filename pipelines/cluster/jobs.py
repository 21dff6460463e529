"""Submit pipelines to a Ray cluster through the Jobs API, look after the jobs, guard the version.

``submit`` validates the pipeline here first (a bad config never reaches the cluster), then
submits ``swarmcast run pipeline.yaml --base <folder> --address auto --expect-version <v>
--wait-for-store`` (a job that finds a store being written by an earlier one waits for it)
with a runtime environment whose working directory carries the resolved pipeline file (after
overrides) and whose environment sets ``SWARMCAST_EXPECTED_VERSION``. ``swarmcast run`` honours
both (``check_version``), as do the RayJob and CronJob manifests in ``cluster/``, which set the
variable: a cluster running another swarmcast version refuses the job at once, naming both. Relative paths keep
resolving against the pipeline file's folder on the submitting machine (``--base``), which the
cluster must see through shared storage.

The submission id comes from the pipeline (name, a hash of its resolved config, and the
hindcast init dates), so submitting the same work twice never runs it twice: a finished job
is reported and not resubmitted, a running one is attached to, and a failed or stopped one
is resubmitted as ``<id>-r<n>``, which resumes from what it had written. Ray's token
authentication works as everywhere in Ray: ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN`` (or
``~/.ray/auth_token``) in the submitter's environment; secrets never go into pipeline files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from swarmcast.ops import __version__
from swarmcast.pipelines.config import ConfigError, Pipeline, load_pipeline_file

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
VERSION_ENV = "SWARMCAST_EXPECTED_VERSION"
"""Environment variable naming the swarmcast version a job was submitted with."""


def check_version(expected: str | None = None) -> None:
    """Refuse to run a job that expects another swarmcast version than this node has.

    ``expected`` is ``--expect-version``; without it, ``SWARMCAST_EXPECTED_VERSION`` (set by
    ``submit`` and by the manifests in ``cluster/``). Neither set: nothing to check.
    """
    want = expected or os.environ.get(VERSION_ENV) or None
    if want is not None and want != __version__:
        raise ConfigError(f"this node has swarmcast {__version__}, the submitted job needs {want}")


class ClusterError(RuntimeError):
    """The cluster cannot be reached or refuses us (a user-side problem: exit code 2)."""


class JobFailedError(ClusterError):
    """A submitted job ended FAILED or STOPPED (exit code 1)."""


def init_dates(pipeline: Pipeline) -> list[str]:
    """Init dates of every hindcast-like stage (those with ``init_times``), sorted."""
    dates: set[str] = set()
    for stage in pipeline.stages:
        times = getattr(stage, "init_times", None)
        if times is not None and not isinstance(times, str):
            dates.update(str(t.astype("datetime64[h]")) for t in times.resolve())
    return sorted(dates)


def submission_id(pipeline: Pipeline, raw: dict, base: Path | None = None) -> str:
    """``swarmcast-<name>-<first..last init date>-<hash>``: the same work, the same id.

    The hash covers the resolved config and the folder its relative paths resolve against
    (the same pipeline file in another folder writes other outputs: other work).
    """
    key = {"pipeline": raw, "base": str(base) if base is not None else None}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    dates = init_dates(pipeline)
    span = f"{dates[0]}..{dates[-1]}" if len(dates) > 1 else (dates[0] if dates else "")
    parts = ["swarmcast", pipeline.name, span.replace(":", ""), digest]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(p for p in parts if p))


def connect(address: str) -> Any:
    """A ``JobSubmissionClient`` for ``address``, with clear errors for the usual failures."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except AuthenticationError as err:
        raise ClusterError(
            f"{address} requires Ray's token authentication: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN "
            f"(or put the cluster's token in ~/.ray/auth_token) ({err})"
        ) from None
    except (ConnectionError, OSError, ValueError, RuntimeError) as err:
        raise ClusterError(f"cannot reach the Ray Jobs API at {address}: {err}") from None


def _existing(client: Any, sid: str) -> list[Any]:
    """Jobs whose submission id is ``sid`` or a resubmission ``sid-r<n>``, oldest first."""
    pattern = re.compile(rf"^{re.escape(sid)}(-r\d+)?$")
    jobs = [j for j in client.list_jobs() if j.submission_id and pattern.match(j.submission_id)]
    return sorted(jobs, key=lambda j: j.start_time or 0)


def latest_init_time(path: Path, overrides: list[str]) -> list[str]:
    """Overrides that replace ``init_times: latest`` by the newest time of the stage's data store."""
    from swarmcast.ops.data.readers import open_climate
    from swarmcast.pipelines.config import resolve_path

    pipeline, _ = load_pipeline_file(path, overrides)
    extra = []
    for i, stage in enumerate(pipeline.stages):
        if getattr(stage, "init_times", None) == "latest":
            data = resolve_path(path.resolve().parent, stage.data)  # type: ignore[attr-defined]
            newest = open_climate(data)["time"].values.max().astype("datetime64[s]")
            extra.append(f"stages.{i}.init_times={json.dumps({'times': [str(newest)]})}")
    return extra


def submit(
    path: Path,
    overrides: list[str],
    *,
    address: str,
    job_id: str | None = None,
    wait: bool = False,
    timeout_s: float | None = None,
) -> dict:
    """Submit (or recognise) the pipeline's job; with ``wait``, follow it to the end."""
    # "latest" init times become concrete dates here, so the id names the work actually done
    overrides = [*overrides, *latest_init_time(path, overrides)]
    pipeline, raw = load_pipeline_file(path, overrides)  # raises ConfigError before any contact
    base = path.resolve().parent
    sid = job_id or submission_id(pipeline, raw, base)
    client = connect(address)
    previous = _existing(client, sid)
    if previous:
        last = previous[-1]
        status = str(last.status)
        if status == "SUCCEEDED":
            return {"submission_id": last.submission_id, "status": status, "action": "already ran; not resubmitted"}
        if status not in TERMINAL:
            result = {"submission_id": last.submission_id, "status": status, "action": "already running"}
            return result | follow(client, last.submission_id, timeout_s) if wait else result
        sid = f"{sid}-r{len(previous)}"  # failed or stopped: resume under a fresh id
    with tempfile.TemporaryDirectory(prefix="swarmcast-job-") as tmp:
        (Path(tmp) / "pipeline.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        # One package per submission: two jobs of the same pipeline (a schedule's ticks, a resubmission)
        # would otherwise share one unpacked folder, and Ray's agent deletes and re-unpacks that folder
        # whenever it sets the package up again, under a job that is still running in it.
        (Path(tmp) / "submission_id").write_text(sid)
        entrypoint = (
            f"python -m swarmcast.pipelines.cli run pipeline.yaml --base {shlex.quote(str(base))} "
            f"--address auto --expect-version {__version__} --wait-for-store"
        )
        _submit_with_retry(
            client,
            entrypoint=entrypoint,
            submission_id=sid,
            runtime_env={"working_dir": tmp, "env_vars": {VERSION_ENV: __version__}},
            metadata={"swarmcast_pipeline": pipeline.name, "swarmcast_version": __version__},
            entrypoint_num_cpus=0,
        )
    result = {"submission_id": sid, "status": "PENDING", "action": "submitted"}
    return follow(client, sid, timeout_s) | {"action": "submitted"} if wait else result


def _submit_with_retry(client: Any, *, attempts: int = 30, **kwargs: Any) -> None:
    """``submit_job``, retried while a freshly started head's job agent is not up yet."""
    for attempt in range(attempts):
        try:
            client.submit_job(**kwargs)
            return
        except RuntimeError as err:
            if "No available agent" not in str(err) or attempt == attempts - 1:
                raise ClusterError(f"the cluster refused the job: {err}") from None
            time.sleep(2.0)


def follow(client: Any, sid: str, timeout_s: float | None = None) -> dict:
    """Wait for a job to finish; raise ``ClusterError`` with its last log lines unless it succeeded."""
    deadline = None if timeout_s is None else time.time() + timeout_s
    while True:
        status = str(client.get_job_status(sid))
        if status in TERMINAL:
            break
        if deadline is not None and time.time() > deadline:
            raise ClusterError(f"job {sid} still {status} after {timeout_s:g} s")
        time.sleep(1.0)
    if status != "SUCCEEDED":
        tail = "\n".join(client.get_job_logs(sid).strip().splitlines()[-15:])
        raise JobFailedError(f"job {sid} {status}:\n{tail}")
    return {"submission_id": sid, "status": status}


def list_jobs(address: str) -> list[dict]:
    return [
        {"submission_id": j.submission_id, "status": str(j.status), "entrypoint": j.entrypoint}
        for j in connect(address).list_jobs()
        if j.submission_id
    ]


def job_status(address: str, sid: str) -> str:
    return str(connect(address).get_job_status(sid))


def job_logs(address: str, sid: str) -> str:
    return connect(address).get_job_logs(sid)


def stop_job(address: str, sid: str) -> bool:
    return bool(connect(address).stop_job(sid))


__all__ = [
    "VERSION_ENV",
    "ClusterError",
    "JobFailedError",
    "check_version",
    "follow",
    "init_dates",
    "job_logs",
    "job_status",
    "list_jobs",
    "stop_job",
    "submit",
]
