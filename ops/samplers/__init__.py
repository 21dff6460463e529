"""Diffusion samplers: one solver per file behind the ``Solver`` interface of ``base``.

``SOLVERS`` maps a name to its solver; ``solver_schedule("dpm++2m", 10)`` or a list of names
per step builds the schedule ``sample`` runs; ``steps_for_nfe`` converts a denoiser-evaluation
budget into steps.
"""

from __future__ import annotations

from collections.abc import Sequence

from swarmcast.ops.samplers.base import (
    PerSampleNoise,
    SampleResult,
    Solver,
    StepContext,
    hallucination_score,
    keep_least_hallucinated,
    sample,
)
from swarmcast.ops.samplers.dpmpp_2m import DPMSolverPP2M
from swarmcast.ops.samplers.euler import Euler
from swarmcast.ops.samplers.heun import Heun
from swarmcast.ops.samplers.sde import EulerMaruyamaSDE

SOLVERS: dict[str, Solver] = {s.name: s for s in (Euler(), Heun(), DPMSolverPP2M(), EulerMaruyamaSDE())}


def solver_schedule(names: str | Sequence[str], steps: int) -> list[Solver]:
    """One solver per step: a single name for every step, or one name per step."""
    per_step = [names] * steps if isinstance(names, str) else list(names)
    if len(per_step) != steps:
        raise ValueError(f"a schedule of {len(per_step)} solvers for {steps} steps")
    unknown = sorted({n for n in per_step if n not in SOLVERS})
    if unknown:
        raise ValueError(f"unknown solvers {unknown}; known: {sorted(SOLVERS)}")
    return [SOLVERS[n] for n in per_step]


def steps_for_nfe(name: str, nfe: int) -> int:
    """Steps whose total denoiser evaluations are at most ``nfe`` (Heun: 2 per step, 1 for the last)."""
    if nfe < 1:
        raise ValueError("nfe must be >= 1")
    return (nfe + 1) // 2 if name == "heun" else nfe


def schedule_nfe(schedule: Sequence[Solver]) -> int:
    return sum(s.nfe(final=i == len(schedule) - 1) for i, s in enumerate(schedule))


__all__ = [
    "SOLVERS",
    "PerSampleNoise",
    "SampleResult",
    "Solver",
    "StepContext",
    "hallucination_score",
    "keep_least_hallucinated",
    "sample",
    "schedule_nfe",
    "solver_schedule",
    "steps_for_nfe",
]
