"""Which stages of a pipeline a run touches, and which outputs it may replace.

``swarmcast run --only STAGE`` runs one stage, ``--from STAGE`` that stage and every later one;
the others are left as they are (their outputs must exist where a selected stage reads them).
``--overwrite`` replaces every existing output, ``--overwrite=STAGE[,STAGE]`` only those of the
stages named. Selected stages otherwise run as usual: skipped when up to date, resumed, or redone
when an input changed (``swarmcast.pipelines.staleness``). Stages are named by their ``name`` (or
their kind, when they have no name), as the plan prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from swarmcast.pipelines.config import ConfigError, Pipeline


@dataclass(frozen=True)
class StageSelection:
    """``only`` / ``start``: a stage name or None; ``overwrite``: names whose outputs are replaced."""

    only: str | None = None
    start: str | None = None
    overwrite: frozenset[str] = field(default_factory=frozenset)

    def chosen(self, pipeline: Pipeline) -> list[bool]:
        """One flag per stage: whether this run touches it. Unknown names are refused, listing the known ones."""
        labels = [s.label for s in pipeline.stages]
        problems = []
        if self.only is not None and self.start is not None:
            problems.append("--only and --from: give one of them")
        for flag, name in (("--only", self.only), ("--from", self.start)):
            if name is not None and name not in labels:
                problems.append(f"{flag} {name}: no such stage (the stages are {', '.join(labels)})")
        for name in sorted(self.overwrite - set(labels)):
            problems.append(f"--overwrite={name}: no such stage (the stages are {', '.join(labels)})")
        if problems:
            raise ConfigError(problems)
        if self.only is not None:
            return [label == self.only for label in labels]
        if self.start is not None:
            first = labels.index(self.start)
            return [i >= first for i in range(len(labels))]
        return [True] * len(labels)

    @classmethod
    def from_flags(cls, only: str | None, start: str | None, overwrite: str | None) -> tuple[StageSelection, bool]:
        """(the selection, whether every output may be replaced) from the command line's
        ``--only``, ``--from`` and ``--overwrite[=STAGES]`` (``"*"`` when given bare)."""
        if overwrite in (None, "*"):
            return cls(only, start), overwrite == "*"
        names = frozenset(n.strip() for n in overwrite.split(",") if n.strip())
        return cls(only, start, names), False


__all__ = ["StageSelection"]
