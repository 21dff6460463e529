"""``swarmcast bench crps``: fair-CRPS throughput against scoringrules on the same array.

For each ensemble size M, an array of ``values`` float32 ensemble values (``values / M``
points, members contiguous) is scored by ``kernels.ensemble_scores.fair_crps`` and by
``scoringrules.crps_ensemble(estimator="pwm")`` -- its sorted O(M log M) estimator, which is
the fair CRPS (numba backend when numba is installed; its JIT compile is warmed up first and
not timed). Throughput is ensemble values per second, best of ``repeats``. ``ratio`` = ours /
scoringrules at M = 1,024. With a CUDA GPU the torch twin is timed too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from swarmcast.pipelines.bench.common import check_params, machine

DEFAULTS: dict[str, Any] = {"members": [64, 1024, 8192], "values": 2**24, "repeats": 3, "seed": 0}


def _best_rate(fn: Callable[[], object], n_values: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n_values / best


def _gpu_rate(ens: np.ndarray, obs: np.ndarray, repeats: int) -> float | None:
    import torch

    from swarmcast.kernels.ensemble_scores import fair_crps_torch

    if not torch.cuda.is_available():
        return None
    x, y = torch.as_tensor(ens, device="cuda"), torch.as_tensor(obs, device="cuda")

    def run() -> None:
        fair_crps_torch(x, y, dim=-1)
        torch.cuda.synchronize()

    run()
    return _best_rate(run, ens.size, repeats)


def run(params: dict) -> dict:
    try:
        import scoringrules as sr
    except ImportError:  # an optional comparison, not a runtime dependency
        raise RuntimeError("bench crps compares against scoringrules: pip install scoringrules numba") from None
    from swarmcast.kernels.ensemble_scores import fair_crps

    p = check_params(params, DEFAULTS)
    rng = np.random.default_rng(p["seed"])
    rows = []
    for m in p["members"]:
        points = max(1, int(p["values"]) // m)
        ens = rng.standard_normal((points, m), dtype=np.float32)
        obs = rng.standard_normal(points, dtype=np.float32)
        ours = fair_crps(ens, obs, axis=-1)
        theirs = np.asarray(sr.crps_ensemble(obs, ens, m_axis=-1, estimator="pwm"))  # also warms the JIT
        rows.append(
            {
                "members": m,
                "values": ens.size,
                "ours_values_per_s": _best_rate(lambda e=ens, o=obs: fair_crps(e, o, axis=-1), ens.size, p["repeats"]),
                "scoringrules_values_per_s": _best_rate(
                    lambda e=ens, o=obs: sr.crps_ensemble(o, e, m_axis=-1, estimator="pwm"), ens.size, p["repeats"]
                ),
                "gpu_values_per_s": _gpu_rate(ens, obs, p["repeats"]),
                "max_abs_difference": float(np.abs(ours.astype(np.float64) - theirs).max()),
            }
        )
    at = next((r for r in rows if r["members"] == 1024), rows[-1])
    return {
        "bench": "crps",
        "scoringrules_version": sr.__version__,
        "scoringrules_backend": "numba" if _has_numba() else "numpy",
        "rows": rows,
        "ratio_members": at["members"],
        "ratio": round(at["ours_values_per_s"] / at["scoringrules_values_per_s"], 3),
        "machine": machine(),
    }


def _has_numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


__all__ = ["DEFAULTS", "run"]
