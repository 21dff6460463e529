"""Run a validated pipeline: check every path first, then run the stages in order on Ray.

Before any work: each stage's inputs must exist or be written by an earlier stage; each output
that exists must have been made by the identical stage config (then the stage is skipped as
done) unless ``overwrite`` is set. A store made by a different config is refused, never mixed.
No output may endanger an input, the pipeline file or a folder swarmcast did not make
(``output_guard``), and no stage may plan more than this machine holds (``plan_bounds``).
Every problem of the pipeline is reported at once (ARCHITECTURE.md, "Pipelines and stages").
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from swarmcast.ops.storage import Location, as_zarr, output_exists
from swarmcast.pipelines.config import ConfigError, Pipeline, StageConfig
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.output_guard import guard_outputs, made_by_swarmcast
from swarmcast.pipelines.plan_bounds import check_footprints


@dataclass(frozen=True)
class StagePlan:
    stage: StageConfig
    action: str
    """"run", "skip" (outputs exist from the same config), "resume" or "overwrite"."""
    description: str


def output_fingerprint(path: Location) -> dict | None:
    """The stage fingerprint an existing output records, or None when it records none.

    A folder's ``swarmcast_stage.json`` or a Zarr store's ``swarmcast_stage`` attribute. A path
    that is not a Zarr group, or whose metadata is not valid JSON, records none (it was not
    made by swarmcast, or not completely); an error reading it (permissions, a storage service
    failing) is raised as a ``ConfigError`` naming the path, never taken for "another config".
    """
    import zarr

    marker = path / "swarmcast_stage.json"
    try:
        if marker.is_file():
            return json.loads(marker.read_text())
        attr = zarr.open_group(as_zarr(path), mode="r").attrs.get("swarmcast_stage")
    except (zarr.errors.NodeNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read what made this output ({type(err).__name__}: {err})") from None
    return json.loads(attr) if isinstance(attr, str) else None


def plan_pipeline(pipeline: Pipeline, ctx: StageContext) -> list[StagePlan]:
    """Check inputs/outputs of every stage; raise one ConfigError listing every problem."""
    produced: set[Location] = set()
    problems = guard_outputs(pipeline, ctx)
    bound_problems, notes = check_footprints(pipeline, ctx)
    if bound_problems:  # nothing below may build what the config asks for
        raise ConfigError(problems + bound_problems)
    plans: list[StagePlan] = []
    for i, stage in enumerate(pipeline.stages):
        where = f"stages.{i} ({stage.label})"
        for p in stage.inputs(ctx.base):
            if p.resolve() not in produced and not p.exists():
                problems.append(f"{where}: input not found: {p}")
        action = "run"
        for p in stage.outputs(ctx.base):
            if not output_exists(p) or not made_by_swarmcast(p):  # absent, or refused by the guard
                continue
            if ctx.overwrite:
                from swarmcast.ops.ensemble.lease import live_holder  # imports zarr: only when replacing

                action = "overwrite"
                holder = live_holder(p)
                if holder is not None and not ctx.wait_for_store:
                    problems.append(
                        f"{where}: output {p} is being written by {holder.describe(time.time())}; "
                        "--overwrite would delete the units it is writing. Wait for it to end"
                    )
            elif stage.RESUMABLE:
                action = "resume"
            else:
                try:
                    same = output_fingerprint(p) == ctx.fingerprint(stage)
                except ConfigError as err:
                    problems += [f"{where}: {e}" for e in err.problems]
                    continue
                if same:
                    action = "skip"
                else:
                    problems.append(
                        f"{where}: output {p} already exists and was not made by this stage config "
                        "(or was left incomplete); "
                        "pass --overwrite to replace it, or choose another output path"
                    )
        produced.update(p.resolve() for p in stage.outputs(ctx.base))
        description = "; ".join(d for d in (stage.plan(ctx.base), notes.get(i, "")) if d)
        plans.append(StagePlan(stage, action, description))
    if problems:
        raise ConfigError(problems)
    return plans


def format_plan(pipeline: Pipeline, plans: list[StagePlan], ctx: StageContext) -> str:
    lines = [f"pipeline '{pipeline.name}' (seed {pipeline.seed}, base {ctx.base}):"]
    for i, p in enumerate(plans):
        lines.append(f"  {i}. {p.stage.label} [{p.stage.kind}] -> {p.action}")
        if p.description:
            lines.append(f"     {p.description}")
    return "\n".join(lines)


def run_pipeline(pipeline: Pipeline, ctx: StageContext, *, address: str | None = None) -> list[dict]:
    """Plan (raising on any problem before work starts), then run each stage."""
    from swarmcast.pipelines.cluster.session import alive_nodes, check_shared_storage, ray_session
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
            try:
                summary = STAGES[p.stage.kind].run(p.stage, ctx)
            except KeyboardInterrupt:
                finished = [r["stage"] for r in results]
                raise PipelineInterrupted(p.stage, finished, p.stage.outputs(ctx.base)) from None
            except OSError as err:
                err.swarmcast_stage = p.stage.label  # type: ignore[attr-defined]  # for the CLI's message
                raise
            results.append({"stage": p.stage.label, **summary})
    return results


class PipelineInterrupted(KeyboardInterrupt):
    """Ctrl-C during a stage: which one, the stages finished before it and its outputs."""

    def __init__(self, stage: StageConfig, finished: list[str], outputs: list[Location]) -> None:
        super().__init__(stage.label)
        self.stage, self.finished, self.outputs = stage, finished, outputs

    def explain(self) -> list[str]:
        """What was finished and how to resume, computed from what is on disk now."""
        before = f" (finished before it: {', '.join(self.finished)})" if self.finished else ""
        lines = [f"interrupted in stage {self.stage.label!r}{before}"]
        for out in self.outputs:
            units = _units_done(out)
            if units is not None:
                lines.append(f"{out}: {units[0]} of {units[1]} work units done and kept")
            elif self.stage.RESUMABLE and output_exists(out):
                lines.append(f"{out}: kept; the stage resumes from its last saved state")
            else:
                lines.append(f"{out}: not written (outputs appear only when complete)")
        lines.append("run the same command again to resume: finished stages are skipped, done work is kept")
        return lines


def _units_done(store: Location) -> tuple[int, int] | None:
    """(done, total) work units of an ensemble store; None for any other output."""
    from swarmcast.ops.ensemble.done_flags import done_units
    from swarmcast.ops.ensemble.verify import layout_of_store
    from swarmcast.ops.errors import InputError

    if not output_exists(store) or not (store / "zarr.json").exists():
        return None
    try:
        layout = layout_of_store(store)
    except (InputError, OSError, ValueError):
        return None
    return len(done_units(store, layout)), len(list(layout.units()))
