"""``swarmcast bench NAME``: measured ratios, each printed as one JSON object.

One module per benchmark, each with ``DEFAULTS`` (its parameters) and ``run(params) -> dict``;
the dict carries the measured figures, the machine and a top-level ``ratio``, the headline
ratio of its issue (ARCHITECTURE.md, "Benchmarks"). ``BENCHES`` is the one registry; ``run_bench``
checks the parameters and starts Ray only for the benchmarks that need it. Benchmark modules
import their heavy dependencies inside ``run``, so listing them costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from swarmcast.pipelines.bench import (
    chunks,
    crps,
    hindcast,
    loader,
    perturbations,
    sample,
    scale,
    score,
    storage_io,
    train,
)
from swarmcast.pipelines.bench.common import check_params
from swarmcast.pipelines.config import ConfigError


@dataclass(frozen=True)
class Bench:
    run: Callable[[dict], dict]
    defaults: dict[str, Any]
    needs_ray: bool
    """Starts (or joins) a Ray session; the others are plain numpy/torch."""
    modes: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Parameters of each other ``mode=...`` the benchmark has, in place of ``defaults``."""
    check: Callable[[dict], None] | None = None
    """Refuses bad parameter values (``ConfigError``) before Ray or any work starts."""

    def defaults_for(self, params: dict) -> dict[str, Any]:
        """The parameters known for ``params``' mode."""
        return self.modes.get(str(params.get("mode")), self.defaults)


BENCHES: dict[str, Bench] = {
    "loader": Bench(loader.run, loader.DEFAULTS, needs_ray=True, check=loader.check),
    "train": Bench(train.run, train.DEFAULTS, needs_ray=True),
    "hindcast": Bench(hindcast.run, hindcast.DEFAULTS, needs_ray=True, modes={"io": storage_io.DEFAULTS}),
    "crps": Bench(crps.run, crps.DEFAULTS, needs_ray=False),
    "sample": Bench(sample.run, sample.DEFAULTS, needs_ray=False),
    "scale": Bench(scale.run, scale.DEFAULTS, needs_ray=False),  # starts its own Ray
    "chunks": Bench(chunks.run, chunks.DEFAULTS, needs_ray=False, check=chunks.check),
    "score": Bench(score.run, score.DEFAULTS, needs_ray=True),
    "perturbations": Bench(perturbations.run, perturbations.DEFAULTS, needs_ray=True),
}


def run_bench(name: str, params: dict, *, address: str | None = None) -> dict:
    """Run benchmark ``name`` with ``params`` (refused before anything starts if unknown)."""
    from swarmcast.pipelines.cluster.session import ray_session

    if name not in BENCHES:
        raise ConfigError(f"unknown bench {name!r}; known: {sorted(BENCHES)}")
    bench = BENCHES[name]
    check_params(params, bench.defaults_for(params))
    if bench.check is not None:
        bench.check(params)
    if not bench.needs_ray:
        return bench.run(params)
    with ray_session(address):
        return bench.run(params)


__all__ = ["BENCHES", "Bench", "run_bench"]
