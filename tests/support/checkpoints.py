"""Small real checkpoints for tests that need a model but not a trained one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def write_untrained_checkpoint(
    folder: Path,
    store: Path,
    seed: int,
    nlat: int = 16,
    nlon: int = 32,
    channels: Sequence[str] = ("h", "u", "v", "vo"),
) -> None:
    """A randomly initialised (seeded) small SFNO checkpoint for ``store``'s channels and grid,
    with damped increments and made-up 48 h validation RMSEs: enough to drive a real hindcast in
    tests, and to pass its perturbation-growth gate at the default amplitude."""
    from swarmcast.ops.checkpoint import save_model
    from swarmcast.ops.data.readers import open_climate, stored_normalization
    from swarmcast.ops.sfno.model import SFNOConfig, SFNOStepper, increment_scale

    CH = tuple(channels)  # noqa: N806
    norm = stored_normalization(open_climate(store, CH))
    mean, std = norm.arrays(CH)
    import torch

    torch.manual_seed(seed)
    # increments damped tenfold: random weights otherwise grow perturbations ~50x in 48 h, and the
    # hindcast's growth gate (swarmcast.ops.perturbations.growth) refuses such a model, as it should
    damped = [0.1 * s for s in increment_scale(norm, CH)]
    model = SFNOStepper(SFNOConfig(CH, nlat, nlon, embed_dim=8, num_layers=1), mean.tolist(), std.tolist(), damped)
    meta = {
        "channels": list(CH),
        "grid": {"type": "equiangular", "nlat": nlat, "nlon": nlon},
        "time_step_hours": 6.0,
        "normalization": norm.to_attr(),
        "seed": seed,
        "validation_lead_hours": 48.0,
        "validation_rmse": {"48h": {c: {"h": 100.0, "vo": 1e-5}.get(c, 5.0) for c in CH}},
    }
    save_model(folder, model, meta)
