"""``swarmcast bench sample``: sampler speed and quality on the analytic Gaussian mixture.

The 2-D three-mode mixture of ``ops.diffusion.mixture`` has an exact denoiser, so sampler
error is measured without any training: sliced Wasserstein distance between ``samples`` draws
and as many exact draws from the mixture, at 5, 10 and 20 NFE, for every solver (log-SNR
spacing, s from 80 to 0.02). Throughput is samples/s at 10 NFE with the analytic denoiser, so
it measures the solvers' overhead rather than a network. ``ratio`` = Euler's distance /
DPM-Solver++(2M)'s at 10 NFE (above 1: DPM-Solver++ is closer to the truth).
"""

from __future__ import annotations

import time
from typing import Any

from swarmcast.pipelines.bench.common import check_params, machine

DEFAULTS: dict[str, Any] = {"samples": 20_000, "nfe": [5, 10, 20], "eps": 0.5, "seed": 0}


def run(params: dict) -> dict:
    import torch

    from swarmcast.kernels.diffusion import sampling_sigmas
    from swarmcast.kernels.sample_quality import sliced_wasserstein
    from swarmcast.ops.diffusion.mixture import two_d_mixture
    from swarmcast.ops.samplers import SOLVERS, sample, solver_schedule, steps_for_nfe

    p = check_params(params, DEFAULTS)
    mix = two_d_mixture()
    n = int(p["samples"])
    truth = mix.sample(n, seed=p["seed"] + 1)
    floor = sliced_wasserstein(mix.sample(n, seed=p["seed"] + 2), truth)
    rows = []
    for name in sorted(SOLVERS):
        eps = float(p["eps"]) if name == "sde" else 0.0
        row: dict[str, Any] = {"solver": name, "eps": eps}
        for nfe in p["nfe"]:
            steps = steps_for_nfe(name, nfe)
            sigmas = sampling_sigmas("log-snr", steps, 0.02, 80.0)
            t0 = time.perf_counter()
            result = sample(
                mix.denoise, (2,), range(n), sigmas, solver_schedule(name, steps), eps=eps, dtype=torch.float64
            )
            seconds = time.perf_counter() - t0
            row[f"sliced_wasserstein_nfe{nfe}"] = round(sliced_wasserstein(result.samples, truth), 4)
            if nfe == 10:
                row["samples_per_s_nfe10"] = round(n / seconds, 1)
        rows.append(row)
    by = {r["solver"]: r for r in rows}
    ratio = by["euler"]["sliced_wasserstein_nfe10"] / by["dpm++2m"]["sliced_wasserstein_nfe10"]
    return {
        "bench": "sample",
        "samples": n,
        "noise_floor_sliced_wasserstein": round(floor, 4),
        "rows": rows,
        "ratio": round(ratio, 3),
        "machine": machine(),
    }


__all__ = ["DEFAULTS", "run"]
