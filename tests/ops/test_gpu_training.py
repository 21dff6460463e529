"""bf16 training on a GPU (skipped, with the reason, where there is none)."""

import pytest
import torch

from swarmcast.kernels.sphere import quadrature_weights
from swarmcast.ops.optim import OptimConfig, make_optimizer
from swarmcast.ops.sfno.model import SFNOConfig, SFNOStepper
from swarmcast.ops.sfno.training import NormalizedStep, rollout_loss, train_step

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)"),
]


def test_bf16_training_step_on_cuda_matches_float32_closely():
    torch.manual_seed(0)
    model = SFNOStepper(SFNOConfig(("a", "b"), 16, 32, embed_dim=16, num_layers=2), [0.0, 0.0], [1.0, 1.0]).cuda()
    windows = torch.randn(4, 2, 2, 16, 32, device="cuda")
    w = quadrature_weights(16).cuda()
    cfg = OptimConfig(lr=1e-3, total_steps=10)
    opt, sched = make_optimizer(model, cfg)
    with torch.no_grad():
        fp32 = float(rollout_loss(model.step_normalized, windows, w, 1))  # no autocast: float32
    loss = train_step(NormalizedStep(model), windows, w, opt, sched, cfg, 1)  # bf16 autocast inside
    assert torch.isfinite(torch.tensor(loss))
    assert abs(loss - fp32) < 0.02 * fp32  # the same loss up to bf16 rounding
