"""Micro-batches of a member block: the same numbers as one call, and halving on out-of-memory."""

import logging

import pytest
import torch

from swarmcast.ops.ensemble.batching import MicroBatched, members_that_fit, probe_batch_size
from swarmcast.ops.sfno.model import SFNOConfig, SFNOStepper

CH = ("h", "u", "v", "vo")


def small_sfno() -> SFNOStepper:
    torch.manual_seed(0)
    cfg = SFNOConfig(CH, 16, 32, embed_dim=8, num_layers=1)
    return SFNOStepper(cfg, [1e4, 0.0, 0.0, 0.0], [100.0, 5.0, 5.0, 1e-5], [10.0, 1.0, 1.0, 1e-6]).eval()


class OutOfMemoryAbove(torch.nn.Module):
    """Fault injection: the real model, but a call on more than ``limit`` members raises the
    error a GPU raises when the activations do not fit."""

    def __init__(self, model: torch.nn.Module, limit: int) -> None:
        super().__init__()
        self.model, self.limit, self.calls = model, limit, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(len(x))
        if len(x) > self.limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory (test: {len(x)} > {self.limit} members)")
        return self.model(x)


def states(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    scale = torch.tensor([100.0, 5.0, 5.0, 1e-5]).reshape(1, 4, 1, 1)
    return torch.tensor([1e4, 0, 0, 0]).reshape(1, 4, 1, 1) + scale * torch.randn(n, 4, 16, 32, generator=g)


@pytest.mark.parametrize("size", [1, 2, 3, 7, None])
def test_micro_batches_give_the_whole_block_bit_for_bit(one_torch_thread, size):
    model, x = small_sfno(), states(7)
    with torch.no_grad():
        whole = model(x)
        sliced = MicroBatched(model, size)(x)
    assert torch.equal(sliced, whole)


def test_out_of_memory_halves_the_slices_once_and_logs_it(one_torch_thread, caplog):
    model, x = small_sfno(), states(6)
    failing = OutOfMemoryAbove(model, limit=2)
    batched = MicroBatched(failing)
    with torch.no_grad(), caplog.at_level(logging.WARNING):
        first = batched(x)
        second = batched(x)  # the halved size is kept: no new failure
        whole = model(x)
    assert torch.equal(first, whole) and torch.equal(second, whole)
    assert batched.size == 1 and batched.halvings == 2  # 6 -> 3 (fails) -> 1
    assert failing.calls == [6, 3] + [1] * 6 + [1] * 6  # the two failed calls, then slices of one
    assert [r.getMessage() for r in caplog.records] == [
        "out of memory with 6 members at once; retrying with 3",
        "out of memory with 3 members at once; retrying with 1",
    ]


def test_out_of_memory_with_one_member_is_raised():
    with pytest.raises(torch.OutOfMemoryError):
        MicroBatched(OutOfMemoryAbove(small_sfno(), limit=0), 1)(states(2))


def test_extra_tensor_arguments_are_sliced_with_the_batch(one_torch_thread):
    class Scaled(torch.nn.Module):
        def forward(self, x: torch.Tensor, scale: torch.Tensor, shift: float) -> torch.Tensor:
            return x * scale.reshape(-1, 1) + shift

    x, scale = torch.arange(10.0).reshape(5, 2), torch.arange(5.0)
    assert torch.equal(MicroBatched(Scaled(), 2)(x, scale, 1.0), x * scale.reshape(-1, 1) + 1.0)


def test_the_cpu_probe_keeps_the_requested_size_and_refuses_nonsense():
    member = states(1)
    assert probe_batch_size(small_sfno(), member, 4) == 4
    assert probe_batch_size(small_sfno(), member, None) is None
    with pytest.raises(ValueError, match="micro-batch size must be >= 1"):
        MicroBatched(small_sfno(), 0)


def test_an_actor_sizes_its_batches_from_its_share_of_the_device():
    gib = 2**30
    # alone on an idle 80 GiB card: 80% of it, in whole 1 GiB members
    assert members_that_fit(gib, free=80 * gib, total=80 * gib) == 64
    # four actors per GPU: the first to probe sees the card idle but takes only its quarter
    assert members_that_fit(gib, free=80 * gib, total=80 * gib, per_gpu=4) == 16
    # a share larger than what is free (others already allocated): what is free bounds it
    assert members_that_fit(gib, free=10 * gib, total=80 * gib, per_gpu=4) == 8
    # a member larger than the share: none fit (the probe then refuses, naming per_gpu)
    assert members_that_fit(3 * gib, free=80 * gib, total=8 * gib, per_gpu=4) == 0
    with pytest.raises(ValueError, match="per_gpu must be >= 1"):
        members_that_fit(gib, free=gib, total=gib, per_gpu=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_the_gpu_probe_sizes_batches_from_free_memory_and_refuses_what_cannot_fit():
    from swarmcast.ops.devices import DeviceError

    model, member = small_sfno().cuda(), states(1).cuda()
    fits = probe_batch_size(model, member, None)
    assert fits is not None and fits >= 1
    assert probe_batch_size(model, member, 1) == 1
    with pytest.raises(DeviceError, match=r"actors.batch_members 1000000000 needs about .* GiB"):
        probe_batch_size(model, member, 10**9)
    # sharing the card with more actors than it has bytes: refused, naming per_gpu
    with pytest.raises(DeviceError, match=r"holds none; lower per_gpu"):
        probe_batch_size(model, member, None, per_gpu=2**40)
