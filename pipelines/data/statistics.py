"""Normalisation statistics of a large climate store on Ray: one task per block of time.

``swarmcast stats --ray`` (or ``--address``): each task opens the store itself and returns the
moments of its block of snapshots (``swarmcast.ops.data.normalization.block_moments``: a few
numbers per channel, never the data), and the driver merges them in block order, so the result
is bit-identical to the one-machine stream however the tasks were placed. A task reads
``block`` snapshots (plus the tendency interval after them) of every channel: at 0.25 degrees
and 70 channels, 64 snapshots are about 19 GB in float32, so ``block`` and ``task_cpus`` set
how many run at once on a node. The store must be a path every node can read, or a URL.
"""

from __future__ import annotations

from collections.abc import Sequence

from swarmcast.ops.data.normalization import Normalization, TendencyPairs, block_moments, merge_block_moments
from swarmcast.ops.data.readers import open_climate


def normalization_on_ray(
    store: str, channels: Sequence[str], *, tendency_hours: float = 6.0, block: int = 64, task_cpus: float = 1.0
) -> Normalization:
    """``compute_normalization`` of ``store``'s ``channels`` with one Ray task per block of
    ``block`` snapshots (each asking ``task_cpus`` CPUs); needs a running Ray session."""
    import ray

    from swarmcast.ops.progress import Progress

    pairs = TendencyPairs.of(open_climate(store, channels)["time"].values, tendency_hours)
    names = list(channels)

    @ray.remote(num_cpus=task_cpus)
    def moments_of_block(lo: int, hi: int) -> tuple:
        return block_moments(open_climate(store, names), names, lo, hi, pairs)

    spans = pairs.blocks(block)
    refs = [moments_of_block.remote(lo, hi) for lo, hi in spans]
    order = {ref: i for i, ref in enumerate(refs)}
    parts: list = [None] * len(refs)
    pending = list(refs)
    with Progress("stats: blocks", len(refs), "blocks") as bar:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            parts[order[ready[0]]] = ray.get(ready[0])
            bar.update(1)
        bar.summary = f"{len(refs)} block{'s' if len(refs) != 1 else ''} of up to {block} times"
    return merge_block_moments(names, parts, tendency_hours)


__all__ = ["normalization_on_ray"]
