"""Outputs may only replace what swarmcast made: the checks run before any stage, dry runs too.

``--overwrite`` deletes a stage's output before rewriting it, and resumable stages write into
an existing one, so a wrong ``output`` path can destroy data: ``output: .`` would remove the
pipeline's own folder, and a hindcast whose output is its data store would replace the
reanalysis it reads. ``guard_outputs`` refuses, naming both paths, any output that

- is, contains or sits inside an input of its own stage, or an input of another stage other
  than exactly the path that stage reads back (score reading the hindcast store is the point);
- is, contains or sits inside another stage's output;
- is or contains the pipeline file or its folder, or the base folder paths resolve against;
- exists and was not made by swarmcast (see ``made_by_swarmcast``), with or without
  ``--overwrite``: a folder we did not create is never ours to delete or write into;
- cannot be written: a local output below a file, or in a folder this user may not write or
  on a read-only filesystem (``cannot_write``), found here instead of after work started.

Remote outputs (URLs) are compared by URL; they exist only through a marker, so anything found
there is ours (``swarmcast.ops.storage.output_exists``). ARCHITECTURE.md, "Pipelines and stages".
"""

from __future__ import annotations

import os
from pathlib import Path

from swarmcast.ops.storage import OUTPUT_MARKERS, Location, is_remote, output_exists
from swarmcast.pipelines.config import Pipeline
from swarmcast.pipelines.context import StageContext

RUN_STATE = ".ray"
"""Folder of Ray Train's run state inside a training stage's output (``pipelines.train``)."""


def _key(p: Location) -> tuple[str, ...]:
    """Path components to compare locations by (a resolved local path, or protocol + path)."""
    if is_remote(p):
        return (str(getattr(p, "protocol", "")), *str(p.path).strip("/").split("/"))
    return Path(os.path.abspath(p)).resolve().parts


def overlap(a: Location, b: Location) -> str | None:
    """How ``a`` relates to ``b``: "is", "is inside", "contains", or None when apart."""
    ka, kb = _key(a), _key(b)
    if ka == kb:
        return "is"
    if ka[: len(kb)] == kb:
        return "is inside"
    if kb[: len(ka)] == ka:
        return "contains"
    return None


def _has_marker(folder: Path) -> bool:
    # lexists: a marker we cannot read (a bad link, no permission) still says the folder is ours;
    # reading it then fails with its own message (runner.output_fingerprint)
    return any(os.path.lexists(folder / m) for m in OUTPUT_MARKERS)


def made_by_swarmcast(p: Location) -> bool:
    """Whether an existing output at ``p`` is one swarmcast wrote (or nothing to lose).

    Ours: a folder holding one of ``OUTPUT_MARKERS`` (a Zarr store's ``zarr.json``, a
    checkpoint's ``checkpoint.json``, a report's ``swarmcast_stage.json``), a training output
    (Ray Train run state in ``.ray`` or checkpoint folders inside), or an empty folder. A file,
    or a folder of anything else, is not.
    """
    if is_remote(p):
        return output_exists(p)
    if not p.is_dir():
        return False
    if _has_marker(p) or (p / RUN_STATE).is_dir():
        return True
    children = list(p.iterdir())
    return not children or all(c.is_dir() and _has_marker(c) for c in children)


def cannot_write(p: Location) -> str | None:
    """Why a local output ``p`` could not be created or replaced (None when it can, and for URLs,
    whose permissions only the storage service knows): the nearest existing folder at or above
    it must be a folder, writable by this user, on a filesystem mounted read-write. Outputs are
    staged beside ``p`` and renamed into place (``swarmcast.ops.storage``), so that folder is
    where every write lands first."""
    if is_remote(p):
        return None
    at = Path(os.path.abspath(p))
    existing = at.parent
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    for folder in ([at] if at.is_dir() else []) + [existing]:  # a store resumed is written inside too
        if not folder.is_dir():
            return f"{folder} is a file, not a folder"
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"{folder} is on a read-only filesystem"
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"no permission to write in {folder}"
    return None


def guard_outputs(pipeline: Pipeline, ctx: StageContext) -> list[str]:
    """Every unsafe output of the pipeline, one line each naming the stage and both paths."""
    base = ctx.base
    protected: list[tuple[Location, str]] = [(base, "the base folder paths resolve against")]
    if ctx.pipeline_file is not None:
        pf = ctx.pipeline_file
        protected.append((pf, "the pipeline file"))
        if overlap(pf.parent, base) != "is":
            protected.append((pf.parent, "the pipeline file's folder"))
    stages = list(enumerate(pipeline.stages))
    problems = []
    for i, stage in stages:
        where = f"stages.{i} ({stage.label})"
        for out in stage.outputs(base):
            for path, what in protected:
                how = overlap(out, path)
                if how in ("is", "contains"):
                    problems.append(f"{where}: output {out} {how} {what}; choose a folder of its own")
            for j, other in stages:
                for inp in other.inputs(base):
                    how = overlap(out, inp)
                    # another stage reading exactly this output back is the pipeline's design
                    if how and (j == i or how != "is" or j < i):
                        whose = "its own input" if j == i else f"an input of stages.{j} ({other.label})"
                        problems.append(f"{where}: output {out} {how} {whose} {inp}; choose another output path")
                if j == i:
                    continue
                for theirs in other.outputs(base):
                    how = overlap(out, theirs)
                    if (how == "is" and j > i) or how == "is inside":  # each pair once
                        problems.append(f"{where}: output {out} {how} the output of stages.{j} ({other.label})")
            reason = cannot_write(out)
            if reason:
                problems.append(f"{where}: output {out} cannot be written: {reason}")
            if output_exists(out) and not made_by_swarmcast(out):
                problems.append(
                    f"{where}: output {out} exists and was not made by swarmcast (no store, checkpoint or "
                    "report marker in it); swarmcast never writes into or deletes it, even with --overwrite: "
                    "choose another output path, or move it away yourself"
                )
    return list(dict.fromkeys(problems))
