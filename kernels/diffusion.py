"""Noise paths, EDM preconditioning and loss weights: one framework for diffusion and interpolants.

Every path is Gaussian given the data: x_t = alpha(t) x0 + sigma(t) z, with t in [0, 1] from
data (t = 0) to noise (t = 1); a stochastic interpolant's latent noise gamma(t) z' adds to the
noise part, so sigma(t)^2 = beta(t)^2 + gamma(t)^2:

* ``linear``:  alpha = 1 - t,         beta = t            (rectified flow)
* ``trig``:    alpha = cos(pi t / 2), beta = sin(pi t / 2) (variance preserving)
* ``edm``:     alpha = 1,             beta = sigma_max^t sigma_min^(1 - t) (variance exploding)

Dividing by alpha maps any path onto the variance-exploding one with noise level
s = sigma / alpha (Karras et al. 2022, sec. 4): x_t / alpha = x0 + s z. Networks are therefore
always the EDM-preconditioned denoiser D(x; s) ~ E[x0 | x0 + s z] (Karras et al. eq. 7):

    D(x; s) = c_skip(s) x + c_out(s) F(c_in(s) x, c_noise(s)),
    c_skip = sd^2/(s^2+sd^2), c_out = s sd/sqrt(s^2+sd^2), c_in = 1/sqrt(s^2+sd^2), c_noise = ln(s)/4,

and every objective is a weighted denoising loss ||D - x0||^2: predicting the noise
z = (x - D)/s weighs it by 1/s^2, the velocity d x_t/dt by (alpha' - sigma'/s)^2 in the
alpha-scaled frame, EDM by (s^2 + sd^2)/(s sd)^2. Samplers integrate dx/ds = (x - D)/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

PATHS = ("edm", "linear", "trig")
PREDICTIONS = ("denoiser", "noise", "velocity", "edm")


@dataclass(frozen=True)
class NoisePath:
    """alpha(t), sigma(t) of a Gaussian path; ``gamma`` scales the interpolant's latent noise."""

    kind: str = "edm"
    sigma_min: float = 0.002
    """Smallest noise level s (EDM) / smallest t-derived level for interpolants."""
    sigma_max: float = 80.0
    """Largest noise level s."""
    gamma: float = 0.0
    """Latent noise gamma(t) = gamma * sqrt(t (1 - t)) of a stochastic interpolant (0: none)."""

    def __post_init__(self) -> None:
        if self.kind not in PATHS:
            raise ValueError(f"unknown path {self.kind!r}; expected one of {PATHS}")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError("need 0 < sigma_min < sigma_max")

    def t_range(self) -> tuple[float, float]:
        """t whose noise levels s are sigma_min and sigma_max."""
        ends = self.t_of_s(torch.tensor([self.sigma_min, self.sigma_max], dtype=torch.float64))
        return float(ends[0]), float(ends[1])

    def coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """alpha, sigma and their t-derivatives at ``t``."""
        if self.kind == "edm":
            lo, hi = math.log(self.sigma_min), math.log(self.sigma_max)
            beta = torch.exp(lo + t * (hi - lo))
            alpha, d_alpha, d_beta = torch.ones_like(t), torch.zeros_like(t), beta * (hi - lo)
        elif self.kind == "linear":
            alpha, beta, d_alpha, d_beta = 1 - t, t, -torch.ones_like(t), torch.ones_like(t)
        else:
            h = 0.5 * math.pi
            alpha, beta = torch.cos(h * t), torch.sin(h * t)
            d_alpha, d_beta = -h * beta, h * alpha
        if self.gamma:
            g = self.gamma * torch.sqrt(t * (1 - t))
            dg = self.gamma * (1 - 2 * t) / (2 * torch.sqrt(t * (1 - t)))
            sigma = torch.sqrt(beta**2 + g**2)
            return alpha, sigma, d_alpha, (beta * d_beta + g * dg) / sigma
        return alpha, beta, d_alpha, d_beta

    def s_of_t(self, t: torch.Tensor) -> torch.Tensor:
        """Noise level s = sigma / alpha of the variance-exploding frame."""
        alpha, sigma, _, _ = self.coefficients(t)
        return sigma / alpha

    def t_of_s(self, s: torch.Tensor) -> torch.Tensor:
        """Inverse of ``s_of_t`` (closed form without gamma; bisection with it)."""
        s = torch.as_tensor(s, dtype=torch.float64)
        if not self.gamma:
            if self.kind == "edm":
                lo, hi = math.log(self.sigma_min), math.log(self.sigma_max)
                return (torch.log(s) - lo) / (hi - lo)
            if self.kind == "linear":
                return s / (1 + s)
            return torch.atan(s) * (2 / math.pi)
        a, b = torch.zeros_like(s) + 1e-9, torch.ones_like(s) - 1e-9
        for _ in range(60):
            mid = 0.5 * (a + b)
            low = self.s_of_t(mid) < s
            a, b = torch.where(low, mid, a), torch.where(low, b, mid)
        return 0.5 * (a + b)


def edm_coefficients(s: torch.Tensor, sigma_data: float) -> tuple[torch.Tensor, ...]:
    """c_skip, c_out, c_in, c_noise of EDM preconditioning at noise level ``s``."""
    var = s**2 + sigma_data**2
    return sigma_data**2 / var, s * sigma_data / var.sqrt(), 1 / var.sqrt(), torch.log(s) / 4


def loss_weight(prediction: str, path: NoisePath, t: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """Weight w(t) so that w ||D - x0||^2 is the chosen objective's per-sample loss."""
    alpha, sigma, d_alpha, d_sigma = path.coefficients(t)
    s = sigma / alpha
    if prediction == "denoiser":
        return torch.ones_like(s)
    if prediction == "noise":  # ||z_hat - z||^2 with z_hat = (x - D)/s
        return 1 / s**2
    if prediction == "velocity":  # ||v_hat - v||^2, v = alpha' x0 + sigma' z, in units of alpha x
        return (d_alpha - d_sigma * alpha / sigma) ** 2
    if prediction == "edm":
        return (s**2 + sigma_data**2) / (s * sigma_data) ** 2
    raise ValueError(f"unknown prediction {prediction!r}; expected one of {PREDICTIONS}")


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """n noise levels from sigma_max down to sigma_min (Karras et al. eq. 5), then a final 0."""
    if n < 1:
        raise ValueError("need at least one sampling step")
    i = torch.arange(n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    s = (hi + i / max(n - 1, 1) * (lo - hi)) ** rho
    return torch.cat([s, torch.zeros(1, dtype=torch.float64)])


def log_snr_sigmas(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """n noise levels uniform in log s (uniform in log-SNR, DPM-Solver's recommended spacing), then 0."""
    if n < 1:
        raise ValueError("need at least one sampling step")
    s = torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), n, dtype=torch.float64))
    return torch.cat([s, torch.zeros(1, dtype=torch.float64)])


SPACINGS = {"karras": karras_sigmas, "log-snr": log_snr_sigmas}


def sampling_sigmas(spacing: str, n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Noise levels of an n-step sampler (``spacing``: "karras" or "log-snr"), ending in 0."""
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}; expected one of {sorted(SPACINGS)}")
    return SPACINGS[spacing](n, sigma_min, sigma_max)


__all__ = [
    "PATHS",
    "PREDICTIONS",
    "SPACINGS",
    "NoisePath",
    "edm_coefficients",
    "karras_sigmas",
    "log_snr_sigmas",
    "loss_weight",
    "sampling_sigmas",
]
