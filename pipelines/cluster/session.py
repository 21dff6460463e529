"""The Ray session a pipeline runs in, and the checks that need the cluster's shape.

``ray_session`` uses a Ray instance that is already running (the tests' shared session),
connects to a named cluster, or starts a private local one. ``check_shared_storage`` refuses
local paths that other nodes could not see; ``check_gpus`` refuses ``use_gpu`` settings on a
cluster without GPUs before any work starts (Ray would otherwise queue the work forever).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from swarmcast.ops.storage import is_remote
from swarmcast.pipelines.config import ConfigError, Pipeline
from swarmcast.pipelines.context import StageContext


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of a block, restoring what was there."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def _single_node_constant() -> Iterator[None]:
    """Ray's "no multi-node clusters here" switch, off for the duration of a block."""
    from ray._private import ray_constants

    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


VERBOSE_ENV = "SWARMCAST_VERBOSE"
"""Set (``swarmcast run --verbose``) to keep Ray's own narration in the output."""

QUIET_WORKERS = {
    # Ray Data logs every dataset execution (start, plan, finish) at INFO, once per epoch, and
    # that progress bars are off (we turn them off: the stages print their own progress)
    "RAY_DATA_LOG_LEVEL": "ERROR",
    # Ray Train turns a worker's print into a log record that reaches the driver beside the
    # print itself: every epoch line appeared twice
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
    # a watcher for spot-instance preemption, useless on one machine, whose start logs an
    # error line from Ray's core worker in every healthy run
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "PYTHONWARNINGS": ",".join(
        f"ignore:{m}" for m in ("Consolidated metadata is currently", "`ExecutionOptions.exclude")
    ),
}
"""Environment of a private local session's workers unless ``--verbose``: our progress lines
once each, Ray's narration only in its log files. Clusters (``--address``) keep their own."""


def verbose() -> bool:
    """Whether Ray's narration is wanted (``--verbose``)."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


QUIET_DRIVER = {
    # Ray folds lines from different workers that differ only in their numbers into one line
    # and a "[repeated 3x across cluster]" note: the epoch lines of two checkpoints trained at
    # once lost most of their epochs. Lines that start with a bracketed tag are ours
    # ("[seed 0] epoch 3/20 ...", "[data: simulate] ..."): never folded.
    "RAY_DEDUP_LOGS_ALLOW_REGEX": r"^\[[^\]]+\] ",
    # the raylet's note that it started more worker processes than cores, in a healthy run
    "RAY_DEDUP_LOGS_SKIP_REGEX": "worker processes have been started on node",
    # Ray Data run from this process (the loader benchmark's consumer) narrates as in workers
    "RAY_DATA_LOG_LEVEL": QUIET_WORKERS["RAY_DATA_LOG_LEVEL"],
}
"""Environment of this process (read once, when Ray is imported) unless ``--verbose``."""


class _DropTokenAuthNotice(logging.Filter):
    """Drops Ray's notice that token authentication is on by default: a private session's
    ports are on loopback. The warning that authentication is off stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled")


def quiet_narration() -> None:
    """Keep Ray's narration out of this process's output before Ray is imported: the warnings
    ``QUIET_WORKERS`` hides in the workers (zarr's note that consolidated metadata is not in
    the v3 spec, a Ray-internal deprecation), Ray's folding of our progress lines and the
    raylet's worker-count note (``QUIET_DRIVER``), the token-authentication notice."""
    for entry in QUIET_WORKERS["PYTHONWARNINGS"].split(","):
        warnings.filterwarnings("ignore", message=re.escape(entry.removeprefix("ignore:")))
    for key, value in QUIET_DRIVER.items():
        os.environ.setdefault(key, value)
    auth = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _DropTokenAuthNotice) for f in auth.filters):
        auth.addFilter(_DropTokenAuthNotice())


def private_token_file(home: Path | None = None) -> Path | None:
    """Make Ray's default token file (``~/.ray/auth_token``) readable by its owner only.

    Ray 2.60 writes it with the process umask (0644 on most systems): any local user could then
    read the token and run code on the cluster. Returns the file when it exists.
    """
    path = (home or Path.home()) / ".ray" / "auth_token"
    try:
        if path.is_file() and path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except OSError:
        return None  # not ours to change (another owner); Ray reports its own problems with it
    return path if path.is_file() else None


def _free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Use the running Ray (tests), connect to ``address``, or start a private local instance.

    Ray's token file is made private before and after Ray starts (``private_token_file``)."""
    import ray
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False  # stage Progress lines instead
    private_token_file()
    if ray.is_initialized():
        yield
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray Train/Data narrate every checkpoint and dataset execution at INFO; stages print
    # their own progress lines, so Ray's loggers in workers are kept to warnings.
    quiet = ray.LoggingConfig(log_level="WARNING")
    if address:
        ray.init(address=address, log_to_driver=True, logging_config=quiet)
    else:
        # The dashboard serves the State API, which Ray Train's placement-group cleaner polls
        # every second (warning when it is missing); it listens on loopback only. A private
        # instance is one node, so every other port is kept on loopback too: Ray binds its gRPC
        # servers and its three Prometheus exporters (which answer without authentication) to
        # the node's address, and takes the loopback address as the node's only when
        # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER is off (ray._private.services.get_node_ip_address).
        # Ray reads it once, on import: this process gets the module constant switched, the
        # processes Ray starts get the variable; both only while Ray starts them.
        # Ray Train's controller finds the dashboard by looking for Ray processes on the machine,
        # and fails with "Found multiple active Ray instances" (tracebacks in the run's
        # output) when another Ray runs beside this one: its workers are told the address.
        port = _free_loopback_port()
        env = {**({} if verbose() else QUIET_WORKERS), "RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}"}
        with _environ(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0"), _single_node_constant():
            ray.init(
                address="local",
                include_dashboard=True,
                dashboard_host="127.0.0.1",
                dashboard_port=port,
                log_to_driver=True,
                logging_config=quiet,
                runtime_env={"env_vars": env},
            )
    private_token_file()  # a token Ray generated just now
    try:
        yield
    finally:
        ray.shutdown()


def check_shared_storage(pipeline: Pipeline, ctx: StageContext, nodes: int) -> None:
    """On a cluster of several nodes, every local path must lie in a declared shared folder."""
    if nodes <= 1:
        return
    # absolute but not symlink-resolved: a link inside a declared folder counts as declared
    shared = [Path(os.path.abspath(ctx.base / s)) for s in pipeline.shared_storage]
    problems = []
    for i, stage in enumerate(pipeline.stages):
        for p in [*stage.inputs(ctx.base), *stage.outputs(ctx.base)]:
            if is_remote(p) or any(Path(os.path.abspath(p)).is_relative_to(s) for s in shared):
                continue
            problems.append(
                f"stages.{i} ({stage.label}): {p} is a local path but the cluster has {nodes} nodes; "
                "put it on shared storage and list that folder in the pipeline's shared_storage, "
                "or use a URL every node can reach"
            )
    if problems:
        raise ConfigError(problems)


def alive_nodes() -> int:
    import ray

    return sum(1 for n in ray.nodes() if n.get("Alive"))


def check_gpus(use_gpu: bool, key: str) -> None:
    """Refuse ``use_gpu`` when the connected Ray cluster has no GPU (before any work starts)."""
    if not use_gpu:
        return
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)
    if gpus <= 0:
        raise ConfigError(
            f"{key}: true, but the Ray cluster has no GPUs (its resources: "
            f"{ray.cluster_resources().get('CPU', 0):g} CPUs, 0 GPUs); set {key}: false or run on GPU nodes"
        )


def check_resources(resources: dict[str, float], key: str) -> None:
    """Refuse custom resources the connected cluster cannot give even one actor (Ray would
    queue the actor forever), naming each with what the cluster has."""
    if not resources:
        return
    import ray

    have = ray.cluster_resources()
    problems = [
        f"{key}.{name}: {need:g} per actor, but the Ray cluster has {have.get(name, 0):g}"
        for name, need in resources.items()
        if have.get(name, 0) < need
    ]
    if problems:
        raise ConfigError(problems)


__all__ = ["alive_nodes", "check_gpus", "check_resources", "check_shared_storage", "private_token_file", "ray_session"]
