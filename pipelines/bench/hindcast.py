"""``swarmcast bench hindcast``: pipeline efficiency against the raw model, plus a HENS projection.

Efficiency = model member-steps/s of the whole ``hindcast`` stage (store writes and actor
scheduling included; forecast and breeding steps both counted, since both are model work)
divided by member-steps/s of the same model running the forecast batches in one process with
no I/O. Both use one torch thread per process. The stage's wall time includes a fixed cost a
campaign pays once: the actor's process start and imports (torch and torch-harmonics take
several seconds to import) and its checkpoint load, beyond what overlaps the store's creation.
So the JSON also splits the run: ``steady_ratio`` is the rate once the first unit is written
(the units after it, over the time they took) against the raw rate, and ``fixed_cost_s`` is the
wall time beyond what all units take at that steady rate. Every unit has the same work here
(one block per date), so the split is exact up to timing noise.
The HENS projection applies our store layout to the HENS campaign (7,424 members, 61 saved
leads, 12 variables at 721 x 1440) to count objects and bytes per init date.

``mode=io`` measures the storage path instead, with a free model on a 1-degree grid
(``swarmcast.pipelines.bench.storage_io``, which has its own parameters).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from swarmcast.pipelines.bench.common import check_params, machine
from swarmcast.pipelines.config import ConfigError

DEFAULTS: dict[str, Any] = {
    "mode": "model",
    "nlat": 32,
    "nlon": 64,
    "embed_dim": 16,
    "num_layers": 2,
    "init_times": 4,
    "pairs": 8,
    "lead_hours": 48,
}


def _raw_rate(
    model: Any, members: int, n_steps: int, units: int, shape: tuple[int, int, int], repeats: int = 3
) -> float:
    """Member-steps/s of ``units`` rollouts of ``members`` x ``n_steps`` steps, the best of
    ``repeats`` timings: on a shared machine the slowest runs measure the neighbours."""
    import torch

    x = torch.randn(members, *shape)
    best = float("inf")
    with torch.no_grad():
        model(x)  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(units):
                y = x
                for _ in range(n_steps):
                    y = model(y)
            best = min(best, time.perf_counter() - t0)
    return members * n_steps * units / best


def hens_projection(member_block: int = 16, leads_per_shard: int = 61) -> dict:
    """Objects and bytes per init date for HENS (7,424 members, 61 leads, 12 vars, 0.25 deg)."""
    members, leads, variables, field = 7424, 61, 12, 721 * 1440 * 4
    shards_per_var = -(-members // member_block) * -(-leads // leads_per_shard)
    return {
        "members": members,
        "member_block": member_block,
        "leads_per_shard": leads_per_shard,
        "objects_per_init_date": shards_per_var * variables + -(-members // member_block),
        "hens_netcdf_files_per_init_date": members,
        "uncompressed_tb_per_init_date": round(members * leads * variables * field / 1e12, 2),
        "shard_gb": round(member_block * leads_per_shard * field / 1e9, 2),
        "reads_for_a_member_reduction_per_lead_and_variable": -(-members // member_block),
    }


def run(params: dict) -> dict:
    import numpy as np
    import torch

    from swarmcast.ops.checkpoint import load_model, save_model
    from swarmcast.ops.data.readers import open_climate, stored_normalization
    from swarmcast.ops.sfno.model import SFNOConfig, SFNOStepper, increment_scale
    from swarmcast.pipelines.context import StageContext
    from swarmcast.pipelines.stages.hindcast import HindcastConfig
    from swarmcast.pipelines.stages.hindcast import run as hindcast
    from swarmcast.pipelines.stages.swe_dataset import SWEDatasetConfig
    from swarmcast.pipelines.stages.swe_dataset import run as make_data

    if params.get("mode") == "io":
        from swarmcast.pipelines.bench import storage_io

        return storage_io.run(params)
    p = check_params(params, DEFAULTS)
    if p["mode"] != "model":
        raise ConfigError(f"mode: 'model' (the default) or 'io', got {p['mode']!r}")
    with tempfile.TemporaryDirectory(prefix="swarmcast-bench-") as tmp:
        base = Path(tmp)
        ctx = StageContext(base=base)
        make_data(SWEDatasetConfig(grid={"nlat": p["nlat"], "nlon": p["nlon"]}, trajectories=1, days=10), ctx)
        channels = ("h", "u", "v", "vo")
        norm = stored_normalization(open_climate(base / "data.zarr", channels))
        mean, std = norm.arrays(channels)
        torch.manual_seed(0)
        cfg = SFNOConfig(channels, p["nlat"], p["nlon"], embed_dim=p["embed_dim"], num_layers=p["num_layers"])
        meta = {
            "channels": list(channels),
            "grid": {"nlat": p["nlat"], "nlon": p["nlon"]},
            "time_step_hours": 6.0,
            "normalization": norm.to_attr(),
            "validation_lead_hours": 48.0,
            "validation_rmse": {"48h": {c: norm.channels[c].std * 0.3 for c in channels}},
        }
        save_model(
            base / "checkpoints" / "seed-0",
            SFNOStepper(cfg, mean.tolist(), std.tolist(), increment_scale(norm, channels)),
            meta,
        )
        inits = [str(np.datetime64("2000-01-02T00") + np.timedelta64(12 * i, "h")) for i in range(p["init_times"])]
        stage = HindcastConfig(
            init_times={"times": inits},
            lead_hours=p["lead_hours"],
            # an untrained model: the growth gate (which would refuse it) is not what is timed
            perturbation={"pairs": p["pairs"], "seed_channels": ["h"], "growth_check": False},
            actors={"cpus": 1.0, "max_actors": 1},
        )
        t0 = time.perf_counter()
        result = hindcast(stage, ctx)
        wall = time.perf_counter() - t0
        members = stage.members_per_checkpoint
        n_steps = round(p["lead_hours"] / 6)
        forecast_steps = members * n_steps * p["init_times"]
        # breeding is model work too: per cycle one control step and one step per +/- pair
        breeding_steps = stage.perturbation.cycles * (stage.perturbation.pairs + 1) * p["init_times"]
        steps = forecast_steps + breeding_steps
        pipeline_rate = steps / wall
        units = result["computed"]  # all of them, each with the same work: the store was new
        steady_s = result["units_s"] - result["first_unit_s"]
        steady_rate = steps * (units - 1) / units / steady_s if units > 1 and steady_s > 0 else None
        model, _ = load_model(base / "checkpoints" / "seed-0")
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            raw = _raw_rate(model, members, n_steps, p["init_times"], (len(channels), p["nlat"], p["nlon"]))
        finally:
            torch.set_num_threads(threads)
    return {
        "bench": "hindcast",
        "params": p,
        "members_per_init": members,
        "member_steps": forecast_steps,
        "breeding_member_steps": breeding_steps,
        "pipeline_wall_s": round(wall, 2),
        "pipeline_member_steps_per_s": round(pipeline_rate, 2),
        "raw_forward_member_steps_per_s": round(raw, 2),
        "units": units,
        "first_unit_s": result["first_unit_s"],
        "steady_member_steps_per_s": None if steady_rate is None else round(steady_rate, 2),
        "steady_ratio": None if steady_rate is None else round(steady_rate / raw, 3),
        "fixed_cost_s": None if steady_rate is None else round(wall - steps / steady_rate, 2),
        "hens_projection": hens_projection(),
        "machine": machine(),
        "ratio": round(pipeline_rate / raw, 3),
    }


__all__ = ["DEFAULTS", "hens_projection", "run"]
