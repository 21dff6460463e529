"""Bring your own model: a state dict written by torch-harmonics' SFNO becomes a checkpoint
folder (without running pickled code) whose forecasts are the network's, and drives a hindcast."""

import json
import os
import re

import numpy as np
import pytest
import torch
import xarray as xr
from torch_harmonics.examples.models import SphericalFourierNeuralOperator

from swarmcast.ops.checkpoint import load_model
from swarmcast.ops.data.normalization import Normalization
from swarmcast.pipelines.cli import main
from swarmcast.pipelines.config import parse_pipeline
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.runner import run_pipeline

CH = ("h", "u", "v", "vo")


def _net(embed_dim=8, num_layers=2, seed=0):
    torch.manual_seed(seed)
    return SphericalFourierNeuralOperator(
        img_size=(16, 32),
        grid="equiangular",
        grid_internal="legendre-gauss",
        scale_factor=2,  # torch-harmonics' default (3) does not divide this grid
        in_chans=4,
        out_chans=4,
        embed_dim=embed_dim,
        num_layers=num_layers,
        mlp_ratio=2.0,
    )


class Payload:
    """An object whose unpickling would run a command: what a hostile "state dict" holds."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _import(base, swe_store, weights, *extra):
    return main(
        [
            "import-sfno",
            str(weights),
            "--channels",
            ",".join(CH),
            "--normalization",
            str(base / "stats.json"),
            "--validate-on",
            str(swe_store),
            "-o",
            str(base / "checkpoints" / "imported-0"),
            "--validation-lead-hours",
            "12",
            "--embed-dim",
            "8",
            "--num-layers",
            "2",
            "--scale-factor",
            "2",
            *extra,
        ]
    )


@pytest.fixture
def imported(swe_store, tmp_path):
    assert main(["stats", str(swe_store), "-o", str(tmp_path / "stats.json")]) == 0
    net = _net()
    # as makani keeps it: nested under model_state, with DDP's module. prefix
    torch.save({"model_state": {f"module.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "sfno.pt")
    assert _import(tmp_path, swe_store, tmp_path / "sfno.pt") == 0
    return tmp_path, net


def test_the_imported_checkpoint_steps_as_the_torch_harmonics_network_does(imported):
    base, net = imported
    model, meta = load_model(base / "checkpoints" / "imported-0")
    norm = Normalization.from_attr(json.loads((base / "stats.json").read_text())["normalization"])
    mean, std = (torch.as_tensor(a).reshape(4, 1, 1) for a in norm.arrays(CH))
    x = mean + std * torch.randn(3, 4, 16, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = net.eval()((x - mean) / std) * std + mean  # the network maps state to state
        np.testing.assert_allclose(model(x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5 * float(std.max()))
    assert meta["channels"] == list(CH) and meta["time_step_hours"] == 6.0 and not meta["model"]["residual"]
    assert set(meta["validation_rmse"]) == {"12h", "6h"} and meta["validation_lead_hours"] == 12.0
    assert all(np.isfinite(v) and v > 0 for v in meta["validation_rmse"]["12h"].values())
    assert meta["imported"]["from"] == "sfno.pt" and str(base) not in json.dumps(meta)  # no machine paths


def test_a_state_dict_of_another_shape_or_with_code_is_refused(imported, swe_store, capsys):
    base, _ = imported
    torch.save(_net(embed_dim=16).state_dict(), base / "wide.pt")
    assert _import(base, swe_store, base / "wide.pt") == 2
    err = capsys.readouterr().err
    assert "the state dict does not fit 4 channels, 16x32, embed_dim 8, num_layers 2, scale_factor 2" in err
    assert re.search(r"tensor '[\w.]+' is \(\d+(, \d+)*\) in the file, \(\d+(, \d+)*\) for this config", err)
    torch.save(_net(num_layers=3).state_dict(), base / "deep.pt")
    assert _import(base, swe_store, base / "deep.pt") == 2
    assert "is not part of this config" in capsys.readouterr().err
    marker = base / "ran"
    torch.save({"w": Payload(marker)}, base / "hostile.pt")
    assert _import(base, swe_store, base / "hostile.pt") == 2
    assert "cannot be read as a state dict without running code" in capsys.readouterr().err
    assert not marker.exists()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_imported_checkpoint_drives_a_hindcast(ray_session, imported, swe_store):
    base, _ = imported
    (base / "data.zarr").symlink_to(swe_store)
    stage = {
        "kind": "hindcast",
        "init_times": {"times": ["2001-01-01T18"]},
        "lead_hours": 12,
        "perturbation": {"kind": "bred-vector", "pairs": 2, "seed_channels": ["h"], "growth_check": False},
        "actors": {"cpus": 0.5},
    }
    raw = {"name": "imported", "stages": [stage]}
    (result,) = run_pipeline(parse_pipeline(raw), StageContext(base=base, pipeline_raw=raw))
    assert result["computed"] == 1
    ds = xr.open_zarr(base / "hindcast.zarr")
    assert ds["checkpoint"].values.tolist() == ["imported-0"] * 5 and ds["member_done"].values.all()
    assert np.isfinite(ds["h"].values).all()
