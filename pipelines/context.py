"""What a stage's ``run`` gets besides its own config: where, which seed, and run options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel


@dataclass(frozen=True)
class StageContext:
    """Run-wide settings shared by all stages of one pipeline run."""

    base: Path
    """Folder that relative paths in the pipeline resolve against."""
    seed: int = 0
    """The pipeline's run seed."""
    overwrite: bool = False
    """Replace outputs that exist (otherwise refused, unless made by the same config)."""
    pipeline_raw: dict = field(default_factory=dict)
    """The resolved pipeline (after overrides), stored in output attributes."""
    pipeline_file: Path | None = None
    """The pipeline YAML file, when run from one: outputs may never be or hold it."""
    wait_for_store: bool = False
    """When another run is writing an ensemble store of this pipeline, wait for it to end instead
    of refusing (``swarmcast.ops.ensemble.lease``); jobs sent by ``submit`` and ``schedule`` wait."""

    def fingerprint(self, config: BaseModel) -> dict:
        """What identifies a stage's output: its config (minus its display name and the run
        settings of ``StageConfig.RUN_SETTINGS``, which do not change results) and the seed;
        for a stage redone whole (not ``RESUMABLE``) also ``inputs``, what made each input
        (``swarmcast.pipelines.staleness``), so a changed input makes the output stale."""
        d = config.model_dump(mode="json", exclude={"name", *getattr(config, "RUN_SETTINGS", ())})
        d["pipeline_seed"] = self.seed
        fields = getattr(type(config), "model_fields", {})
        for key in getattr(config, "OMIT_WHEN_DEFAULT", ()):
            if key in d and key in fields and getattr(config, key) == fields[key].default:
                del d[key]
        inputs = getattr(config, "inputs", None)
        if inputs is not None and not getattr(config, "RESUMABLE", True):
            from swarmcast.pipelines.staleness import input_digests  # what its inputs were made by

            d["inputs"] = input_digests(inputs(self.base), self.base)
        return d
