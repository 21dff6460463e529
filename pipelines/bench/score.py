"""``swarmcast bench score``: the ``score`` stage's throughput on all CPUs, on one, and against
xarray + dask + scoringrules.

A synthetic ensemble store is written through the hindcast's own writer (``inits`` x
``checkpoints * members_per_checkpoint`` members x ``leads`` x ``nlat`` x ``nlon`` x
``variables``; members scatter around a smooth truth, which is written as a climate store).
It is then scored three ways, each timed from opening the stores to the scores in memory:

* ``all_cpus``: the ``score`` stage's engine (Ray tasks, every metric: fair CRPS, RMSE,
  spread, ranks, outliers, best member, sub-ensembles, per-init, per-checkpoint, baselines,
  spectra) with as many tasks at once as the cluster has CPUs;
* ``one_cpu``: the same, one single-threaded task at a time;
* ``baseline``: ``xr.open_zarr`` + dask (threads, all CPUs) + ``scoringrules.crps_ensemble``
  (its fair estimator) for fair CRPS, and xarray for ensemble-mean RMSE and spread: three
  metrics, area-weighted, per lead.

Throughput is ensemble values (members x points x leads x init times x variables) per second.
``ratio`` = ``all_cpus`` / ``baseline`` throughput (target >= 2 while computing every metric);
``parallel_efficiency`` = ``all_cpus`` / (CPUs x ``one_cpu``) (target >= 0.7).
``max_relative_difference``: between our CRPS, RMSE and spread and the baseline's (the same
numbers, not only a speed). ``peak_task_rss_mb``: the largest resident set of a Ray worker after a scoring task (the
process's high-water mark); ``idle_worker_rss_mb``: the same before any task (Ray, torch,
xarray and zarr imported), so the task's own share is the difference.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from swarmcast.pipelines.bench.common import machine

DEFAULTS: dict[str, Any] = {
    "inits": 2,
    "checkpoints": 4,
    "members_per_checkpoint": 64,
    "leads": 21,
    "nlat": 64,
    "nlon": 128,
    "variables": 4,
    "memory_budget_mb": 1024.0,
    "bootstrap": 10,
}


def _write(folder: Path, p: dict) -> tuple[Path, Path]:
    """(ensemble store, truth store) of the sizes in ``p``."""
    import xarray as xr

    from swarmcast.ops.ensemble.store import EnsembleLayout, UnitWriter, create_ensemble_store
    from swarmcast.pipelines.bench.storage_io import smooth_field

    step = np.timedelta64(6, "h").astype("timedelta64[ns]")
    inits = np.datetime64("2003-01-04T00", "ns") + np.arange(p["inits"]) * 4 * step
    n_times = p["inits"] * 4 + p["leads"]
    names = [f"x{k}" for k in range(p["variables"])]
    lat, lon = np.linspace(90, -90, p["nlat"]), np.arange(p["nlon"]) * 360 / p["nlon"]
    truth = smooth_field((1, n_times, p["variables"], p["nlat"], p["nlon"]), seed=1)[0]  # (time, variable, lat, lon)
    times = inits[0] + np.arange(n_times) * step
    ds = xr.Dataset(
        {n: (("time", "lat", "lon"), truth[:, k], {"units": "1"}) for k, n in enumerate(names)},
        coords={"time": times, "lat": lat, "lon": lon},
    )
    truth_path = folder / "truth.zarr"
    ds.to_zarr(truth_path, mode="w", zarr_format=3, consolidated=False)
    m = p["members_per_checkpoint"]
    block = min(m, 16)
    layout = EnsembleLayout(
        init_times=inits,
        lead_times=np.arange(p["leads"]) * step,
        lat=lat,
        lon=lon,
        channels=tuple(names),
        checkpoints=tuple(f"seed-{c}" for c in range(p["checkpoints"])),
        perturbation=np.arange(m),
        sign=np.zeros(m, dtype=int),
        member_block=block,
        leads_per_shard=p["leads"],
    )
    seeds = np.zeros((p["inits"], layout.n_members), dtype=int)
    path = Path(str(create_ensemble_store(folder / "ensemble.zarr", layout, seeds, {"swarmcast_stage": {}})))
    rng = np.random.default_rng(0)
    for unit in layout.units():
        k = unit.init * 4
        centre = truth[k : k + p["leads"]]  # (lead, variable, lat, lon): the truth at the valid times
        values = centre[None] + 0.3 * rng.standard_normal((block, *centre.shape), dtype=np.float32)
        writer = UnitWriter(path, layout, unit)
        writer.write(values.astype(np.float32))
        writer.finish()
    return path, truth_path


def _ours(folder: Path, p: dict, one_cpu: bool) -> tuple[float, int, float]:
    """(seconds, tasks, peak worker RSS MB) of the ``score`` stage on the synthetic stores."""
    from swarmcast.pipelines.context import StageContext
    from swarmcast.pipelines.stages.score import ScoreConfig
    from swarmcast.pipelines.stages.score.stage import run as score

    cfg = ScoreConfig(
        forecast="ensemble.zarr",
        truth="truth.zarr",
        output=f"scores-{'one' if one_cpu else 'all'}.zarr",
        memory_budget_mb=p["memory_budget_mb"],
        bootstrap=p["bootstrap"],
        max_tasks_in_flight=1 if one_cpu else None,
    )
    t = time.perf_counter()
    summary = score(cfg, StageContext(base=folder, seed=0, pipeline_raw={}))
    return time.perf_counter() - t, summary["tasks"], summary["peak_task_rss_mb"]


def _baseline(ensemble: Path, truth: Path) -> tuple[float, dict]:
    """(seconds, {"variables": names, "crps"|"rmse"|"spread": (variable, lead)}) of fair CRPS (scoringrules),
    ensemble-mean RMSE and spread, global area means, with xarray + dask."""
    import scoringrules as sr
    import xarray as xr

    from swarmcast.kernels.sphere import lat_cell_area_weights

    t = time.perf_counter()
    ens = xr.open_zarr(ensemble)
    obs = xr.open_zarr(truth, consolidated=False)
    w = xr.DataArray(lat_cell_area_weights(ens["lat"].values), dims="lat")
    out, names = [], sorted(str(n) for n in obs.data_vars)
    for v in names:
        fc = ens[v].chunk({"member": -1})
        y = obs[v].sel(time=ens["valid_time"]).drop_vars("time")
        crps = xr.apply_ufunc(
            lambda o, f: sr.crps_ensemble(o, f, m_axis=-1, estimator="fair"),
            y,
            fc,
            input_core_dims=[[], ["member"]],
            dask="parallelized",
            output_dtypes=[np.float64],
        )
        mean = fc.mean("member")
        rmse = np.sqrt(((mean - y) ** 2).weighted(w).mean(("init_time", "lat", "lon")))
        spread = np.sqrt(fc.var("member", ddof=1).weighted(w).mean(("init_time", "lat", "lon")))
        out += [crps.weighted(w).mean(("init_time", "lat", "lon")), rmse, spread]
    got = xr.Dataset({str(k): a for k, a in enumerate(out)}).compute()
    seconds = time.perf_counter() - t
    values = [got[str(k)].values for k in range(len(out))]
    scores = {name: np.stack(values[k::3]) for k, name in enumerate(("crps", "rmse", "spread"))}
    return seconds, {"variables": names, **scores}


def _difference(folder: Path, theirs: dict[str, np.ndarray]) -> float:
    """Largest relative difference between our global scores and the baseline's."""
    import xarray as xr

    ours = xr.open_zarr(folder / "scores-all.zarr").sel(region="global", variable=theirs.pop("variables"))
    return max(float(np.max(np.abs(ours[k].values - v) / np.abs(v))) for k, v in theirs.items())


def run(params: dict) -> dict:
    import ray

    try:
        import scoringrules as sr
    except ImportError:  # the baseline's library, not a runtime dependency
        raise RuntimeError("bench score compares against scoringrules: pip install scoringrules numba") from None

    from swarmcast.pipelines.bench.common import check_params
    from swarmcast.pipelines.scoring.fanout import warm_workers

    p = check_params(params, DEFAULTS)
    members = p["checkpoints"] * p["members_per_checkpoint"]
    values = p["inits"] * members * p["leads"] * p["nlat"] * p["nlon"] * p["variables"]
    cpus = int(ray.cluster_resources().get("CPU", 1))
    with tempfile.TemporaryDirectory(prefix="swarmcast-bench-score-") as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        ens, truth = _write(folder, p)
        write_s = time.perf_counter() - t
        _, idle_rss = warm_workers()  # worker start-up and imports are not part of a campaign's scoring
        all_s, tasks, rss_all = _ours(folder, p, one_cpu=False)
        one_s, _, rss_one = _ours(folder, p, one_cpu=True)
        base_s, theirs = _baseline(ens, truth)
        difference = _difference(folder, theirs)
    rate = {"all_cpus": values / all_s, "one_cpu": values / one_s, "baseline": values / base_s}
    return {
        "bench": "score",
        "params": p,
        "members": members,
        "values": values,
        "stored_gb": values * 4 / 1e9,
        "write_s": round(write_s, 2),
        "tasks": tasks,
        "seconds": {"all_cpus": round(all_s, 2), "one_cpu": round(one_s, 2), "baseline": round(base_s, 2)},
        "values_per_s": {k: round(v) for k, v in rate.items()},
        "peak_task_rss_mb": round(max(rss_all, rss_one), 1),
        "idle_worker_rss_mb": round(idle_rss / 2**20, 1),
        "max_relative_difference": difference,
        "cpus": cpus,
        "scoringrules_version": sr.__version__,
        "ratio": round(rate["all_cpus"] / rate["baseline"], 3),
        "parallel_efficiency": round(rate["all_cpus"] / (cpus * rate["one_cpu"]), 3),
        "machine": machine(),
    }


__all__ = ["DEFAULTS", "run"]
