"""The ``hindcast`` stage's checks before any work: bad settings, checkpoints and initial states
are refused with their key, file, time or channel, and no store is created."""

import json
import re
import shutil

import numpy as np
import pytest
import xarray as xr
import zarr

from support.checkpoints import write_untrained_checkpoint as write_checkpoint
from support.hindcasts import STAGE, hindcast_inputs, run, workdir
from swarmcast.pipelines.config import ConfigError
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.stages.hindcast import HindcastConfig, HindcastPlan
from swarmcast.pipelines.stages.hindcast.actor import make_perturbation

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]


@pytest.fixture(scope="module")
def inputs(swe_store, tmp_path_factory):
    return hindcast_inputs(swe_store, tmp_path_factory.mktemp("hc-inputs"))


def with_values(tmp_path, inputs, channel: str, time: str, rows: tuple, value: float) -> None:
    """``tmp_path`` with a copy of the data store whose ``channel`` at ``time`` holds ``value``
    at ``rows`` (an index into (lat, lon)), and the shared checkpoints."""
    store, ckpts = inputs
    shutil.copytree(store, tmp_path / "data.zarr")
    (tmp_path / "checkpoints").symlink_to(ckpts)
    times = xr.open_zarr(tmp_path / "data.zarr")["time"].values
    i = int(np.searchsorted(times, np.datetime64(time, "ns")))
    arr = zarr.open_array(tmp_path / "data.zarr" / channel, mode="r+")
    block = arr[i]
    block[rows] = value
    arr[i] = block


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"init_times": {"times": ["2001-01-01T06"]}}, r"lacks the breeding history"),
        ({"init_times": {"times": ["1999-01-01T00"]}}, r"lacks the init time"),
        ({"lead_hours": 10}, r"lead_hours 10.0 is not a multiple of the model step \(6.0 h\)"),
        ({"variables": ["h", "z500"]}, r"variables: \['z500'\] are not model channels"),
        ({"perturbation": {"seed_channels": ["t2m"]}}, r"perturbation: channels \['t2m'\] are not model channels"),
        ({"checkpoints": "nowhere"}, r"no checkpoint folders"),
        # 16 x 32 grid: pi R / 15 = 1334 km between rows, so 2 spacings = 2669 km
        (
            {"perturbation": {"length_scale_km": 1000}},
            r"length_scale_km: a correlation length of 1000 km is below 2 grid spacings of the 16 x 32 grid "
            r"\(2 x 1334 km = 2669 km\).*'auto' \(4003 km here\)",
        ),
        (
            {"perturbation": {"stochastic_tendencies": {"sigma": 0.1, "length_scale_km": 2000}}},
            r"perturbation\.stochastic_tendencies\.length_scale_km: a correlation length of 2000 km is below "
            r"2 grid spacings of the 16 x 32 grid",
        ),
        # the test checkpoints' 48 h RMSE of h is 100 m; the smallest initial depth is ~9,000 m
        (
            {"perturbation": {"amplitude_factor": 30}},
            r"amplitude_factor: 30 x the 48 h RMSE of h \(100\) gives perturbations of 3000 RMS; at 4 sigma "
            r"they take h below 0 \(its smallest initial value is 9\d{3}\.?\d*\)\. Lower amplitude_factor to at most 2",
        ),
    ],
)
def test_bad_hindcast_inputs_fail_before_any_work(inputs, tmp_path, change, message):
    base = workdir(tmp_path, inputs)
    with pytest.raises(ConfigError, match=message):
        HindcastPlan(HindcastConfig.model_validate({**STAGE, **change}), StageContext(base=base))
    assert not (base / "hindcast.zarr").exists()


def test_model_error_pattern_takes_its_own_correlation_length(inputs, tmp_path):
    base = workdir(tmp_path, inputs)
    plans = {
        km: HindcastPlan(
            HindcastConfig.model_validate(
                {**STAGE, "perturbation": {"length_scale_km": 3000, "stochastic_tendencies": {"length_scale_km": km}}}
            ),
            StageContext(base=base),
        )
        for km in (None, 8000)
    }
    assert plans[None].tendencies.length_scale_m == plans[None].length_scale_m == 3.0e6
    assert plans[8000].tendencies.length_scale_m == 8.0e6 and plans[8000].length_scale_m == 3.0e6


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"member_block": 2}, "member_block 2 must divide the 5 members"),
        ({"perturbation": {"kind": "control", "pairs": 2}}, "makes no pairs"),
        ({"perturbation": {"control": False, "pairs": 0}}, "no members"),
        ({"init_times": {"start": "2001-01-02", "end": "2001-01-01"}}, "is before start"),
    ],
)
def test_impossible_hindcast_configs(change, message):
    with pytest.raises(ValueError, match=message):
        HindcastConfig.model_validate({**STAGE, **change})


def test_checkpoint_on_another_grid_is_refused(inputs, tmp_path):
    store, _ = inputs
    (tmp_path / "data.zarr").symlink_to(store)
    write_checkpoint(tmp_path / "checkpoints" / "seed-9", store, 9, nlat=8, nlon=16)
    with pytest.raises(ConfigError, match="seed-9: checkpoint grid 8x16 does not match the data grid 16x32"):
        HindcastPlan(HindcastConfig.model_validate(STAGE), StageContext(base=tmp_path))


def test_a_damaged_checkpoint_is_refused_before_the_store_exists(ray_session, inputs, tmp_path):
    """Found by the coordinator, not the actors: the store never records a damaged checkpoint's
    hash, so once the weights are restored the same run completes (on main it was refused as
    "different checkpoints" after four actor retries)."""
    store, ckpts = inputs
    (tmp_path / "data.zarr").symlink_to(store)
    shutil.copytree(ckpts, tmp_path / "checkpoints")
    weights = tmp_path / "checkpoints" / "seed-1" / "weights.safetensors"
    meta = tmp_path / "checkpoints" / "seed-0" / "checkpoint.json"
    good_weights, good_meta = weights.read_bytes(), meta.read_text()
    weights.write_bytes(good_weights[:-4] + b"\0\0\0\0")
    meta.write_text(good_meta.replace('"validation_rmse"', '"no_rmse"'))
    with pytest.raises(ConfigError) as err:
        run(tmp_path)
    assert "seed-1/weights.safetensors: does not match the hash in checkpoint.json" in str(err.value)
    assert "seed-0/checkpoint.json: no 48h validation RMSE for ['h', 'u', 'v', 'vo']" in str(err.value)
    assert not (tmp_path / "hindcast.zarr").exists()
    weights.write_bytes(good_weights)
    meta.write_text(good_meta)
    (result,) = run(tmp_path)
    assert result["computed"] == result["units"] == 4


def test_a_control_only_hindcast_needs_no_validation_rmse(inputs, tmp_path):
    from swarmcast.ops.perturbations import Control

    store, ckpts = inputs
    (tmp_path / "data.zarr").symlink_to(store)
    shutil.copytree(ckpts, tmp_path / "checkpoints")
    for meta_path in (tmp_path / "checkpoints").glob("*/checkpoint.json"):
        meta = json.loads(meta_path.read_text())
        del meta["validation_rmse"]
        meta_path.write_text(json.dumps(meta))
    control = {**STAGE, "perturbation": {"kind": "control", "pairs": 0}}
    plan = HindcastPlan(HindcastConfig.model_validate(control), StageContext(base=tmp_path))
    assert isinstance(make_perturbation(plan, plan.metas[0]), Control)
    with pytest.raises(ConfigError, match="no 48h validation RMSE"):  # perturbed members need it
        HindcastPlan(HindcastConfig.model_validate(STAGE), StageContext(base=tmp_path))


def test_nan_in_a_state_members_start_from_is_refused_with_time_channel_and_count(inputs, tmp_path):
    with_values(tmp_path, inputs, "h", "2001-01-02T00", np.s_[:5, :10], np.nan)  # an init time; 50 points
    with pytest.raises(ConfigError, match=r"unusable values .*h at 2001-01-02T00:00: 50 of 512 points NaN or infinite"):
        HindcastPlan(HindcastConfig.model_validate(STAGE), StageContext(base=tmp_path))
    assert not (tmp_path / "hindcast.zarr").exists()


def test_a_value_far_outside_the_training_data_is_refused_unless_the_check_is_off(inputs, tmp_path):
    """A fill value left in a field (1e20) passed every check and blew the members up."""
    with_values(tmp_path, inputs, "u", "2001-01-01T12", np.s_[3, :7], 1e20)  # breeding history of 18 h
    meta = json.loads((inputs[1] / "seed-0" / "checkpoint.json").read_text())
    stats = meta["normalization"]["channels"]["u"]
    lo, hi = stats["mean"] - 50 * stats["std"], stats["mean"] + 50 * stats["std"]
    want = rf"u at 2001-01-01T12:00: 7 of 512 points outside \[{lo:.4g}, {hi:.4g}\]"
    with pytest.raises(ConfigError, match=want):
        HindcastPlan(HindcastConfig.model_validate(STAGE), StageContext(base=tmp_path))
    HindcastPlan(HindcastConfig.model_validate({**STAGE, "plausible_sigmas": None}), StageContext(base=tmp_path))
    with pytest.raises(ConfigError, match="outside"):  # 1e20 is beyond any sane setting too
        HindcastPlan(HindcastConfig.model_validate({**STAGE, "plausible_sigmas": 1e6}), StageContext(base=tmp_path))


def test_a_checkpoint_whose_perturbations_explode_is_refused_before_the_store_exists(ray_session, inputs, tmp_path):
    """The growth gate rolls each checkpoint's perturbed members forward before the store is
    created: members 10x the 48 h RMSE apart are an ensemble no later step could calibrate."""
    base = workdir(tmp_path, inputs)
    loud = {**STAGE, "perturbation": {**STAGE["perturbation"], "amplitude_factor": 10.0}}
    with pytest.raises(ConfigError) as err:
        run(base, loud)
    text = str(err.value)
    assert re.search(r"checkpoints: seed-0: .*perturbations grow to [\d.]+ RMS at 48 h, \d+x the checkpoint's", text)
    assert "set perturbation.growth_check: false" in text
    assert not (base / "hindcast.zarr").exists()
    # the same campaign with the gate off runs (the user's call); the default one passes it
    (result,) = run(base, {**loud, "perturbation": {**loud["perturbation"], "growth_check": False}})
    assert result["computed"] == result["units"]
