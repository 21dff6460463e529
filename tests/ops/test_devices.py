"""Asking for a GPU where there is none is an error, never a silent CPU run."""

import pytest
import torch

from swarmcast.ops.devices import DeviceError, compute_device
from swarmcast.ops.errors import InputError


def test_the_cpu_when_no_gpu_is_asked_for():
    assert compute_device(False) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_use_gpu_without_cuda_is_a_clear_input_error():
    with pytest.raises(DeviceError, match="use_gpu is set but this process sees no CUDA GPU") as err:
        compute_device(True)
    assert isinstance(err.value, InputError)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_use_gpu_with_cuda_is_the_gpu():
    assert compute_device(True).type == "cuda"
