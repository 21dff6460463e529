"""The ``swarmcast`` command: run pipelines, the demo, inspect and verify stores, and benchmarks.

User errors (``swarmcast.ops.errors.InputError``: bad config, missing inputs, existing outputs;
``ClusterError``: an unreachable or refusing cluster) print one line per problem and exit 2.
A full disk (``StorageFullError``, or any write refused for room) and any other error of the
operating system (permissions, a read-only filesystem, a path that is not a folder) print one
line naming the path and the stage and exit 1. Ctrl-C says which stage it stopped, what is kept
and how to resume, and exits 130. Any other exception is a bug and keeps its traceback;
``--debug`` shows the traceback of every error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import resources
from pathlib import Path

import yaml

from swarmcast.ops.errors import FULL_ERRNOS, InputError, StorageFullError
from swarmcast.pipelines.cluster.jobs import ClusterError, JobFailedError, check_version
from swarmcast.pipelines.cluster.session import VERBOSE_ENV, quiet_narration
from swarmcast.pipelines.config import ConfigError, load_pipeline_file
from swarmcast.pipelines.data_commands import DATA_COMMANDS, add_data_commands, run_data_command
from swarmcast.pipelines.runner import PipelineInterrupted

USER_ERRORS = (InputError, ClusterError)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved plan; start nothing")
    p.add_argument(
        "--overwrite",
        nargs="?",
        const="*",
        metavar="STAGES",
        help="replace outputs that already exist: every stage's, or with =STAGE[,STAGE] those stages' only",
    )
    p.add_argument("--verbose", action="store_true", help="keep Ray's own log lines (Ray Data, Ray Train, warnings)")
    p.add_argument("--only", metavar="STAGE", help="run this stage alone; leave the others as they are")
    p.add_argument("--from", dest="from_stage", metavar="STAGE", help="run this stage and every later one")


def _version() -> str:
    from swarmcast.ops import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    from swarmcast.pipelines.bench import BENCHES

    parser = argparse.ArgumentParser(prog="swarmcast", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the traceback of any error")
    parser.add_argument("--version", action="version", version=f"swarmcast {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a pipeline YAML file")
    run.add_argument("pipeline", help="pipeline YAML file")
    run.add_argument("overrides", nargs="*", help="key=value overrides, e.g. stages.0.grid.nlat=64")
    _add_run_options(run)
    run.add_argument("--base", help="folder relative paths resolve against (default: the pipeline file's)")
    run.add_argument(
        "--wait-for-store",
        action="store_true",
        help="if another run is writing a store this pipeline writes, wait for it (submitted jobs do)",
    )
    run.add_argument(
        "--expect-version",
        help="fail unless this swarmcast version is installed (set by submit; default: $SWARMCAST_EXPECTED_VERSION)",
    )

    submit = sub.add_parser("submit", help="submit a pipeline to a Ray cluster through its Jobs API")
    submit.add_argument("pipeline", help="pipeline YAML file")
    submit.add_argument("overrides", nargs="*", help="key=value overrides")
    submit.add_argument("--address", required=True, help="Jobs API address, e.g. http://HEAD:8265")
    submit.add_argument("--wait", action="store_true", help="follow the job until it ends; exit 1 if it fails")
    submit.add_argument("--id", dest="job_id", help="submission id (default: derived from the pipeline)")
    submit.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds")

    jobs = sub.add_parser("jobs", help="list jobs, or show the status or logs of one, or stop it")
    jobs.add_argument("action", choices=["list", "status", "logs", "stop"])
    jobs.add_argument("job_id", nargs="?", help="submission id (for status, logs, stop)")
    jobs.add_argument("--address", required=True, help="Jobs API address, e.g. http://HEAD:8265")

    sched = sub.add_parser("schedule", help="submit a pipeline on a schedule (one job per tick)")
    sched.add_argument("pipeline", help="pipeline YAML file")
    sched.add_argument("overrides", nargs="*", help="key=value overrides")
    sched.add_argument("--address", required=True, help="Jobs API address, e.g. http://HEAD:8265")
    when = sched.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help='five-field cron expression in UTC, e.g. "0 6 * * *"')
    when.add_argument("--every", type=float, help="tick every this many seconds (aligned to the epoch)")
    sched.add_argument("--state", help="JSON-lines record of ticks (default: <pipeline>.schedule.jsonl)")
    sched.add_argument("--max-ticks", type=int, help="stop after this many ticks (default: run forever)")

    demo = sub.add_parser("demo", help="run the built-in demo pipeline end to end")
    demo.add_argument("--out", default="swarmcast-demo", help="output folder (default ./swarmcast-demo)")
    demo.add_argument("overrides", nargs="*", help="key=value overrides of the demo pipeline")
    _add_run_options(demo)

    insp = sub.add_parser("inspect", help="describe a store, checkpoint folder or report swarmcast wrote")
    insp.add_argument("path")
    insp.add_argument("--json", action="store_true", help="print JSON instead of text")

    rep = sub.add_parser("report", help="draw a verification report of a scores store, optionally against another")
    rep.add_argument("scores", help="scores store written by the score stage")
    rep.add_argument("--compare", help="another run's scores store to put this run against")
    rep.add_argument("--forecast", help="the ensemble store, for maps (with --truth)")
    rep.add_argument("--truth", help="the truth store, for the error maps")
    rep.add_argument("--output", default="report", help="folder to write (default ./report)")
    rep.add_argument(
        "--regions", help="comma-separated regions to draw, finished from the store's partial sums (e.g. tropics)"
    )
    rep.add_argument("--init-times", help="comma-separated init dates to take the scores over (e.g. 2003-01-04T00)")
    rep.add_argument("--overwrite", action="store_true", help="replace the output folder if it exists")

    verify = sub.add_parser("verify", help="check an ensemble store's finished units against what they wrote")
    verify.add_argument("path")
    verify.add_argument("--deep", action="store_true", help="also read and decode every shard (reads the whole store)")
    verify.add_argument(
        "--unmark", action="store_true", help="clear the done flags of damaged units, so the next run computes them"
    )

    add_data_commands(sub)

    bench = sub.add_parser("bench", help="run a benchmark; prints one JSON object last")
    bench.add_argument("name", choices=sorted(BENCHES))
    bench.add_argument("params", nargs="*", help="key=value parameters")
    bench.add_argument("--address", help="Ray cluster address (default: local)")
    bench.add_argument("--verbose", action="store_true", help="keep Ray's own log lines (Ray Data, warnings)")
    for command in sub.choices.values():  # --debug after the command too; SUPPRESS keeps one given before
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _run_file(path: Path, overrides: list[str], args: argparse.Namespace) -> list[dict]:
    """Plan and run a pipeline file; returns each stage's summary (empty on --dry-run)."""
    from swarmcast.pipelines.context import StageContext
    from swarmcast.pipelines.runner import format_plan, plan_pipeline, run_pipeline
    from swarmcast.pipelines.selection import StageSelection

    check_version(getattr(args, "expect_version", None))
    pipeline, raw = load_pipeline_file(path, overrides)
    base = Path(args.base).resolve() if getattr(args, "base", None) else path.resolve().parent
    select, overwrite_all = StageSelection.from_flags(args.only, args.from_stage, args.overwrite)
    ctx = StageContext(
        base=base,
        seed=pipeline.seed,
        overwrite=overwrite_all,
        pipeline_raw=raw,
        pipeline_file=path.resolve(),
        wait_for_store=getattr(args, "wait_for_store", False),
    )
    plans = plan_pipeline(pipeline, ctx, select)
    print(format_plan(pipeline, plans, ctx))
    if args.dry_run:
        from swarmcast.pipelines.dry_run import check_plans

        for note in check_plans(pipeline, plans, ctx):
            print(f"  {note}")
        print("dry run: every check passed; nothing was started or written")
        return []
    return run_pipeline(pipeline, ctx, address=args.address, select=select)


def _demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    target = out / "pipeline.yaml"
    packaged = resources.files("swarmcast.pipelines").joinpath("demo.yaml")
    source = packaged.read_text()
    if args.dry_run and not target.exists():  # a dry run writes nothing: plan the packaged file here
        with resources.as_file(packaged) as builtin:
            args.base = str(out)
            _run_file(builtin, args.overrides, args)
        return 0
    out.mkdir(parents=True, exist_ok=True)
    if target.exists() and target.read_text() != source and not args.overwrite:
        print(f"using your edited {target} (pass --overwrite to restore the built-in demo)")
    else:
        target.write_text(source)
    results = _run_file(target, args.overrides, args)
    if not args.dry_run:
        print(f"demo outputs in {out.resolve()}; inspect with: swarmcast inspect {out / 'hindcast.zarr'}")
        reports = [r["index"] for r in results if "index" in r]
        report = reports[-1] if reports else out.resolve() / "report" / "index.html"
        print(f"verification report: {report}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from swarmcast.ops.inspect import describe

    d, text = describe(args.path)
    print(json.dumps(d, indent=2, default=str) if args.json else text)
    return 0


def _report_command(args: argparse.Namespace) -> int:
    """The ``report`` stage on its own, paths relative to the current folder; no Ray needed."""
    from swarmcast.pipelines.config import parse_pipeline
    from swarmcast.pipelines.context import StageContext
    from swarmcast.pipelines.runner import plan_pipeline
    from swarmcast.pipelines.stages import STAGES

    stage = {"kind": "report", "scores": args.scores, "compare": args.compare, "output": args.output}
    stage |= {"forecast": args.forecast, "truth": args.truth}
    for key, value in (("regions", args.regions), ("init_times", args.init_times)):
        if value:
            stage[key] = [v.strip() for v in value.split(",") if v.strip()]
    raw = {"name": "report", "stages": [stage]}
    pipeline = parse_pipeline(raw)
    ctx = StageContext(base=Path.cwd(), overwrite=args.overwrite, pipeline_raw=raw)
    (plan,) = plan_pipeline(pipeline, ctx)  # refuses an existing output without --overwrite
    if plan.action == "skip":
        print(f"report: {Path(args.output) / 'index.html'} is up to date (made from the same inputs and settings)")
        return 0
    summary = STAGES["report"].run(plan.stage, ctx)
    print(f"report: {summary['index']}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    """Exit 0 when every finished unit still has what it wrote, 1 when some lost shards."""
    import zarr

    from swarmcast.ops.ensemble.lease import StoreLease
    from swarmcast.ops.ensemble.receipts import forget_done
    from swarmcast.ops.ensemble.verify import check_store
    from swarmcast.ops.storage import as_zarr

    check = check_store(args.path, deep=args.deep)
    how = "read back every shard of" if args.deep else "checked the shard sizes of"
    print(f"{check.path}: {check.done} of {check.units} units done; {how} those units")
    if not check.damage:
        print("no finished unit lost data")
        return 0
    print(f"{len(check.damage)} finished units lost data since they were written:")
    for line in check.lines():
        print(f"  {line}")
    if args.unmark:
        with StoreLease(args.path, "swarmcast verify --unmark") as lease:  # not under a running stage
            lease.take()
            group = zarr.open_group(as_zarr(args.path), mode="r+", use_consolidated=False)
            forget_done(group, check.layout, check.damage)
        print("their done flags are cleared: rerun the pipeline that wrote this store to compute exactly these units")
    elif args.deep:  # a rerun checks sizes only, so it would not see a shard damaged at its written size
        print(f"run `swarmcast verify --deep --unmark {args.path}`, then rerun the pipeline that wrote this store")
    else:
        print("rerun the pipeline that wrote this store: it computes exactly these units again")
    return 1


def _bench(args: argparse.Namespace) -> int:
    from swarmcast.pipelines.bench import run_bench

    params = {}
    for item in args.params:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"bench parameter {item!r}: expected key=value")
        params[key] = yaml.safe_load(value)
    result = run_bench(args.name, params, address=args.address)
    print(json.dumps(result))
    return 0


def _submit(args: argparse.Namespace) -> int:
    from swarmcast.pipelines.cluster.jobs import submit

    result = submit(
        Path(args.pipeline),
        args.overrides,
        address=args.address,
        job_id=args.job_id,
        wait=args.wait,
        timeout_s=args.timeout,
    )
    print(json.dumps(result))
    return 0


def _jobs(args: argparse.Namespace) -> int:
    from swarmcast.pipelines.cluster import jobs

    if args.action == "list":
        for j in jobs.list_jobs(args.address):
            print(f"{j['submission_id']}  {j['status']}")
        return 0
    if not args.job_id:
        raise ConfigError(f"jobs {args.action} needs a submission id")
    if args.action == "status":
        print(jobs.job_status(args.address, args.job_id))
    elif args.action == "logs":
        print(jobs.job_logs(args.address, args.job_id), end="")
    else:
        print("stopped" if jobs.stop_job(args.address, args.job_id) else "not running")
    return 0


def _schedule(args: argparse.Namespace) -> int:
    from swarmcast.pipelines.cluster.schedule import Schedule, run_schedule

    path = Path(args.pipeline)
    state = Path(args.state) if args.state else path.with_suffix(".schedule.jsonl")
    schedule = Schedule.from_cron(args.cron) if args.cron else Schedule.every_seconds(args.every)
    run_schedule(path, args.overrides, schedule, address=args.address, state=state, max_ticks=args.max_ticks)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may come before or after --options; argparse leaves the later ones
    # unparsed, so fold them back in (anything else unknown is still an error).
    args, extra = parser.parse_known_args(argv)
    stray = [a for a in extra if a.startswith("-") or "=" not in a]
    if stray or (extra and args.command not in ("run", "demo", "bench", "submit", "schedule")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        field = "params" if args.command == "bench" else "overrides"
        setattr(args, field, [*getattr(args, field), *extra])
    if isinstance(getattr(args, "overwrite", None), str) and "=" in args.overwrite:  # `--overwrite k=v`: an override
        args.overrides = [*args.overrides, args.overwrite]
        args.overwrite = "*"
    if getattr(args, "verbose", False):
        os.environ[VERBOSE_ENV] = "1"  # read by the Ray session and Ray Train's run config
    elif args.command in ("run", "demo", "stats", "bench"):
        quiet_narration()
    try:
        if args.command == "run":
            _run_file(Path(args.pipeline), args.overrides, args)
            return 0
        if args.command == "demo":
            return _demo(args)
        if args.command == "inspect":
            return _inspect(args)
        if args.command in DATA_COMMANDS:
            return run_data_command(args)
        if args.command == "verify":
            return _verify(args)
        if args.command == "report":
            return _report_command(args)
        if args.command == "bench":
            return _bench(args)
        if args.command == "submit":
            return _submit(args)
        if args.command == "jobs":
            return _jobs(args)
        if args.command == "schedule":
            return _schedule(args)
    except Exception as err:
        if args.debug:
            raise
        return _report(err)
    except KeyboardInterrupt as err:
        if args.debug:
            raise
        lines = err.explain() if isinstance(err, PipelineInterrupted) else ["interrupted"]
        for line in lines:
            print(f"swarmcast: {line}", file=sys.stderr)
        return 130
    return 0


def _report(err: Exception) -> int:
    """Print ``err`` as the user should see it and return the exit status; re-raise a bug."""
    if isinstance(err, JobFailedError):
        print(f"swarmcast: {err}", file=sys.stderr)
        return 1
    if isinstance(err, USER_ERRORS):
        for line in str(err).splitlines() or [type(err).__name__]:
            print(f"swarmcast: error: {line}", file=sys.stderr)
        return 2
    if isinstance(err, StorageFullError):
        print(f"swarmcast: {err}", file=sys.stderr)
        return 1
    if isinstance(err, OSError) and err.errno is not None:  # the machine refused: not a bug of ours
        stage = getattr(err, "swarmcast_stage", None)
        where = f" (stage {stage!r})" if stage else ""
        verb = "write" if err.errno in FULL_ERRNOS else "use"
        path = err.filename or "the output"
        print(f"swarmcast: cannot {verb} {path}{where}: {os.strerror(err.errno)}", file=sys.stderr)
        return 1
    raise err


if __name__ == "__main__":
    sys.exit(main())


def entry_point() -> None:
    """Console-script entry: exit with ``main``'s status."""
    sys.exit(main())
