from importlib import resources

import pytest
import yaml

from swarmcast.pipelines.config import ConfigError, apply_overrides, parse_pipeline


def demo_raw() -> dict:
    return yaml.safe_load(resources.files("swarmcast.pipelines").joinpath("demo.yaml").read_text())


def test_demo_pipeline_parses_into_typed_configs():
    p = parse_pipeline(demo_raw())
    stage = p.stages[0]
    assert p.name == "demo" and stage.kind == "swe-dataset" and stage.label == "data"
    assert stage.grid.nlat == 32 and isinstance(stage.days, float)


def test_every_config_field_is_documented():
    from swarmcast.pipelines.config import Pipeline
    from swarmcast.pipelines.stages import STAGE_CONFIGS

    for model in [Pipeline, *STAGE_CONFIGS.values()]:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no docstring"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda r: r["stages"][0]["grid"].update(nlatt=3),
            r"stages\.0\.grid\.nlatt: unknown key \(did you mean 'nlat'\?\)",
        ),
        (
            lambda r: r["stages"][0].update(trajectorys=2),
            r"stages\.0\.trajectorys: unknown key \(did you mean 'trajectories'\?\)",
        ),
        (lambda r: r.update(sede=1), r"sede: unknown key \(did you mean 'seed'\?\)"),
        (
            lambda r: r["stages"][0].update(kind="swe-datasets"),
            r"unknown stage kind 'swe-datasets' \(did you mean 'swe-dataset'\?\)",
        ),
        (lambda r: r["stages"][0].update(days="many"), r"stages\.0\.days: Input should be a valid number"),
        (lambda r: r["stages"][0].update(days=400), r"stages\.0\.days: Input should be less than or equal to 365"),
        (lambda r: r["stages"][0]["grid"].update(nlon=33), r"nlon must be even"),
        (lambda r: r["stages"][0].update(tendency_hours=9), r"tendency_hours \(9.0\) must be a multiple"),
        (lambda r: r["stages"][0].update(channels=["h", "q"]), r"unknown shallow-water channels \['q'\]"),
        (lambda r: r["stages"].append(dict(r["stages"][0])), r"names must be unique"),
        (lambda r: r.update(stages=[]), r"stages: expected a non-empty list"),
        (lambda r: r["stages"][0].pop("kind"), r"stages\.0\.kind: missing"),
    ],
)
def test_bad_configs_name_the_key_path(mutate, message):
    raw = demo_raw()
    mutate(raw)
    with pytest.raises(ConfigError, match=message):
        parse_pipeline(raw)


def test_overrides_by_index_by_name_and_top_level():
    raw = apply_overrides(demo_raw(), ["stages.0.grid.nlat=64", "data.days=12.5", "seed=3", "data.channels=[h, u]"])
    p = parse_pipeline(raw)
    assert p.seed == 3
    assert p.stages[0].grid.nlat == 64 and p.stages[0].days == 12.5
    assert p.stages[0].channels == ["h", "u"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("stages.9.days=1", r"no element stages\.9 \(have 4\)"),
        ("days", "expected key=value"),
        ("data.days.x=1", "cannot set a key inside a int"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(demo_raw(), [override])


def test_override_with_unknown_key_is_caught_by_validation():
    with pytest.raises(ConfigError, match=r"stages\.0\.grid\.nlot: unknown key \(did you mean 'nlon'\?\)"):
        parse_pipeline(apply_overrides(demo_raw(), ["data.grid.nlot=8"]))


def test_every_problem_of_a_pipeline_is_reported_at_once():
    raw = demo_raw()
    raw["stages"][0].update(out="x.zarr", bogus_key=1)  # two unknown keys in one stage
    raw["stages"][1]["train"]["epochs"] = 0  # and an out-of-range value in another
    raw["sede"] = 2  # and a misspelt top-level key
    with pytest.raises(ConfigError) as err:
        parse_pipeline(raw)
    problems = err.value.problems
    assert "stages.0.out: unknown key (did you mean 'output'?)" in problems
    assert "stages.0.bogus_key: unknown key" in problems
    assert any(p.startswith("stages.1.train.epochs: Input should be greater than or equal to 1") for p in problems)
    assert "sede: unknown key (did you mean 'seed'?)" in problems
    assert len(problems) == 4, problems
    assert str(err.value).splitlines() == problems


def test_the_command_line_prints_each_problem_on_its_own_line(tmp_path, capsys):
    from swarmcast.pipelines.cli import main

    raw = demo_raw()
    raw["stages"][0].update(out="x.zarr", bogus_key=1)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["run", str(tmp_path / "p.yaml"), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "swarmcast: error: stages.0.out: unknown key (did you mean 'output'?)",
        "swarmcast: error: stages.0.bogus_key: unknown key",
    ]
