"""SFNO stepper, training loop pieces and the checkpoint format (no Ray)."""

import json

import numpy as np
import pytest
import torch

from swarmcast.kernels.sphere import quadrature_weights
from swarmcast.ops.checkpoint import (
    FORECAST_KEYS,
    CheckpointError,
    check_compatible,
    load_model,
    load_training_state,
    read_meta,
    save_model,
    save_training_state,
    verify_weights,
)
from swarmcast.ops.data.normalization import ChannelStats, Normalization
from swarmcast.ops.optim import OptimConfig, make_optimizer
from swarmcast.ops.sfno.model import SFNOConfig, SFNOStepper, increment_scale
from swarmcast.ops.sfno.training import NormalizedStep, train_step, validate

CH = ("a", "b")
NORM = Normalization({"a": ChannelStats(10.0, 2.0, 0.5), "b": ChannelStats(-1.0, 4.0, 2.0)}, 6.0)


def _model(seed: int = 0, **kw) -> SFNOStepper:
    torch.manual_seed(seed)
    cfg = SFNOConfig(CH, 8, 16, embed_dim=8, num_layers=1, **kw)
    mean, std = NORM.arrays(CH)
    return SFNOStepper(cfg, mean.tolist(), std.tolist(), increment_scale(NORM, CH))


def _meta() -> dict:
    return {"normalization": NORM.to_attr(), "channels": list(CH), "seed": 0}


def test_residual_step_is_identity_when_the_network_outputs_zero():
    m = _model()
    z = torch.randn(3, 2, 8, 16)
    torch.testing.assert_close(m.combine(z, torch.zeros_like(z)), z)
    # increments are scaled per channel by tendency_std / std
    step = m.combine(z, torch.ones_like(z)) - z
    torch.testing.assert_close(step[:, 0], torch.full_like(step[:, 0], 0.25))
    torch.testing.assert_close(step[:, 1], torch.full_like(step[:, 1], 0.5))
    x = m.denormalize(z)
    torch.testing.assert_close(m.normalize(x), z, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale_factor": 3}, "scale_factor 3 must divide"),
        ({"grid_internal": "healpix"}, "grid_internal"),
        ({"embed_dim": 0}, "embed_dim"),
    ],
)
def test_impossible_model_configs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SFNOConfig(CH, 8, 16, **kwargs)


def test_model_checkpoint_round_trips_bit_identically(tmp_path):
    m = _model(seed=3)
    save_model(tmp_path / "ck", m, _meta(), extra_files={"metrics.jsonl": "{}\n"})
    loaded, meta = load_model(tmp_path / "ck")
    for (k1, v1), (k2, v2) in zip(m.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2)
    x = m.denormalize(torch.randn(2, 2, 8, 16))
    assert torch.equal(m.eval()(x), loaded(x))
    assert meta["model"]["embed_dim"] == 8 and (tmp_path / "ck" / "metrics.jsonl").exists()
    assert not list(tmp_path.glob(".ck*"))  # no temporary folders left behind


def test_tampered_or_foreign_checkpoints_are_refused(tmp_path):
    save_model(tmp_path / "ck", _model(), _meta())
    other = _model(seed=9)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(tmp_path / "ck" / "weights.safetensors"))
    with pytest.raises(CheckpointError, match="do not match the hash"):
        load_model(tmp_path / "ck")
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        load_model(tmp_path)
    meta = json.loads((tmp_path / "ck" / "checkpoint.json").read_text())
    with pytest.raises(CheckpointError, match=r"channels \['a', 'b'\] do not match the data's \['a'\]"):
        check_compatible(meta, ["a"], 8, 16)
    with pytest.raises(CheckpointError, match="grid 8x16 does not match the data grid 16x32"):
        check_compatible(meta, ["a", "b"], 16, 32)


def test_resuming_from_a_training_state_continues_exactly(tmp_path):
    w = quadrature_weights(8)
    batches = [torch.randn(4, 2, 2, 8, 16, generator=torch.Generator().manual_seed(i)) for i in range(5)]
    cfg = OptimConfig(lr=1e-2, total_steps=5)

    def fresh():
        m = _model(seed=1)
        opt, sched = make_optimizer(m, cfg)
        return m, opt, sched

    m, opt, sched = fresh()
    for b in batches[:3]:
        train_step(NormalizedStep(m), b, w, opt, sched, cfg, 1)
    save_training_state(tmp_path / "state", m, opt, sched, {"epoch": 3, "history": []})
    for b in batches[3:]:
        train_step(NormalizedStep(m), b, w, opt, sched, cfg, 1)

    m2, opt2, sched2 = fresh()
    state = load_training_state(tmp_path / "state", m2, opt2, sched2)
    assert state["epoch"] == 3
    for b in batches[3:]:
        train_step(NormalizedStep(m2), b, w, opt2, sched2, cfg, 1)
    for v1, v2 in zip(m.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(v1, v2)


def test_validation_baselines_match_brute_force():
    m = _model()
    rng = np.random.default_rng(0)
    windows = rng.standard_normal((5, 3, 2, 8, 16)).astype(np.float32)
    w = quadrature_weights(8)
    scores = validate(m, windows, w, [1, 2], batch_size=2)
    wn = w.numpy()[:, None]
    std = np.array([2.0, 4.0])
    for lead in (1, 2):
        err = (windows[:, 0] - windows[:, lead]) ** 2
        expected = np.sqrt((err * wn).mean(axis=(-2, -1)).mean(axis=0)) * std
        np.testing.assert_allclose(scores["persistence"][lead], expected, rtol=1e-6)
        clim = np.sqrt((windows[:, lead] ** 2 * wn).mean(axis=(-2, -1)).mean(axis=0)) * std
        np.testing.assert_allclose(scores["climatology"][lead], clim, rtol=1e-6)


def test_a_damaged_checkpoint_json_names_its_file_and_what_is_wrong(tmp_path):
    save_model(tmp_path / "ck", _model(), _meta())
    path = tmp_path / "ck" / "checkpoint.json"
    good = json.loads(path.read_text())
    path.write_text(path.read_text()[:-20])  # cut short, as by a full disk
    with pytest.raises(CheckpointError, match=r"ck/checkpoint.json: not valid JSON"):
        read_meta(tmp_path / "ck")
    path.write_text("[1, 2]")
    with pytest.raises(CheckpointError, match=r"checkpoint.json: expected a JSON object, got list"):
        read_meta(tmp_path / "ck")
    path.write_text(json.dumps({k: v for k, v in good.items() if k != "model"}))
    with pytest.raises(CheckpointError, match=r"checkpoint.json: lacks \['model'\]"):
        load_model(tmp_path / "ck")
    path.write_text(json.dumps(good))
    with pytest.raises(CheckpointError, match=r"lacks \['time_step_hours'\]"):  # _meta() has no step
        read_meta(tmp_path / "ck", required=FORECAST_KEYS)


def test_verify_weights_returns_the_recorded_hash_or_names_the_damaged_file(tmp_path):
    import hashlib

    save_model(tmp_path / "ck", _model(), _meta())
    meta = read_meta(tmp_path / "ck")
    weights = tmp_path / "ck" / "weights.safetensors"
    assert verify_weights(tmp_path / "ck", meta) == hashlib.sha256(weights.read_bytes()).hexdigest()
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")  # one byte flipped
    with pytest.raises(CheckpointError, match=r"weights.safetensors: does not match the hash"):
        verify_weights(tmp_path / "ck", meta)
    weights.unlink()
    with pytest.raises(CheckpointError, match=r"weights.safetensors: missing"):
        verify_weights(tmp_path / "ck", meta)


def test_input_noise_perturbs_only_the_initial_state_with_the_given_std():
    """With the identity as the model, the one-step loss is the MSE of the input noise itself:
    E[noise^2] = std^2 (the quadrature weights average to 1); without noise it is exactly 0."""
    from swarmcast.kernels.sphere import quadrature_weights
    from swarmcast.ops.sfno.training import rollout_loss

    states = torch.randn(64, 1, 2, 16, 32).expand(64, 3, 2, 16, 32).clone()  # a still state: x_t+1 = x_t
    w = quadrature_weights(16)
    assert float(rollout_loss(lambda z: z, states, w, 1)) == 0.0
    torch.manual_seed(0)
    loss = float(rollout_loss(lambda z: z, states, w, 1, input_noise=0.1))
    assert loss == pytest.approx(0.01, rel=0.02)
    # over two steps the noise is carried, not redrawn: the same mean square at both steps
    torch.manual_seed(0)
    assert float(rollout_loss(lambda z: z, states, w, 2, input_noise=0.1)) == pytest.approx(loss, rel=1e-6)


def test_the_spectral_term_adds_its_weight_for_persistence_and_nothing_for_a_perfect_step():
    """Persistence on a moving state: loss = its MSE + weight x 1 (its error is the true step at
    every degree); the exact step: loss 0 whatever the weight."""
    from swarmcast.kernels.sphere import quadrature_weights
    from swarmcast.ops.sfno.training import rollout_loss

    torch.manual_seed(1)
    x0, step = torch.randn(8, 2, 16, 32), torch.randn(8, 2, 16, 32)  # white steps: power at every degree
    windows = torch.stack([x0, x0 + step], dim=1)
    w = quadrature_weights(16)
    plain = float(rollout_loss(lambda z: z, windows, w, 1))
    assert float(rollout_loss(lambda z: z, windows, w, 1, spectral_weight=0.5)) == pytest.approx(plain + 0.5, rel=1e-4)
    exact = lambda z: z + step  # noqa: E731 - the true step of these windows
    assert float(rollout_loss(exact, windows, w, 1, spectral_weight=0.5)) == pytest.approx(0.0, abs=1e-10)
