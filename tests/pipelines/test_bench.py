"""`swarmcast bench loader` runs and reports what it promises (no timing assertions)."""

import json

import pytest
import yaml

from support.checkpoints import write_untrained_checkpoint
from support.hindcasts import STAGE
from swarmcast.pipelines.cli import main


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_bench_loader_prints_one_json_object_with_a_ratio(ray_session, capsys):
    code = main(["bench", "loader", "nlat=16", "nlon=32", "times=40", "epochs=1", "batch_size=8"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    result = json.loads(out[-1])
    # 40 6-hourly states make 39 windows (x_t, x_t+6h)
    assert result["bench"] == "loader" and result["windows"] == 39
    # a window is 2 states of 8 float32 channels at 16 x 32: its size follows from the grid
    assert result["window_mb"] == pytest.approx(2 * 8 * 16 * 32 * 4 / 1e6, abs=1e-4)
    for key in ("ratio", "direct_windows_per_s", "ray_windows_per_s", "sfno_train_samples_per_s"):
        assert result[key] > 0
    assert result["ratio"] == pytest.approx(result["ray_windows_per_s"] / result["direct_windows_per_s"], rel=0.01)
    assert result["machine"]["cpus"] >= 1


def test_bench_rejects_unknown_parameters(capsys):
    assert main(["bench", "loader", "nlatt=16"]) == 2
    assert "unknown bench parameters ['nlatt']" in capsys.readouterr().err
    assert main(["bench", "loader", "source=era5"]) == 2
    assert "source must be 'synthetic' or 'swe', got 'era5'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_bench_train_compares_ray_train_with_a_bare_loop(ray_session, capsys):
    code = main(
        [
            "bench",
            "train",
            "nlat=16",
            "nlon=32",
            "trajectories=2",
            "days=3",
            "epochs=2",
            "embed_dim=8",
            "num_layers=1",
            "rollout_steps=1",
        ]
    )
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and result["bench"] == "train"
    # validation takes the last trajectory: 13 snapshots -> 12 one-step windows for training
    assert result["train_windows_per_epoch"] == 12
    assert result["ray_train_windows_per_s"] > 0 and result["bare_loop_windows_per_s"] > 0 and result["ratio"] > 0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_bench_hindcast_reports_efficiency_and_the_hens_projection(ray_session, capsys):
    code = main(
        [
            "bench",
            "hindcast",
            "nlat=16",
            "nlon=32",
            "embed_dim=8",
            "num_layers=1",
            "init_times=2",
            "pairs=1",
            "lead_hours=12",
        ]
    )
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and result["bench"] == "hindcast"
    assert result["members_per_init"] == 3 and result["member_steps"] == 3 * 2 * 2
    # 3 breeding cycles (the default) of one control and one pair step, for each of 2 dates
    assert result["breeding_member_steps"] == 3 * (1 + 1) * 2
    assert result["ratio"] > 0 and result["raw_forward_member_steps_per_s"] > 0
    # the split of the stage's wall: one unit per date; the first unit is written within it
    assert result["units"] == 2 and 0 < result["first_unit_s"] < result["pipeline_wall_s"]
    assert result["steady_ratio"] > 0 and result["fixed_cost_s"] < result["pipeline_wall_s"]
    hens = result["hens_projection"]
    # 7,424 members in blocks of 16 -> 464 shards per variable, x 12 variables, + 464 done chunks
    assert hens["objects_per_init_date"] == 464 * 12 + 464 and hens["hens_netcdf_files_per_init_date"] == 7424


def test_bench_crps_compares_with_scoringrules_on_the_same_array(capsys):
    code = main(["bench", "crps", "members=[8, 1024]", "values=65536", "repeats=1"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and result["bench"] == "crps" and result["ratio_members"] == 1024
    assert [r["members"] for r in result["rows"]] == [8, 1024]
    assert [r["values"] for r in result["rows"]] == [65536, 65536]
    for row in result["rows"]:
        assert row["max_abs_difference"] < 1e-5  # the same numbers, not just a speed
        assert row["ours_values_per_s"] > 0 and row["scoringrules_values_per_s"] > 0
    assert result["ratio"] > 0


def test_bench_chunks_counts_point_bytes_against_the_untiled_layout(capsys):
    code = main(["bench", "chunks", "inits=2", "leads=3", "repeats=1"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and result["bench"] == "chunks" and result["tiles"] == [4, 4]
    # a point over every member, init and lead: all of an untiled variable, ~1/16 of a tiled one
    assert result["untiled"]["point_fraction"] > 0.99
    assert result["tiled"]["point_fraction"] == pytest.approx(1 / 16, rel=0.2)
    assert result["ratio"] > 0 and result["tiled"]["field_s"] > 0
    assert main(["bench", "chunks", "tiles=4by4"]) == 2
    assert "expected auto or LATxLON" in capsys.readouterr().err


def test_bench_sample_measures_every_solver_on_the_mixture(capsys):
    code = main(["bench", "sample", "samples=4000", "nfe=[5, 10]"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and result["bench"] == "sample"
    assert {r["solver"] for r in result["rows"]} == {"euler", "heun", "dpm++2m", "sde"}
    for row in result["rows"]:
        assert row["samples_per_s_nfe10"] > 0
        assert row["sliced_wasserstein_nfe5"] > 0 and row["sliced_wasserstein_nfe10"] > 0
    by = {r["solver"]: r for r in result["rows"]}
    assert result["ratio"] == pytest.approx(
        by["euler"]["sliced_wasserstein_nfe10"] / by["dpm++2m"]["sliced_wasserstein_nfe10"], rel=1e-2
    )
    # What the measurement must show if it measures anything (checked against the literature, not
    # against its own output): every solver gets closer to the mixture with more NFE; no sampler
    # beats the noise floor of two samples of the truth itself; and the second-order multistep
    # DPM-Solver++(2M) is closer than first-order Euler at 10 NFE (Lu et al. 2022), ratio > 1.
    floor = result["noise_floor_sliced_wasserstein"]
    assert 0 < floor < 0.2
    for row in result["rows"]:
        assert row["sliced_wasserstein_nfe10"] < row["sliced_wasserstein_nfe5"], row
        assert row["sliced_wasserstein_nfe10"] > 0.5 * floor, row
    assert result["ratio"] > 1


@pytest.mark.timeout(600)
def test_bench_hindcast_io_mode_stores_every_unit_and_compares_with_plain_zarr(ray_session, capsys):
    params = ["nlat=19", "nlon=36", "channels=2", "member_block=2", "leads=3", "blocks=1", "units_per_actor=1"]
    code = main(["bench", "hindcast", "mode=io", "actors=2", *params])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and result["bench"] == "hindcast" and result["params"]["mode"] == "io"
    # 2 actors x 1 unit, each 2 members x 3 leads x 2 channels of 19 x 36 float32
    assert result["units"] == 2 and result["threads"] == 4
    assert result["logical_gb"] == round(2 * 2 * 3 * 2 * 19 * 36 * 4 / 1e9, 3)
    assert result["compression"] > 1  # smooth fields compress
    for rate in ("stage_gb_per_s", "zarr_gb_per_s", "disk_gb_per_s"):
        assert result[rate] > 0
    assert result["ratio"] > 0


def test_bench_hindcast_refuses_an_unknown_mode_and_io_only_parameters_without_it(capsys):
    assert main(["bench", "hindcast", "mode=fast"]) == 2
    assert "mode: 'model' (the default) or 'io', got 'fast'" in capsys.readouterr().err
    assert main(["bench", "hindcast", "units_per_actor=2"]) == 2
    assert "unknown bench parameters ['units_per_actor']" in capsys.readouterr().err


def test_bench_parameters_of_the_wrong_kind_are_named_not_a_traceback(capsys):
    """Before, ``steps=abc`` ran until a comparison raised a TypeError deep in the loader."""
    code = main(["bench", "loader", "steps=abc", "epochs=-1", "shuffle=0"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.splitlines() == [
        "swarmcast: error: steps='abc': expected a whole number",
        "swarmcast: error: epochs=-1: expected a number of at least 0",
    ]
    assert main(["bench", "scale", "write_behind=3", "step_s=.inf"]) == 2
    err = capsys.readouterr().err
    assert "write_behind=3: expected true or false" in err and "step_s=inf: expected a number" in err


def test_bench_score_scores_three_ways_and_agrees_with_scoringrules(ray_session, capsys):
    params = ["inits=1", "checkpoints=2", "members_per_checkpoint=4", "leads=3", "nlat=16", "nlon=32", "variables=2"]
    code = main(["bench", "score", *params])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and result["bench"] == "score" and result["members"] == 8
    assert result["values"] == 1 * 8 * 3 * 16 * 32 * 2
    assert result["tasks"] == 2 * 3  # one per variable and lead: the whole grid fits the budget
    assert result["max_relative_difference"] < 1e-4  # the same CRPS, RMSE and spread as the peer
    assert set(result["values_per_s"]) == {"all_cpus", "one_cpu", "baseline"}
    assert result["ratio"] > 0 and result["parallel_efficiency"] > 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bench_perturbations_scores_four_methods_on_the_same_checkpoints(ray_session, swe_store, tmp_path, capsys):
    demo = tmp_path / "demo"
    (demo / "data.zarr").parent.mkdir()
    (demo / "data.zarr").symlink_to(swe_store)
    for s in (0, 1):
        write_untrained_checkpoint(demo / "checkpoints" / f"seed-{s}", swe_store, s)
    (demo / "pipeline.yaml").write_text(yaml.safe_dump({"name": "d", "stages": [STAGE]}))
    assert main(["bench", "perturbations", f"demo={demo}", "lead_hours=12", "pairs=1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    methods = result["methods"]
    assert list(methods) == ["control", "gaussian", "correlated", "bred-vector"]
    # control-only: one member per checkpoint; the others 1 + 2 pairs per checkpoint
    assert methods["control"]["members"] == 2 and {m["members"] for m in list(methods.values())[1:]} == {6}
    for m in methods.values():
        assert m["leads_h"] == [0.0, 6.0, 12.0] and set(m["variables"]) == {"h", "u", "v", "vo"}
        assert all(x > 0 for v in m["variables"].values() for x in v["crps"][1:])
    assert result["crps_over_bred_vector_last_lead"]["bred-vector"] == 1.0
    assert result["ratio"] == result["crps_over_bred_vector_last_lead"]["correlated"] > 0
    assert main(["bench", "perturbations", f"demo={tmp_path / 'none'}"]) == 2
    assert "run `swarmcast demo` first" in capsys.readouterr().err
