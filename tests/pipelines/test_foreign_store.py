"""A reanalysis swarmcast did not write (WeatherBench2 layout), from statistics to a hindcast:
`swarmcast stats` writes what training needs without touching the store; train-sfno reads it."""

import json

import numpy as np
import pytest
import xarray as xr

from support.datasets import canonical_dataset, write_weatherbench2_store
from swarmcast.ops.data.normalization import compute_normalization
from swarmcast.ops.data.readers import open_climate
from swarmcast.pipelines.cli import main
from swarmcast.pipelines.config import ConfigError, parse_pipeline
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.data.statistics import normalization_on_ray
from swarmcast.pipelines.runner import run_pipeline
from swarmcast.pipelines.stages.train_sfno.config import TrainSFNOConfig
from swarmcast.pipelines.stages.train_sfno.plan import SFNOTrainingPlan

CHANNELS = ("z500", "t500", "t2m", "u10m")
TRAIN = {
    "kind": "train-sfno",
    "name": "train",
    "data": "wb2.zarr",
    "normalization": "stats.json",
    "seeds": [1],
    "model": {"embed_dim": 8, "num_layers": 1},
    "train": {"epochs": 1, "batch_size": 8},
    "validation": {"lead_hours": 12},
    "scaling": {"cpus_per_worker": 0.5},
}
HINDCAST = {
    "kind": "hindcast",
    "data": "wb2.zarr",
    "checkpoints": "checkpoints",
    "init_times": "latest",
    "lead_hours": 12,
    "perturbation": {"kind": "correlated", "pairs": 1, "seed_channels": ["z500"], "growth_check": False},
    "actors": {"cpus": 0.5},
}


@pytest.fixture
def wb2(tmp_path):
    truth = canonical_dataset(CHANNELS, n_times=40, nlat=16, nlon=32)
    write_weatherbench2_store(truth, tmp_path / "wb2.zarr")
    return tmp_path, truth


def test_stats_writes_the_statistics_of_a_weatherbench2_store_and_leaves_it_as_it_was(wb2, capsys):
    base, truth = wb2
    before = sorted((p.relative_to(base).as_posix(), p.stat().st_mtime_ns) for p in (base / "wb2.zarr").rglob("*"))
    assert main(["stats", str(base / "wb2.zarr"), "-o", str(base / "stats.json")]) == 0
    out = capsys.readouterr().out
    assert "40 times from 2020-01-01T00:00:00 to 2020-01-10T18:00:00, 4 channels" in out
    assert f"normalization: {base / 'stats.json'}" in out
    doc = json.loads((base / "stats.json").read_text())
    assert doc["channels"] == sorted(CHANNELS) and doc["times"] == 40  # sorted: the same on every copy
    for c in CHANNELS:  # against numpy over the whole canonical dataset (population std)
        x = truth[c].values.astype(np.float64)
        got = doc["normalization"]["channels"][c]
        np.testing.assert_allclose([got["mean"], got["std"]], [x.mean(), x.std()], rtol=1e-6)
        np.testing.assert_allclose(got["tendency_std"], (x[1:] - x[:-1]).std(), rtol=1e-6)
    after = sorted((p.relative_to(base).as_posix(), p.stat().st_mtime_ns) for p in (base / "wb2.zarr").rglob("*"))
    assert after == before


@pytest.mark.timeout(300)
def test_statistics_on_ray_tasks_are_the_one_machine_stream_to_the_bit(ray_session, wb2, capsys):
    """With a gap in time (pairs across it are skipped): 8 Ray tasks of 5 snapshots merge to the
    bits of the one-process stream, which matches numpy over the pairs that exist."""
    base, truth = wb2
    kept = np.r_[0:17, 21:40]  # a day missing: no 6 h pair spans 16 -> 21
    write_weatherbench2_store(truth.isel(time=kept), base / "gappy.zarr")
    store = str(base / "gappy.zarr")
    names = sorted(CHANNELS)
    on_ray = normalization_on_ray(store, names, block=5)
    assert on_ray == compute_normalization(open_climate(store, names), names, block=5)
    for c in names:
        x = truth[c].values[kept].astype(np.float64)
        pairs = [(i, i + 1) for i in range(len(kept) - 1) if kept[i + 1] == kept[i] + 1]
        d = np.stack([x[j] - x[i] for i, j in pairs])
        got = on_ray.channels[c]
        np.testing.assert_allclose([got.mean, got.std, got.tendency_std], [x.mean(), x.std(), d.std()], rtol=1e-6)
    # the command line's --ray gives the document the one-machine command writes
    assert main(["stats", store, "--ray", "-o", str(base / "ray.json")]) == 0
    assert main(["stats", store, "-o", str(base / "one.json")]) == 0
    assert "[stats: blocks] done: 1 block of up to 64 times" in capsys.readouterr().out
    assert (base / "ray.json").read_text() == (base / "one.json").read_text()


def test_statistics_of_channels_the_store_lacks_and_training_without_statistics_are_refused(wb2, capsys):
    base, _ = wb2
    assert main(["stats", str(base / "wb2.zarr"), "--channels", "z500,q700", "-o", str(base / "s.json")]) == 2
    assert "channels ['q700'] not in the store" in capsys.readouterr().err and not (base / "s.json").exists()
    ctx = StageContext(base=base)
    with pytest.raises(ConfigError, match=r"no normalisation statistics: compute them with `swarmcast stats wb2.zarr"):
        SFNOTrainingPlan(TrainSFNOConfig.model_validate({**TRAIN, "normalization": None}), ctx)
    (base / "stats.json").write_text('{"format": "something else"}')
    with pytest.raises(ConfigError, match=r"stats.json: not a statistics file written by `swarmcast stats`"):
        SFNOTrainingPlan(TrainSFNOConfig.model_validate(TRAIN), ctx)
    main(["stats", str(base / "wb2.zarr"), "--channels", "z500,t2m", "-o", str(base / "stats.json")])
    with pytest.raises(ConfigError, match=r"no statistics for channels \['t500', 'u10m'\]"):
        SFNOTrainingPlan(TrainSFNOConfig.model_validate(TRAIN), ctx)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_from_statistics_to_a_hindcast_on_a_weatherbench2_store(ray_session, wb2):
    base, truth = wb2
    assert main(["stats", str(base / "wb2.zarr"), "-o", str(base / "stats.json")]) == 0
    raw = {"name": "foreign", "seed": 0, "stages": [TRAIN, HINDCAST]}
    results = run_pipeline(parse_pipeline(raw), StageContext(base=base, pipeline_raw=raw))
    assert (results[1]["units"], results[1]["computed"]) == (1, 1)  # one date, one checkpoint, one block
    meta = json.loads((base / "checkpoints" / "seed-1" / "checkpoint.json").read_text())
    stats = json.loads((base / "stats.json").read_text())["normalization"]
    assert sorted(meta["channels"]) == sorted(CHANNELS) and meta["normalization"] == stats
    ds = xr.open_zarr(base / "hindcast.zarr")
    assert set(ds.data_vars) == {*CHANNELS, "member_done"} and ds["member_done"].values.all()
    assert str(ds["init_time"].values[0])[:13] == "2020-01-10T18"
    # lead 0 of the control member is the analysis, in the store's canonical orientation
    np.testing.assert_allclose(ds["t2m"].isel(init_time=0, member=0, lead_time=0).values, truth["t2m"].values[-1])
