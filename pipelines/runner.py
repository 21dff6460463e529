"""Run a validated pipeline: check every path first, then run the stages in order on Ray.

Before any work: each stage's inputs must exist or be written by an earlier stage; each output
that exists must have been made by the identical stage config (then the stage is skipped as
done) unless ``overwrite`` is set. A store made by a different config is refused, never mixed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from swarmcast.ops.storage import Location, as_zarr, is_remote, output_exists
from swarmcast.pipelines.config import ConfigError, Pipeline, StageConfig
from swarmcast.pipelines.context import StageContext


@dataclass(frozen=True)
class StagePlan:
    stage: StageConfig
    action: str
    """"run", "skip" (outputs exist from the same config) or "overwrite"."""
    description: str


def _output_fingerprint(path: Location) -> dict | None:
    """The ``swarmcast_stage`` attribute of an existing Zarr store (or a folder's
    ``swarmcast_stage.json``), or None."""
    import zarr

    marker = path / "swarmcast_stage.json"
    if marker.is_file():
        return json.loads(marker.read_text())
    try:
        attr = zarr.open_group(as_zarr(path), mode="r").attrs.get("swarmcast_stage")
    except Exception:  # not a Zarr store, or unreadable: treat as foreign
        return None
    return json.loads(attr) if isinstance(attr, str) else None


def plan_pipeline(pipeline: Pipeline, ctx: StageContext) -> list[StagePlan]:
    """Check inputs/outputs of every stage; raise ConfigError on the first problem."""
    produced: set[Location] = set()
    plans = []
    for i, stage in enumerate(pipeline.stages):
        where = f"stages.{i} ({stage.label})"
        for p in stage.inputs(ctx.base):
            if p.resolve() not in produced and not p.exists():
                raise ConfigError(f"{where}: input not found: {p}")
        action = "run"
        for p in stage.outputs(ctx.base):
            if not output_exists(p):  # at a URL, an upload cut short counts as absent
                continue
            same = _output_fingerprint(p) == ctx.fingerprint(stage)
            if ctx.overwrite:
                action = "overwrite"
            elif stage.RESUMABLE:
                action = "resume"
            elif same:
                action = "skip"
            else:
                raise ConfigError(
                    f"{where}: output {p} already exists and was not made by this stage config "
                    "(or was left incomplete); "
                    "pass --overwrite to replace it, or choose another output path"
                )
        produced.update(p.resolve() for p in stage.outputs(ctx.base))
        plans.append(StagePlan(stage, action, stage.plan(ctx.base)))
    return plans


def format_plan(pipeline: Pipeline, plans: list[StagePlan], ctx: StageContext) -> str:
    lines = [f"pipeline '{pipeline.name}' (seed {pipeline.seed}, base {ctx.base}):"]
    for i, p in enumerate(plans):
        lines.append(f"  {i}. {p.stage.label} [{p.stage.kind}] -> {p.action}")
        if p.description:
            lines.append(f"     {p.description}")
    return "\n".join(lines)


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Use the running Ray (tests), connect to ``address``, or start a private local instance."""
    import ray
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False  # stage Progress lines instead
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
        # every second (warning when it is missing); it listens on loopback only. Ray's own gRPC
        # ports cannot be restricted to loopback, so Ray's token authentication stays on.
        ray.init(
            address="local",
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            log_to_driver=True,
            logging_config=quiet,
        )
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
    for i, stage in enumerate(pipeline.stages):
        for p in [*stage.inputs(ctx.base), *stage.outputs(ctx.base)]:
            if is_remote(p) or any(Path(os.path.abspath(p)).is_relative_to(s) for s in shared):
                continue
            raise ConfigError(
                f"stages.{i} ({stage.label}): {p} is a local path but the cluster has {nodes} nodes; "
                "put it on shared storage and list that folder in the pipeline's shared_storage, "
                "or use a URL every node can reach"
            )


def alive_nodes() -> int:
    import ray

    return sum(1 for n in ray.nodes() if n.get("Alive"))


def run_pipeline(pipeline: Pipeline, ctx: StageContext, *, address: str | None = None) -> list[dict]:
    """Plan (raising on any problem before work starts), then run each stage."""
    from swarmcast.pipelines.stages import STAGES

    plans = plan_pipeline(pipeline, ctx)
    results = []
    with ray_session(address):
        if address:  # tests share one local session; a named cluster may span several nodes
            check_shared_storage(pipeline, ctx, alive_nodes())
        for p in plans:
            if p.action == "skip":
                print(f"[{p.stage.label}] up to date (outputs exist from the same config): skipped")
                results.append({"stage": p.stage.label, "skipped": True})
                continue
            summary = STAGES[p.stage.kind].run(p.stage, ctx)
            results.append({"stage": p.stage.label, **summary})
    return results
