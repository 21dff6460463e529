"""Pipeline YAML -> typed, validated config objects (ARCHITECTURE.md, "Pipelines and stages").

A pipeline file has a ``name``, a run ``seed`` and ordered ``stages``; each stage has a ``kind``
(``swe-dataset``, ...), an optional ``name`` (defaults to its kind) and the kind's parameters.
Stage configs are pydantic models with a docstring per field; unknown keys, wrong types and
impossible values are reported together in one ``ConfigError``, every problem naming its YAML
key path, with a close match suggested for misspelt keys. Overrides ``key=value`` address stage parameters by index
(``stages.0.grid.nlat=64``) or by stage name (``data.grid.nlat=64``); values are parsed as YAML.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from swarmcast.ops.errors import InputError
from swarmcast.ops.storage import Location, is_url, location

if TYPE_CHECKING:  # plan_bounds imports this module
    from swarmcast.pipelines.plan_bounds import Footprint


class ConfigError(InputError):
    """User errors in a pipeline file, an override or the inputs it names.

    ``problems`` lists every problem found, each naming its key path; the message is one
    problem per line.
    """

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=True, use_attribute_docstrings=True)


class StageConfig(Strict):
    """Fields common to every stage; each stage kind subclasses this."""

    kind: str
    """Stage kind, e.g. "swe-dataset"."""
    name: str | None = None
    """Name used in logs and overrides; defaults to the kind."""

    RUN_SETTINGS: ClassVar[frozenset[str]] = frozenset()
    """Fields that say how to run, not what to compute (actor resources, concurrency): left out
    of the output's fingerprint, so changing them never blocks a resume."""

    OMIT_WHEN_DEFAULT: ClassVar[frozenset[str]] = frozenset()
    """Settings added after outputs were made with the behaviour of their default: left out of
    the fingerprint while at the default, so adding one never makes those outputs look stale."""

    RESUMABLE: ClassVar[bool] = False
    """True for stages that resume into an existing output and police it themselves (per-unit
    skip/refuse); the runner then plans "resume" instead of refusing the existing output."""

    @property
    def label(self) -> str:
        return self.name or self.kind

    def inputs(self, base: Path) -> list[Path]:
        """Paths this stage reads (must exist, or be written by an earlier stage)."""
        return []

    def outputs(self, base: Path) -> list[Path]:
        """Paths this stage writes."""
        return []

    def plan(self, base: Path) -> str:
        """One paragraph describing the work this stage implies (for --dry-run)."""
        return ""

    def footprint(self, base: Path) -> Footprint | None:
        """What the stage will hold, from its config alone (``plan_bounds``); None: nothing
        that grows with a count in the config."""
        return None


class Pipeline(Strict):
    """A whole pipeline file after validation."""

    name: str = "swarmcast"
    """Pipeline name (used in logs and store attributes)."""
    seed: int = 0
    """Run seed from which stage seeds derive unless a stage sets its own."""
    shared_storage: list[str] = Field(default_factory=list)
    """Local folders every node of a multi-node cluster sees (a shared filesystem); other local
    paths are refused there, since each node would write its own copy."""
    stages: list[StageConfig] = Field(min_length=1)
    """Ordered stages."""


def resolve_path(base: Path, value: str) -> Location:
    """A path relative to the pipeline file's folder unless absolute; an fsspec URL becomes a
    remote location (``swarmcast.ops.storage``)."""
    if is_url(value):
        try:
            return location(value)
        except ValueError as err:
            raise ConfigError(str(err)) from None
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def _suggest(word: str, options: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel class inside an annotation like ``Grid`` or ``Grid | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None or get_args(annotation):
        for arg in get_args(annotation):
            found = _nested_model(arg)
            if found is not None:
                return found
    return None


def unknown_keys(data: Any, model: type[BaseModel], path: str) -> list[str]:
    """Every key of ``data`` that ``model`` (recursively) lacks, as "key.path: unknown key" lines."""
    if not isinstance(data, dict):
        return [f"{path}: expected a mapping of keys, got {type(data).__name__}"]
    fields = model.model_fields
    problems = []
    for key, value in data.items():
        if key not in fields:
            problems.append(f"{path}.{key}: unknown key{_suggest(str(key), fields)}".lstrip("."))
            continue
        sub = _nested_model(fields[key].annotation)
        if sub is not None and isinstance(value, dict):
            problems += unknown_keys(value, sub, f"{path}.{key}")
    return problems


def _validation_problems(err: ValidationError, prefix: str) -> list[str]:
    """One line per pydantic error; unknown keys are left to ``unknown_keys`` (with suggestions)."""
    lines = []
    for e in err.errors():
        if e["type"] == "extra_forbidden":
            continue
        loc = ".".join(str(p) for p in (prefix, *e["loc"]) if p != "")
        msg = e["msg"]
        if "input" in e and e["type"] not in ("missing",):
            msg += f" (got {reprlib.repr(e['input'])})"  # bounded: a huge value must not flood the message
        lines.append(f"{loc}: {msg}")
    return lines


def _stage_registry() -> dict[str, type[StageConfig]]:
    from swarmcast.pipelines.stages import STAGE_CONFIGS

    return STAGE_CONFIGS


def _parse_stage(raw: Any, index: int) -> tuple[StageConfig | None, list[str]]:
    """(the stage, []) or (None, every problem of this stage)."""
    path = f"stages.{index}"
    if not isinstance(raw, dict):
        return None, [f"{path}: expected a mapping with a 'kind', got {raw!r}"]
    registry = _stage_registry()
    kind = raw.get("kind")
    if kind is None:
        return None, [f"{path}.kind: missing; choose one of {sorted(registry)}"]
    if kind not in registry:
        known = sorted(registry)
        return None, [f"{path}.kind: unknown stage kind {kind!r}{_suggest(str(kind), registry)}; known kinds: {known}"]
    model = registry[kind]
    problems = unknown_keys(raw, model, path)
    try:
        stage = model.model_validate(raw)
    except ValidationError as err:
        return None, problems + _validation_problems(err, path)
    return (None, problems) if problems else (stage, [])


def parse_pipeline(raw: Any) -> Pipeline:
    """Validate a loaded YAML document (dict) into a Pipeline; a ``ConfigError`` lists every problem."""
    if not isinstance(raw, dict):
        raise ConfigError("pipeline file: expected a mapping with a 'stages' list")
    top = {k: v for k, v in raw.items() if k != "stages"}
    problems = unknown_keys({**top, "stages": []}, Pipeline, "")
    stages_raw = raw.get("stages")
    if not isinstance(stages_raw, list) or not stages_raw:
        raise ConfigError([*problems, "stages: expected a non-empty list of stages"])
    stages = []
    for i, s in enumerate(stages_raw):
        stage, stage_problems = _parse_stage(s, i)
        problems += stage_problems
        if stage is not None:
            stages.append(stage)
    labels = [s.label for s in stages]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        problems.append(f"stages: names must be unique; {dupes} repeat (set 'name:' on each)")
    try:
        pipeline = Pipeline.model_validate({**top, "stages": stages})
    except ValidationError as err:
        # each stage's problems are listed above; the rest concern the top-level keys
        problems += [p for p in _validation_problems(err, "") if not p.startswith("stages")]
        pipeline = None
    if problems or pipeline is None:
        raise ConfigError(problems)
    return pipeline


MAX_YAML_NODES = 100_000
"""Most values a YAML document may expand to (a pipeline has hundreds). Aliases let a few
hundred bytes stand for billions of values (an "alias bomb"); counting the composed node graph
first refuses one in microseconds, before anything is built from it."""


def _expanded_nodes(node: yaml.Node, memo: dict[int, int], path: set[int]) -> int:
    """Values ``node`` stands for once every alias is expanded (shared nodes counted per use)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in path:
        raise ValueError("refers to itself through a YAML alias (a recursive structure)")
    path.add(key)
    if isinstance(node, yaml.SequenceNode):
        n = 1 + sum(_expanded_nodes(c, memo, path) for c in node.value)
    elif isinstance(node, yaml.MappingNode):
        n = 1 + sum(_expanded_nodes(k, memo, path) + _expanded_nodes(v, memo, path) for k, v in node.value)
    else:
        n = 1
    path.discard(key)
    memo[key] = n = min(n, MAX_YAML_NODES + 1)  # capped: the count itself stays small
    return n


def load_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` (no tags that build Python objects) bounded to ``MAX_YAML_NODES``.

    Raises ``ConfigError`` naming ``source`` for invalid YAML, a recursive alias, nesting too
    deep to parse, or a document that expands beyond the bound.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None and _expanded_nodes(node, {}, set()) > MAX_YAML_NODES:
            raise ValueError(
                f"expands to more than {MAX_YAML_NODES:,} values through YAML aliases; "
                "refused (write the values out, or use fewer aliases)"
            )
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {err}") from None
    except ValueError as err:
        raise ConfigError(f"{source}: {err}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to read") from None


def _parse_value(text: str) -> Any:
    try:
        return load_yaml(text, "override value")
    except ConfigError as err:
        if "not valid YAML" in str(err):
            return text
        raise


def apply_overrides(raw: dict, overrides: Sequence[str]) -> dict:
    """Apply ``key.path=value`` overrides to a raw pipeline dict (a new dict is returned).

    The first path element may be a stage name instead of ``stages.<i>``. Intermediate
    mappings are created as needed; the result is validated later like any YAML.
    """
    import copy

    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        key, _, text = item.partition("=")
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"override {item!r}: empty key")
        stages = out.get("stages") or []
        names = [s.get("name") or s.get("kind") for s in stages if isinstance(s, dict)]
        if parts[0] in names and parts[0] not in ("stages", "name", "seed"):
            parts = ["stages", str(names.index(parts[0])), *parts[1:]]
        node: Any = out
        for depth, p in enumerate(parts[:-1]):
            if isinstance(node, list):
                if not p.isdigit() or int(p) >= len(node):
                    where = ".".join(parts[: depth + 1])
                    raise ConfigError(f"override {key}: no element {where} (have {len(node)})")
                node = node[int(p)]
            elif isinstance(node, dict):
                node = node.setdefault(p, {})
            else:
                raise ConfigError(f"override {key}: {'.'.join(parts[: depth + 1])} is not a mapping")
        if not isinstance(node, dict):
            raise ConfigError(f"override {key}: cannot set a key inside a {type(node).__name__}")
        node[parts[-1]] = _parse_value(text)
    return out


def load_pipeline_file(path: str | Path, overrides: Sequence[str] = ()) -> tuple[Pipeline, dict]:
    """Load, override and validate a pipeline file; returns (pipeline, resolved raw dict)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"pipeline file not found: {p}")
    raw = load_yaml(p.read_text(), str(p))
    raw = apply_overrides(raw or {}, overrides)
    return parse_pipeline(raw), raw
