"""``swarmcast bench perturbations``: control-only, Gaussian, correlated and bred-vector ensembles
of the same checkpoints, init dates, size and amplitude, scored side by side.

HENS (Mahesh et al. 2024) found bred vectors better calibrated than uncorrelated noise, with
spread that grows with lead time; this runs that comparison on a folder the demo made (its
``data.zarr`` and ``checkpoints/``; ``demo=PATH``). Each method is one hindcast with online
scores (``swarmcast.pipelines.scoring.online``) and no stored members, in a temporary folder.
The control-only ensemble has one member per checkpoint (model spread only); the others have
``1 + 2 * pairs`` per checkpoint, perturbed at ``amplitude_factor`` x each checkpoint's 48 h
RMSE. Where the demo's hindcast adds stochastic tendencies (model-error noise), a fifth run,
``bred-vector+stochastic``, adds them to the bred vectors. The growth gate is off: the
comparison is the point, including methods that fail it.
``ratio``: fair CRPS of the correlated-noise ensemble over the bred-vector one at the last lead,
averaged over variables (above 1: bred vectors score better).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from swarmcast.pipelines.config import ConfigError

if TYPE_CHECKING:  # imported in ``run``: listing the benchmarks imports nothing heavy
    import xarray as xr

DEFAULTS = {"demo": "swarmcast-demo", "pairs": 2, "amplitude_factor": 0.35, "cycles": 3, "lead_hours": 48.0}
METHODS = ("control", "gaussian", "correlated", "bred-vector")


def _demo_hindcast(folder: Path) -> dict:
    """The hindcast stage of the demo folder's ``pipeline.yaml`` (init times, seed channels)."""
    import yaml

    raw = yaml.safe_load((folder / "pipeline.yaml").read_text())
    stages = [s for s in raw.get("stages", []) if s.get("kind") == "hindcast"]
    if not stages:
        raise ConfigError(f"demo: {folder / 'pipeline.yaml'} has no hindcast stage to take init times from")
    return stages[0]


def _summary(scores: xr.Dataset) -> dict:
    from swarmcast.ops.verification.diagnostics import diagnose, power_ratio

    g = scores.sel(region="global")
    hours = (scores["lead_time"].values.astype("timedelta64[s]").astype(float) / 3600).tolist()
    out: dict = {"members": int(scores.attrs["members"]), "leads_h": hours, "variables": {}}
    ratio = power_ratio(scores).isel(lead_time=-1)
    for v in (str(x) for x in scores["variable"].values):
        s = g.sel(variable=v)
        out["variables"][v] = {
            "crps": [round(float(x), 6) for x in s["crps"].values],
            "ssr": [None if not np.isfinite(x) else round(float(x), 3) for x in s["ssr"].values],
            "power_ratio_last_lead": [round(float(x), 3) for x in ratio.sel(variable=v).values],
        }
    out["diagnostics"] = diagnose(scores)
    return out


def run(params: dict) -> dict:
    import xarray as xr

    from swarmcast.pipelines.bench.common import machine
    from swarmcast.pipelines.config import parse_pipeline
    from swarmcast.pipelines.context import StageContext
    from swarmcast.pipelines.runner import run_pipeline

    p = {**DEFAULTS, **params}
    demo = Path(p["demo"]).resolve()
    if not (demo / "data.zarr").is_dir() or not (demo / "checkpoints").is_dir():
        raise ConfigError(f"demo: {demo} has no data.zarr and checkpoints/: run `swarmcast demo` first")
    hindcast = _demo_hindcast(demo)
    results, seconds = {}, {}
    with tempfile.TemporaryDirectory(prefix="swarmcast-bench-") as tmp:
        base = Path(tmp)
        (base / "data.zarr").symlink_to(demo / "data.zarr")
        (base / "checkpoints").symlink_to(demo / "checkpoints")
        sppt = hindcast.get("perturbation", {}).get("stochastic_tendencies")
        methods = [*METHODS, "bred-vector+stochastic"] if sppt else list(METHODS)
        for method in methods:
            slug = method.replace("+", "-")
            perturbation = {
                "kind": method.split("+")[0],
                "pairs": 0 if method == "control" else p["pairs"],
                "amplitude_factor": p["amplitude_factor"],
                "cycles": p["cycles"],
                "growth_check": False,
            }
            if method.endswith("+stochastic"):
                perturbation["stochastic_tendencies"] = sppt
            if "seed_channels" in hindcast.get("perturbation", {}):
                perturbation["seed_channels"] = hindcast["perturbation"]["seed_channels"]
            stage = {
                "kind": "hindcast",
                "name": slug,
                "data": "data.zarr",
                "checkpoints": "checkpoints",
                "output": f"{slug}.zarr",
                "init_times": hindcast["init_times"],
                "lead_hours": p["lead_hours"],
                "variables": [],
                "perturbation": perturbation,
                "score": {"truth": "data.zarr", "output": f"{slug}-scores.zarr", "regions": ["global"]},
                "actors": {"cpus": 0.5},
            }
            raw = {"name": f"bench-{slug}", "seed": 0, "stages": [stage]}
            t0 = time.perf_counter()
            run_pipeline(parse_pipeline(raw), StageContext(base=base, seed=0, pipeline_raw=raw))
            seconds[method] = round(time.perf_counter() - t0, 1)
            results[method] = _summary(xr.open_zarr(base / f"{slug}-scores.zarr").load())
    last = {
        m: np.mean(
            [
                v["crps"][-1] / max(results["bred-vector"]["variables"][k]["crps"][-1], 1e-300)
                for k, v in r["variables"].items()
            ]
        )
        for m, r in results.items()
    }
    return {
        "bench": "perturbations",
        "params": {**p, "demo": demo.name},
        "methods": results,
        "crps_over_bred_vector_last_lead": {m: round(float(x), 3) for m, x in last.items()},
        "seconds": seconds,
        "machine": machine(),
        "ratio": round(float(last["correlated"]), 3),
    }


__all__ = ["DEFAULTS", "METHODS", "run"]
