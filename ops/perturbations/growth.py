"""Can a checkpoint carry perturbations? Roll perturbed states forward and compare with its errors.

An ML model can forecast well from the analysis and still blow perturbed states up: noise off the
data's manifold excites modes training never constrained (the demo's first checkpoints took bred
members' winds to 250 m/s in 48 h while their control stayed within the truth's 55). Such a
checkpoint makes an over-dispersed ensemble whatever the perturbation settings, so it is caught
before it joins a hindcast: at the end of training (recorded in ``checkpoint.json``) and when the
hindcast starts (with its own perturbation settings).

The check perturbs a few initial states with the configured ``Perturbation``, rolls members and
control forward to the lead of the checkpoint's validation RMSE (48 h) and flags, per channel:

- growth far beyond the model's own error growth: the perturbation RMS at that lead (members
  minus control, area-weighted, over members and init states) above ``max_ratio`` (default 3)
  times the checkpoint's validation RMSE there. Spread about equal to the error is what a
  calibrated ensemble has (spread-skill ratio 1), so 3x is an ensemble no threshold could fix;
- members leaving the physical range: a value below the channel's physical bound (a depth
  below 0), or further than ``range_sigmas`` (default 10) standard deviations of the training
  data from its mean (observed extremes of winds and heights stay within about 6).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import torch

from swarmcast.kernels.sphere import quadrature_weights
from swarmcast.ops.perturbations.base import Member, Perturbation, Step


@dataclass(frozen=True)
class GrowthLimits:
    """Where the check flags (module docstring)."""

    max_ratio: float = 3.0
    range_sigmas: float = 10.0


@dataclass
class GrowthCheck:
    """The check's numbers: per channel, perturbation RMS at ``lead_hours`` over the validation
    RMSE there (``ratio``), and the members' smallest and largest values; ``problems``: one
    sentence per flag, empty when the checkpoint passes."""

    lead_hours: float
    ratio: dict[str, float]
    member_min: dict[str, float]
    member_max: dict[str, float]
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {**asdict(self), "passed": self.passed}


@torch.no_grad()
def check_growth(
    step: Step,
    histories: torch.Tensor,
    perturbation: Perturbation,
    members: Sequence[Member],
    n_steps: int,
    *,
    step_hours: float,
    channels: Sequence[str],
    rmse: Mapping[str, float],
    mean: Sequence[float],
    std: Sequence[float],
    lower_bound: Callable[[str], float | None],
    limits: GrowthLimits | None = None,
) -> GrowthCheck:
    """Roll ``members`` of each initial state forward ``n_steps`` and apply the limits.

    ``histories``: (inits, history_steps + 1, channels, nlat, nlon) physical states, the last of
    each the initial state; ``step``: one model step on physical states; ``rmse``: the
    checkpoint's validation RMSE per channel at ``n_steps`` steps; ``mean``/``std``: its
    training data's per-channel mean and std; ``lower_bound``: a channel's physical bound or None.
    """
    lim = limits or GrowthLimits()
    c, nlat = histories.shape[2], histories.shape[3]
    w = quadrature_weights(nlat).to(histories).reshape(1, 1, -1, 1)
    w = w / w.mean()
    sq = torch.zeros(c, dtype=torch.float64)
    lo = torch.full((c,), float("inf"), dtype=torch.float64)
    hi = torch.full((c,), float("-inf"), dtype=torch.float64)
    n_perturbed = 0
    for history in histories:
        states = perturbation(history, members, step)
        control = history[-1].unsqueeze(0)
        x = torch.cat([control, states])
        for _ in range(n_steps):
            x = step(x)
            lo = torch.minimum(lo, x[1:].amin(dim=(0, 2, 3)).double().cpu())
            hi = torch.maximum(hi, x[1:].amax(dim=(0, 2, 3)).double().cpu())
        perturbed = [i for i, m in enumerate(members) if m.sign != 0]
        diff = (x[1:][perturbed] - x[:1]).double()
        sq += (diff**2 * w.double()).mean(dim=(2, 3)).sum(dim=0).cpu()
        n_perturbed += len(perturbed)
    spread = torch.sqrt(sq / max(n_perturbed, 1))
    hours = n_steps * step_hours
    out = GrowthCheck(hours, {}, {}, {})
    for k, name in enumerate(channels):
        ratio = float(spread[k]) / rmse[name] if rmse[name] > 0 else float("inf")
        out.ratio[name], out.member_min[name], out.member_max[name] = ratio, float(lo[k]), float(hi[k])
        if ratio > lim.max_ratio:
            out.problems.append(
                f"{name}: perturbations grow to {float(spread[k]):.4g} RMS at {hours:g} h, {ratio:.2g}x the "
                f"checkpoint's {hours:g} h RMSE ({rmse[name]:.4g}; at most {lim.max_ratio:g}x)"
            )
        bound = lower_bound(name)
        low, high = mean[k] - lim.range_sigmas * std[k], mean[k] + lim.range_sigmas * std[k]
        if bound is not None:
            low = max(low, bound)
        if lo[k] < low or hi[k] > high:
            out.problems.append(
                f"{name}: members reach {float(lo[k]):.4g} to {float(hi[k]):.4g} by {hours:g} h, outside "
                f"{low:.4g} to {high:.4g} (the training data's mean +/- {lim.range_sigmas:g} std"
                + (f", and above {bound:g}" if bound is not None else "")
                + ")"
            )
    return out


__all__ = ["GrowthCheck", "GrowthLimits", "check_growth"]
