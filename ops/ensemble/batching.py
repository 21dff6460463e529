"""Memory-aware micro-batches: a unit's member block through the model a slice at a time.

A work unit's block (HENS: 16 members) need not fit the accelerator at once. ``MicroBatched``
wraps a model so every call (forecast steps and breeding alike) runs in slices of at most
``size`` members along dim 0 and concatenates the results. The size comes from
``actors.batch_members``, or on a GPU from ``probe_batch_size`` (one member's peak memory
against the free memory); on out-of-memory it halves and retries, logging the new size once.

The stored bytes do not depend on the slice size as long as the model's kernels are
batch-invariant, which holds for the SFNO on the CPU with one torch thread per actor (the
default: ``cpus: 1``); torch's multithreaded CPU kernels and some GPU kernels may round a
batch of one differently from a batch of four (ARCHITECTURE.md, "Work units").
"""

from __future__ import annotations

import logging

import torch

from swarmcast.ops.devices import DeviceError

log = logging.getLogger(__name__)


class MicroBatched(torch.nn.Module):
    """``model`` applied to slices of at most ``size`` members (None: the whole batch at once).

    ``forward(x, *args)``: x (batch, ...); tensor ``args`` with the same leading size are
    sliced alongside. A model that returns a tuple of tensors gets each concatenated. On
    ``torch.OutOfMemoryError`` the size halves (down to 1) and the call is redone; ``halvings``
    counts how often.
    """

    def __init__(self, model: torch.nn.Module, size: int | None = None) -> None:
        super().__init__()
        if size is not None and size < 1:
            raise ValueError(f"micro-batch size must be >= 1, got {size}")
        self.model, self.size, self.halvings = model, size, 0

    def forward(self, x: torch.Tensor, *args: object) -> torch.Tensor | tuple[torch.Tensor, ...]:
        while True:
            size = min(self.size or len(x), len(x))
            try:
                if size >= len(x):
                    return self.model(x, *args)
                parts = []
                for lo in range(0, len(x), size):
                    sliced = [a[lo : lo + size] if _batched(a, len(x)) else a for a in args]
                    parts.append(self.model(x[lo : lo + size], *sliced))
                if isinstance(parts[0], tuple):
                    return tuple(torch.cat(outputs) for outputs in zip(*parts, strict=True))
                return torch.cat(parts)
            except torch.OutOfMemoryError:
                if size == 1:
                    raise
                self.size = size // 2
                self.halvings += 1
                if x.is_cuda:
                    torch.cuda.empty_cache()
                log.warning("out of memory with %d members at once; retrying with %d", size, self.size)


def _batched(arg: object, batch: int) -> bool:
    return isinstance(arg, torch.Tensor) and arg.ndim > 0 and len(arg) == batch


def members_that_fit(per_member: int, free: int, total: int, per_gpu: int = 1, headroom: float = 0.8) -> int:
    """Members one actor may run at once on a device (all sizes in bytes).

    An actor sharing the device with ``per_gpu - 1`` others may use ``total / per_gpu``, or what
    is free when that is less: the actors start together, so the first to probe must not size
    its batches for memory the others will need. ``headroom`` leaves room for allocator slack.
    """
    if per_member < 1 or per_gpu < 1:
        raise ValueError(f"per_member and per_gpu must be >= 1, got {per_member} and {per_gpu}")
    return max(int(headroom * min(free, total // per_gpu) // per_member), 0)


def probe_batch_size(
    model: torch.nn.Module, member: torch.Tensor, wanted: int | None, *, per_gpu: int = 1, headroom: float = 0.8
) -> int | None:
    """Members per model call on ``member``'s device: ``wanted`` if it fits, else refused.

    ``member``: one state (1, channels, lat, lon) on the model's device. On the CPU returns
    ``wanted`` (None: the whole block). On a GPU one member's peak memory in a forward pass is
    measured; None then becomes as many members as this actor's share holds
    (``members_that_fit``), and a ``wanted`` size that cannot fit, or a ``per_gpu`` whose share
    cannot hold one member, raises ``DeviceError`` with the numbers.
    """
    if member.device.type != "cuda":
        return wanted
    torch.cuda.synchronize(member.device)
    torch.cuda.reset_peak_memory_stats(member.device)
    base = torch.cuda.memory_allocated(member.device)
    with torch.no_grad():
        model(member)
    per_member = max(torch.cuda.max_memory_allocated(member.device) - base, 1)
    free, total = torch.cuda.mem_get_info(member.device)
    fits = members_that_fit(per_member, free, total, per_gpu, headroom)
    gib = 2**30
    share = (
        f"{headroom:.0%} of this actor's share ({min(free, total // per_gpu) / gib:.2f} GiB: "
        f"{free / gib:.2f} GiB free, {total / gib:.2f} GiB / per_gpu {per_gpu})"
    )
    if wanted is None:
        if fits < 1:
            raise DeviceError(f"one member needs {per_member / 2**20:.0f} MiB but {share} holds none; lower per_gpu")
        return fits
    if wanted > fits:
        raise DeviceError(
            f"actors.batch_members {wanted} needs about {wanted * per_member / 2**30:.2f} GiB "
            f"({per_member / 2**20:.0f} MiB per member) but {share} holds {fits}; lower batch_members or per_gpu"
        )
    return wanted


__all__ = ["MicroBatched", "members_that_fit", "probe_batch_size"]
