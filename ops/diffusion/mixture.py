"""A Gaussian-mixture data distribution whose exact denoiser is analytic (tests and ``bench sample``).

Data x0 ~ sum_k w_k N(mu_k, s_k^2 I) in d dims. Under x = x0 + s z every component stays
Gaussian, N(mu_k, (s_k^2 + s^2) I), so

    E[x0 | x] = sum_k r_k(x) (mu_k + s_k^2 / (s_k^2 + s^2) (x - mu_k)),
    r_k(x) = softmax_k(log w_k - |x - mu_k|^2 / (2 (s_k^2 + s^2)) - d/2 log(s_k^2 + s^2)),

which lets samplers be tested against the true distribution with no training at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GaussianMixture:
    means: torch.Tensor
    """(K, d) component means."""
    stds: torch.Tensor
    """(K,) isotropic component standard deviations."""
    weights: torch.Tensor
    """(K,) mixture weights summing to 1."""

    def denoise(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Exact D(x; s) = E[x0 | x0 + s z = x] for x of shape (B, d)."""
        x64 = x.double()
        var = self.stds.double() ** 2 + float(s) ** 2  # (K,)
        diff = x64[:, None, :] - self.means.double()[None]  # (B, K, d)
        d = x.shape[-1]
        logits = torch.log(self.weights.double()) - (diff**2).sum(-1) / (2 * var) - 0.5 * d * torch.log(var)
        r = torch.softmax(logits, dim=1)  # (B, K)
        shrink = (self.stds.double() ** 2 / var)[None, :, None]
        per_component = self.means.double()[None] + shrink * diff
        return (r[..., None] * per_component).sum(dim=1).to(x.dtype)

    def denoise_interpolating(self, x: torch.Tensor, s: torch.Tensor, tau: float) -> torch.Tensor:
        """A stand-in for a smooth trained network that interpolates between modes.

        Component responsibilities are tempered (their variance widened by ``tau^2``) while the
        per-component posterior means stay exact, so near the ridge between two modes the
        prediction no longer snaps to either: some samples end between the modes, the
        mode-interpolation hallucinations of Aithal et al. (2024).
        """
        x64 = x.double()
        var = self.stds.double() ** 2 + float(s) ** 2
        diff = x64[:, None, :] - self.means.double()[None]
        logits = torch.log(self.weights.double()) - (diff**2).sum(-1) / (2 * (var + tau**2))
        r = torch.softmax(logits, dim=1)
        shrink = (self.stds.double() ** 2 / var)[None, :, None]
        return (r[..., None] * (self.means.double()[None] + shrink * diff)).sum(dim=1).to(x.dtype)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """n draws from the data distribution, (n, d) float64."""
        g = torch.Generator().manual_seed(seed)
        k = torch.multinomial(self.weights.double(), n, replacement=True, generator=g)
        z = torch.randn(n, self.means.shape[1], generator=g, dtype=torch.float64)
        return self.means.double()[k] + self.stds.double()[k, None] * z


def two_d_mixture() -> GaussianMixture:
    """Three well-separated, narrow 2-D modes: low-NFE discretisation errors are visible."""
    means = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])
    return GaussianMixture(means, torch.tensor([0.25, 0.4, 0.3]), torch.tensor([0.3, 0.5, 0.2]))


def one_d_two_modes(separation: float = 6.0, std: float = 0.5) -> GaussianMixture:
    """Two well-separated 1-D modes at +/- separation/2 (the hallucination paper's toy setting)."""
    means = torch.tensor([[-separation / 2], [separation / 2]])
    return GaussianMixture(means, torch.tensor([std, std]), torch.tensor([0.5, 0.5]))
