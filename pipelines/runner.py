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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from swarmcast.ops.storage import Location, as_zarr, output_exists
from swarmcast.pipelines.config import ConfigError, Pipeline, StageConfig
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.output_guard import guard_outputs, made_by_swarmcast
from swarmcast.pipelines.plan_bounds import check_footprints
from swarmcast.pipelines.selection import StageSelection
from swarmcast.pipelines.staleness import changed_inputs


@dataclass(frozen=True)
class StagePlan:
    stage: StageConfig
    action: str
    """"run"; "skip" (outputs exist from the same config and inputs); "rerun" (the same config,
    changed inputs); "check" (the same config; an earlier stage that runs writes an input, so
    skip or rerun is decided once it has run); "resume"; "overwrite"; "not selected"."""
    description: str
    reason: str = ""
    """Why the stage is skipped or redone, when it is."""


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


def plan_pipeline(pipeline: Pipeline, ctx: StageContext, select: StageSelection | None = None) -> list[StagePlan]:
    """Check inputs/outputs of every stage; raise one ConfigError listing every problem.

    ``select``: the stages this run touches and those whose outputs it may replace
    (``swarmcast.pipelines.selection``); by default every stage, ``ctx.overwrite`` for all.
    """
    select = select or StageSelection()
    chosen = select.chosen(pipeline)
    produced: set[Location] = set()
    changing: set[Location] = set()  # outputs an earlier stage of this run may write
    problems = guard_outputs(pipeline, ctx)
    bound_problems, notes = check_footprints(pipeline, ctx)
    if bound_problems:  # nothing below may build what the config asks for
        raise ConfigError(problems + bound_problems)
    plans: list[StagePlan] = []
    for i, stage in enumerate(pipeline.stages):
        where = f"stages.{i} ({stage.label})"
        if not chosen[i]:
            plans.append(StagePlan(stage, "not selected", ""))
            continue
        for p in stage.inputs(ctx.base):
            if p.resolve() not in produced and not p.exists():
                problems.append(f"{where}: input not found: {p}")
        action, why = "run", ""
        for p in stage.outputs(ctx.base):
            if not output_exists(p) or not made_by_swarmcast(p):  # absent, or refused by the guard
                continue
            if ctx.overwrite or stage.label in select.overwrite:
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
                    recorded, mine = output_fingerprint(p), ctx.fingerprint(stage)
                except ConfigError as err:
                    problems += [f"{where}: {e}" for e in err.problems]
                    continue
                if _config(recorded) != _config(mine):
                    problems.append(
                        f"{where}: output {p} already exists and was not made by this stage config "
                        "(or was left incomplete); "
                        "pass --overwrite to replace it, or choose another output path"
                    )
                elif any(q.resolve() in changing for q in stage.inputs(ctx.base)):
                    action = "check"
                else:
                    changed = changed_inputs((recorded or {}).get("inputs"), mine.get("inputs", {}))
                    action = "rerun" if changed else "skip"
                    why = _stale(changed) if changed else ""
        if action in ("run", "resume") and stage.RESUMABLE:
            # its probe reads the outputs itself: a training output in a bucket has no marker of
            # its own at the top (each checkpoint has one), so it reads as absent above
            done = None if any(q.resolve() in changing for q in stage.inputs(ctx.base)) else _done(stage, ctx)
            if done is not None:
                action, why = "skip", done
        outputs = {p.resolve() for p in stage.outputs(ctx.base)}
        produced.update(outputs)
        if action != "skip":
            changing.update(outputs)
        description = "; ".join(d for d in (why, stage.plan(ctx.base), notes.get(i, "")) if d)
        plans.append(StagePlan(stage, action, description, why))
    if problems:
        raise ConfigError(problems)
    return plans


def changed_since_made(stage: StageConfig, ctx: StageContext) -> list[str]:
    """The inputs of a ``check`` stage that changed since its outputs were made (empty: skip it)."""
    mine = ctx.fingerprint(stage)
    changed: set[str] = set()
    for p in stage.outputs(ctx.base):
        changed.update(changed_inputs((output_fingerprint(p) or {}).get("inputs"), mine.get("inputs", {})))
    return sorted(changed)


def _done(stage: StageConfig, ctx: StageContext) -> str | None:
    """Why a resumable stage has nothing left to do (its probe, ``Stage.probe``); None: run it."""
    from swarmcast.pipelines.stages import STAGES

    return STAGES[stage.kind].nothing_to_do(stage, ctx)


def _stale(changed: list[str]) -> str:
    return f"its inputs changed since its output was made ({', '.join(changed)})"


def _config(fingerprint: dict | None) -> dict | None:
    """A fingerprint without the inputs' digests: what the stage was asked to do."""
    return None if fingerprint is None else {k: v for k, v in fingerprint.items() if k != "inputs"}


def format_plan(pipeline: Pipeline, plans: list[StagePlan], ctx: StageContext) -> str:
    lines = [f"pipeline '{pipeline.name}' (seed {pipeline.seed}, base {ctx.base}):"]
    for i, p in enumerate(plans):
        lines.append(f"  {i}. {p.stage.label} [{p.stage.kind}] -> {p.action}")
        if p.description:
            lines.append(f"     {p.description}")
    return "\n".join(lines)


def run_pipeline(
    pipeline: Pipeline, ctx: StageContext, *, address: str | None = None, select: StageSelection | None = None
) -> list[dict]:
    """Plan (raising on any problem before work starts), then run each stage. Starts no Ray
    when every stage is up to date or not selected."""
    from swarmcast.pipelines.stages import STAGES

    plans = plan_pipeline(pipeline, ctx, select)
    results: list[dict] = []
    idle = all(p.action in ("skip", "not selected") for p in plans)
    with _session(address, idle, pipeline, ctx):
        for p in plans:
            label = p.stage.label
            action, why = p.action, p.reason
            if action == "check":  # an earlier stage of this run may have changed its inputs
                changed = changed_since_made(p.stage, ctx)
                action, why = ("rerun", _stale(changed)) if changed else ("skip", "")
            if action == "rerun":
                print(f"[{label}] {why}: redoing it")
            if action == "not selected":
                print(f"[{label}] not selected (--only/--from): left as it is")
                continue
            if action == "skip":
                print(f"[{label}] up to date ({why or 'outputs exist from the same config and inputs'}): skipped")
                results.append({"stage": label, "skipped": True})
                continue
            stage_ctx = replace(ctx, overwrite=True) if action in ("overwrite", "rerun") else ctx
            try:
                summary = STAGES[p.stage.kind].run(p.stage, stage_ctx)
            except KeyboardInterrupt:
                finished = [r["stage"] for r in results]
                raise PipelineInterrupted(p.stage, finished, p.stage.outputs(ctx.base)) from None
            except OSError as err:
                err.swarmcast_stage = label  # type: ignore[attr-defined]  # for the CLI's message
                raise
            results.append({"stage": label, **summary})
    return results


@contextmanager
def _session(address: str | None, idle: bool, pipeline: Pipeline, ctx: StageContext) -> Iterator[None]:
    """The Ray session the stages run in; none when nothing will run."""
    if idle:
        yield
        return
    from swarmcast.pipelines.cluster.session import alive_nodes, check_shared_storage, ray_session

    with ray_session(address):
        if address:  # tests share one local session; a named cluster may span several nodes
            check_shared_storage(pipeline, ctx, alive_nodes())
        yield


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
