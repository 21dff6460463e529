"""A work unit end to end without Ray: perturb, roll out, write, read back, regenerate."""

import numpy as np
import torch
import xarray as xr

from swarmcast.ops.ensemble.rollout import run_unit, saved_steps
from swarmcast.ops.ensemble.store import EnsembleLayout, Unit, UnitWriter, create_ensemble_store
from swarmcast.ops.perturbations import BredVector, plan_members
from swarmcast.ops.sfno.model import SFNOConfig, SFNOStepper

CH = ("h", "u")


def model() -> SFNOStepper:
    torch.manual_seed(0)
    return SFNOStepper(SFNOConfig(CH, 16, 32, embed_dim=8, num_layers=1), [1e4, 0.0], [300.0, 10.0], [0.3, 0.4])


def history() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.stack(
        [
            torch.tensor([1e4, 0.0]).reshape(2, 1, 1)
            + torch.randn(2, 16, 32, generator=g) * torch.tensor([300.0, 10.0]).reshape(2, 1, 1)
            for _ in range(3)
        ]
    )


def test_saved_steps():
    assert saved_steps(8, 4) == [0, 4, 8] and saved_steps(7, 2) == [0, 2, 4, 6] and saved_steps(0, 1) == [0]


def test_unit_rollout_equals_manual_stepping_and_regenerates_member_alone(tmp_path, one_torch_thread):
    m, h = model(), history()
    pert = BredVector([30.0, 3.0], [True, False], cycles=2)
    t0 = np.datetime64("2023-06-01T00", "ns")
    members = plan_members(5, t0, "seed-0", pairs=2)[1:]  # 2 pairs, no control: a block of 4
    lay = EnsembleLayout(
        init_times=np.array([t0]),
        lead_times=np.array([0, 12, 24], dtype="timedelta64[h]").astype("timedelta64[ns]"),
        lat=np.linspace(90, -90, 16),
        lon=np.arange(32) * 11.25,
        channels=CH,
        checkpoints=("seed-0",),
        perturbation=np.array([1, 1, 2, 2]),
        sign=np.array([1, -1, 1, -1]),
        member_block=4,
        leads_per_shard=2,
    )
    path = create_ensemble_store(
        tmp_path / "e.zarr", lay, np.array([[x.seed for x in members]]), {"swarmcast_stage": 1}
    )
    writer = UnitWriter(path, lay, Unit(0, 0, 0))
    for chunk in run_unit(m, pert, h, members, n_steps=4, output_every=2):
        writer.write(chunk)
    writer.finish()
    stored = xr.open_zarr(path)

    # the same thing by hand: perturb, then apply the model step by step
    with torch.no_grad():
        x = pert(h, members, m)
        manual = [x]
        for _ in range(4):
            x = m(x)
            manual.append(x)
    np.testing.assert_array_equal(stored["h"].values[0, :, 2], manual[4][:, 0].numpy())
    np.testing.assert_array_equal(stored["u"].values[0, :, 1], manual[2][:, 1].numpy())
    # +/- members are centred on the analysis at lead 0
    np.testing.assert_allclose(
        (stored["h"].values[0, 0, 0] + stored["h"].values[0, 1, 0]) / 2, h[-1, 0].numpy(), rtol=1e-6
    )

    # any member alone, from its seed only, reproduces its stored values exactly (CPU)
    alone = np.concatenate(list(run_unit(m, pert, h, [members[3]], n_steps=4, output_every=2)), axis=1)
    np.testing.assert_array_equal(alone[0, :, 0], stored["h"].values[0, 3])
    np.testing.assert_array_equal(alone[0, :, 1], stored["u"].values[0, 3])
    assert bool(stored["member_done"].values.all())
